//! The `vrouter` command.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vrouter::main_entry()
}
