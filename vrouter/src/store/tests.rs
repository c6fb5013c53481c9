use super::*;
use nexthop::{MacAddr, Vif};

fn spec(name: &str) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        ipv4: Some("198.18.1.2".parse().unwrap()),
        ipv6: None,
        gateway4: None,
        gateway6: None,
        allowed_address_pairs: Vec::new(),
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    }
}

fn route(prefix: &str) -> RouteSpec {
    RouteSpec {
        vrf: "red".into(),
        prefix: prefix.parse().unwrap(),
        target: control_client::RouteTarget::Discard,
    }
}

fn aside_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unreadable-"))
        .collect();
    names.sort();
    names
}

#[test]
fn ports_keep_their_identity_and_come_back_in_vif_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store
        .save_port(&spec("zz"), PortIdentity { vif: Vif(1), label: 16 })
        .unwrap();
    store
        .save_port(&spec("aa"), PortIdentity { vif: Vif(3), label: 18 })
        .unwrap();
    // A file written before identities were recorded still loads, after the others.
    std::fs::write(
        dir.path().join("ports/bb.json"),
        serde_json::to_vec(&spec("bb")).unwrap(),
    )
    .unwrap();
    let (ports, problems) = store.load_ports();
    assert!(problems.is_empty(), "{problems:?}");
    let order: Vec<(&str, Option<u32>)> = ports
        .iter()
        .map(|p| (p.spec.name.as_str(), p.identity.map(|i| i.label)))
        .collect();
    assert_eq!(order, vec![("zz", Some(16)), ("aa", Some(18)), ("bb", None)]);
    store.delete_port("zz").unwrap();
    store.delete_port("zz").unwrap();
    assert!(!store.has_port("zz"));
}

#[test]
fn an_unreadable_port_file_is_moved_aside_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("ports/broken.json"), b"{not json").unwrap();
    // A file whose name differs from the interface it names is not trusted either.
    std::fs::write(
        dir.path().join("ports/other.json"),
        serde_json::to_vec(&spec("veth9")).unwrap(),
    )
    .unwrap();
    let (ports, problems) = store.load_ports();
    assert!(ports.is_empty());
    assert_eq!(problems.len(), 2, "{problems:?}");
    let aside = aside_files(&dir.path().join("ports"));
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join("ports").join(&aside[0])).unwrap(),
        b"{not json"
    );
}

#[test]
fn names_that_leave_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    store.save_routes(&[route("198.19.0.0/16")]).unwrap();
    let victim = dir.path().join("victim.json");
    std::fs::write(&victim, b"{}").unwrap();
    for name in [
        "../routes",
        "../../victim",
        "..",
        ".",
        "a/b",
        "",
        "x\0y",
        "sixteen-chars-xx",
    ] {
        assert!(store.delete_port(name).is_err(), "{name:?} accepted");
        assert!(!store.has_port(name), "{name:?}");
        assert!(store
            .save_port(&spec(name), PortIdentity { vif: Vif(1), label: 16 })
            .is_err());
    }
    assert!(dir.path().join("state/routes.json").exists(), "routes.json deleted");
    assert!(victim.exists(), "a file outside the state directory was deleted");
}

#[test]
fn one_bad_route_entry_costs_only_itself_and_the_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let good: Vec<RouteSpec> = (0..100).map(|i| route(&format!("198.19.{i}.0/24"))).collect();
    let mut entries: Vec<serde_json::Value> = good.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    entries.insert(
        50,
        serde_json::json!({"vrf": "red", "prefix": "not a prefix", "target": {"type": "discard"}}),
    );
    std::fs::write(dir.path().join("routes.json"), serde_json::to_vec(&entries).unwrap()).unwrap();
    let loaded = store.load_routes();
    assert_eq!(loaded.routes, good);
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    let aside = aside_files(dir.path());
    assert_eq!(aside.len(), 1);
    let kept: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join(&aside[0])).unwrap()).unwrap();
    assert_eq!(kept.len(), 101, "the bad entry is kept for the operator");

    std::fs::write(dir.path().join("routes.json"), b"garbage").unwrap();
    let loaded = store.load_routes();
    assert!(loaded.routes.is_empty());
    assert!(
        !dir.path().join("routes.json").exists(),
        "an unreadable file is moved, not left to be overwritten"
    );
}

