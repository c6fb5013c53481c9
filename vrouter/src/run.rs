//! `vrouter run`: configuration, workers, restored ports, the API, clean shutdown.

use crate::api;
use crate::config::{Config, PollMode, XdpMode};
use crate::control::views::Views;
use crate::control::{Control, ControlSetup};
use crate::datapath::Datapath;
use crate::flows::{FlowConfig, Flows};
use crate::store::StateStore;
use anyhow::Context;
use control_client::{DesiredState, SnapshotBuilder, SnapshotPublisher};
use std::path::PathBuf;
use std::sync::Arc;

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
///
/// Everything that can refuse a start is checked before the workers and XDP programs
/// start: the configuration, the state directory's lock, the API socket, the memory
/// the flow table needs.
pub fn run(config: Config) -> anyhow::Result<()> {
    let cores = config.validate(&available_cores())?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log_level).map_err(|e| anyhow::anyhow!("log_level: {e}"))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        crate::config::LogFormat::Text => logs.try_init(),
        crate::config::LogFormat::Json => logs.json().try_init(),
    };
    let store = StateStore::open(&config.state_dir)?;
    let group = config.api_group_id()?;
    let listener = api::ApiListener::bind(&config.api_socket, group)?;
    // Bound before anything starts, so a taken port stops the start with its key.
    let metrics_listener = match config.metrics.listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).with_context(|| format!("metrics.listen: {addr}"))?;
            l.set_nonblocking(true).context("metrics.listen")?;
            Some(l)
        }
        None => None,
    };
    check_memory(
        "flows.entries",
        flow_table::FlowTable::memory_bytes_for(config.flows.entries),
    )?;
    check_memory(
        "flows.affinity_entries",
        flow_table::FlowTable::memory_bytes_for(config.flows.entries)
            + flow_table::FlowTable::memory_bytes_for(config.flows.affinity_entries),
    )?;
    let tables = flow_table::FlowTable::memory_bytes_for(config.flows.entries)
        + flow_table::FlowTable::memory_bytes_for(config.flows.affinity_entries)
        + flow_table::FlowTable::memory_bytes_for(config.flows.fragment_entries);
    check_memory("flows.fragment_entries", tables)?;
    if config.flow_export.tracking() {
        // Flow records: the tracker at its largest, a full table's.
        check_memory(
            "flow_export.recent_records",
            tables + crate::flow_export::tracker::FlowTracker::memory_bytes_for(config.flows.entries),
        )?;
    }
    let mut model = DesiredState::new(config.tables.interfaces as usize);
    model.set_fabric(&config.fabric.interface);
    model.set_fabric_info(crate::neighbors::fabric_info(
        &config.fabric.interface,
        config.fabric.ip.addr(),
    )?);
    model.set_encap_priority(config.fabric.encap_priority.clone());
    if let Some(host) = &config.host {
        let [first, last] = host.node_ports;
        model.set_node_port_range(nexthop::PortRange { first, last });
        model.set_load_balancer_pool(host.load_balancer_pool.iter().map(|p| p.trunc()).collect());
        if host.snat {
            model.set_snat(&host.vrf, host.snat_ranges());
        }
    }
    let mut builder = SnapshotBuilder::new(1);
    let publisher = SnapshotPublisher::new(builder.build(&model, config.vrouter_mac));
    let flows = Arc::new(Flows::new(&config.flows, config.tables.interfaces as usize));
    let datapath = Datapath::start(&config, &cores, &publisher, &flows)?;
    // The node's own interface, removed when `_host` goes (at exit, after the ports).
    let (_host, host_spec) = match &config.host {
        Some(h) => {
            let (host, spec) = crate::host::HostInterface::create(
                h,
                config.fabric.ip.addr(),
                cores.forwarding.len(),
                datapath.checksum_offload(),
            )
            .context("host: the node's interface")?;
            tracing::info!(interface = %h.interface, vrf = %h.vrf, "node interface created");
            (Some(host), Some(spec))
        }
        None => (None, None),
    };
    // Workers inherit the affinity of their creator before pinning; pin control after.
    pin_control_thread(&cores.control);
    let recent = Arc::new(crate::flow_export::recent::RecentRecords::new(
        config.flow_export.recent_records as usize,
    ));
    let export = match config.flow_export.tracking() {
        true => Some(FlowExport {
            exporter: crate::flow_export::ipfix::IpfixExporter::connect(&config.flow_export)
                .context("flow_export.ipfix_collector")?,
            tracker: crate::flow_export::tracker::FlowTracker::new(
                config.flow_export.active_timeout_secs,
                flows.table.capacity(),
            ),
            publisher: publisher.clone(),
            recent: Arc::clone(&recent),
        }),
        false => None,
    };
    let captures = datapath.captures();
    let checksum_offload = datapath.checksum_offload();
    let aging = Aging::spawn(Arc::clone(&flows), config.flows.clone(), export, Arc::clone(&captures))?;
    tracing::info!(forwarding = ?cores.forwarding, control = ?cores.control, fabric = %config.fabric.interface, "vrouter started");
    let config_interest = Arc::new(crate::control::config::ConfigInterest::default());
    let channels = xmpp_channels(&config, &config_interest)?;
    let config_view = Arc::new(std::sync::Mutex::new(vrouter_api::ConfigView::default()));
    let learned_view: crate::control::learned::LearnedView = Arc::default();
    let channel_stats: Vec<Arc<crate::xmpp::ChannelStats>> = channels
        .iter()
        .map(|c| Arc::new(crate::xmpp::ChannelStats::new(c)))
        .collect();
    let ingress_targets = crate::ingress::Targets::default();
    let ingress_status = crate::ingress::Status::default();
    let views = Arc::new(
        Views::new(
            publisher.clone(),
            datapath.stats(),
            Arc::clone(&flows),
            cores.forwarding.clone(),
        )
        .with_channels(channel_stats.clone())
        .with_config(Arc::clone(&config_view))
        .with_learned(Arc::clone(&learned_view))
        .with_flow_records(Arc::clone(&recent))
        .with_captures(captures)
        .with_ingresses(crate::control::views::IngressShared {
            targets: Arc::clone(&ingress_targets),
            status: Arc::clone(&ingress_status),
            role: config.ingress.role,
            base: config.state_dir.join("ingress"),
        }),
    );
    let control_publisher = publisher.clone();
    let mut control = Control::new(ControlSetup {
        model,
        builder,
        router_mac: config.vrouter_mac,
        publisher,
        ports: Box::new(datapath),
        store,
        max_routes: config.tables.routes as usize,
        host: host_spec,
    });
    control.set_config_host(&config.xmpp.host_name());
    control.share_config(config_interest, config_view);
    control.share_flows(Arc::clone(&flows));
    control.share_learned_view(learned_view);
    let probe_targets = crate::health::Targets::default();
    control.share_probe_targets(Arc::clone(&probe_targets));
    control.share_ingress_targets(Arc::clone(&ingress_targets));
    let health_stats = Arc::new(crate::health::HealthStats::default());
    control.set_graceful_restart(std::time::Duration::from_secs(u64::from(
        config.xmpp.graceful_restart_secs,
    )));
    let timings = control.timings();
    let task = crate::control::task::spawn(control, std::time::Duration::from_millis(500), views.ready_flag())
        .context("control task")?;
    let limits = api::ServerLimits {
        max_connections: config.api_max_connections,
        idle_timeout: std::time::Duration::from_secs(u64::from(config.api_idle_timeout_secs)),
        group,
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let handle = task.handle();
    let ingress = crate::ingress::Supervisor::spawn(crate::ingress::SupervisorSetup {
        config: config.ingress.clone(),
        state_dir: config.state_dir.clone(),
        queues: cores.forwarding.len(),
        checksum_offload,
        targets: ingress_targets,
        status: ingress_status,
        control: handle.clone(),
        publisher: control_publisher.clone(),
    })
    .context("ingress supervisor")?;
    let served = runtime.block_on(async {
        let (stop_channels, channels_stop) = tokio::sync::watch::channel(false);
        let running: Vec<_> = channels
            .into_iter()
            .zip(channel_stats)
            .map(|(setup, stats)| {
                let run = crate::xmpp::run(
                    setup,
                    control_publisher.clone(),
                    handle.clone(),
                    stats,
                    channels_stop.clone(),
                );
                tokio::spawn(run)
            })
            .collect();
        let prober = tokio::spawn(crate::health::run(
            probe_targets,
            handle.clone(),
            health_stats,
            channels_stop.clone(),
        ));
        if let Some(l) = metrics_listener {
            let listener = tokio::net::TcpListener::from_std(l).context("metrics.listen")?;
            tracing::info!(address = %listener.local_addr()?, "metrics endpoint serving /metrics");
            let metrics = Arc::new(crate::metrics::Metrics::new(
                Arc::clone(&views),
                handle.clone(),
                &timings,
            ));
            tokio::spawn(crate::metrics::serve(listener, metrics, channels_stop.clone()));
        }
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        let served = api::serve(listener, views, handle, limits, shutdown).await;
        // The ingress instances go first (their ports are detached through the
        // control task), while the channels can still withdraw their VIPs.
        if let Some(s) = ingress {
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
        // Each channel closes its stream to its control node.
        let _ = stop_channels.send(true);
        for channel in running {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), channel).await;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), prober).await;
        served
    });
    // Views still being computed on blocking threads are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    task.shutdown();
    aging.stop();
    tracing::info!("XDP programs detached, sockets closed");
    served
}

