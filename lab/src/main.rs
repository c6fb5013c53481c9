//! `vrouter-lab`: the lab, the soak, the generator, the sink and the benchmark.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vrouter_lab::cli::main_entry()
}
