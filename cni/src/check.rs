//! CHECK (the attachment is still what ADD made: the pod's interface and addresses,
//! the host end, the vrouter's port), STATUS (the vrouter is up and ready for ADD)
//! and VERSION.

use crate::config::Loaded;
use crate::env::CniEnv;
use crate::ipam::Delegate;
use crate::link::Netns;
use crate::spec::{CniError, CniResult, CniVersion, ErrorCode, LATEST_VERSION, SUPPORTED_VERSIONS};
use crate::state::{pod_mac, Store};
use crate::vrouter;
use serde_json::{json, Value};
use vrouter_api::{InterfaceView, Request};

fn differs(msg: String) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg)
}

/// CHECK.
pub fn check(conf: &Loaded, env: &CniEnv) -> Result<(), CniError> {
    let a = env.attachment()?;
    let netns = env.netns()?;
    let prev = conf
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(ErrorCode::InvalidConfig, "CHECK needs prevResult"))?;
    let prev = CniResult::from_value(prev)?;
    let store = Store::new(&conf.conf.state_dir);
    let _lock = store.lock(&a)?;
    let record = store
        .load(&a)
        .ok_or_else(|| differs(format!("no attachment of {} {} is recorded", a.container_id, a.ifname)))?;
    let pod = Netns::at(&netns);
    if !pod.exists() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            format!("the network namespace {} does not exist", netns.display()),
        ));
    }
    // Only our interface's addresses: a chain's other plugins own the others.
    let netns_text = netns.display().to_string();
    let ours: Vec<&crate::spec::IpConfig> = prev
        .ips
        .iter()
        .filter(|ip| {
            ip.interface
                .and_then(|i| prev.interfaces.get(i))
                .is_some_and(|i| i.name == a.ifname && i.sandbox.as_deref().is_none_or(|s| s == netns_text))
        })
        .collect();
    let inside = pod
        .link_state(&a.ifname)?
        .ok_or_else(|| differs(format!("the pod has no interface {}", a.ifname)))?;
    if !inside.up {
        return Err(differs(format!("{} is down in the pod", a.ifname)));
    }
    let mac = record.mac.clone().unwrap_or_else(|| pod_mac(&a).to_string());
    if inside.mac != mac {
        return Err(differs(format!("{} has MAC {}, not {mac}", a.ifname, inside.mac)));
    }
    if inside.mtu != u32::from(conf.conf.mtu) {
        return Err(differs(format!(
            "{} has MTU {}, not {}",
            a.ifname, inside.mtu, conf.conf.mtu
        )));
    }
    for ip in &ours {
        if !inside.addresses.contains(&ip.address) {
            return Err(differs(format!("{} lacks its address {}", a.ifname, ip.address)));
        }
    }
    let host = vrouter::host_netns(conf)?;
    match host.link_state(&record.host_if)? {
        Some(s) if s.up => {}
        Some(_) => return Err(differs(format!("the host end {} is down", record.host_if))),
        None => return Err(differs(format!("the host end {} is gone", record.host_if))),
    }
    let ports: Vec<InterfaceView> = vrouter::client(conf)
        .call(&Request::Interfaces)
        .map_err(|e| vrouter::error("listing the vrouter's ports", e))?;
    let port = ports
        .iter()
        .find(|p| p.name == record.host_if)
        .ok_or_else(|| differs(format!("the vrouter has no port {}", record.host_if)))?;
    if port.vrf != record.vrf {
        return Err(differs(format!(
            "port {} is in VRF {}, not {}",
            port.name, port.vrf, record.vrf
        )));
    }
    for ip in &ours {
        let registered = port.ipv4.map(std::net::IpAddr::V4) == Some(ip.address.addr())
            || port.ipv6.map(std::net::IpAddr::V6) == Some(ip.address.addr());
        if !registered {
            return Err(differs(format!(
                "port {} does not hold {}",
                port.name,
                ip.address.addr()
            )));
        }
    }
    if let Some(d) = Delegate::find(conf, env)? {
        d.run("CHECK", &a)?;
    }
    Ok(())
}

/// STATUS (1.1.0): ready for ADD when the vrouter answers and has restored its state
/// and the IPAM plugin is installed.
pub fn status(conf: &Loaded, env: &CniEnv) -> Result<(), CniError> {
    if conf.version < CniVersion::V110 {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            "STATUS needs cniVersion 1.1.0",
        ));
    }
    vrouter::ready_status(&vrouter::client(conf))?;
    let delegate = Delegate::find(conf, env).map_err(|e| CniError {
        code: ErrorCode::NotAvailable,
        ..e
    })?;
    // A delegate that speaks 1.1.0 is asked too, as the spec requires.
    match delegate.filter(Delegate::speaks_1_1) {
        Some(d) => d.run_unattached("STATUS"),
        None => Ok(()),
    }
}

/// VERSION: the versions this plugin speaks, in the version the runtime asked in.
pub fn version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.to_string());
    json!({"cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS})
}
