//! `vrouter top` as a terminal program, under tmux: it starts, shows the rate of a
//! pod's traffic while a ping runs, and quits on `q`, giving the terminal back. In
//! batch mode it prints the frames asked for.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use system_tests::{node, serial, Background};
use vrouter::config::XdpMode;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// A tmux server of its own (`-L`), killed on drop.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The receive rate `top` shows for interface `name` (its RX/s column).
fn rx_rate(pane: &str, name: &str) -> Option<f64> {
    pane.lines()
        .find(|l| l.split_whitespace().next() == Some(name))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[test]
fn top_shows_live_rates_and_quits_on_q() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let socket = n.api_socket().display().to_string();

    // Batch mode: the frames asked for, then exit.
    let batch = Command::new(BIN)
        .args(["--api-socket", &socket, "top", "--interval", "0.2", "--iterations", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&batch.stdout);
    assert!(
        batch.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&batch.stderr)
    );
    assert_eq!(text.matches("vrouter top: generation").count(), 2, "{text}");
    assert!(text.contains(&a.host_if) && text.contains("WORKER"), "{text}");

    // 50 pings a second for up to 30 s, from a to b.
    let _ping = Background::spawn(
        a.ns.command("ping")
            .args(["-i", "0.02", "-c", "1500", "-q", &b.ipv4.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let tmux = Tmux(format!("vrtop{}", std::process::id()));
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        BIN,
        "--api-socket",
        &socket,
        "top",
        "--interval",
        "0.5",
    ]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pane = tmux.pane();
        // Echo requests enter the vrouter on a's port: about 50 a second.
        if rx_rate(&pane, &a.host_if).is_some_and(|r| (20.0..200.0).contains(&r)) {
            assert!(pane.contains("vrouter top: generation"), "{pane}");
            break;
        }
        assert!(tmux.alive(), "top exited:\n{pane}");
        assert!(Instant::now() < deadline, "no pod rate on screen:\n{pane}");
        std::thread::sleep(Duration::from_millis(200));
    }

    assert!(tmux.run(&["send-keys", "-t", "top", "q"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.alive() {
        assert!(Instant::now() < deadline, "top still running after q:\n{}", tmux.pane());
        std::thread::sleep(Duration::from_millis(50));
    }
}