#[test]
fn a_second_process_cannot_open_a_held_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = StateStore::open(dir.path()).unwrap();
    let err = StateStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("in use by another vrouter"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "names the holder: {err}");
    drop(first);
    StateStore::open(dir.path()).unwrap();
}

#[test]
fn modes_do_not_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = StateStore::open(&state).unwrap();
    store
        .save_port(&spec("veth1"), PortIdentity { vif: Vif(1), label: 16 })
        .unwrap();
    store.save_next_label(17).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("ports")), 0o700);
    assert_eq!(mode(&state.join("ports/veth1.json")), 0o600);
    assert_eq!(mode(&state.join("labels.json")), 0o600);
    assert_eq!(store.load_next_label().0, 17);
}

#[test]
fn a_failed_write_leaves_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.save_routes(&[route("198.19.0.0/16")]).unwrap();
    // A directory where the temporary file goes makes the write fail as a full
    // disk would, after the caller asked for it.
    std::fs::create_dir(dir.path().join(".routes.json.tmp")).unwrap();
    assert!(store
        .save_routes(&[route("198.19.0.0/16"), route("198.20.0.0/16")])
        .is_err());
    assert_eq!(store.load_routes().routes, vec![route("198.19.0.0/16")]);
}

#[test]
fn route_changes_are_journaled_replayed_and_folded() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.save_routes(&[route("198.19.0.0/24")]).unwrap();
    let mut all = vec![route("198.19.0.0/24")];
    for i in 1..=10 {
        let r = route(&format!("198.19.{i}.0/24"));
        all.push(r.clone());
        store
            .record_route_change(&RouteChange::Add { route: r }, || all.clone())
            .unwrap();
    }
    store
        .record_route_change(
            &RouteChange::Remove {
                vrf: "red".into(),
                prefix: "198.19.0.0/24".parse().unwrap(),
            },
            || all[1..].to_vec(),
        )
        .unwrap();
    let journal = std::fs::read_to_string(dir.path().join("routes.journal")).unwrap();
    assert_eq!(journal.lines().count(), 11, "one line per change, the base untouched");
    let mut loaded = store.load_routes().routes;
    loaded.sort_by_key(|r| r.prefix.to_string());
    let mut want = all[1..].to_vec();
    want.sort_by_key(|r| r.prefix.to_string());
    assert_eq!(loaded, want);
    // A torn last line (a crash mid-append) costs only itself, and is kept aside.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("routes.journal"))
        .unwrap()
        .write_all(b"{\"op\":\"add\",\"route\":{\"vrf\":")
        .unwrap();
    let loaded = store.load_routes();
    assert_eq!(loaded.routes.len(), 10);
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    // Folding writes the base and empties the journal.
    store.fold_routes(&loaded.routes).unwrap();
    assert_eq!(std::fs::read(dir.path().join("routes.journal")).unwrap().len(), 0);
    assert_eq!(store.load_routes().routes.len(), 10);
}

#[test]
fn a_long_journal_is_folded_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut all = Vec::new();
    for i in 0..1100u32 {
        let r = route(&format!("198.{}.{}.0/24", 19 + i / 256, i % 256));
        all.push(r.clone());
        store
            .record_route_change(&RouteChange::Add { route: r }, || all.clone())
            .unwrap();
    }
    let journal = std::fs::read_to_string(dir.path().join("routes.journal")).unwrap();
    assert!(journal.lines().count() < 1100, "never folded");
    assert_eq!(store.load_routes().routes.len(), 1100);
}
