//! ADD: addresses from IPAM (a delegate plugin, or the vrouter's configuration:
//! [`crate::configured`]), the pod's veth, its addresses and routes, the vrouter's
//! port; returns once the pod reaches its gateway through the vrouter. Anything
//! that fails undoes what was made before it (nothing is left for a DEL to find).

use crate::config::Loaded;
use crate::configured::Configured;
use crate::env::{Attachment, CniEnv};
use crate::ipam::Delegate;
use crate::link::{self, Netns, Veth};
use crate::plan::Plan;
use crate::release;
use crate::spec::{CniError, CniResult, ErrorCode, InterfaceConfig, IpConfig};
use crate::state::{pod_mac, Record, Store};
use crate::vrouter;
use control_client::InterfaceSpec;
use vrouter_api::{ErrorCode as ApiCode, Request, StatusView};

/// Runs ADD; the result to print.
pub fn add(conf: &Loaded, env: &CniEnv) -> Result<CniResult, CniError> {
    let a = env.attachment()?;
    let netns = env.netns()?;
    let pod = Netns::at(&netns);
    if !pod.exists() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            format!("the network namespace {} does not exist", netns.display()),
        ));
    }
    let host = vrouter::host_netns(conf)?;
    let api = vrouter::client(conf);
    let status = vrouter::ready_status(&api).map_err(|e| CniError {
        code: ErrorCode::TryAgainLater,
        ..e
    })?;
    let source = if crate::ipam::from_vrouter(conf) {
        Source::Vrouter(crate::configured::wait(conf, env)?)
    } else {
        Source::Delegate(Delegate::find(conf, env)?.ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidConfig,
                "the configuration names no IPAM plugin (\"ipam\": {\"type\": ...})",
            )
        })?)
    };
    let delegate = match &source {
        Source::Delegate(d) => Some(d),
        Source::Vrouter(_) => None,
    };
    let mut record = Record::new(conf, &a, netns.clone());
    // A bound port is in its configuration's VRF, with its configuration's MAC: what
    // CHECK compares against.
    if let Source::Vrouter(c) = &source {
        record.vrf = c.vrf.clone();
        record.mac = Some(c.mac.to_string());
    }
    // An earlier plugin's result in a chain, read before anything is made.
    let prev = conf.conf.prev_result.as_ref().map(CniResult::from_value).transpose()?;
    let store = Store::new(&conf.conf.state_dir);
    let _lock = store.lock(&a)?;
    // Recorded first: whatever an interrupted ADD leaves, DEL and GC find.
    store.save(&record)?;
    let attached = attach(conf, &a, &record, &pod, &host, &source, &status);
    match attached {
        Ok(mut ours) => Ok({
            if let Some(dns) = conf.conf.dns_for(env.args.get("K8S_POD_NAMESPACE").map(String::as_str)) {
                ours.dns = dns;
            }
            match prev {
                Some(prev) => chained(prev, ours),
                None => ours,
            }
        }),
        Err(e) => {
            // The first failure is what the runtime sees; the undo is best effort (a
            // DEL from the runtime tries again).
            let _ = release::release(conf, delegate, &a, Some(&record), Some(&host));
            Err(e)
        }
    }
}

/// This plugin's result after an earlier plugin's in a chain (`prevResult`): its
/// interfaces, addresses and routes first, ours after, our interface indexes moved.
fn chained(prev: CniResult, ours: CniResult) -> CniResult {
    let offset = prev.interfaces.len();
    let mut out = prev;
    out.interfaces.extend(ours.interfaces);
    out.ips.extend(ours.ips.into_iter().map(|mut ip| {
        ip.interface = ip.interface.map(|i| i + offset);
        ip
    }));
    out.routes.extend(ours.routes);
    if !ours.dns.is_null() {
        out.dns = ours.dns;
    }
    out
}

/// Where a pod's addresses come from.
enum Source {
    /// An IPAM plugin run as delegate.
    Delegate(Delegate),
    /// The vrouter's configuration: the port is bound to the interface.
    Vrouter(Configured),
}

