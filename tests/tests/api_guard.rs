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
    // A bad request gets a typed error and the connection stays usable. The idle
    // connections the server had not accepted yet are accepted now, each holding a
    // place until its end is read: "busy" meanwhile is the documented answer, retried.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut reader, first) = loop {
        let stream = UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&stream)
            .write_all(b"{\"op\":\"nonsense\"}\n{\"op\":\"status\"}\n")
            .unwrap();
        // One reader for both answers: it may take the second with the first.
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        if !first.contains("\"busy\"") {
            break (reader, first);
        }
        assert!(
            Instant::now() < deadline,
            "still busy after the idle ones closed: {first}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
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

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn clients_that_never_read_cost_one_answer_each_and_are_dropped() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    let api = n.api();
    // 5000 routes: one routes answer is about half a megabyte.
    for i in 0..5000u32 {
        let route = control_client::RouteSpec {
            vrf: "red".into(),
            prefix: format!("198.19.{}.{}/32", i / 256, i % 256).parse().unwrap(),
            target: control_client::RouteTarget::Discard,
        };
        api.call::<serde_json::Value>(&Request::AddRoute { route }).unwrap();
    }
    let pid = n.vrouter_pid().unwrap();
    let before = rss_kib(pid);
    // The vrouter's open sockets, by inode (a count would mistake a socket that comes
    // and goes meanwhile, a probe or a view, for one of the silent clients').
    let sockets = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|l| l.display().to_string())
            .filter(|l| l.starts_with("socket:"))
            .collect()
    };
    let sockets_before = sockets();
    // Five clients each ask for the whole table 40 times over and never read: a server
    // that queued answers would hold about 100 MB for them.
    let request = serde_json::to_string(&Request::Routes {
        vrf: None,
        limit: 10_000,
        after: None,
    })
    .unwrap();
    let lines = format!("{request}\n").repeat(40);
    let started = Instant::now();
    let silent: Vec<UnixStream> = (0..5)
        .map(|_| {
            let s = UnixStream::connect(n.api_socket()).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            // The server stops reading once its answer is stuck: the rest of the
            // requests may not fit the socket buffer, which is fine.
            let _ = (&s).write_all(lines.as_bytes());
            s
        })
        .collect();
    // Meanwhile everyone else is served promptly.
    for _ in 0..10 {
        let t = Instant::now();
        assert!(raw(&n.api_socket(), r#"{"op":"status"}"#).contains("\"ok\""));
        assert!(t.elapsed() < Duration::from_secs(2), "status took {:?}", t.elapsed());
    }
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "RSS grew by {grown} KiB for five clients that never read"
    );
    // After the write timeout the server closes each silent connection (its
    // descriptors go), and reading then ends at EOF or a reset well short of the 40
    // answers asked for.
    let opened: Vec<String> = sockets().difference(&sockets_before).cloned().collect();
    assert!(opened.len() >= 5, "the silent clients' connections: {opened:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.iter().any(|s| sockets().contains(s)) {
        assert!(Instant::now() < deadline, "silent connections still open after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    for s in silent {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answers = 0usize;
        let mut reader = BufReader::new(&s);
        let mut line = Vec::new();
        while let Ok(read) = reader.read_until(b'\n', &mut line) {
            if read == 0 || !line.ends_with(b"\n") {
                break;
            }
            answers += 1;
            line.clear();
        }
        assert!(answers < 40, "every answer was delivered to a client that did not read");
    }
    assert!(raw(&n.api_socket(), r#"{"op":"status"}"#).contains("\"ok\""));
    eprintln!("silent clients dropped after {:?}", started.elapsed());
}

/// A tmpfs mounted for the test, unmounted when dropped (even when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_a_change_whole_and_the_retry_succeeds() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Generic);
    let state = n.dir().join("state");
    let _disk = Tmpfs::mount(&state, "1m");
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    let api = n.api();
    let route = |i: u32| control_client::RouteSpec {
        vrf: "red".into(),
        prefix: format!("198.19.{}.{}/32", i / 256, i % 256).parse().unwrap(),
        target: control_client::RouteTarget::Discard,
    };
    let live = |api: &vrouter::api::ApiClient| -> Vec<String> {
        let routes: Vec<vrouter::api::RouteView> = api.all_routes(Some("red"), 1000).unwrap();
        let mut prefixes: Vec<String> = routes
            .iter()
            .map(|r| r.prefix.to_string())
            .filter(|p| p.starts_with("198.19."))
            .collect();
        prefixes.sort();
        prefixes
    };
    // Fill the disk, leaving nothing free.
    let filler = state.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
    }
    // Routes are added until the state directory cannot record one (the journal may
    // have room left in its last page for a few).
    let mut added = Vec::new();
    let refused = (0..500u32)
        .find(
            |&i| match api.call::<serde_json::Value>(&Request::AddRoute { route: route(i) }) {
                Ok(_) => {
                    added.push(route(i).prefix.to_string());
                    false
                }
                Err(vrouter::api::ClientError::Api(e)) => {
                    assert_eq!(e.code, ErrorCode::StateDirectory, "{e:?}");
                    true
                }
                Err(e) => panic!("{e}"),
            },
        )
        .expect("a full disk refused no route");
    // Refused whole: not live, and everything recorded before it still is.
    added.sort();
    assert_eq!(live(&api), added, "live routes differ from the recorded ones");
    // With room again, the same change is accepted (not "exists already").
    std::fs::remove_file(&filler).unwrap();
    api.call::<serde_json::Value>(&Request::AddRoute { route: route(refused) })
        .unwrap();
    added.push(route(refused).prefix.to_string());
    // And what was live is what the state directory restores.
    n.stop_vrouter().unwrap();
    n.start_vrouter().unwrap();
    added.sort();
    assert_eq!(live(&n.api()), added);
}
