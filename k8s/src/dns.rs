//! Service names as kube-dns answers them: `<service>.<namespace>.svc.<domain>` for
//! every translated service, its ClusterIP (A or AAAA by family). The records are what
//! the lab's kube-dns (dnsmasq, a real DNS server, in pods behind the `kube-dns`
//! service) serves, as a hosts file.

use crate::Translation;
use serde::Serialize;
use std::net::IpAddr;

/// Kubernetes' default cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// One name and its address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DnsRecord {
    /// The fully qualified name, without the trailing dot.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// The service records of `t` in `domain`, sorted. Services the translation made
/// for itself (an ingress's external IP: `@` in the name) have none.
pub fn records(t: &Translation, domain: &str) -> Vec<DnsRecord> {
    let mut out: Vec<DnsRecord> = t
        .services
        .iter()
        .filter(|s| !s.name.contains('@'))
        .filter_map(|s| {
            let (namespace, name) = s.name.split_once('/')?;
            Some(DnsRecord {
                name: format!("{name}.{namespace}.svc.{domain}"),
                ip: s.ip,
            })
        })
        .collect();
    out.sort();
    out
}

/// `records` as a hosts file (`address name` per line), as dnsmasq's `--addn-hosts`
/// reads it.
pub fn hosts_file(records: &[DnsRecord]) -> String {
    records.iter().map(|r| format!("{} {}\n", r.ip, r.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{translate, Manifests, Settings};

    #[test]
    fn every_service_has_its_cluster_name_and_ingress_helpers_none() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let m = Manifests::from_path(&dir.join("ingress.yaml")).unwrap();
        let t = translate(&m, &Settings::default());
        let r = records(&t, CLUSTER_DOMAIN);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[0].name, "dev-webserver.web.svc.cluster.local");
        assert_eq!(r[0].ip, IpAddr::from([198, 18, 100, 31]));
        assert!(hosts_file(&r).starts_with("198.18.100.31 dev-webserver.web.svc.cluster.local\n"));
    }
}
