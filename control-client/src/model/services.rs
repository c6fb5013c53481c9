//! Services as native load balancers (Kubernetes ClusterIP, and later external and
//! load-balancer IPs): an address in a VRF with ports, each port translated to its
//! target port on one of the backends. A service keeps its VRF in existence.

use super::{DesiredState, ModelError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The most ports one service has.
pub const MAX_SERVICE_PORTS: usize = 64;
/// The most backends one service has.
pub const MAX_BACKENDS: usize = 1024;
/// The longest session affinity timeout (Kubernetes' own limit: one day).
pub const MAX_AFFINITY_TIMEOUT_SECS: u32 = 86_400;

/// A transport protocol a service port takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: network policies match its ports; services do not translate it yet.
    Sctp,
    /// ICMP: security group rules allow it (every type); no service port.
    Icmp,
    /// ICMPv6: as ICMP.
    Icmpv6,
}

impl L4Protocol {
    /// Its IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Protocol::Tcp => 6,
            L4Protocol::Udp => 17,
            L4Protocol::Sctp => 132,
            L4Protocol::Icmp => 1,
            L4Protocol::Icmpv6 => 58,
        }
    }
}

impl std::str::FromStr for L4Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(L4Protocol::Tcp),
            "udp" => Ok(L4Protocol::Udp),
            "sctp" => Ok(L4Protocol::Sctp),
            "icmp" => Ok(L4Protocol::Icmp),
            "icmpv6" => Ok(L4Protocol::Icmpv6),
            other => Err(format!("{other:?} is not tcp, udp, sctp, icmp or icmpv6")),
        }
    }
}

/// One port of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// TCP or UDP.
    pub protocol: L4Protocol,
    /// The port clients connect to.
    pub port: u16,
    /// The port on the backends.
    pub target_port: u16,
    /// Kubernetes' nodePort: the port reached from outside the cluster on the node's
    /// fabric address (IPv4 services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// A service as requested through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Its name (Kubernetes: `namespace/name`); adding a service of the same name
    /// replaces it.
    pub name: String,
    /// The VRF it is in (where its clients and backends are).
    pub vrf: String,
    /// The service address.
    pub ip: IpAddr,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// The backends' addresses (same family as `ip`); none: new connections are
    /// refused (ICMP port unreachable), not dropped silently.
    #[serde(default)]
    pub backends: Vec<IpAddr>,
    /// Kubernetes' `sessionAffinity: ClientIP` with its `timeoutSeconds`: a client's
    /// new connections to a service port go to the backend its last one went to,
    /// while that was less than this many seconds ago and the backend stands. None:
    /// each connection is placed on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_timeout_secs: Option<u32>,
    /// External and load-balancer IPs (Kubernetes' externalIPs, a LoadBalancer's
    /// ingress IPs; same family as `ip`): the service's ports are reached on them
    /// from outside the cluster (and from pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<IpAddr>,
    /// How its backends are probed (the vrouter takes a failing one out of the
    /// group and puts it back when it answers again); none: never probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// A LoadBalancer service: unless one of its external IPs is in the node's
    /// load-balancer pool, the first free address of the pool is added to them (and
    /// kept: a replaced service keeps the one it had); a node without a pool adds
    /// none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load_balancer: bool,
}

/// How a service's backends are probed (Contrail's service health check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What a probe is.
    pub kind: HealthCheckKind,
    /// The port probed; unset: the service's first TCP port's target port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The path an HTTP probe gets (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// Seconds between probes of a backend.
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
    /// Seconds a probe waits for its answer.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Probes failed in a row that take a backend out (one answered puts it back).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_interval() -> u32 {
    5
}

fn default_timeout() -> u32 {
    2
}

fn default_retries() -> u32 {
    3
}

/// What a health probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP GET is answered with a 2xx or 3xx status.
    Http,
    /// An ICMP echo is answered (IPv4 backends).
    Icmp,
}

