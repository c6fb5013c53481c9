//! `vrouter run`: configuration, workers, restored ports, the API, clean shutdown.

use crate::api;
use crate::config::{Config, PollMode, XdpMode};
use crate::control::{Control, ControlSetup};
use crate::datapath::Datapath;
use crate::flows::{FlowConfig, Flows};
use crate::store::StateStore;
use anyhow::Context;
use control_client::{DesiredState, SnapshotBuilder, SnapshotPublisher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Command-line values that override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Forwarding core mask (`0x6` or `1-3,5`); overrides cores.forwarding.
    #[arg(long)]
    pub forwarding_cores: Option<String>,
    /// Control core mask; overrides cores.control.
    #[arg(long)]
    pub control_cores: Option<String>,
    /// Overrides fabric.interface.
    #[arg(long)]
    pub fabric_interface: Option<String>,
    /// Overrides dataplane.xdp_mode.
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpMode>,
    /// Overrides dataplane.poll_mode.
    #[arg(long, value_enum)]
    pub poll_mode: Option<PollMode>,
    /// Overrides state_dir.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Overrides log_level.
    #[arg(long)]
    pub log_level: Option<String>,
}

/// Applies `o` to `config`.
pub fn apply_overrides(config: &mut Config, o: &Overrides, api_socket: Option<&PathBuf>) -> anyhow::Result<()> {
    use crate::config::CoreMask;
    if let Some(m) = &o.forwarding_cores {
        config.cores.forwarding = Some(CoreMask::parse(m).map_err(|e| anyhow::anyhow!("--forwarding-cores: {e}"))?);
    }
    if let Some(m) = &o.control_cores {
        config.cores.control = Some(CoreMask::parse(m).map_err(|e| anyhow::anyhow!("--control-cores: {e}"))?);
    }
    if let Some(f) = &o.fabric_interface {
        config.fabric.interface = f.clone();
    }
    if let Some(m) = o.xdp_mode {
        config.dataplane.xdp_mode = m;
    }
    if let Some(m) = o.poll_mode {
        config.dataplane.poll_mode = m;
    }
    if let Some(d) = &o.state_dir {
        config.state_dir = d.clone();
    }
    if let Some(l) = &o.log_level {
        config.log_level = l.clone();
    }
    if let Some(s) = api_socket {
        config.api_socket = s.clone();
    }
    Ok(())
}

/// The cores this process may run on.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn pin_control_thread(cores: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cores {
        let _ = set.set(c);
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        tracing::warn!("could not pin the control thread: {e}");
    }
}

/// Runs the vrouter until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    let cores = config.validate(&available_cores())?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log_level).map_err(|e| anyhow::anyhow!("log_level: {e}"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let store = StateStore::open(&config.state_dir)?;
    let mut model = DesiredState::new(config.tables.interfaces as usize);
    model.set_fabric(&config.fabric.interface);
    model.set_fabric_info(crate::neighbors::fabric_info(
        &config.fabric.interface,
        config.fabric.ip.addr(),
    )?);
    model.set_encap_priority(config.fabric.encap_priority.clone());
    let mut builder = SnapshotBuilder::new(1);
    let publisher = SnapshotPublisher::new(builder.build(&model, config.vrouter_mac));
    let flows = Arc::new(Flows::new(&config.flows, config.tables.interfaces as usize));
    let datapath = Datapath::start(&config, &cores, &publisher, &flows)?;
    // Workers inherit the affinity of their creator before pinning; pin control after.
    pin_control_thread(&cores.control);
    let aging = Aging::spawn(Arc::clone(&flows), config.flows.clone())?;
    tracing::info!(forwarding = ?cores.forwarding, control = ?cores.control, fabric = %config.fabric.interface, "vrouter started");
    let mut control = Control::new(ControlSetup {
        model,
        builder,
        router_mac: config.vrouter_mac,
        publisher,
        datapath,
        store,
        max_routes: config.tables.routes as usize,
        forwarding_cores: cores.forwarding.clone(),
        flows,
    });
    control.restore();
    let control = Arc::new(Mutex::new(control));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let served = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        let refresher = Arc::clone(&control);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tick.tick().await;
                refresher.lock().unwrap_or_else(|p| p.into_inner()).refresh_neighbors();
            }
        });
        api::serve(&config.api_socket, Arc::clone(&control), shutdown).await
    });
    let mut c = match control.lock() {
        Ok(c) => c,
        Err(p) => p.into_inner(),
    };
    c.shutdown();
    aging.stop();
    tracing::info!("XDP programs detached, sockets closed");
    served
}

/// The flow-aging thread of the control side: once a second it advances the flows'
/// coarse clock and removes expired flows.
struct Aging {
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Aging {
    fn spawn(flows: Arc<Flows>, config: FlowConfig) -> anyhow::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let start = std::time::Instant::now();
        let thread = std::thread::Builder::new()
            .name("vrouter-aging".into())
            .spawn(move || loop {
                let now = start.elapsed().as_secs() as u32;
                let removed = flows.age(now, &config);
                if removed > 0 {
                    tracing::debug!(removed, "flows aged");
                }
                match stopped.recv_timeout(std::time::Duration::from_secs(1)) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
