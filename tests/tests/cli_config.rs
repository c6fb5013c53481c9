//! The command line rejects bad configuration files with one error naming the key.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

fn check(text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("vrouter-cfg-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vrouter.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_files_name_the_key_and_good_files_pass() {
    let fabric = "[fabric]\ninterface = \"lo\"\nip = \"198.18.0.1/24\"\n";
    let (ok, err) = check(&format!("[cores]\nforwarding = \"0\"\ncontrol = \"0\"\n{fabric}"));
    assert!(!ok && err.contains("cores.control") && err.contains("overlap"), "{err}");
    let (ok, err) = check(&format!("[cores]\nforwarding = \"4095\"\n{fabric}"));
    assert!(
        !ok && err.contains("cores.forwarding") && err.contains("does not exist"),
        "{err}"
    );
    let (ok, err) = check(&format!("colour = \"blue\"\n{fabric}"));
    assert!(!ok && err.contains("colour"), "{err}");
    let (ok, err) = check(&format!("[cores]\nforwarding = \"1-x\"\n{fabric}"));
    assert!(!ok && err.contains("forwarding"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    let (ok, err) = check(fabric);
    assert!(ok || err.contains("no core is left"), "{err}");
}

#[test]
fn an_api_socket_that_cannot_be_made_is_refused_by_its_key_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("vrouter-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A socket path under a regular file: its directory cannot exist.
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let config = format!(
        "state_dir = \"{}\"\napi_socket = \"{}\"\n[cores]\nforwarding = \"1\"\ncontrol = \"0\"\n\
         [fabric]\ninterface = \"lo\"\nip = \"198.18.0.1/24\"\n",
        dir.join("state").display(),
        file.join("api.sock").display()
    );
    let path = dir.join("vrouter.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("api_socket") && err.contains("a-file/api.sock"), "{err}");
    assert!(
        !err.contains("worker") && !err.contains("XDP"),
        "refused before the workers and XDP started: {err}"
    );
}