impl HealthCheck {
    /// Why it cannot be, if it cannot.
    fn invalid(&self, spec: &ServiceSpec) -> Option<String> {
        if !(1..=3600).contains(&self.interval_secs) || !(1..=60).contains(&self.timeout_secs) {
            return Some("health check interval 1..=3600 s, timeout 1..=60 s".into());
        }
        if !(1..=10).contains(&self.retries) {
            return Some("health check retries 1..=10".into());
        }
        let needs_port = self.kind != HealthCheckKind::Icmp;
        if self.kind == HealthCheckKind::Icmp && !spec.ip.is_ipv4() {
            return Some("icmp health checks probe IPv4 backends only".into());
        }
        if self.port == Some(0) || (needs_port && self.port.is_none() && self.target_port(spec).is_none()) {
            return Some("health check port: 1..=65535, or a TCP port on the service".into());
        }
        match &self.http_path {
            Some(p)
                if !p.starts_with('/') || p.len() > 1024 || p.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Some(format!(
                    "health check path {p:?}: starts with /, no whitespace, at most 1024 bytes"
                ))
            }
            _ => None,
        }
    }

    /// The port probed on each backend.
    pub fn target_port(&self, spec: &ServiceSpec) -> Option<u16> {
        self.port.or_else(|| {
            spec.ports
                .iter()
                .find(|p| p.protocol == L4Protocol::Tcp)
                .map(|p| p.target_port)
        })
    }
}

impl DesiredState {
    /// Sets the load-balancer pool: the prefixes LoadBalancer services take their
    /// external IP from.
    pub fn set_load_balancer_pool(&mut self, pool: Vec<IpNet>) {
        self.lb_pool = pool;
    }

    /// The address a LoadBalancer service `spec` gets: the one of the pool it has
    /// (given, or kept from the service it replaces), else the first free one.
    fn load_balancer_ip(&self, spec: &ServiceSpec) -> Result<Option<IpAddr>, ModelError> {
        let in_pool = |a: &IpAddr| self.lb_pool.iter().any(|p| p.contains(a));
        // No pool on this node: the service is served at its other addresses, as a
        // Kubernetes LoadBalancer without a provider stays pending.
        if !spec.load_balancer || self.lb_pool.is_empty() || spec.external_ips.iter().any(in_pool) {
            return Ok(None);
        }
        let kept = self.services.get(&spec.name).and_then(|old| {
            old.external_ips
                .iter()
                .copied()
                .find(|a| in_pool(a) && a.is_ipv4() == spec.ip.is_ipv4())
        });
        if kept.is_some() {
            return Ok(kept);
        }
        // Not another service's, not the node's or a pod's, nothing martian.
        let fabric = self.fabric_info.ip.map(IpAddr::V4);
        let taken = |a: &IpAddr| {
            Some(*a) == fabric
                || super::is_martian(*a)
                || self
                    .interfaces
                    .values()
                    .any(|(_, i)| i.ipv4.map(IpAddr::V4) == Some(*a) || i.ipv6.map(IpAddr::V6) == Some(*a))
                || self
                    .services
                    .values()
                    .any(|s| s.name != spec.name && (s.ip == *a || s.external_ips.contains(a)))
        };
        let free = self
            .lb_pool
            .iter()
            .filter(|p| p.addr().is_ipv4() == spec.ip.is_ipv4())
            .flat_map(|p| p.hosts().take(1 << 16))
            .find(|a| !taken(a));
        match free {
            Some(a) => Ok(Some(a)),
            None => Err(ModelError::InvalidService(format!(
                "load balancer {}: no free address in the load-balancer pool ({:?})",
                spec.name, self.lb_pool
            ))),
        }
    }

