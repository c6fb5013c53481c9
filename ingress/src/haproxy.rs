//! The haproxy configuration of an ingress, in the shape contrail-svc-monitor writes
//! (the seed's "Haproxy configuration for simple-fanout"): a frontend bound to the
//! VIP on port 80 with `option forwardfor`, an ACL and a `use_backend` per host and
//! path, a round-robin backend per service port whose one server is the service's
//! ClusterIP (the vrouter's ECMP load balancing spreads the connections over the
//! pods). Beyond the seed: a second frontend on a unix socket answers the
//! supervisor's health probe (`monitor-uri`), and the stats socket hands its
//! listeners over on reload (`expose-fd listeners`) so a reload drops no connection.
//! No global `maxconn`: haproxy then takes what the process's file limit allows
//! (the seed's 65000 needs a limit of 130000 descriptors, which a host may refuse).
//!
//! Rules are ordered as Kubernetes decides between them: a rule for an exact host
//! before one for a wildcard host before one for every host; in each, an exact path
//! before a prefix, a longer prefix before a shorter one. A request whose host has a
//! rule but none of whose paths match is tried against the wildcard and host-less
//! rules next, then the default backend (ingress-nginx sends it to the default
//! backend at once).

use control_client::{IngressBackend, IngressSpec, PathMatch};
use std::fmt::Write;
use std::path::PathBuf;

/// Where an instance's sockets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sockets {
    /// haproxy's stats (and admin) socket.
    pub stats: PathBuf,
    /// The health frontend's socket.
    pub health: PathBuf,
}

/// The URI the health frontend answers 200 on.
pub const HEALTH_URI: &str = "/healthz";
/// How long the workers a reload replaced may finish their connections.
pub const HARD_STOP_AFTER: &str = "15m";
/// The port the ingress serves HTTP on.
pub const HTTP_PORT: u16 = 80;

/// The configuration of `spec`'s instance.
pub fn config(spec: &IngressSpec, sockets: &Sockets) -> String {
    let mut out = String::new();
    let w = &mut out;
    // Infallible: writing to a String.
    // The name is checked (letters, digits, `._/-`): it cannot end the comment.
    let _ = writeln!(w, "# ingress {} (written by the vrouter; do not edit)", spec.name);
    let _ = writeln!(w, "global");
    let _ = writeln!(w, "    log stdout format short local0 notice");
    // Old workers finish their connections after a reload, but not forever.
    let _ = writeln!(w, "    hard-stop-after {HARD_STOP_AFTER}");
    let _ = writeln!(
        w,
        "    stats socket {} mode 600 level admin expose-fd listeners",
        sockets.stats.display()
    );
    let _ = writeln!(w, "\ndefaults");
    let _ = writeln!(w, "    log global");
    let _ = writeln!(w, "    mode http");
    let _ = writeln!(w, "    option dontlog-normal");
    let _ = writeln!(w, "    retries 3");
    let _ = writeln!(w, "    option redispatch");
    let _ = writeln!(w, "    timeout connect 5000");
    let _ = writeln!(w, "    timeout client 300000");
    let _ = writeln!(w, "    timeout server 300000");
    let _ = writeln!(w, "\nfrontend health");
    let _ = writeln!(w, "    bind {} mode 600", sockets.health.display());
    let _ = writeln!(w, "    monitor-uri {HEALTH_URI}");
    let _ = writeln!(w, "\nfrontend ingress");
    let _ = writeln!(w, "    option httplog");
    // The external IP arrives translated to the VIP (a service in front of it).
    let _ = writeln!(w, "    bind {}:{HTTP_PORT}", spec.vip);
    let _ = writeln!(w, "    option forwardfor");
    for (i, route) in ordered(spec).iter().enumerate() {
        let mut conditions = Vec::new();
        if let Some(host) = route.host {
            let _ = writeln!(w, "    acl host_{i} {}", host_acl(host));
            conditions.push(format!("host_{i}"));
        }
        match (route.kind, route.path) {
            (PathMatch::Prefix, "/") => {}
            (PathMatch::Exact, path) => {
                let _ = writeln!(w, "    acl path_{i} path {path}");
                conditions.push(format!("path_{i}"));
            }
            (PathMatch::Prefix, path) => {
                // Element-wise: /a is /a itself or anything under /a/.
                let base = path.trim_end_matches('/');
                let _ = writeln!(w, "    acl path_{i} path {base}");
                let _ = writeln!(w, "    acl path_{i} path_beg {base}/");
                conditions.push(format!("path_{i}"));
            }
        }
        let name = route.backend.config_name();
        if conditions.is_empty() {
            let _ = writeln!(w, "    use_backend {name}");
        } else {
            let _ = writeln!(w, "    use_backend {name} if {}", conditions.join(" "));
        }
    }
    if let Some(b) = &spec.default_backend {
        let _ = writeln!(w, "    default_backend {}", b.config_name());
    }
    for b in spec.backends() {
        let _ = writeln!(w, "\nbackend {}", b.config_name());
        let _ = writeln!(w, "    mode http");
        let _ = writeln!(w, "    balance roundrobin");
        let _ = writeln!(w, "    option forwardfor");
        let address = match b.ip {
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => format!("[{a}]"),
        };
        let _ = writeln!(w, "    server {} {address}:{} weight 1", b.config_name(), b.port);
    }
    out
}

/// One host-and-path route of an ingress.
struct Route<'a> {
    host: Option<&'a str>,
    path: &'a str,
    kind: PathMatch,
    backend: &'a IngressBackend,
}

/// Every host-and-path route, in the order haproxy must try them (see the module doc).
fn ordered(spec: &IngressSpec) -> Vec<Route<'_>> {
    let mut routes: Vec<Route<'_>> = spec
        .rules
        .iter()
        .flat_map(|r| {
            r.paths.iter().map(move |p| Route {
                host: r.host.as_deref(),
                path: &p.path,
                kind: p.kind,
                backend: &p.backend,
            })
        })
        .collect();
    let host_rank = |h: Option<&str>| match h {
        Some(h) if h.starts_with("*.") => 1,
        Some(_) => 0,
        None => 2,
    };
    // Stable: equal routes keep the Ingress's order. A prefix's length without its
    // trailing slashes (`/a/` is `/a`).
    routes.sort_by_key(|r| {
        let length = r.path.trim_end_matches('/').len();
        (host_rank(r.host), r.kind, std::cmp::Reverse(length))
    });
    routes
}

/// The ACL matching a rule's host (the `Host` header without its port, any case).
fn host_acl(host: &str) -> String {
    let fetch = "req.hdr(host),field(1,:),lower";
    match host.strip_prefix("*.") {
        // One label more than the domain, as Kubernetes' wildcard.
        Some(domain) => format!(
            "{fetch} -m reg ^[^.]+\\.{}$",
            domain.to_ascii_lowercase().replace('.', "\\.")
        ),
        None => format!("{fetch} -m str {}", host.to_ascii_lowercase()),
    }
}
