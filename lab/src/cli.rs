//! The `vrouter-lab` command line: the lab, the soak, the generator, the sink and the
//! benchmark.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

/// vrouter-lab: measurement and demonstration tools for the vrouter (not needed to run it).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The vrouter executable the lab, soak and bench run (default: `vrouter` beside
    /// this program).
    #[arg(long, global = true)]
    vrouter: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The command line's definition (for checking documented commands against it).
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build nodes of network namespaces with pods on real vrouters, run ping, TCP and
    /// UDP between them, print what happened, and remove everything.
    Lab(crate::LabOptions),
    /// A node under pings, TCP, flow churn, route churn, port churn and an API client
    /// for a set time, with RSS, fds, drops and API latency sampled; a verdict line.
    Soak(crate::soak::SoakOptions),
    /// Send UDP or TCP SYN traffic on an interface over AF_XDP (a pktgen-style generator).
    Gen(crate::gen::GenOptions),
    /// Count and drop what arrives on an interface (an XDP program), then report.
    Sink {
        /// Interface to count on.
        #[arg(long)]
        interface: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop once this many packets arrived and traffic stopped (0: wait).
        #[arg(long, default_value_t = 0)]
        expect: u64,
        /// XDP mode.
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: vrouter::config::XdpMode,
    },
    /// Side-by-side forwarding benchmark: generator -> device under test -> counting
    /// sink, for this vrouter, the Linux kernel, Open vSwitch and a minimal forwarder.
    Bench(crate::bench::BenchOptions),
    /// Pod-to-pod TCP (iperf3 throughput, connections per second, request/response
    /// latency) through this vrouter, the kernel's routed veth and VXLAN paths and
    /// Open vSwitch, in one run, with ratios to the kernel.
    TcpBench(crate::tcp_bench::TcpBenchOptions),
    /// Pod attach speed: pods added at once through the vrouter's CNI plugin (ADD to
    /// reachable), beside Debian's ptp plugin (the kernel's routed veth) in the same run.
    CniBench(crate::cni_bench::CniBenchOptions),
    /// A control-node peer for the lab and tests: speaks the control node's side of
    /// XMPP and reflects routes between the vrouters connected to it (in production
    /// the vrouter peers with Tungsten Fabric / OpenSDN control nodes). Runs until
    /// SIGINT or SIGTERM.
    ControlNode {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5269")]
        listen: std::net::SocketAddr,
        /// Configuration to serve: `DIR/HOST/*.xml`, each an IF-MAP `<config>`
        /// document, sent in name order to vrouter HOST once it subscribes its
        /// configuration; files added or changed later are sent when they appear.
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Require TLS (STARTTLS) with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Check vrouters' client certificates against this PEM CA file.
        #[arg(long, requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
    },
}

/// The vrouter binary: `--vrouter`, else `vrouter` beside this program.
fn vrouter_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    given.map_or_else(|| beside("vrouter", "vrouter", "--vrouter"), Ok)
}

/// The CNI plugin: `--plugin`, else `vrouter-cni` beside this program.
pub fn cni_plugin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    given.map_or_else(|| beside("vrouter-cni", "vrouter-cni", "--plugin"), Ok)
}

/// Program `name` in this program's directory.
fn beside(name: &str, package: &str, option: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "no {name} beside {} (build it: cargo build --release -p {package}), or give {option} PATH",
        me.display()
    );
    Ok(path)
}

/// Runs the control-node peer on `listen` until SIGINT or SIGTERM.
fn control_node(listen: std::net::SocketAddr, config_dir: Option<PathBuf>, tls: TlsFiles) -> anyhow::Result<()> {
    let tls = tls.server_config()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("control-node peer listening on {}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = stop.send(true);
        });
        crate::control_node::serve_with(listener, stopped, config_dir, tls).await
    })
}

/// Parses the command line and runs the command.
pub fn main_entry() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = (|| match cli.command {
        Command::Lab(options) => crate::run(&vrouter_binary(cli.vrouter)?, &options),
        Command::Soak(options) => crate::soak::run(&vrouter_binary(cli.vrouter)?, &options),
        Command::Gen(options) => crate::gen::generate(&options).map(|r| println!("{}", serde_json::json!(r))),
        Command::Sink {
            interface,
            seconds,
            expect,
            xdp_mode,
        } => {
            crate::gen::sink(&interface, xdp_mode, seconds, expect, || {}).map(|r| println!("{}", serde_json::json!(r)))
        }
        Command::Bench(options) => crate::bench::run(&vrouter_binary(cli.vrouter)?, &options),
        Command::TcpBench(options) => crate::tcp_bench::run(&vrouter_binary(cli.vrouter)?, &options).map(drop),
        Command::CniBench(options) => {
            let plugin = cni_plugin(options.plugin.clone())?;
            crate::cni_bench::run(&vrouter_binary(cli.vrouter)?, &plugin, &options).map(drop)
        }
        Command::ControlNode {
            listen,
            config_dir,
            tls_cert,
            tls_key,
            tls_client_ca,
        } => control_node(
            listen,
            config_dir,
            TlsFiles {
                cert: tls_cert,
                key: tls_key,
                client_ca: tls_client_ca,
            },
        ),
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrouter-lab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The control-node peer's TLS files.
struct TlsFiles {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The TLS server settings, when a certificate is given.
    fn server_config(&self) -> anyhow::Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>> {
        use anyhow::Context;
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let certs = |path: &PathBuf| -> anyhow::Result<Vec<CertificateDer<'static>>> {
            CertificateDer::pem_file_iter(path)
                .with_context(|| path.display().to_string())?
                .collect::<Result<_, _>>()
                .with_context(|| path.display().to_string())
        };
        let chain = certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| key.display().to_string())?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(std::sync::Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca)? {
                    roots.add(c)?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
                        .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Some(std::sync::Arc::new(builder.with_single_cert(chain, key)?)))
    }
}