    /// Adds service `spec`, or replaces the service of that name (a backend change).
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<(), ModelError> {
        let invalid = |why: String| Err(ModelError::InvalidService(why));
        let mut spec = spec;
        if let Some(lb) = self.load_balancer_ip(&spec)? {
            spec.external_ips.push(lb);
        }
        if let Err(why) = check_name_and_address(&spec.name, &spec.vrf, spec.ip)? {
            return invalid(why);
        }
        if spec.ports.is_empty() || spec.ports.len() > MAX_SERVICE_PORTS {
            return invalid(format!("{} ports: 1..={MAX_SERVICE_PORTS}", spec.ports.len()));
        }
        for (i, p) in spec.ports.iter().enumerate() {
            if p.protocol == L4Protocol::Sctp {
                // Its checksum covers the whole packet (CRC32c): not translated yet.
                return invalid(format!("port {}: SCTP services are not translated yet", p.port));
            }
            if matches!(p.protocol, L4Protocol::Icmp | L4Protocol::Icmpv6) {
                return invalid(format!("port {}: a service port is TCP, UDP or SCTP", p.port));
            }
            if p.port == 0 || p.target_port == 0 {
                return invalid(format!("port {} -> {}: ports are 1..=65535", p.port, p.target_port));
            }
            if spec.ports[..i]
                .iter()
                .any(|q| (q.protocol, q.port) == (p.protocol, p.port))
            {
                return invalid(format!("port {:?} {} given twice", p.protocol, p.port));
            }
        }
        if spec
            .affinity_timeout_secs
            .is_some_and(|t| t == 0 || t > MAX_AFFINITY_TIMEOUT_SECS)
        {
            return invalid(format!(
                "affinity timeout {:?}: 1..={MAX_AFFINITY_TIMEOUT_SECS} seconds (Kubernetes' limit, a day)",
                spec.affinity_timeout_secs
            ));
        }
        if let Some(why) = spec.health_check.as_ref().and_then(|h| h.invalid(&spec)) {
            return invalid(why);
        }
        if spec.backends.len() > MAX_BACKENDS {
            return invalid(format!("{} backends: at most {MAX_BACKENDS}", spec.backends.len()));
        }
        if let Some(b) = spec
            .backends
            .iter()
            .find(|b| b.is_ipv4() != spec.ip.is_ipv4() || super::is_martian(**b))
        {
            return invalid(format!("backend {b}: a unicast address of the service's family"));
        }
        if let Some(e) = spec
            .external_ips
            .iter()
            .find(|e| e.is_ipv4() != spec.ip.is_ipv4() || super::is_martian(**e) || **e == spec.ip)
        {
            return invalid(format!(
                "external IP {e}: a unicast address of the service's family, not its own"
            ));
        }
        let node_ports = self.node_port_range();
        if let Some(p) = spec
            .ports
            .iter()
            .find_map(|p| p.node_port.filter(|n| !node_ports.contains(*n)))
        {
            return invalid(format!(
                "node port {p}: not in the node port range {}-{}",
                node_ports.first, node_ports.last
            ));
        }
        // An external IP is no address of this node, of a pod or of another service
        // in the VRF: it would take their traffic (CVE-2020-8554's lesson).
        let fabric = self.fabric_info.ip.map(IpAddr::V4);
        let taken = spec.external_ips.iter().find_map(|e| {
            let what = if Some(*e) == fabric {
                "the node's fabric address"
            } else if self
                .interfaces
                .values()
                .any(|(_, i)| i.ipv4.map(IpAddr::V4) == Some(*e) || i.ipv6.map(IpAddr::V6) == Some(*e))
            {
                "a pod's address"
            } else if self
                .services
                .values()
                .any(|o| o.ip == *e && o.vrf == spec.vrf && o.name != spec.name)
            {
                "another service's cluster IP"
            } else {
                return None;
            };
            Some((*e, what))
        });
        if let Some((e, what)) = taken {
            return invalid(format!("external IP {e} is {what}"));
        }
        if let Some(other) = self
            .services
            .values()
            .find(|o| o.external_ips.contains(&spec.ip) && o.vrf == spec.vrf && o.name != spec.name)
        {
            return invalid(format!("{} is an external IP of service {:?}", spec.ip, other.name));
        }
        if spec.external_ips.len() > MAX_SERVICE_PORTS {
            return invalid(format!(
                "{} external IPs: at most {MAX_SERVICE_PORTS}",
                spec.external_ips.len()
            ));
        }
        // What outside the cluster reaches (node ports, external IPs and ports) is
        // the node's, whatever the VRF: one service each.
        // Most services (cluster IPs alone) have none: their check scans nothing.
        let outside = outside_keys(&spec);
        let taken = if outside.is_empty() {
            None
        } else {
            self.services
                .values()
                .filter(|other| reached_from_outside(other) && other.name != spec.name)
                .find_map(|other| {
                    outside_keys(other)
                        .into_iter()
                        .find(|k| outside.contains(k))
                        .map(|k| (other, k))
                })
        };
        if let Some((other, (what, proto, port))) = taken {
            return invalid(format!(
                "{what} port {proto}/{port} is service {:?}'s already",
                other.name
            ));
        }
        // Cheap tests first: every service is looked at.
        let clash = self.services.values().find(|other| {
            other.ip == spec.ip
                && other.vrf == spec.vrf
                && other.name != spec.name
                && other
                    .ports
                    .iter()
                    .any(|o| spec.ports.iter().any(|p| (o.protocol, o.port) == (p.protocol, p.port)))
        });
        if let Some(other) = clash {
            return invalid(format!(
                "{} in {} has a port of service {:?} already",
                spec.ip, spec.vrf, other.name
            ));
        }
        let previous_vrf = self.services.get(&spec.name).map(|s| s.vrf.clone());
        self.ensure_vrf(&spec.vrf)?;
        spec.backends.sort();
        spec.backends.dedup();
        // A backend stays out only while it is still one, and still checked.
        let checked = spec.health_check.is_some();
        self.unhealthy
            .retain(|(s, b)| s != &spec.name || (checked && spec.backends.contains(b)));
        self.services.insert(spec.name.clone(), spec);
        if let Some(vrf) = previous_vrf {
            self.release_vrf_if_unused(&vrf);
        }
        Ok(())
    }

