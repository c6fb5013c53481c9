//! The control task under a slow port attach: the runtime's timers and the views go
//! on; a change whose requester gave up is skipped.

use super::*;
use crate::control::views::Views;
use crate::control::{ControlSetup, Ports};
use crate::flows::{FlowConfig, Flows};
use control_client::{DesiredState, SnapshotBuilder, SnapshotPublisher};
use nexthop::{MacAddr, Vif};

/// Ports whose attach waits until the test opens the gate (as a real attach waits
/// on the workers), bounded so that a broken test cannot hang.
#[derive(Debug)]
struct GatedPorts {
    gate: crossbeam_channel::Receiver<()>,
    started: crossbeam_channel::Sender<Vif>,
}

impl Ports for GatedPorts {
    fn add_port(&mut self, vif: Vif, _ifname: &str) -> anyhow::Result<()> {
        let _ = self.started.send(vif);
        self.gate
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| anyhow::anyhow!("gate never opened"))
    }
    fn remove_port(&mut self, _vif: Vif) {}
    fn shutdown(&mut self) {}
}

struct Fixture {
    task: ControlTask,
    views: Views,
    gate: crossbeam_channel::Sender<()>,
    started: crossbeam_channel::Receiver<Vif>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::StateStore::open(dir.path()).unwrap();
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    let mut builder = SnapshotBuilder::new(1);
    let router_mac = MacAddr([0, 0, 0x5e, 0, 1, 0]);
    let publisher = SnapshotPublisher::new(builder.build(&model, router_mac));
    let (gate, gate_rx) = crossbeam_channel::unbounded();
    let (started_tx, started) = crossbeam_channel::unbounded();
    let flows = Arc::new(Flows::new(&FlowConfig::default(), 16));
    let views = Views::new(publisher.clone(), Vec::new(), flows, vec![1]);
    let control = Control::new(ControlSetup {
        model,
        builder,
        router_mac,
        publisher,
        ports: Box::new(GatedPorts {
            gate: gate_rx,
            started: started_tx,
        }),
        store,
        max_routes: 16,
        host: None,
    });
    let task = spawn(control, Duration::from_millis(50), views.ready_flag()).unwrap();
    Fixture {
        task,
        views,
        gate,
        started,
        _dir: dir,
    }
}

fn pod(name: &str, last: u8) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, last]),
        ipv4: Some([198, 18, 1, last].into()),
        ..InterfaceSpec::default()
    }
}

#[test]
fn timers_tick_and_views_answer_while_a_port_attach_is_slow() {
    let f = fixture();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = f.task.handle();
    runtime.block_on(async {
        let answer = handle.submit(Change::AddInterface(pod("slow", 2))).unwrap();
        // The attach has begun and is now held by the gate.
        let started = f.started.recv_timeout(Duration::from_secs(10)).expect("attach started");
        assert_eq!(started, Vif(1));
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut ticks = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ticks < 20 && tokio::time::Instant::now() < deadline {
            tick.tick().await;
            ticks += 1;
        }
        assert_eq!(ticks, 20, "the runtime's timer stalled behind the attach");
        let status = f.views.answer(&Request::Status).unwrap();
        assert_eq!(status["interfaces"], 1, "views answer during the attach: {status}");
        f.gate.send(()).unwrap();
        let attached: AttachedView = serde_json::from_value(answer.await.unwrap().unwrap()).unwrap();
        assert_eq!(attached.vif, 1);
    });
    assert!(f.views.snapshot().interface_by_name("slow").is_some());
    f.task.shutdown();
}

#[test]
fn a_change_whose_requester_gave_up_is_not_applied() {
    let f = fixture();
    let handle = f.task.handle();
    let first = handle.submit(Change::AddInterface(pod("first", 2))).unwrap();
    f.started.recv_timeout(Duration::from_secs(10)).expect("attach started");
    // Queued behind the slow attach, then given up (the API client disconnected).
    drop(handle.submit(Change::AddInterface(pod("given-up", 3))).unwrap());
    f.gate.send(()).unwrap();
    assert!(first.blocking_recv().unwrap().is_ok());
    // A change after it shows that the task went past the abandoned one.
    let route = control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.0.0/16".parse().unwrap(),
        target: control_client::RouteTarget::Discard,
    };
    assert!(handle.apply_blocking(Change::AddRoute(route)).is_ok());
    assert_eq!(handle.stats().abandoned.load(Ordering::Relaxed), 1);
    assert!(f.views.snapshot().interface_by_name("given-up").is_none());
    assert!(
        f.started.try_recv().is_err(),
        "the abandoned attach never reached the ports"
    );
    f.task.shutdown();
}

#[test]
fn a_refused_change_answers_with_a_stable_code() {
    let f = fixture();
    let handle = f.task.handle();
    let e = handle
        .apply_blocking(Change::RemoveInterface("../routes".into()))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    let e = handle
        .apply_blocking(Change::RemoveInterface("nosuch".into()))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    f.task.shutdown();
}
