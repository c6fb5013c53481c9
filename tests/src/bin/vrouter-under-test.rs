//! The vrouter command, for the system tests.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vrouter::main_entry()
}