    /// Takes backend `backend` of service `service` out of (`healthy` false) or back
    /// into its group, as its health check says; true if that changed anything.
    pub fn set_backend_health(&mut self, service: &str, backend: IpAddr, healthy: bool) -> bool {
        // Only a checked backend is taken out (a report from before its check was
        // removed is late).
        let known = self
            .services
            .get(service)
            .is_some_and(|s| s.health_check.is_some() && s.backends.contains(&backend));
        let key = (service.to_string(), backend);
        match (healthy, known) {
            (false, true) => self.unhealthy.insert(key),
            _ => self.unhealthy.remove(&key),
        }
    }

    /// True if backend `backend` of service `service` is out of its group.
    pub fn backend_down(&self, service: &str, backend: IpAddr) -> bool {
        self.unhealthy.contains(&(service.to_string(), backend))
    }

    /// Removes service `name`; returns what it was.
    pub fn remove_service(&mut self, name: &str) -> Result<ServiceSpec, ModelError> {
        let spec = self
            .services
            .remove(name)
            .ok_or_else(|| ModelError::UnknownService(name.to_string()))?;
        self.unhealthy.retain(|(s, _)| s != name);
        self.release_vrf_if_unused(&spec.vrf);
        Ok(spec)
    }

    /// The services, by name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.values()
    }

    /// True if a service is in VRF `vrf`.
    pub(super) fn vrf_has_services(&self, vrf: &str) -> bool {
        self.services.values().any(|s| s.vrf == vrf)
    }
}

/// True if a service is reached from outside the cluster at all (a node port, an
/// external IP).
fn reached_from_outside(spec: &ServiceSpec) -> bool {
    !spec.external_ips.is_empty() || spec.ports.iter().any(|p| p.node_port.is_some())
}

