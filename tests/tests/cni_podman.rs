//! A real container runtime drives the CNI plugin: podman (Debian's, with its CNI
//! backend) runs containers from a busybox root filesystem the test builds itself; they
//! get their addresses from the plugin (host-local as its IPAM), reach each other, a
//! pod on another node and a service, and removing them removes their ports.
//!
//! This machine's limits shape the podman options, not the test: no cgroup v2 (runc
//! with cgroupfs) and a fixed RLIMIT_NPROC (no default ulimits).

use control_client::{L4Protocol, RouteSpec, RouteTarget, ServicePort, ServiceSpec};
use nexthop::encap::Encap;
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use system_tests::{route_to_pod, serial, two_started_nodes};
use vrouter::api::{InterfaceView, Request};
use vrouter_lab::backends::NamedServers;
use vrouter_lab::cni::DEBIAN_CNI_DIR;
use vrouter_lab::node::{FabricLan, LabNode};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");
const NETWORK: &str = "vrtest";
const SERVICE: &str = "198.18.30.1";

/// Podman with its own storage, run and configuration directories; every container
/// is removed, and the directories with them, when dropped.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// A podman whose CNI network `NETWORK` is the vrouter plugin on `node`.
    fn new(node: &LabNode) -> Self {
        let dir = tempfile::Builder::new().prefix("vrlab-podman").tempdir().unwrap();
        let p = |s: &str| dir.path().join(s);
        for d in ["net", "plugins", "root/bin", "storage", "run", "tmp", "ipam", "state"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        // The plugin under the name the configuration's `type` gives.
        std::os::unix::fs::symlink(PLUGIN, p("plugins/vrouter-cni")).unwrap();
        // The image: a static busybox and its applets.
        std::fs::copy("/bin/busybox", p("root/bin/busybox")).expect("busybox-static (scripts/setup.sh installs it)");
        for applet in ["sh", "ping", "nc", "sleep", "ip", "timeout", "echo", "cat"] {
            std::os::unix::fs::symlink("busybox", p(&format!("root/bin/{applet}"))).unwrap();
        }
        let conf = format!(
            "[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             runtime = \"runc\"\ntmp_dir = {tmp:?}\n\n[network]\nnetwork_backend = \"cni\"\n\
             cni_plugin_dirs = [{plugins:?}, {debian:?}]\nnetwork_config_dir = {net:?}\n",
            tmp = p("tmp"),
            plugins = p("plugins"),
            debian = DEBIAN_CNI_DIR,
            net = p("net"),
        );
        std::fs::write(p("containers.conf"), conf).unwrap();
        let network = json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "plugins": [{
                "type": "vrouter-cni",
                "vrf": "red",
                "apiSocket": node.api_socket(),
                "hostNetns": format!("/run/netns/{}", node.ns.name()),
                "stateDir": p("state"),
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "198.18.1.0/24", "rangeStart": "198.18.1.100",
                                 "rangeEnd": "198.18.1.120", "gateway": "198.18.1.1"}]],
                    "dataDir": p("ipam"),
                },
            }],
        });
        std::fs::write(p(&format!("net/{NETWORK}.conflist")), network.to_string()).unwrap();
        Podman { dir }
    }

    fn path(&self, s: &str) -> PathBuf {
        self.dir.path().join(s)
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("run"))
            .args(args)
            .output()
            .expect("podman (scripts/setup.sh installs it)")
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "podman {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts container `name` on the vrouter network; its address.
    fn start(&self, name: &str) -> IpAddr {
        let root = self.path("root");
        let root = root.to_str().unwrap();
        #[rustfmt::skip]
        self.must(&["run", "-d", "--name", name, "--network", NETWORK, "--rootfs", root, "/bin/sleep", "300"]);
        let format = format!("{{{{.NetworkSettings.Networks.{NETWORK}.IPAddress}}}}");
        self.must(&["inspect", "-f", &format, name])
            .parse()
            .expect("an address from the plugin")
    }

    /// Runs `sh -c script` in container `name`; its exit status and output.
    fn exec(&self, name: &str, script: &str) -> (bool, String) {
        let out = self.command(&["exec", name, "/bin/sh", "-c", script]);
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command(&["rm", "-af", "-t", "0"]);
    }
}

