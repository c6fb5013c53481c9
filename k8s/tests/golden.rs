//! Golden tests of the translation: every scenario under `scenarios/` (the
//! manifests the lab and the system tests use) translates to exactly its `.json`.
//! After a deliberate change, `UPDATE_GOLDEN=1 cargo test -p vrouter-k8s` rewrites
//! them; review the diff like code.

use std::path::Path;
use vrouter_k8s::{translate, Manifests, Settings};

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let manifests = Manifests::from_path(&dir.join(format!("{name}.yaml"))).expect("the scenario reads");
    let settings = Settings {
        floating_pool: Some("198.18.254.0/24".parse().unwrap()),
        ..Settings::default()
    };
    let got = serde_json::to_string_pretty(&translate(&manifests, &settings)).unwrap() + "\n";
    let golden = dir.join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("the golden file exists");
    assert!(
        got == want,
        "{name}: translation differs from {}:\n{got}",
        golden.display()
    );
}

#[test]
fn policy_truth_table_scenario() {
    check("policy");
}

#[test]
fn modes_and_services_scenario() {
    check("modes");
}

#[test]
fn namespace_isolation_scenario() {
    check("isolation");
}

#[test]
fn custom_networks_and_app_isolation_scenario() {
    check("networks");
}

#[test]
fn kube_dns_scenario() {
    check("dns");
}

#[test]
fn ingress_kinds_of_the_seed_scenario() {
    check("ingress");
}

#[test]
fn service_chain_scenario() {
    check("service-chain");
}

#[test]
fn every_scenario_has_a_golden_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "yaml").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dns",
            "ingress",
            "isolation",
            "modes",
            "networks",
            "policy",
            "service-chain"
        ],
        "add a test above for each new scenario"
    );
}

#[test]
fn a_service_instance_without_its_addresses_or_joining_a_network_to_itself_waits_with_a_warning() {
    let text = r#"
kind: Pod
metadata:
  namespace: a
  name: waiting
  annotations: {opencontrail.org/service-chain: '{"left": "cluster-network", "right": "blue"}'}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.2}
---
kind: Pod
metadata:
  namespace: a
  name: loop
  annotations: {opencontrail.org/service-chain: '{"left": "blue", "right": "blue"}'}
spec: {containers: [{name: c, image: i}]}
---
kind: Pod
metadata:
  namespace: a
  name: typo
  annotations: {opencontrail.org/service-chain: '{"left": "red", "rigth": "blue"}'}
spec: {containers: [{name: c, image: i}]}
"#;
    let t = translate(&Manifests::from_text("t", text).unwrap(), &Settings::default());
    assert!(t.service_chains.is_empty(), "{:?}", t.service_chains);
    let said = t.warnings.join("\n");
    assert!(
        said.contains("pod a/waiting: no address in network \"blue\""),
        "its own network's address is its status's, blue's is unknown: {said}"
    );
    assert!(
        said.contains("pod a/loop: opencontrail.org/service-chain joins \"blue\" to itself"),
        "{said}"
    );
    assert!(said.contains("pod a/typo: opencontrail.org/service-chain"), "{said}");
}

#[test]
fn malformed_manifests_are_errors_naming_the_document() {
    let err = Manifests::from_text(
        "x.yaml",
        "kind: Namespace\nmetadata: {name: a}\n---\nkind: Pod\nspec: 7\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("x.yaml, document 2"), "{text}");
    let err = Manifests::from_text("y.yaml", "metadata: {name: a}\n").unwrap_err();
    assert!(err.to_string().contains("no kind"), "{err}");
    let err = Manifests::from_text("z.yaml", "kind: [unclosed\n").unwrap_err();
    assert!(err.to_string().contains("z.yaml, document 1"), "{err}");
    assert!(Manifests::from_path(Path::new("/nonexistent/manifests.yaml")).is_err());
}

#[test]
fn an_egress_named_port_resolves_on_each_peer_and_unmatchable_ports_never_widen() {
    let text = r#"
kind: Pod
metadata: {namespace: a, name: client, labels: {role: client}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.2}
---
kind: Pod
metadata: {namespace: a, name: s1, labels: {role: server}}
spec: {containers: [{name: c, image: i, ports: [{name: api, containerPort: 8001}]}]}
status: {podIP: 198.18.1.3}
---
kind: Pod
metadata: {namespace: a, name: s2, labels: {role: server}}
spec: {containers: [{name: c, image: i, ports: [{name: api, containerPort: 8002}]}]}
status: {podIP: 198.18.1.4}
---
kind: NetworkPolicy
metadata: {namespace: a, name: out}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {role: server}}}]
    ports: [{port: api}]
  - to: [{podSelector: {}}]
    ports: [{port: nobody-has-this}]
