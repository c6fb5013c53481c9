//! The vrouter: a userspace AF_XDP virtual router.
//!
//! Contract: this crate turns a [`config::Config`] into running forwarding workers
//! (one pinned thread per forwarding core, each owning its AF_XDP sockets and UMEM)
//! fed by forwarding snapshots that the control thread publishes. Packet processing
//! ([`packet`]) is pure and runs the same over AF_XDP or an in-memory port. Unsafe
//! code lives only in [`afxdp`].
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod afxdp;
pub mod api;
pub mod batch;
pub mod cli;
pub mod config;
pub mod control;
pub mod cycles;
pub mod datapath;
pub mod flows;
pub mod gen;
pub mod lab;
pub mod minfwd;
pub mod neighbors;
pub mod packet;
pub mod run;
pub mod stats;
pub mod store;
pub mod worker;

/// The command-line program: parses arguments and runs the command. Errors are
/// printed with their causes; the exit code is 1.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let result =
        match cli.command {
            cli::Command::Run { config, overrides } => config::Config::load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|mut c| {
                    run::apply_overrides(&mut c, &overrides, cli.api_socket.as_ref())?;
                    run::run(c)
                }),
            cli::Command::CheckConfig { config } => cli::check_config(&config),
            cli::Command::Lab(options) => lab::run(&options),
            cli::Command::Soak(options) => lab::soak::run(&options),
            cli::Command::Gen(options) => gen::generate(&options).map(|r| println!("{}", serde_json::json!(r))),
            cli::Command::Sink {
                interface,
                seconds,
                expect,
                xdp_mode,
            } => gen::sink(&interface, xdp_mode, seconds, expect, || {}).map(|r| println!("{}", serde_json::json!(r))),
            cli::Command::Bench(options) => lab::bench::run(&options),
            other => {
                let socket = cli.api_socket.clone().unwrap_or_else(|| cli::DEFAULT_API_SOCKET.into());
                cli::api_command(&socket, cli.json, other)
            }
        };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrouter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
