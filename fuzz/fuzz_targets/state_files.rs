//! Fuzzes the state directory's readers: the input is split into a port file, a
//! routes file, a labels file and a VNI file, written into a state directory, and
//! read back. Nothing may panic; an unreadable file is moved aside, never lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vrouter::store::StateStore;

/// One state directory for the whole run (opened, so locked, once).
fn store() -> &'static (tempfile::TempDir, StateStore) {
    static STORE: OnceLock<(tempfile::TempDir, StateStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        (dir, store)
    })
}

/// Removes what the previous input left (files moved aside, the port file).
fn clean(root: &std::path::Path) {
    for dir in [root.to_path_buf(), root.join("ports")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains("unreadable") || (dir.ends_with("ports") && name.ends_with(".json")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (_, store) = store();
    let root = store.dir().to_path_buf();
    clean(&root);
    let mut parts = data.splitn(4, |b| *b == 0);
    let files = ["ports/veth1.json", "routes.json", "labels.json", "vnis.json"];
    for (file, bytes) in files.iter().zip(&mut parts) {
        std::fs::write(root.join(file), bytes).unwrap();
    }
    let (ports, problems) = store.load_ports();
    assert!(ports.len() + problems.len() <= 1);
    let routes = store.load_routes();
    if !routes.problems.is_empty() {
        // The original bytes are kept somewhere in the directory.
        let kept = std::fs::read_dir(&root).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("unreadable"));
        assert!(kept, "{:?}", routes.problems);
    }
    let _ = store.load_next_label();
    let _ = store.load_vnis();
});
