//! The vrouter-lab command, for the system tests.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vrouter_lab::cli::main_entry()
}
