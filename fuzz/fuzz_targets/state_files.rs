//! Fuzzes the state directory's readers: the input is split into a port file, a
//! routes file, a labels file and a VNI file, written into a state directory, and
//! read back. Nothing may panic; an unreadable file is moved aside, never lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vrouter::store::StateStore;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let root = dir().path().join("state");
    let _ = std::fs::remove_dir_all(&root);
    let store = StateStore::open(&root).unwrap();
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
