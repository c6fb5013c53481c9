//! From an IPAM result to what the pod and the vrouter get: one address per family
//! with its gateway (the vrouter answers for it), and the pod's routes (a default
//! route through each family's gateway unless IPAM gives routes of that family).

use crate::spec::{CniError, CniResult, ErrorCode, RouteConfig};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addressing of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// IPv4 address and its subnet.
    pub ipv4: Option<(Ipv4Net, Ipv4Addr)>,
    /// IPv6 address and its subnet.
    pub ipv6: Option<(Ipv6Net, Ipv6Addr)>,
    /// The pod's routes, every one with its next hop.
    pub routes: Vec<RouteConfig>,
}

fn invalid(msg: String) -> CniError {
    CniError::new(ErrorCode::InvalidConfig, msg)
}

impl Plan {
    /// The plan of an IPAM result: at most one address per family (the vrouter gives
    /// a pod one of each), each with a gateway inside its subnet.
    pub fn from_ipam(result: &CniResult) -> Result<Self, CniError> {
        let mut plan = Plan {
            ipv4: None,
            ipv6: None,
            routes: Vec::new(),
        };
        for ip in &result.ips {
            let gateway = ip
                .gateway
                .ok_or_else(|| invalid(format!("IPAM gave {} without a gateway", ip.address)))?;
            if !ip.address.trunc().contains(&gateway) || gateway == ip.address.addr() {
                return Err(invalid(format!(
                    "gateway {gateway} is not another address of {}",
                    ip.address
                )));
            }
            match (ip.address, gateway) {
                (IpNet::V4(a), IpAddr::V4(g)) if plan.ipv4.is_none() => plan.ipv4 = Some((a, g)),
                (IpNet::V6(a), IpAddr::V6(g)) if plan.ipv6.is_none() => plan.ipv6 = Some((a, g)),
                _ => {
                    return Err(invalid(format!(
                        "IPAM gave more than one address of the family of {}: a pod has one IPv4 and one IPv6 address",
                        ip.address
                    )))
                }
            }
        }
        if plan.ipv4.is_none() && plan.ipv6.is_none() {
            return Err(invalid("IPAM gave no address".into()));
        }
        for r in &result.routes {
            let gw = match r.gw {
                Some(gw) => gw,
                None => plan
                    .gateway_for(&r.dst)
                    .ok_or_else(|| invalid(format!("route {} has no next hop and its family no gateway", r.dst)))?,
            };
            plan.routes.push(RouteConfig {
                dst: r.dst,
                gw: Some(gw),
            });
        }
        let has_v4 = plan.routes.iter().any(|r| r.dst.addr().is_ipv4());
        let has_v6 = plan.routes.iter().any(|r| r.dst.addr().is_ipv6());
        if let (Some((_, g)), false) = (plan.ipv4, has_v4) {
            plan.routes.push(RouteConfig {
                dst: IpNet::V4(Ipv4Net::default()),
                gw: Some(g.into()),
            });
        }
        if let (Some((_, g)), false) = (plan.ipv6, has_v6) {
            plan.routes.push(RouteConfig {
                dst: IpNet::V6(Ipv6Net::default()),
                gw: Some(g.into()),
            });
        }
        Ok(plan)
    }

    /// The gateway of the family of `dst`.
    pub fn gateway_for(&self, dst: &IpNet) -> Option<IpAddr> {
        match dst {
            IpNet::V4(_) => self.ipv4.map(|(_, g)| g.into()),
            IpNet::V6(_) => self.ipv6.map(|(_, g)| g.into()),
        }
    }

    /// The pod's addresses with their prefix lengths.
    pub fn addresses(&self) -> Vec<IpNet> {
        let v4 = self.ipv4.map(|(a, _)| IpNet::V4(a));
        let v6 = self.ipv6.map(|(a, _)| IpNet::V6(a));
        v4.into_iter().chain(v6).collect()
    }

    /// The address the pod pings to prove it is reachable: its IPv4 gateway, else
    /// its IPv6 one.
    pub fn probe_target(&self) -> IpAddr {
        match (self.ipv4, self.ipv6) {
            (Some((_, g)), _) => g.into(),
            (None, Some((_, g))) => g.into(),
            (None, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(v: serde_json::Value) -> Result<Plan, CniError> {
        Plan::from_ipam(&CniResult::from_value(&v).unwrap())
    }

    #[test]
    fn default_routes_through_each_gateway() {
        let p = plan(json!({"ips": [
            {"address": "198.18.1.5/24", "gateway": "198.18.1.1"},
            {"address": "2001:2:0:1::5/64", "gateway": "2001:2:0:1::1"}]}))
        .unwrap();
        assert_eq!(p.addresses().len(), 2);
        let routes: Vec<String> = p
            .routes
            .iter()
            .map(|r| format!("{} {}", r.dst, r.gw.unwrap()))
            .collect();
        assert_eq!(routes, ["0.0.0.0/0 198.18.1.1", "::/0 2001:2:0:1::1"]);
        assert_eq!(p.probe_target(), "198.18.1.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipam_routes_replace_the_default_of_their_family() {
        let p = plan(json!({"ips": [{"address": "198.18.1.5/24", "gateway": "198.18.1.1"}],
            "routes": [{"dst": "198.19.0.0/16"}]}))
        .unwrap();
        assert_eq!(p.routes.len(), 1);
        assert_eq!(p.routes[0].gw, Some("198.18.1.1".parse().unwrap()));
    }

    #[test]
    fn what_the_vrouter_cannot_serve_is_refused() {
        let code = |v| plan(v).unwrap_err().code;
        assert_eq!(code(json!({"ips": []})), ErrorCode::InvalidConfig);
        assert_eq!(
            code(json!({"ips": [{"address": "198.18.1.5/24"}]})),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(json!({"ips": [{"address": "198.18.1.5/24", "gateway": "198.19.0.1"}]})),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(json!({"ips": [{"address": "198.18.1.5/24", "gateway": "198.18.1.1"},
                               {"address": "198.18.1.6/24", "gateway": "198.18.1.1"}]})),
            ErrorCode::InvalidConfig
        );
    }
}