/// One channel per control node in `[xmpp]` (none without servers).
fn xmpp_channels(
    config: &Config,
    interest: &Arc<crate::control::config::ConfigInterest>,
) -> anyhow::Result<Vec<crate::xmpp::ChannelSetup>> {
    let servers = config.xmpp.server_addrs()?;
    let tls = config.xmpp.tls_client()?;
    let host = config.xmpp.host_name();
    let fabric_ip = config.fabric.ip.addr();
    Ok(servers
        .into_iter()
        .enumerate()
        .map(|(i, server)| crate::xmpp::ChannelSetup {
            peer: control_client::PeerId(i as u8),
            server,
            host: host.clone(),
            hold_time: std::time::Duration::from_secs(u64::from(config.xmpp.hold_time_secs)),
            fabric_ip,
            encaps: config.fabric.encap_priority.clone(),
            config: Arc::clone(interest),
            tls: tls.as_ref().map(|c| (Arc::clone(c), config.xmpp.tls_name_for(&server))),
        })
        .collect())
}

/// Refuses to allocate `bytes` for `key` when the machine (or the process's memory
/// cgroup) does not have them: an allocation that fails aborts the process, so the
/// check comes first and names the key.
fn check_memory(key: &str, bytes: usize) -> anyhow::Result<()> {
    let available = available_memory();
    if let Some(available) = available.filter(|a| bytes as u64 > *a) {
        anyhow::bail!(
            "{key} needs {} MiB, but only {} MiB are available (MemAvailable or the memory cgroup's limit); lower {key}",
            bytes >> 20,
            available >> 20
        );
    }
    Ok(())
}

