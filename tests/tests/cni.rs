//! The CNI plugin driven as a container runtime drives it, against a real vrouter and
//! Debian's `host-local` IPAM plugin: ADD, CHECK, DEL, DEL again, STATUS, GC and
//! VERSION, the three configuration versions, and bad input answered with the spec's
//! error codes and nothing left behind.

use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;
use system_tests::{node, serial};
use vrouter::api::{InterfaceView, Request};
use vrouter::config::XdpMode;
use vrouter_lab::cni::{with_prev_result, CniDriver, CniOutput};
use vrouter_lab::netns::Netns;
use vrouter_lab::node::LabNode;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");

fn ports(node: &LabNode) -> Vec<InterfaceView> {
    node.api().call(&Request::Interfaces).unwrap()
}

fn port_names(node: &LabNode) -> Vec<String> {
    ports(node)
        .into_iter()
        .filter(|p| p.name.starts_with("vc"))
        .map(|p| p.name)
        .collect()
}

/// Addresses `host-local` holds a lease for.
fn leases(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(net.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.parse::<IpAddr>().is_ok() {
                out.push(name);
            }
        }
    }
    out
}

/// Attachment records the plugin holds (one JSON file each).
fn records(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

fn pings(pod: &Netns, to: IpAddr) -> bool {
    pod.succeeds("ping", &["-c", "1", "-w", "3", "-W", "1", "-q", &to.to_string()])
}

fn ok(out: &CniOutput, what: &str) {
    assert!(out.ok, "{what} failed: {}", out.json);
}

#[test]
fn cni_verbs_as_a_runtime_drives_them() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    let cni = CniDriver::new(Path::new(PLUGIN)).unwrap();
    let conf = cni.config("1.1.0", "cni-red", &n, "red", "198.18.40.0/24", "2001:2:0:40::/64");
    let (a_ns, b_ns) = (Netns::create("cnia").unwrap(), Netns::create("cnib").unwrap());

    let version = cni
        .invoke(Some("VERSION"), br#"{"cniVersion":"1.0.0"}"#, None, None, None)
        .unwrap();
    ok(&version, "VERSION");
    assert_eq!(version.json["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
    ok(&cni.run("STATUS", &conf, "none", &a_ns).unwrap(), "STATUS");

    // ADD: the result says what the pod got, and the pod has it and is reachable.
    let a = cni.run("ADD", &conf, "ctr-a", &a_ns).unwrap();
    ok(&a, "ADD a");
    let a_addrs = a.addresses();
    assert_eq!(a_addrs.len(), 2, "{}", a.json);
    assert_eq!(a.json["cniVersion"], "1.1.0");
    assert_eq!(
        a.json["interfaces"][1]["sandbox"],
        format!("/run/netns/{}", a_ns.name())
    );
    assert_eq!(a.json["interfaces"][1]["mtu"], 1500);
    assert!(a.json["ips"][0].get("version").is_none(), "1.1.0 IPs carry no version");
    // The older formats: 0.4.0's IPs carry their version.
    let conf_040 = cni.config("0.4.0", "cni-red", &n, "red", "198.18.40.0/24", "2001:2:0:40::/64");
    let b = cni.run("ADD", &conf_040, "ctr-b", &b_ns).unwrap();
    ok(&b, "ADD b (0.4.0)");
    assert_eq!(b.json["ips"][0]["version"], "4", "{}", b.json);
    let b_addrs = b.addresses();
    for to in &b_addrs {
        assert!(pings(&a_ns, *to), "a cannot reach b at {to}\n{}", n.log());
    }
    let host_a = a.json["interfaces"][0]["name"].as_str().unwrap().to_string();
    let port = ports(&n)
        .into_iter()
        .find(|p| p.name == host_a)
        .expect("the vrouter has a's port");
    assert_eq!(port.vrf, "red");
    assert_eq!(port.ipv4.map(IpAddr::V4), Some(a_addrs[0]));

    // CHECK passes on what ADD made and fails (101) once it is changed.
    let check_conf = with_prev_result(&conf, &a.json);
    ok(&cni.run("CHECK", &check_conf, "ctr-a", &a_ns).unwrap(), "CHECK");
    let a4 = format!("{}/24", a_addrs[0]);
    a_ns.ip(&["addr", "del", &a4, "dev", "eth0"]).unwrap();
    let broken = cni.run("CHECK", &check_conf, "ctr-a", &a_ns).unwrap();
    assert_eq!((broken.ok, broken.code()), (false, Some(101)), "{}", broken.json);
    assert!(broken.json["msg"].as_str().unwrap().contains(&a_addrs[0].to_string()));
    let no_prev = cni.run("CHECK", &conf, "ctr-a", &a_ns).unwrap();
    assert_eq!(no_prev.code(), Some(7), "CHECK without prevResult: {}", no_prev.json);

    // DEL removes the port, the veth, the lease and the record; DEL again is fine.
    let del_conf = with_prev_result(&conf, &a.json);
    ok(&cni.run("DEL", &del_conf, "ctr-a", &a_ns).unwrap(), "DEL");
    assert!(!port_names(&n).contains(&host_a), "a's port is still there");
    assert!(
        !n.ns.succeeds("ip", &["link", "show", "dev", &host_a]),
        "a's host end is still there"
    );
    assert!(
        !a_ns.succeeds("ip", &["link", "show", "dev", "eth0"]),
        "a's eth0 is still there"
    );
    assert!(!leases(&cni.ipam_dir()).contains(&a_addrs[0].to_string()));
    assert_eq!(records(&cni.state_dir()), 1, "only b's record is left");
    let again = cni.run("DEL", &del_conf, "ctr-a", &a_ns).unwrap();
    ok(&again, "DEL again");
    assert_eq!(again.json, Value::Null, "DEL prints nothing");

    // GC releases what the runtime no longer lists, and keeps what it lists.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-b", "ifname": "eth0"}]);
    ok(&cni.run("GC", &gc, "none", &a_ns).unwrap(), "GC keeping b");
    let host_b = b.json["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(port_names(&n), [host_b], "b's port is kept, alone");
    let mut kept = leases(&cni.ipam_dir());
    kept.sort();
    let mut b_leases: Vec<String> = b_addrs.iter().map(IpAddr::to_string).collect();
    b_leases.sort();
    assert_eq!(kept, b_leases, "b's leases are kept, alone");
    assert_eq!(records(&cni.state_dir()), 1, "b's record is kept");
    gc["cni.dev/valid-attachments"] = json!([]);
    ok(&cni.run("GC", &gc, "none", &a_ns).unwrap(), "GC");
    assert!(port_names(&n).is_empty(), "GC left ports: {:?}", port_names(&n));
    assert!(
        leases(&cni.ipam_dir()).is_empty(),
        "GC left leases: {:?}",
        leases(&cni.ipam_dir())
    );
    assert_eq!(records(&cni.state_dir()), 0);
    let mut gc_old = cni.config("1.0.0", "cni-red", &n, "red", "198.18.40.0/24", "2001:2:0:40::/64");
    gc_old["cni.dev/valid-attachments"] = json!([]);
    assert_eq!(
        cni.run("GC", &gc_old, "none", &a_ns).unwrap().code(),
        Some(1),
        "GC needs 1.1.0"
    );
}

#[test]
fn cni_bad_input_and_a_vrouter_that_is_down() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    let cni = CniDriver::new(Path::new(PLUGIN)).unwrap();
    let conf = cni.config("1.0.0", "cni-blue", &n, "blue", "198.18.41.0/24", "2001:2:0:41::/64");
    let text = conf.to_string();
    let pod = Netns::create("cnibad").unwrap();
    let netns = format!("/run/netns/{}", pod.name());
    let code = |command: Option<&str>, config: &[u8], container: Option<&str>, ns: Option<&str>| {
        let out = cni.invoke(command, config, container, ns, Some("eth0")).unwrap();
        assert!(!out.ok, "succeeded: {}", out.json);
        assert!(out.json["msg"].as_str().is_some_and(|m| !m.is_empty()), "{}", out.json);
        out.code()
    };
    let c = Some("ctr-x");
    assert_eq!(code(None, text.as_bytes(), c, Some(&netns)), Some(4), "no CNI_COMMAND");
    assert_eq!(
        code(Some("ADD"), text.as_bytes(), None, Some(&netns)),
        Some(4),
        "no container id"
    );
    assert_eq!(code(Some("ADD"), text.as_bytes(), c, None), Some(4), "no CNI_NETNS");
    assert_eq!(code(Some("ADD"), b"{not json", c, Some(&netns)), Some(6), "bad JSON");
    let future = text.replace("\"1.0.0\"", "\"2.0.0\"");
    assert_eq!(
        code(Some("ADD"), future.as_bytes(), c, Some(&netns)),
        Some(1),
        "unknown version"
    );
    let status_old = code(Some("STATUS"), text.as_bytes(), c, Some(&netns));
    assert_eq!(status_old, Some(1), "STATUS needs 1.1.0");
    assert_eq!(
        code(Some("ADD"), text.as_bytes(), c, Some("/run/netns/vrlab-gone")),
        Some(3),
        "namespace gone"
    );
    let mut no_ipam = conf.clone();
    no_ipam.as_object_mut().unwrap().remove("ipam");
    assert_eq!(
        code(Some("ADD"), no_ipam.to_string().as_bytes(), c, Some(&netns)),
        Some(7),
        "no IPAM"
    );
    // An ADD that fails late (the vrouter refuses the port: "fabric" is no pod's VRF)
    // undoes what it made: the veth, the leases, the record.
    let refused_late = cni.config("1.0.0", "cni-blue", &n, "fabric", "198.18.41.0/24", "2001:2:0:41::/64");
    let late = cni.run("ADD", &refused_late, "ctr-late", &pod).unwrap();
    assert_eq!(late.code(), Some(100), "{}", late.json);
    assert!(
        late.json["details"].as_str().unwrap().contains("invalid_argument"),
        "{}",
        late.json
    );
    assert!(
        !pod.succeeds("ip", &["link", "show", "dev", "eth0"]),
        "the refused pod's eth0 is left"
    );
    // Nothing of the refused ADDs is left.
    assert!(port_names(&n).is_empty());
    assert!(leases(&cni.ipam_dir()).is_empty(), "{:?}", leases(&cni.ipam_dir()));
    assert_eq!(records(&cni.state_dir()), 0);

    // An attachment made while the vrouter ran, then the vrouter goes down.
    let added = cni.run("ADD", &conf, "ctr-y", &pod).unwrap();
    ok(&added, "ADD");
    let host_y = added.json["interfaces"][0]["name"].as_str().unwrap().to_string();
    n.stop_vrouter().unwrap();
    let other = Netns::create("cnidown").unwrap();
    let down = cni.run("ADD", &conf, "ctr-z", &other).unwrap();
    assert_eq!(down.code(), Some(11), "ADD with the vrouter down: {}", down.json);
    let mut status = cni.config("1.1.0", "cni-blue", &n, "blue", "198.18.41.0/24", "2001:2:0:41::/64");
    let status_down = cni.run("STATUS", &status, "none", &other).unwrap();
    assert_eq!(status_down.code(), Some(50), "{}", status_down.json);
    // DEL with the vrouter down succeeds: the veth and the leases go; the port it
    // could not remove is remembered and removed by GC once the vrouter is back.
    assert!(n.ns.succeeds("ip", &["link", "show", "dev", &host_y]));
    ok(&cni.run("DEL", &conf, "ctr-y", &pod).unwrap(), "DEL (down)");
    assert!(
        !n.ns.succeeds("ip", &["link", "show", "dev", &host_y]),
        "DEL left the host end"
    );
    assert!(leases(&cni.ipam_dir()).is_empty(), "{:?}", leases(&cni.ipam_dir()));
    assert_eq!(records(&cni.state_dir()), 1, "the due removal is recorded");
    // Again with the namespace gone too: still fine, still due.
    drop(pod);
    ok(
        &cni.invoke(Some("DEL"), text.as_bytes(), Some("ctr-y"), Some(&netns), Some("eth0"))
            .unwrap(),
        "DEL (down, namespace gone)",
    );
    assert_eq!(records(&cni.state_dir()), 1);
    // The vrouter keeps the port's file (its link is gone, so it is not attached).
    let port_file = n.dir().join("state/ports").join(format!("{host_y}.json"));
    n.start_vrouter().unwrap();
    assert!(port_file.exists(), "the vrouter forgot the port on its own");
    ok(
        &cni.run("STATUS", &status, "none", &other).unwrap(),
        "STATUS (up again)",
    );
    status["cni.dev/valid-attachments"] = json!([]);
    ok(&cni.run("GC", &status, "none", &other).unwrap(), "GC");
    assert!(!port_file.exists(), "GC left the vrouter's port");
    assert!(port_names(&n).is_empty(), "GC left {:?}", port_names(&n));
    assert_eq!(records(&cni.state_dir()), 0);
}
