//! Golden tests of the haproxy configuration: the ingresses of the seed's three kinds
//! (`k8s/scenarios/ingress.yaml`, translated as the vrouter's `apply` does) give
//! exactly `tests/golden/<namespace>_<name>.cfg`, and haproxy itself accepts each
//! without a warning (`haproxy -c`). After a deliberate change, `UPDATE_GOLDEN=1 cargo test -p
//! vrouter-ingress` rewrites them; review the diff like code.

use std::path::{Path, PathBuf};
use vrouter_ingress::haproxy::{config, Sockets};
use vrouter_k8s::{translate, Manifests, Settings};

fn scenario() -> Vec<control_client::IngressSpec> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifests = Manifests::from_path(&root.join("k8s/scenarios/ingress.yaml")).expect("the scenario reads");
    translate(&manifests, &Settings::default()).ingresses
}

fn sockets(dir: &Path) -> Sockets {
    Sockets {
        stats: dir.join("haproxy.sock"),
        health: dir.join("health.sock"),
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{}.cfg", name.replace('/', "_")))
}

#[test]
fn configurations_of_the_seeds_ingresses_are_exactly_the_golden_files() {
    let specs = scenario();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web/partly",
            "web/simple-fanout",
            "web/single-service",
            "web/virtual-host"
        ]
    );
    for spec in &specs {
        let got = config(spec, &sockets(Path::new("/var/lib/vrouter/ingress/web_x")));
        let path = golden(&spec.name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).expect("the golden file exists");
        assert!(got == want, "{}: differs from {}:\n{got}", spec.name, path.display());
    }
}

#[test]
fn haproxy_accepts_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    for spec in scenario() {
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config(&spec, &sockets(dir.path()))).unwrap();
        let out = std::process::Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output()
            .expect("haproxy runs (scripts/setup.sh installs it)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: haproxy -c refused it:\n{said}", spec.name);
        assert!(!said.contains("WARNING"), "{}: haproxy -c warns:\n{said}", spec.name);
    }
}
