//! `vrouter-cni`: the CNI plugin binary (see the library's contract).
#![forbid(unsafe_code)]

fn main() {
    vrouter_cni::main_entry()
}
