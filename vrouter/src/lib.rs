//! The vrouter: a userspace AF_XDP virtual router.
//!
//! Contract: this crate turns a [`config::Config`] into running forwarding workers
//! (one pinned thread per forwarding core, each owning its AF_XDP sockets and UMEM)
//! fed by forwarding snapshots that the control thread publishes. Packet processing
//! ([`packet`]) is pure and runs the same over AF_XDP or an in-memory port. This
//! crate has no unsafe code: AF_XDP lives in the `vrouter-xsk` crate.
#![forbid(unsafe_code)]

pub use xsk as afxdp;
pub mod affinity;
pub mod api;
pub mod batch;
pub mod capture;
pub mod cli;
pub mod config;
pub mod control;
pub mod cycles;
pub mod datapath;
pub mod drops;
pub mod fill;
pub mod flow_export;
pub mod flows;
pub mod fragments;
pub mod health;
pub mod host;
pub mod ingress;
pub mod link_watch;
pub mod log_limit;
pub mod metrics;
pub mod neighbors;
pub mod packet;
pub mod run;
pub mod stats;
pub mod store;
pub mod worker;
pub mod xmpp;

/// The command-line program: parses arguments and runs the command. Errors are
/// printed with their causes; the exit code is 1.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let result =
        match cli.command {
            cli::Command::Run { config, overrides } => config::Config::load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|mut c| {
                    run::apply_overrides(&mut c, &overrides, cli.api_socket.as_ref())?;
                    run::run(c)
                }),
            cli::Command::CheckConfig { config } => cli::check_config(&config),
            other => {
                let socket = cli.api_socket.clone().unwrap_or_else(|| cli::DEFAULT_API_SOCKET.into());
                cli::api_command(&socket, cli.json, other)
            }
        };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrouter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
