//! Lifecycle: SIGTERM leaves no XDP program anywhere; a restart brings the pods back
//! from the state directory without re-adding them; a crash (SIGKILL) leaves nothing
//! attached either, and the next start attaches exactly one program per port.

use system_tests::{node, serial};
use vrouter::config::XdpMode;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

#[test]
fn restart_under_running_pods() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    assert!(
        ping(&n.pods[0], n.pods[1].ipv4.into(), 5),
        "no reachability before restart\n{}",
        n.log()
    );
    assert_eq!(
        n.interfaces_with_xdp().len(),
        3,
        "a program per pod port and one on the fabric"
    );

    let status = n.stop_vrouter().unwrap();
    assert!(status.success(), "vrouter exited with {status} on SIGTERM\n{}", n.log());
    assert_eq!(
        n.interfaces_with_xdp(),
        Vec::<String>::new(),
        "XDP programs left after SIGTERM"
    );
    assert!(
        !ping(&n.pods[0], n.pods[1].ipv4.into(), 1),
        "traffic passed with no vrouter"
    );

    n.start_vrouter().unwrap();
    assert!(
        ping(&n.pods[0], n.pods[1].ipv4.into(), 5),
        "pods not restored after restart\n{}",
        n.log()
    );
    assert!(
        ping(&n.pods[1], n.pods[0].ipv6.into(), 5),
        "IPv6 not restored after restart"
    );
    assert_eq!(n.interfaces().unwrap().len(), 3, "fabric + two restored pods");
}

#[test]
fn crash_leaves_nothing_attached_and_start_replaces() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    assert!(ping(&n.pods[0], n.pods[1].ipv4.into(), 5));
    n.kill_vrouter().unwrap();
    // The kernel drops a BPF link with the last fd of its process.
    assert_eq!(
        n.interfaces_with_xdp(),
        Vec::<String>::new(),
        "programs outlived the crashed process"
    );
    // A program attached the legacy way (as an old process or an operator could leave
    // it) is replaced, not stacked.
    n.ns.ip(&[
        "link",
        "set",
        "dev",
        &n.pods[0].host_if,
        "xdpgeneric",
        "obj",
        &n.xdp_object_path().unwrap().display().to_string(),
        "sec",
        "xdp",
    ])
    .unwrap();
    assert_eq!(n.interfaces_with_xdp().len(), 1);
    n.start_vrouter().unwrap();
    assert!(
        ping(&n.pods[0], n.pods[1].ipv4.into(), 5),
        "pods not restored after a crash\n{}",
        n.log()
    );
    let detail = n.ns.ip(&["-d", "link", "show", "dev", &n.pods[0].host_if]).unwrap();
    let text = String::from_utf8_lossy(&detail.stdout);
    assert_eq!(text.matches("prog/xdp").count(), 1, "{text}");
}