"#;
    let t = translate(&Manifests::from_text("t", text).unwrap(), &Settings::default());
    let out = t.policies.iter().find(|p| p.name == "a/out").unwrap();
    let rules = out.egress.as_ref().unwrap();
    let summary: Vec<(String, Option<u16>)> = rules
        .iter()
        .map(|r| {
            (
                r.peers.iter().map(|p| p.cidr.to_string()).collect::<Vec<_>>().join(","),
                r.ports[0].port,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("198.18.1.3/32".to_string(), Some(8001)),
            ("198.18.1.4/32".to_string(), Some(8002))
        ],
        "one rule per number; the rule whose only port nobody names matches nothing, so it is gone, not widened"
    );
}

#[test]
fn policy_types_default_as_the_api_server_does_and_finished_pods_are_no_one() {
    let text = r#"
kind: Pod
metadata: {namespace: a, name: web, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.2}
---
kind: Pod
metadata: {namespace: a, name: job, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.3, phase: Succeeded}
---
kind: NetworkPolicy
metadata: {namespace: a, name: empty-types}
spec:
  podSelector: {}
  policyTypes: []
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
---
kind: NetworkPolicy
metadata: {namespace: a, name: empty-egress}
spec:
  podSelector: {}
  egress: []
"#;
    let t = translate(&Manifests::from_text("t", text).unwrap(), &Settings::default());
    assert!(t.pod("a", "job").is_none(), "a finished pod is not placed or selected");
    let empty_types = t.policies.iter().find(|p| p.name == "a/empty-types").unwrap();
    assert!(empty_types.ingress.is_some(), "policyTypes: [] isolates ingress");
    assert_eq!(
        empty_types.ingress.as_ref().unwrap()[0].peers.len(),
        1,
        "web only, not the job"
    );
    assert!(empty_types.egress.is_none());
    let empty_egress = t.policies.iter().find(|p| p.name == "a/empty-egress").unwrap();
    assert!(
        empty_egress.egress.is_none() && empty_egress.ingress == Some(Vec::new()),
        "no policyTypes and no egress rules: ingress only (default deny), egress open"
    );
}

#[test]
fn sctp_policy_ports_are_kept_and_sctp_service_ports_are_skipped() {
    let text = r#"
kind: Pod
metadata: {namespace: a, name: hss, labels: {app: hss}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.2}
---
kind: NetworkPolicy
metadata: {namespace: a, name: diameter}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: SCTP, port: 3868}]}]
---
kind: Service
metadata: {namespace: a, name: hss}
spec:
  clusterIP: 198.18.100.1
  selector: {app: hss}
  ports: [{protocol: SCTP, port: 3868}, {protocol: TCP, port: 3868}]
"#;
    let t = translate(&Manifests::from_text("t", text).unwrap(), &Settings::default());
    let rules = t.policies[0].ingress.as_ref().unwrap();
    assert_eq!(rules[0].ports[0].protocol, control_client::L4Protocol::Sctp);
    assert_eq!(t.services[0].ports.len(), 1, "the TCP port only");
    assert!(t.warnings.iter().any(|w| w.contains("SCTP")), "{:?}", t.warnings);
}

#[test]
fn an_isolated_pod_as_a_peer_is_its_address_and_its_floating_address() {
    let text = r#"
kind: Namespace
metadata: {name: iso, annotations: {opencontrail.kubernetes.isolated: "true"}}
---
kind: Pod
metadata: {namespace: iso, name: p, labels: {app: p}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.2.2}
---
kind: Pod
metadata: {namespace: default, name: db, labels: {app: db}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.1.2}
---
kind: NetworkPolicy
metadata: {namespace: default, name: db-from-iso}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: iso}}}]}]
"#;
    let settings = Settings {
        floating_pool: Some("198.18.254.0/24".parse().unwrap()),
        ..Settings::default()
    };
    let t = translate(&Manifests::from_text("t", text).unwrap(), &settings);
    let fip = t.floating_ips[0].ip;
    let peers: Vec<std::net::IpAddr> = t.policies[0].ingress.as_ref().unwrap()[0]
        .peers
        .iter()
        .map(|p| p.cidr.addr())
        .collect();
    assert!(
        peers.contains(&"198.18.2.2".parse().unwrap()) && peers.contains(&fip),
        "{peers:?}"
    );
}