/// Bytes this process can still allocate: the smaller of the kernel's MemAvailable
/// and the room left under its cgroup's memory.max.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let mut available = kib("MemAvailable:")? * 1024;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok();
    if let Some(path) = cgroup
        .as_deref()
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("0::")))
    {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<u64>().ok();
        if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
            available = available.min(max.saturating_sub(current));
        }
    }
    Some(available)
}

/// Flow records, made by the aging thread, kept for `flow watch` and sent to the
/// IPFIX collector if there is one.
struct FlowExport {
    exporter: Option<crate::flow_export::ipfix::IpfixExporter>,
    tracker: crate::flow_export::tracker::FlowTracker,
    publisher: SnapshotPublisher,
    recent: Arc<crate::flow_export::recent::RecentRecords>,
}

impl FlowExport {
    fn deliver(&mut self, records: &[crate::flow_export::FlowRecord]) {
        let snap = self.publisher.load_full();
        // The collector first: a record `flow watch` shows has been sent.
        if let Some(e) = self.exporter.as_mut() {
            e.export(records, &snap);
        }
        self.recent.push(records, &snap);
    }
}

/// The flow-aging thread of the control side: once a second it advances the flows'
/// coarse clock and removes expired flows, makes the records of the flows that began,
/// went on or ended (unless `[flow_export]` turns them off), and drops the packet
/// captures nobody reads.
struct Aging {
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Aging {
    fn spawn(
        flows: Arc<Flows>,
        config: FlowConfig,
        mut export: Option<FlowExport>,
        captures: Arc<crate::capture::Captures>,
    ) -> anyhow::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let start = std::time::Instant::now();
        let thread = std::thread::Builder::new()
            .name("vrouter-aging".into())
            .spawn(move || loop {
                let now = start.elapsed().as_secs() as u32;
                let removed = flows.age_observed(now, &config, export.as_mut().map(|e| &mut e.tracker));
                if removed > 0 {
                    tracing::debug!(removed, "flows aged");
                }
                if let Some(e) = export.as_mut() {
                    let records = e.tracker.end_pass();
                    e.deliver(&records);
                }
                // A capture whose reader is gone stops costing the workers.
                captures.expire_unread();
                match stopped.recv_timeout(std::time::Duration::from_secs(1)) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    _ => {
                        if let Some(e) = export.as_mut() {
                            // The counts of the last second, and flows new since the
                            // last pass, before every flow ends with the vrouter.
                            flows.observe(&mut e.tracker);
                            let records = e.tracker.end_all();
                            e.deliver(&records);
                        }
                        break;
                    }
                }
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_table_larger_than_the_memory_left_is_a_config_error_naming_its_key() {
        let available = available_memory().expect("/proc/meminfo is readable");
        assert!(available > 0);
        let err = check_memory("flows.entries", usize::MAX).unwrap_err().to_string();
        assert!(err.contains("flows.entries") && err.contains("MiB"), "{err}");
        check_memory("flows.entries", 1 << 20).expect("1 MiB is available");
        // What 67,108,864 entries (the largest the config accepts) would take.
        let largest = flow_table::FlowTable::memory_bytes_for(1 << 26);
        assert!(largest > 4 << 30, "{largest} bytes");
    }
}
