//! Runs the CNI plugin as a container runtime does: the verb and its parameters in
//! `CNI_*` variables, the network configuration on stdin, the result or the spec's
//! error object read from stdout. The lab attaches its pods this way; the system
//! tests drive the plugin through it.

use crate::netns::Netns;
use crate::node::{LabNode, Pod};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's `containernetworking-plugins` puts `host-local`.
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// What one invocation printed.
#[derive(Debug, Clone)]
pub struct CniOutput {
    /// Exit status 0.
    pub ok: bool,
    /// Its stdout as JSON (Null when it printed nothing).
    pub json: Value,
}

impl CniOutput {
    /// The spec error code, for a failure.
    pub fn code(&self) -> Option<u64> {
        self.json["code"].as_u64()
    }

    /// The addresses of an ADD result.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.json["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
            .collect()
    }
}

/// The plugin binary and the directories of one lab run or test.
#[derive(Debug)]
pub struct CniDriver {
    plugin: PathBuf,
    /// The lab pods attached through [`Self::add_lab_pod`], in order.
    attached: std::sync::Mutex<Vec<LabAttachment>>,
    /// The namespace the plugin runs in (a runtime's own is the host's); None: ours.
    netns: Option<String>,
    /// State and IPAM directories, removed on drop.
    dir: tempfile::TempDir,
    /// What `CNI_ARGS` holds.
    cni_args: String,
}

impl CniDriver {
    /// A driver for the plugin at `plugin`, with fresh state and IPAM directories.
    pub fn new(plugin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&crate::netns::unique_name("cni"))
            .tempdir()
            .context("creating the CNI state directory")?;
        Ok(Self {
            plugin: plugin.to_path_buf(),
            attached: std::sync::Mutex::default(),
            netns: None,
            dir,
            cni_args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=lab".into(),
        })
    }

    /// The same driver running the plugin inside namespace `ns` (a node's, for a
    /// plugin that puts host ends and routes in its own namespace).
    pub fn inside(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_string());
        self
    }

    /// Where the plugin keeps its records.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where `host-local` keeps its leases.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// A configuration of network `name` on `node`'s vrouter, VRF `vrf`, addresses
    /// from `host-local` in `subnet4` (gateway `.1`) and `subnet6` (gateway `::1`).
    pub fn config(&self, version: &str, name: &str, node: &LabNode, vrf: &str, subnet4: &str, subnet6: &str) -> Value {
        let ranges = json!([[{"subnet": subnet4}], [{"subnet": subnet6}]]);
        self.config_with_ranges(version, name, node, vrf, ranges)
    }

    /// The same with host-local's `ranges` given whole.
    fn config_with_ranges(&self, version: &str, name: &str, node: &LabNode, vrf: &str, ranges: Value) -> Value {
        json!({
            "cniVersion": version,
            "name": name,
            "type": "vrouter-cni",
            "vrf": vrf,
            "apiSocket": node.api_socket(),
            "hostNetns": format!("/run/netns/{}", node.ns.name()),
            "stateDir": self.state_dir(),
            "ipam": {
                "type": "host-local",
                "ranges": ranges,
                "dataDir": self.ipam_dir(),
            },
            // kube-dns's service (the lab's DNS section starts it), as kubelet's
            // cluster DNS: the result carries it and the lab writes the pod's
            // resolv.conf from it, as a runtime does.
            "dns": {
                "nameservers": [LAB_KUBE_DNS],
                "search": ["{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            },
        })
    }

    /// Sets the `CNI_ARGS` later invocations get (a runtime's `K8S_POD_UID=...`).
    pub fn set_cni_args(&mut self, args: &str) {
        self.cni_args = args.to_string();
    }

    /// Runs `command` for container `container` with interface `ifname` in `netns`
    /// (any of them may be left out, as a broken runtime might).
    pub fn invoke(
        &self,
        command: Option<&str>,
        config: &[u8],
        container: Option<&str>,
        netns: Option<&str>,
        ifname: Option<&str>,
    ) -> anyhow::Result<CniOutput> {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(&self.plugin);
                c
            }
            None => Command::new(&self.plugin),
        };
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_PATH", DEBIAN_CNI_DIR)
            .env("CNI_ARGS", &self.cni_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let vars = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
        ];
        for (k, v) in vars {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        let mut child = c
            .spawn()
            .with_context(|| format!("running {}", self.plugin.display()))?;
        child.stdin.take().context("stdin")?.write_all(config)?;
        let out = child.wait_with_output()?;
        let json = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout)
                .with_context(|| format!("the plugin printed no JSON: {}", String::from_utf8_lossy(&out.stdout)))?
        };
        Ok(CniOutput {
            ok: out.status.success(),
            json,
        })
    }

    /// Runs `command` for a pod namespace, the way a runtime does.
    pub fn run(&self, command: &str, config: &Value, container: &str, pod: &Netns) -> anyhow::Result<CniOutput> {
        let netns = format!("/run/netns/{}", pod.name());
        self.invoke(
            Some(command),
            config.to_string().as_bytes(),
            Some(container),
            Some(&netns),
            Some("eth0"),
        )
    }
}

