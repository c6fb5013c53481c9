//! Compiles the XDP steering program (bpf/steer.c) with clang into OUT_DIR.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/steer.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("steer.o");
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64-linux-gnu",
        Ok("aarch64") => "aarch64-linux-gnu",
        Ok(other) => panic!("no multiarch include path known for {other}"),
        Err(e) => panic!("CARGO_CFG_TARGET_ARCH: {e}"),
    };
    let status = Command::new("clang")
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I/usr/include/{arch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run clang ({e}): run scripts/setup.sh, or apt-get install clang libbpf-dev")
        });
    assert!(
        status.success(),
        "clang failed to compile {src}: run scripts/setup.sh, or apt-get install clang libbpf-dev"
    );
}