/// What a service is reached on from outside the cluster: (address or "node", IP
/// protocol, port).
fn outside_keys(spec: &ServiceSpec) -> Vec<(String, u8, u16)> {
    let mut keys = Vec::new();
    for p in &spec.ports {
        let proto = p.protocol.number();
        if let Some(node_port) = p.node_port {
            keys.push(("node".to_string(), proto, node_port));
        }
        keys.extend(spec.external_ips.iter().map(|e| (e.to_string(), proto, p.port)));
    }
    keys
}

/// The checks a named object with an address in a VRF (a service, a floating IP)
/// shares: a name of 1-253 characters without whitespace, a valid VRF name, a
/// unicast address. `Ok(Err(why))` for a bad name or address.
pub(super) fn check_name_and_address(name: &str, vrf: &str, ip: IpAddr) -> Result<Result<(), String>, ModelError> {
    if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Ok(Err(format!("name {name:?}: 1-253 characters, no whitespace")));
    }
    super::validate_vrf_name(vrf)?;
    if super::is_martian(ip) {
        return Ok(Err(format!("address {ip} is not a unicast address")));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(ip: &str, backends: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: "default/web".into(),
            vrf: "red".into(),
            ip: ip.parse().unwrap(),
            ports: vec![ServicePort {
                protocol: L4Protocol::Tcp,
                port: 80,
                target_port: 9376,
                node_port: None,
            }],
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            affinity_timeout_secs: None,
            external_ips: Vec::new(),
            health_check: None,
            load_balancer: false,
        }
    }

    #[test]
    fn a_backend_stays_out_only_while_it_is_checked_and_still_a_backend() {
        let mut s = DesiredState::new(8);
        let b: IpAddr = "198.18.1.3".parse().unwrap();
        let c: IpAddr = "198.18.1.4".parse().unwrap();
        let mut checked = web("198.18.100.10", &["198.18.1.3", "198.18.1.4"]);
        checked.health_check = Some(HealthCheck {
            kind: HealthCheckKind::Tcp,
            port: None,
            http_path: None,
            interval_secs: 1,
            timeout_secs: 1,
            retries: 2,
        });
        s.add_service(checked.clone()).unwrap();
        assert!(s.set_backend_health("default/web", c, false));
        assert!(s.backend_down("default/web", c));
        // Replaced with the same backends and check: still out.
        s.add_service(checked.clone()).unwrap();
        assert!(s.backend_down("default/web", c));
        // Replaced without c: forgotten, so c comes back in when listed again.
        let mut without_c = checked.clone();
        without_c.backends = vec![b];
        s.add_service(without_c).unwrap();
        s.add_service(checked.clone()).unwrap();
        assert!(!s.backend_down("default/web", c));
        // No check: nothing is taken out, and what was out comes back.
        assert!(s.set_backend_health("default/web", c, false));
        let mut unchecked = checked.clone();
        unchecked.health_check = None;
        s.add_service(unchecked).unwrap();
        assert!(!s.backend_down("default/web", c));
        assert!(
            !s.set_backend_health("default/web", c, false),
            "a late report of a removed check"
        );
    }

    #[test]
    fn bad_services_are_refused_with_the_reason_and_change_nothing() {
        let mut s = DesiredState::new(8);
        s.add_service(web("198.18.100.10", &["198.18.1.3"])).unwrap();
        let refused = |spec: ServiceSpec, why: &str, s: &mut DesiredState| match s.add_service(spec) {
            Err(ModelError::InvalidService(reason)) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{other:?}"),
        };
        let mut zero = web("198.18.100.10", &[]);
        zero.affinity_timeout_secs = Some(0);
        refused(zero, "affinity timeout", &mut s);
        let mut long = web("198.18.100.10", &[]);
        long.affinity_timeout_secs = Some(MAX_AFFINITY_TIMEOUT_SECS + 1);
        refused(long, "affinity timeout", &mut s);
        refused(web("198.18.100.10", &["2001:db8::1"]), "family", &mut s);
        let mut twice = web("198.18.100.10", &[]);
        twice.ports.push(twice.ports[0]);
        refused(twice, "given twice", &mut s);
        let mut no_port = web("198.18.100.10", &[]);
        no_port.ports[0].target_port = 0;
        refused(no_port, "1..=65535", &mut s);
        let mut clash = web("198.18.100.10", &[]);
        clash.name = "default/other".into();
        refused(clash, "already", &mut s);
        let mut low = web("198.18.100.10", &[]);
        low.ports[0].node_port = Some(22);
        refused(low, "node port range", &mut s);
        s.set_fabric_info(nexthop::FabricInfo {
            ip: Some([198, 18, 0, 1].into()),
            ..Default::default()
        });
        let mut node = web("198.18.100.10", &[]);
        node.external_ips = vec!["198.18.0.1".parse().unwrap()];
        refused(node, "fabric address", &mut s);
        let mut bad_external = web("198.18.100.10", &[]);
        bad_external.external_ips = vec!["2001:db8::7".parse().unwrap()];
        refused(bad_external, "external IP", &mut s);
        // A node port, an external IP: taken by the first service, refused to another.
        let mut outside = web("198.18.100.10", &["198.18.1.3"]);
        outside.ports[0].node_port = Some(30080);
        outside.external_ips = vec!["198.19.0.10".parse().unwrap()];
        s.add_service(outside).unwrap();
        let mut same_node_port = web("198.18.100.20", &[]);
        same_node_port.name = "other/web".into();
        same_node_port.vrf = "blue".into();
        same_node_port.ports[0].node_port = Some(30080);
        refused(same_node_port, "node port", &mut s);
        let mut same_external = web("198.18.100.20", &[]);
        same_external.name = "other/web".into();
        same_external.external_ips = vec!["198.19.0.10".parse().unwrap()];
        refused(same_external, "198.19.0.10 port", &mut s);
        // Nothing changed: the one service, its backend.
        let services: Vec<&ServiceSpec> = s.services().collect();
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].backends, ["198.18.1.3".parse::<IpAddr>().unwrap()]);
        // LoadBalancer services take the pool's free addresses, keep theirs when
        // replaced, and are refused when it has none left; without a pool they are
        // served at their cluster IP only.
        let lb = |name: &str, ip: &str| ServiceSpec {
            name: name.into(),
            load_balancer: true,
            ..web(ip, &[])
        };
        s.add_service(lb("default/lb-0", "198.18.100.30")).unwrap();
        assert!(s
            .services()
            .any(|x| x.name == "default/lb-0" && x.external_ips.is_empty()));
        s.remove_service("default/lb-0").unwrap();
        s.set_load_balancer_pool(vec!["198.19.1.0/30".parse().unwrap()]);
        s.add_service(lb("default/lb-1", "198.18.100.31")).unwrap();
        s.add_service(lb("default/lb-2", "198.18.100.32")).unwrap();
        let external =
            |s: &DesiredState, name: &str| s.services().find(|x| x.name == name).unwrap().external_ips.clone();
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(external(&s, "default/lb-1"), [ip("198.19.1.1")]);
        assert_eq!(external(&s, "default/lb-2"), [ip("198.19.1.2")]);
        let mut replaced = lb("default/lb-1", "198.18.100.31");
        replaced.backends = vec![ip("198.18.1.3")];
        s.add_service(replaced).unwrap();
        assert_eq!(external(&s, "default/lb-1"), [ip("198.19.1.1")], "kept when replaced");
        refused(lb("default/lb-3", "198.18.100.33"), "no free address", &mut s);
        // A day is the longest affinity.
        let mut day = web("198.18.100.10", &[]);
        day.affinity_timeout_secs = Some(MAX_AFFINITY_TIMEOUT_SECS);
        s.add_service(day).unwrap();
    }
}
