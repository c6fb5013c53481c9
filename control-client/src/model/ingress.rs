//! Ingresses in the desired state: Kubernetes Ingresses as Contrail builds them, an
//! haproxy L7 load balancer whose VIP (an address of the cluster network, and an
//! external IP when given) is held by an haproxy instance on two nodes in
//! active-standby. The node keeps every ingress it is told of (recorded, so a
//! restart starts its instances again); whether it runs an instance of them, and as
//! active or standby, is its own configuration. The rules are what the haproxy
//! configuration is written from: which host and path go to which service address.

use super::{DesiredState, ModelError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Ingresses one node holds at most.
pub const MAX_INGRESSES: usize = 256;
/// Rules plus paths one ingress has at most (each is an haproxy ACL).
pub const MAX_INGRESS_PATHS: usize = 1024;

/// An ingress as requested through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSpec {
    /// Its name (Kubernetes: `namespace/name`); adding one of the same name replaces
    /// it (the instance reloads its configuration without dropping connections).
    pub name: String,
    /// The VRF its VIP is in (the cluster network).
    pub vrf: String,
    /// The VIP: an IPv4 address of that network, held by the active instance.
    pub vip: std::net::Ipv4Addr,
    /// The external IP (the `externalIP` annotation, which kube-manager writes from
    /// the public pool), reached from outside the cluster: a service in front of the
    /// VIP (the translation makes it) forwards its port 80 to the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<std::net::Ipv4Addr>,
    /// Where requests no rule matches go; none: haproxy answers them 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<IngressBackend>,
    /// Host and path rules, in the Ingress's order.
    #[serde(default)]
    pub rules: Vec<IngressRule>,
}

/// A rule: requests for `host` (any host when none), by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// The `Host` header it matches (without port): a name, or `*.domain` for one
    /// label more; none: every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its paths.
    pub paths: Vec<IngressPath>,
}

/// A path of a rule and where its requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressPath {
    /// The path, starting with `/`.
    pub path: String,
    /// How it matches.
    pub kind: PathMatch,
    /// Where matching requests go.
    pub backend: IngressBackend,
}

/// Kubernetes' path types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path exactly.
    Exact,
    /// The path and everything under it, element by element (`/a` matches `/a`
    /// and `/a/b`, not `/ab`). `ImplementationSpecific` is read as this.
    Prefix,
}

/// A service port requests go to: the service's address (the vrouter's own load
/// balancing spreads them over its pods).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressBackend {
    /// The service (`namespace/name`).
    pub service: String,
    /// Its ClusterIP.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
}

impl IngressBackend {
    /// Its name in a load balancer's configuration: the service and port, in the
    /// characters haproxy takes (`web/qa` port 80: `web_qa_80`).
    pub fn config_name(&self) -> String {
        let service: String = self
            .service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{service}_{}", self.port)
    }
}

impl IngressSpec {
    /// Every backend its rules and default name, each once, in a stable order.
    pub fn backends(&self) -> Vec<&IngressBackend> {
        let mut out: Vec<&IngressBackend> = self
            .rules
            .iter()
            .flat_map(|r| r.paths.iter().map(|p| &p.backend))
            .chain(self.default_backend.as_ref())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Why it cannot be, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        // It names files and goes into a configuration comment.
        let name_char = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
        if self.name.is_empty() || self.name.len() > 255 || !self.name.chars().all(name_char) {
            return Err(format!(
                "name {:?}: 1-255 letters, digits, '.', '_', '/', '-'",
                self.name
            ));
        }
        if self.vip.is_unspecified() || self.vip.is_multicast() || self.vip.is_broadcast() {
            return Err(format!("VIP {} is no unicast address", self.vip));
        }
        if self.rules.is_empty() && self.default_backend.is_none() {
            return Err("no rule and no default backend".into());
        }
        let paths: usize = self.rules.iter().map(|r| r.paths.len().max(1)).sum();
        if paths > MAX_INGRESS_PATHS {
            return Err(format!("{paths} paths: at most {MAX_INGRESS_PATHS}"));
        }
        for rule in &self.rules {
            if let Some(host) = &rule.host {
                check_host(host)?;
            }
            if rule.paths.is_empty() {
                return Err(format!(
                    "rule for host {:?} has no path",
                    rule.host.as_deref().unwrap_or("*")
                ));
            }
            for p in &rule.paths {
                // haproxy reads its configuration by words: a path is one word.
                if !p.path.starts_with('/')
                    || p.path.len() > 1024
                    || p.path
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '#' || c == '\\' || c == '"' || c == '\'')
                {
                    return Err(format!(
                        "path {:?}: starts with / and holds no space, quote, # or backslash",
                        p.path
                    ));
                }
            }
        }
        let mut names = std::collections::BTreeMap::new();
        for b in self.backends() {
            if b.port == 0 {
                return Err(format!("backend {}: port 0", b.service));
            }
            if b.service.is_empty() || b.service.len() > 253 {
                return Err(format!("backend service name {:?}: 1-253 characters", b.service));
            }
            // Two backends must not come out under one name.
            if let Some(other) = names.insert(b.config_name(), b) {
                return Err(format!(
                    "backends {}:{} at {} and {}:{} at {} would share a name",
                    other.service, other.port, other.ip, b.service, b.port, b.ip
                ));
            }
        }
        Ok(())
    }
}

