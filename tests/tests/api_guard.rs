//! The API and the state directory under a hostile local user, an unlucky operator
//! and a second instance: each finding of the reliability review, reproduced.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};
use system_tests::{node, serial};
use vrouter::api::{ErrorCode, Request};
use vrouter::config::XdpMode;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// One raw request line on a fresh connection; the answer line.
fn raw(socket: &std::path::Path, line: &str) -> String {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&stream).write_all(line.as_bytes()).unwrap();
    (&stream).write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn a_second_instance_takes_neither_the_socket_nor_the_state_directory() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    let socket = n.api_socket();
    let state = n.dir().join("state");

    let same_socket = n.config_text_for(&n.dir().join("state2"), &socket);
    let (status, out) = n.run_other_instance(&same_socket, Duration::from_secs(20)).unwrap();
    assert!(!status.success(), "a second vrouter started on a live socket:\n{out}");
    assert!(
        out.contains("api_socket") && out.contains("another vrouter answers"),
        "{out}"
    );

    let same_state = n.config_text_for(&state, &n.dir().join("other.sock"));
    let (status, out) = n.run_other_instance(&same_state, Duration::from_secs(20)).unwrap();
    assert!(
        !status.success(),
        "a second vrouter started on a held state directory:\n{out}"
    );
    assert!(
        out.contains("state_dir") && out.contains("in use by another vrouter"),
        "{out}"
    );

    // The first one still answers and still has its port.
    let vifs = n.interfaces().unwrap();
    assert_eq!(vifs.len(), 2, "{vifs:?}");
    assert!(state.join("ports").join(format!("{}.json", n.pods[0].host_if)).exists());
    // Its socket is private to root and its user; its state too.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&state), 0o700);
}

#[test]
fn names_that_are_paths_and_other_users_are_refused() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    let route = control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.0.0/16".parse().unwrap(),
        target: control_client::RouteTarget::Discard,
    };
    let _: serde_json::Value = n.api().call(&Request::AddRoute { route }).unwrap();
    let routes = n.dir().join("state/routes.json");
    assert!(routes.exists());
    for name in ["../routes", "../../../x", "..", "a/b"] {
        let e = n
            .api()
            .call::<serde_json::Value>(&Request::RemoveInterface { name: name.into() })
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{name}: {e}");
    }
    assert!(routes.exists(), "vif delete ../routes deleted routes.json");

    // Another local user: refused by the socket's mode, and, were the mode opened by
    // mistake, by the peer-credential check.
    let socket = n.api_socket();
    let as_nobody = || {
        std::process::Command::new(BIN)
            .args(["--api-socket", &socket.display().to_string(), "status"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = as_nobody();
    assert!(!out.status.success());
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(n.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = as_nobody();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("permission_denied"), "{text}");
}

#[test]
fn idle_connections_cannot_take_the_api_away() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    n.add_config("api_max_connections = 8\napi_idle_timeout_secs = 1");
    n.start_vrouter().unwrap();
    let socket = n.api_socket();
    // Far more connections than allowed, none of them ever sending anything.
    let idle: Vec<UnixStream> = (0..64).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    // The excess is answered "busy" at once, not left hanging.
    let busy = raw(&socket, r#"{"op":"status"}"#);
    assert!(busy.contains("busy") || busy.contains("\"ok\""), "{busy}");
    // Idle ones are closed after the idle timeout; the API answers again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = raw(&socket, r#"{"op":"status"}"#);
        if answer.contains("\"ok\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the API never recovered: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
    // A bad request gets a typed error and the connection stays usable.
    let stream = UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&stream)
        .write_all(b"{\"op\":\"nonsense\"}\n{\"op\":\"status\"}\n")
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("bad_request"), "{first}");
    let mut second = String::new();
    reader.read_line(&mut second).unwrap();
    assert!(second.contains("\"ok\""), "{second}");
}

/// CPU time (user + system) the thread `tid` of `pid` has used.
fn thread_cpu(pid: u32, tid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_kills_the_api() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    // A connection cap above what the descriptor limit leaves: accept itself fails.
    n.add_config("api_max_connections = 4096\napi_idle_timeout_secs = 2");
    n.start_vrouter().unwrap();
    let pid = n.vrouter_pid().unwrap();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limit = open + 8;
    let set = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:{limit}")])
        .status()
        .unwrap();
    assert!(set.success(), "prlimit failed");
    let socket = n.api_socket();
    let held: Vec<UnixStream> = (0..40).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !n.log().contains("accept failed") {
        assert!(Instant::now() < deadline, "accept never failed:\n{}", n.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The API thread (the process's main thread) backs off instead of spinning on
    // accept: measured over two seconds of connections it cannot take.
    let before = thread_cpu(pid, pid);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = thread_cpu(pid, pid) - before;
    let share = used.as_secs_f64() / window.elapsed().as_secs_f64();
    assert!(
        share < 0.25,
        "the API thread used {share:.2} of a core while out of descriptors"
    );
    // Once the connections go, the API answers again, under the same limit.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = raw(&socket, r#"{"op":"status"}"#);
        if answer.contains("\"ok\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the API never recovered: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(n.vrouter_pid().is_some());
}