impl CniDriver {
    /// The configuration of lab pod `index` of VRF number `vrf_index` (named `vrf`):
    /// host-local gives it the address the lab plans for it (198.18.`vrf_index+1`.
    /// `index+1` and 2001:2:0:`vrf_index+1`::`index+1`, gateways `.1` and `::1`).
    pub fn lab_pod_config(&self, node: &LabNode, vrf: &str, vrf_index: u8, index: u8) -> Value {
        let subnet = vrf_index + 1;
        let v4 = format!("198.18.{subnet}.{}", index + 1);
        let v6 = format!("2001:2:0:{subnet}::{}", index + 1);
        let ranges = json!([
            [{"subnet": format!("198.18.{subnet}.0/24"), "rangeStart": v4, "rangeEnd": v4,
              "gateway": format!("198.18.{subnet}.1")}],
            [{"subnet": format!("2001:2:0:{subnet}::/64"), "rangeStart": v6, "rangeEnd": v6,
              "gateway": format!("2001:2:0:{subnet}::1")}],
        ]);
        self.config_with_ranges("1.1.0", &format!("lab-{vrf}"), node, vrf, ranges)
    }

    /// Adds a pod to `node` the way a container runtime does: a namespace, then the
    /// plugin's ADD (which returns once the pod reaches its gateway).
    pub fn add_lab_pod(&self, node: &mut LabNode, vrf: &str, vrf_index: u8, index: u8) -> anyhow::Result<()> {
        let ns = Netns::create("pod")?;
        let conf = self.lab_pod_config(node, vrf, vrf_index, index);
        let container = lab_container(node, vrf, index);
        let out = self.run("ADD", &conf, &container, &ns)?;
        anyhow::ensure!(out.ok, "CNI ADD of {vrf}-{index}: {}", out.json);
        let pod = match lab_pod(&out.json, vrf, index, ns) {
            Ok(pod) => pod,
            Err(e) => {
                // Not left attached: the lab would not know to remove it.
                let gone = Netns::create("cniundo")?;
                let _ = self.run("DEL", &conf, &container, &gone);
                return Err(e);
            }
        };
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(LabAttachment {
                node: node.ns.name().to_string(),
                vrf: vrf.to_string(),
                vrf_index,
                index,
            });
        write_resolv_conf(&pod.ns, &out.json)?;
        node.pods.push(pod);
        Ok(())
    }
}

/// kube-dns's service address in the lab (`k8s/scenarios/dns.yaml`).
pub const LAB_KUBE_DNS: &str = "198.18.100.10";

/// Writes the pod's resolv.conf from an ADD result's `dns`, as a container runtime
/// does (`ip netns exec` gives the pod `/etc/netns/<name>/resolv.conf`).
fn write_resolv_conf(pod: &Netns, result: &Value) -> anyhow::Result<()> {
    let dns = &result["dns"];
    let Some(servers) = dns["nameservers"].as_array().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let mut text = String::new();
    for s in servers.iter().filter_map(Value::as_str) {
        text.push_str(&format!("nameserver {s}\n"));
    }
    let search: Vec<&str> = dns["search"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    let dir = Path::new("/etc/netns").join(pod.name());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("resolv.conf"), text)?;
    Ok(())
}

/// The lab's pod as an ADD result describes it.
fn lab_pod(result: &Value, vrf: &str, index: u8, ns: Netns) -> anyhow::Result<Pod> {
    {
        // (a block, so the closures below end before `ns` moves)
        let text = |v: &Value| v.as_str().map(str::to_string).context("CNI result field");
        let address = |i: usize| -> anyhow::Result<(IpAddr, IpAddr)> {
            let ip = &result["ips"][i];
            let address: IpAddr = text(&ip["address"])?.split('/').next().unwrap_or_default().parse()?;
            Ok((address, text(&ip["gateway"])?.parse()?))
        };
        let (IpAddr::V4(ipv4), IpAddr::V4(gateway4)) = address(0)? else {
            anyhow::bail!("CNI ADD gave no IPv4 address first: {result}");
        };
        let (IpAddr::V6(ipv6), IpAddr::V6(gateway6)) = address(1)? else {
            anyhow::bail!("CNI ADD gave no IPv6 address second: {result}");
        };
        Ok(Pod {
            name: format!("{vrf}-{index}"),
            vrf: vrf.to_string(),
            host_if: text(&result["interfaces"][0]["name"])?,
            mac: text(&result["interfaces"][1]["mac"])?
                .parse()
                .map_err(|e: String| anyhow::anyhow!("CNI result MAC: {e}"))?,
            ipv4,
            ipv6,
            gateway4,
            gateway6,
            ns,
            allowed_address_pairs: Vec::new(),
        })
    }
}

/// A lab pod the plugin attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabAttachment {
    /// Its node's namespace name.
    pub node: String,
    /// Its VRF.
    pub vrf: String,
    /// The VRF's number in the lab's addressing.
    pub vrf_index: u8,
    /// The pod's number.
    pub index: u8,
}

impl CniDriver {
    /// The lab pods attached so far, in order.
    pub fn lab_attachments(&self) -> Vec<LabAttachment> {
        self.attached.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The container id the lab gives pod `index` of `vrf` on `node`.
pub fn lab_container(node: &LabNode, vrf: &str, index: u8) -> String {
    format!("{}-{vrf}-{index}", node.ns.name())
}

/// `config` with `prevResult` set (what CHECK and DEL get).
pub fn with_prev_result(config: &Value, result: &Value) -> Value {
    let mut c = config.clone();
    c["prevResult"] = result.clone();
    c
}
