//! A pod's addresses from the vrouter's configuration (`"ipam": {"type": "vrouter"}`),
//! as Tungsten's plugin takes them from its agent: kube-manager gave the pod's
//! virtual machine (its UID) an interface with a MAC, an instance IP and a network,
//! the control node sent it to the vrouter, and ADD waits (up to `readyTimeoutMs`)
//! until the vrouter's configuration view holds it complete. The port is then bound
//! to that interface (`BindPort`), so it follows its configuration from then on.

use crate::config::Loaded;
use crate::env::CniEnv;
use crate::spec::{CniError, CniResult, ErrorCode, IpConfig};
use crate::vrouter;
use control_client::contrail::Uuid;
use nexthop::MacAddr;
use std::time::{Duration, Instant};
use vrouter_api::{ConfigInterfaceView, ConfigView, Request};

/// How often the configuration view is asked while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The pod's configured interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Configured {
    /// The virtual machine interface.
    pub vmi: Uuid,
    /// The virtual machine (the pod's UID).
    pub vm: Uuid,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its routing instance (the VRF the bound port is attached in).
    pub vrf: String,
    /// Its addresses with their gateways, as an IPAM result.
    pub result: CniResult,
}

/// The pod's UID from `CNI_ARGS` (`K8S_POD_UID`).
fn pod_uid(env: &CniEnv) -> Result<Uuid, CniError> {
    let uid = env.args.get("K8S_POD_UID").ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "ipam type \"vrouter\" needs K8S_POD_UID in CNI_ARGS (the pod's UID names its virtual machine)",
        )
    })?;
    uid.parse()
        .map_err(|e| CniError::new(ErrorCode::InvalidEnvironment, format!("K8S_POD_UID {uid:?}: {e}")))
}

/// The interface of `vm` in `view` once it is complete (network, MAC, an address
/// with a gateway); why not otherwise.
pub fn complete(view: &ConfigView, vm: Uuid) -> Result<Configured, String> {
    let vm_text = vm.to_string();
    let i: &ConfigInterfaceView = view
        .interfaces
        .iter()
        .filter(|i| i.vlan.is_none())
        .find(|i| i.vm.as_deref() == Some(vm_text.as_str()))
        .ok_or_else(|| format!("no interface of virtual machine {vm} in the configuration"))?;
    let vmi: Uuid = i.vmi.parse().map_err(|e| format!("interface {}: {e}", i.vmi))?;
    let vrf = i
        .vrf
        .clone()
        .ok_or_else(|| format!("interface {vmi} has no routing instance yet"))?;
    let mac = i.mac.ok_or_else(|| format!("interface {vmi} has no MAC yet"))?;
    let ips: Vec<IpConfig> = i
        .addresses
        .iter()
        .filter_map(|(address, gateway)| {
            Some(IpConfig {
                address: *address,
                gateway: Some((*gateway)?),
                interface: None,
            })
        })
        .collect();
    if ips.is_empty() {
        return Err(format!("interface {vmi} has no instance IP with a subnet gateway yet"));
    }
    Ok(Configured {
        vmi,
        vm,
        mac,
        vrf,
        result: CniResult {
            ips,
            ..CniResult::default()
        },
    })
}

/// Waits for the pod's interface in the vrouter's configuration.
pub fn wait(conf: &Loaded, env: &CniEnv) -> Result<Configured, CniError> {
    let vm = pod_uid(env)?;
    let api = vrouter::client(conf);
    let deadline = Instant::now() + conf.ready_timeout();
    loop {
        let view: ConfigView = api
            .call(&Request::Config)
            .map_err(|e| vrouter::error("reading the vrouter's configuration", e))?;
        let why = match complete(&view, vm) {
            Ok(c) => return Ok(c),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(CniError::new(
                ErrorCode::TryAgainLater,
                "the pod's interface is not in the vrouter's configuration",
            )
            .with_details(format!("after {} ms: {why}", conf.ready_timeout().as_millis())));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(mac: Option<MacAddr>, addresses: Vec<(ipnet::IpNet, Option<std::net::IpAddr>)>) -> ConfigView {
        ConfigView {
            interfaces: vec![ConfigInterfaceView {
                vmi: "00000000-0000-0000-0000-000000002001".into(),
                vm: Some("00000000-0000-0000-0000-000000001001".into()),
                vrf: Some("default-domain:k8s-default:cluster-network:cluster-network".into()),
                mac,
                addresses,
                vlan: None,
            }],
            ..ConfigView::default()
        }
    }

    #[test]
    fn a_complete_interface_gives_its_addresses_and_mac_and_an_incomplete_one_why_not() {
        let vm = Uuid::from_u128(0x1001);
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let address = ("198.18.1.7/24".parse().unwrap(), Some("198.18.1.1".parse().unwrap()));
        let c = complete(&view(Some(mac), vec![address]), vm).unwrap();
        assert_eq!((c.vmi, c.mac), (Uuid::from_u128(0x2001), mac));
        assert_eq!(c.result.ips[0].address.to_string(), "198.18.1.7/24");
        assert_eq!(c.result.ips[0].gateway, Some("198.18.1.1".parse().unwrap()));
        assert!(complete(&view(None, vec![address]), vm).unwrap_err().contains("MAC"));
        let no_gateway = ("198.18.1.7/24".parse().unwrap(), None);
        assert!(complete(&view(Some(mac), vec![no_gateway]), vm)
            .unwrap_err()
            .contains("gateway"));
        assert!(complete(&view(Some(mac), vec![address]), Uuid::from_u128(9))
            .unwrap_err()
            .contains("no interface"));
    }
}
