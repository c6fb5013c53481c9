//! The CNI plugin, for the system tests (the same entry point as `vrouter-cni`).
#![forbid(unsafe_code)]

fn main() {
    vrouter_cni::main_entry()
}