fn attach(
    conf: &Loaded,
    a: &Attachment,
    record: &Record,
    pod: &Netns,
    host: &Netns,
    source: &Source,
    status: &StatusView,
) -> Result<CniResult, CniError> {
    let (ipam, mac) = match source {
        Source::Delegate(d) => (d.run("ADD", a)?.unwrap_or_default(), pod_mac(a)),
        Source::Vrouter(c) => (c.result.clone(), c.mac),
    };
    let plan = Plan::from_ipam(&ipam)?;
    link::create_veth(
        host,
        &Veth {
            host_if: &record.host_if,
            ifname: &a.ifname,
            pod_netns: &record.netns,
            mac,
            mtu: conf.conf.mtu,
            queues: status.workers.len(),
        },
    )?;
    link::configure_pod(
        pod,
        &a.ifname,
        &plan.addresses(),
        &plan.routes,
        status.checksum_offload(),
    )?;
    let spec = InterfaceSpec {
        name: record.host_if.clone(),
        vrf: record.vrf.clone(),
        mac,
        ipv4: plan.ipv4.map(|(a, _)| a.addr()),
        ipv6: plan.ipv6.map(|(a, _)| a.addr()),
        gateway4: plan.ipv4.map(|(_, g)| g),
        gateway6: plan.ipv6.map(|(_, g)| g),
        allowed_address_pairs: Vec::new(),
        mtu: Some(conf.conf.mtu),
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    };
    let api = vrouter::client(conf);
    let request = match source {
        Source::Delegate(_) => Request::AddInterface { spec },
        // The configuration's interface: the vrouter attaches the port with what it
        // holds (VRF, addresses, security groups) and keeps it in line with it.
        Source::Vrouter(c) => Request::BindPort {
            binding: control_client::contrail::PortBinding {
                name: record.host_if.clone(),
                vmi: c.vmi,
                vm: Some(c.vm),
                mtu: Some(conf.conf.mtu),
            },
        },
    };
    match api.call::<serde_json::Value>(&request) {
        // The configuration's interface is bound to another port (a sandbox made
        // again while the old one's DEL has not run): not ours to take.
        Err(e)
            if e.code() == Some(ApiCode::AlreadyExists)
                && matches!(request, Request::BindPort { .. })
                && e.to_string().contains("bound to port") =>
        {
            return Err(CniError::new(
                ErrorCode::TryAgainLater,
                "the pod's interface is bound to another port (an earlier sandbox's): try again after its DEL",
            )
            .with_details(e.to_string()));
        }
        // A port of the same name is left from an interrupted ADD of this attachment
        // (the name follows from container and interface): replaced.
        Err(e) if e.code() == Some(ApiCode::AlreadyExists) => {
            vrouter::remove_port(&api, &record.host_if)?;
            api.call::<serde_json::Value>(&request)
                .map_err(|e| vrouter::error("registering the port", e))?;
        }
        other => {
            other.map_err(|e| vrouter::error("registering the port", e))?;
        }
    }
    link::wait_reachable(pod, plan.probe_target(), conf.ready_timeout())?;
    let ips = plan
        .addresses()
        .into_iter()
        .map(|address| IpConfig {
            address,
            gateway: plan.gateway_for(&address),
            interface: Some(1),
        })
        .collect();
    Ok(CniResult {
        interfaces: vec![
            InterfaceConfig {
                name: record.host_if.clone(),
                mac: None,
                mtu: Some(u32::from(conf.conf.mtu)),
                sandbox: None,
            },
            InterfaceConfig {
                name: a.ifname.clone(),
                mac: Some(mac.to_string()),
                mtu: Some(u32::from(conf.conf.mtu)),
                sandbox: Some(record.netns.display().to_string()),
            },
        ],
        ips,
        routes: plan.routes,
        dns: ipam.dns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_configured_dns_is_the_results_with_the_pods_namespace_in_its_search_domains() {
        let conf: crate::config::NetConf = serde_json::from_value(json!({
            "cniVersion": "1.1.0", "name": "cluster-network", "type": "vrouter-cni",
            "dns": {"nameservers": ["198.18.100.10"],
                    "search": ["{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"],
                    "options": ["ndots:5"]}
        }))
        .unwrap();
        let dns = conf.dns_for(Some("shop")).unwrap();
        assert_eq!(dns["nameservers"][0], "198.18.100.10");
        assert_eq!(
            dns["search"],
            json!(["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        );
        assert_eq!(dns["options"][0], "ndots:5");
        let without = conf.dns_for(None).unwrap();
        assert_eq!(
            without["search"],
            json!(["svc.cluster.local", "cluster.local"]),
            "no namespace, no such domain"
        );
    }

    #[test]
    fn a_chained_result_keeps_the_earlier_plugins_part() {
        let prev = CniResult::from_value(&json!({"interfaces": [{"name": "lo"}],
            "ips": [{"address": "127.0.0.2/8", "interface": 0}], "dns": {"nameservers": ["198.18.0.53"]}}))
        .unwrap();
        let ours = CniResult::from_value(&json!({"interfaces": [{"name": "vc1"}, {"name": "eth0"}],
            "ips": [{"address": "198.18.1.5/24", "gateway": "198.18.1.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.1.1"}]}))
        .unwrap();
        let both = chained(prev, ours);
        assert_eq!(both.interfaces.len(), 3);
        assert_eq!(both.ips[0].interface, Some(0));
        assert_eq!(both.ips[1].interface, Some(2), "ours points at our eth0");
        assert_eq!(both.routes.len(), 1);
        assert_eq!(both.dns["nameservers"][0], "198.18.0.53", "kept when ours has none");
    }
}
