//! The ingress view: every ingress the node holds, its rules, where its VIP's traffic
//! goes from here, this node's instance and haproxy's own backend statistics.

use super::Views;
use std::time::Duration;
use vrouter_api::{IngressBackendStats, IngressView};

/// What the views read of ingresses.
#[derive(Debug, Clone)]
pub struct IngressShared {
    /// The ingresses (the control side keeps them).
    pub targets: crate::ingress::Targets,
    /// The supervisor's instances.
    pub status: crate::ingress::Status,
    /// This node's role.
    pub role: Option<crate::config::IngressRole>,
    /// Where instances keep their files.
    pub base: std::path::PathBuf,
}

impl Views {
    /// These views with the ingresses and their instances.
    pub fn with_ingresses(mut self, shared: IngressShared) -> Self {
        self.ingress = Some(shared);
        self
    }

    /// Every ingress, by name.
    pub fn ingresses(&self) -> Vec<IngressView> {
        let Some(shared) = &self.ingress else {
            return Vec::new();
        };
        let specs = shared.targets.lock().map(|t| t.clone()).unwrap_or_default();
        let status = shared.status.lock().map(|s| s.clone()).unwrap_or_default();
        let snap = self.snapshot();
        // An external IP from the pool is the one its `@ingress` service was given.
        let allocated = |name: &str, vip: std::net::Ipv4Addr| {
            let service = format!("{name}@ingress");
            snap.services
                .by_key
                .iter()
                .filter(|(_, e)| e.name.as_ref() == service)
                .find_map(|(key, _)| match key.ip {
                    std::net::IpAddr::V4(a) if a != vip => Some(a),
                    _ => None,
                })
        };
        specs
            .into_iter()
            .map(|spec| {
                let instance = status.get(&spec.name).cloned();
                let vip_at = snap
                    .vrfs
                    .iter()
                    .find(|v| v.name == spec.vrf)
                    .and_then(|v| snap.route4(v.id, spec.vip))
                    .map(|nh| match nh {
                        nexthop::NextHop::Interface { vif, .. } => match snap.interface(*vif) {
                            Some(i) if instance.as_ref().is_some_and(|x| x.port == i.name) => "this node".to_string(),
                            Some(i) => format!("interface {}", i.name),
                            None => "nowhere".to_string(),
                        },
                        nexthop::NextHop::Tunnel { remote, .. } => remote.to_string(),
                        _ => "nowhere".to_string(),
                    })
                    .unwrap_or_else(|| "nowhere".to_string());
                // A socket nobody answers fails at once (not a blocking connect).
                let backends = instance
                    .as_ref()
                    .map(|_| {
                        let names = vrouter_ingress::instance::InstanceNames::of(&spec.name, &shared.base);
                        vrouter_ingress::instance::stats_command(&names, "show stat", Duration::from_millis(300))
                            .map(|csv| backend_stats(&csv))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                let external_ip = spec.external_ip.or_else(|| allocated(&spec.name, spec.vip));
                IngressView {
                    rules: rules(&spec),
                    name: spec.name,
                    vrf: spec.vrf,
                    vip: spec.vip,
                    external_ip,
                    role: shared.role.map(|r| format!("{r:?}").to_lowercase()),
                    vip_at,
                    instance,
                    backends,
                }
            })
            .collect()
    }
}

/// An ingress's routes as `host/path -> service:port`.
fn rules(spec: &control_client::IngressSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .rules
        .iter()
        .flat_map(|r| {
            r.paths.iter().map(move |p| {
                let kind = match p.kind {
                    control_client::PathMatch::Exact => "",
                    control_client::PathMatch::Prefix => "*",
                };
                format!(
                    "{}{}{kind} -> {}:{}",
                    r.host.as_deref().unwrap_or("*"),
                    p.path,
                    p.backend.service,
                    p.backend.port
                )
            })
        })
        .collect();
    if let Some(b) = &spec.default_backend {
        out.push(format!("default -> {}:{}", b.service, b.port));
    }
    out
}

/// The backend lines of haproxy's `show stat` CSV.
fn backend_stats(csv: &str) -> Vec<IngressBackendStats> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(scur), Some(stot), Some(status), Some(ok)) = (
        at("pxname"),
        at("svname"),
        at("scur"),
        at("stot"),
        at("status"),
        at("hrsp_2xx"),
    ) else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<&str>>())
        .filter(|f| f.get(sv) == Some(&"BACKEND"))
        .map(|f| {
            let number = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            IngressBackendStats {
                backend: f.get(px).unwrap_or(&"").to_string(),
                status: f.get(status).unwrap_or(&"").to_string(),
                current_sessions: number(scur),
                total_sessions: number(stot),
                responses_2xx: number(ok),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_lines_of_haproxys_csv_are_read_by_column_name() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,hrsp_2xx,\n\
                   ingress,FRONTEND,,,1,2,65000,9,OPEN,9,\n\
                   web_qa-webserver_80,web_qa-webserver_80,0,0,1,1,,5,UP,5,\n\
                   web_qa-webserver_80,BACKEND,0,0,1,1,,5,UP,4,\n";
        assert_eq!(
            backend_stats(csv),
            [IngressBackendStats {
                backend: "web_qa-webserver_80".into(),
                status: "UP".into(),
                current_sessions: 1,
                total_sessions: 5,
                responses_2xx: 4,
            }]
        );
        assert!(backend_stats("garbage").is_empty());
    }
}