/// A host name of a rule: DNS labels, optionally `*.` first.
fn check_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "host {host:?} is no DNS name (a wildcard is *. followed by one)"
        ));
    }
    Ok(())
}

impl DesiredState {
    /// Adds ingress `spec`, or replaces the one of that name. Its VRF need not exist
    /// yet (its instance's port makes it).
    pub fn add_ingress(&mut self, spec: IngressSpec) -> Result<(), ModelError> {
        spec.check().map_err(ModelError::InvalidIngress)?;
        super::validate_vrf_name(&spec.vrf)?;
        if let Some(other) = self
            .ingresses
            .values()
            .find(|o| o.name != spec.name && o.vrf == spec.vrf && o.vip == spec.vip)
        {
            return Err(ModelError::InvalidIngress(format!(
                "VIP {} is ingress {:?}'s already",
                spec.vip, other.name
            )));
        }
        if !self.ingresses.contains_key(&spec.name) && self.ingresses.len() >= MAX_INGRESSES {
            return Err(ModelError::InvalidIngress(format!(
                "{MAX_INGRESSES} ingresses exist already"
            )));
        }
        self.ingresses.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// Removes ingress `name`; returns what it was.
    pub fn remove_ingress(&mut self, name: &str) -> Result<IngressSpec, ModelError> {
        self.ingresses
            .remove(name)
            .ok_or_else(|| ModelError::UnknownIngress(name.to_string()))
    }

    /// The ingresses, by name.
    pub fn ingresses(&self) -> impl Iterator<Item = &IngressSpec> {
        self.ingresses.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fanout() -> IngressSpec {
        let backend = |service: &str, last: u8| IngressBackend {
            service: service.into(),
            ip: IpAddr::from([198, 18, 100, last]),
            port: 80,
        };
        IngressSpec {
            name: "default/simple-fanout".into(),
            vrf: "cluster-network".into(),
            vip: [198, 18, 255, 248].into(),
            external_ip: None,
            default_backend: None,
            rules: vec![IngressRule {
                host: None,
                paths: vec![
                    IngressPath {
                        path: "/qa.html".into(),
                        kind: PathMatch::Exact,
                        backend: backend("default/qa-webserver", 1),
                    },
                    IngressPath {
                        path: "/dev.html".into(),
                        kind: PathMatch::Exact,
                        backend: backend("default/dev-webserver", 2),
                    },
                ],
            }],
        }
    }

    #[test]
    fn an_ingress_is_kept_replaced_and_removed_by_name() {
        let mut state = DesiredState::default();
        state.add_ingress(fanout()).unwrap();
        let mut changed = fanout();
        changed.rules[0].paths.pop();
        state.add_ingress(changed.clone()).unwrap();
        assert_eq!(state.ingresses().collect::<Vec<_>>(), vec![&changed]);
        assert_eq!(state.remove_ingress("default/simple-fanout").unwrap(), changed);
        assert!(matches!(
            state.remove_ingress("default/simple-fanout"),
            Err(ModelError::UnknownIngress(_))
        ));
    }

    #[test]
    fn bad_ingresses_are_refused_with_the_reason_and_change_nothing() {
        let mut state = DesiredState::default();
        state.add_ingress(fanout()).unwrap();
        type Breaks = Box<dyn Fn(&mut IngressSpec)>;
        let cases: Vec<(Breaks, &str)> = vec![
            (Box::new(|s| s.rules.clear()), "no rule"),
            (Box::new(|s| s.rules[0].paths[0].path = "/a b".into()), "path"),
            (Box::new(|s| s.rules[0].paths[0].path = "qa".into()), "path"),
            (Box::new(|s| s.rules[0].host = Some("bad host".into())), "host"),
            (Box::new(|s| s.rules[0].host = Some("*.*.x".into())), "host"),
            (Box::new(|s| s.rules[0].paths.clear()), "no path"),
            (Box::new(|s| s.vip = [0, 0, 0, 0].into()), "unicast"),
            (Box::new(|s| s.rules[0].paths[0].backend.port = 0), "port 0"),
            (Box::new(|s| s.name = "other".into()), "already"),
            (Box::new(|s| s.name = "x\nprogram p".into()), "letters"),
            (
                Box::new(|s| s.rules[0].paths[1].backend.service = "default_qa-webserver".into()),
                "share a name",
            ),
        ];
        for (change, why) in cases {
            let mut spec = fanout();
            change(&mut spec);
            let err = state.add_ingress(spec).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should say {why}");
        }
        assert_eq!(state.ingresses().collect::<Vec<_>>(), vec![&fanout()]);
    }

    #[test]
    fn backends_are_listed_once() {
        let mut spec = fanout();
        spec.default_backend = Some(spec.rules[0].paths[0].backend.clone());
        let services: Vec<&str> = spec.backends().iter().map(|b| b.service.as_str()).collect();
        assert_eq!(services, ["default/dev-webserver", "default/qa-webserver"]);
    }
}