fn plugin_ports(node: &LabNode) -> Vec<InterfaceView> {
    let all: Vec<InterfaceView> = node.api().call(&Request::Interfaces).unwrap();
    all.into_iter().filter(|p| p.name.starts_with("vc")).collect()
}

/// Routes on `node` to the container ports of `remote`, through MPLS over UDP.
fn route_to_containers(node: &LabNode, remote: &LabNode) {
    for port in plugin_ports(remote) {
        let route = RouteSpec {
            vrf: port.vrf.clone(),
            prefix: IpAddr::from(port.ipv4.unwrap()).into(),
            target: RouteTarget::Tunnel {
                remote: remote.fabric_ip(),
                label: port.label.unwrap(),
                encaps: vec![Encap::MplsOverUdp],
                mac: None,
            },
        };
        node.api()
            .call::<serde_json::Value>(&Request::AddRoute { route })
            .unwrap();
    }
}

#[test]
fn podman_containers_get_their_network_from_the_plugin() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (a, mut b) = two_started_nodes(BIN, &lan);
    b.add_pod("red", 0, 9, true).unwrap();
    let remote = b.pods[0].ipv4;
    let _server = NamedServers::start(&b.pods[0].ns, "remote-pod", &[9376], &[]).unwrap();
    let podman = Podman::new(&a);
    let first = podman.start("web-1");
    let second = podman.start("web-2");
    let logs = || {
        format!(
            "node 1:\n{}\n{:?}\nnode 2:\n{}\n{:?}",
            a.log(),
            a.drop_stats(),
            b.log(),
            b.drop_stats()
        )
    };
    let ports = plugin_ports(&a);
    assert_eq!(ports.len(), 2, "{ports:?}");
    let held: Vec<IpAddr> = ports.iter().filter_map(|p| p.ipv4).map(IpAddr::V4).collect();
    assert!(
        held.contains(&first) && held.contains(&second),
        "{held:?} vs {first} {second}"
    );
    route_to_containers(&b, &a);
    // VRF red exists on node 1 once a container is in it.
    route_to_pod(&a, &b, 0, Encap::MplsOverUdp, 0);
    let service = ServiceSpec {
        name: "default/web".into(),
        vrf: "red".into(),
        ip: SERVICE.parse().unwrap(),
        ports: vec![ServicePort {
            protocol: L4Protocol::Tcp,
            port: 80,
            target_port: 9376,
            node_port: None,
        }],
        backends: vec![remote.into()],
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    };
    a.api()
        .call::<serde_json::Value>(&Request::AddService { spec: service })
        .unwrap();

    // Busybox's ping sends one request with -c 1, and the first one to another node
    // may go while the vrouter resolves the tunnel: a few tries.
    let ping = |from: &str, to: &dyn std::fmt::Display| {
        let script = format!("for i in 1 2 3 4 5; do ping -c 1 -W 1 {to} && exit 0; done; exit 1");
        podman.exec(from, &script).0
    };
    assert!(ping("web-1", &second), "container to container\n{}", logs());
    assert!(ping("web-2", &remote), "container to the pod on node 2\n{}", logs());
    let (_, answer) = podman.exec("web-1", &format!("echo hello | timeout 3 nc {SERVICE} 80"));
    assert_eq!(answer.trim(), "remote-pod", "container to the service\n{}", logs());

    // Removing the containers removes their ports and their leases.
    podman.must(&["rm", "-f", "-t", "0", "web-1", "web-2"]);
    assert!(plugin_ports(&a).is_empty(), "{:?}", plugin_ports(&a));
    let leases = std::fs::read_dir(podman.path("ipam").join(NETWORK))
        .map(|d| {
            d.flatten()
                .filter(|f| f.file_name().to_string_lossy().starts_with("198."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leases, 0, "host-local still holds addresses");
    let records = std::fs::read_dir(podman.path("state")).unwrap().flatten();
    assert_eq!(
        records
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count(),
        0
    );
}
