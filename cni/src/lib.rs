//! The vrouter's CNI plugin: what a container runtime runs for every pod.
//!
//! Contract:
//! - CNI 1.1.0, 1.0.0 and 0.4.0 configurations; the verbs ADD, DEL, CHECK, VERSION,
//!   and (1.1.0) STATUS and GC. Configuration on stdin, parameters in `CNI_*`
//!   variables, results and errors on stdout as the spec spells them for the
//!   configuration's version, with the spec's error codes (and 100+ of its own:
//!   [`spec::ErrorCode`]).
//! - ADD returns only when the pod reaches its gateway through the vrouter; a failed
//!   ADD leaves nothing behind.
//! - DEL is idempotent and succeeds when the vrouter is down or the pod's namespace is
//!   gone; what could not be removed then is removed by the next DEL or GC.
//! - Links only the vrouter's API crate: no daemon code.
#![forbid(unsafe_code)]

pub mod add;
pub mod check;
pub mod config;
pub mod configured;
pub mod env;
pub mod ipam;
pub mod link;
pub mod plan;
pub mod release;
pub mod spec;
pub mod state;
pub mod vrouter;

use env::{CniEnv, Command};
use serde_json::Value;
use spec::{CniError, LATEST_VERSION};

/// One invocation: what to print on stdout, and whether it is a success.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The JSON to print, if any (DEL, STATUS and GC print nothing on success).
    pub output: Option<Value>,
    /// Success (exit 0) or failure (exit 1).
    pub ok: bool,
}

/// Runs the verb the variables name on the configuration in `stdin`.
pub fn invoke(vars: impl IntoIterator<Item = (String, String)>, stdin: &[u8]) -> Outcome {
    let asked_version = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.to_string());
    let failed = |e: CniError| Outcome {
        output: Some(e.to_json(&asked_version)),
        ok: false,
    };
    let env = match CniEnv::from_vars(vars) {
        Ok(env) => env,
        Err(e) => return failed(e),
    };
    if env.command == Command::Version {
        return Outcome {
            output: Some(check::version(stdin)),
            ok: true,
        };
    }
    let conf = match config::Loaded::parse(stdin) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let done = |r: Result<(), CniError>| match r {
        Ok(()) => Outcome { output: None, ok: true },
        Err(e) => failed(e),
    };
    match env.command {
        Command::Add => match add::add(&conf, &env) {
            Ok(result) => Outcome {
                output: Some(result.to_json(conf.version)),
                ok: true,
            },
            Err(e) => failed(e),
        },
        Command::Del => done(release::del(&conf, &env)),
        Command::Check => done(check::check(&conf, &env)),
        Command::Status => done(check::status(&conf, &env)),
        Command::Gc => done(release::gc(&conf, &env)),
        Command::Version => unreachable!("answered above"),
    }
}

/// The largest configuration read from stdin (a GC list of many attachments fits).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The binary's entry point: reads stdin and the environment, prints the outcome,
/// exits 0 on success and 1 on failure.
pub fn main_entry() -> ! {
    use std::io::{Read, Write};
    let mut stdin = Vec::new();
    // A runtime that sends nothing (VERSION may) is answered all the same.
    let _ = std::io::stdin().take(MAX_CONFIG_BYTES + 1).read_to_end(&mut stdin);
    let outcome = if stdin.len() as u64 > MAX_CONFIG_BYTES {
        let e = spec::CniError::new(
            spec::ErrorCode::InvalidConfig,
            format!("the network configuration is larger than {MAX_CONFIG_BYTES} bytes"),
        );
        Outcome {
            output: Some(e.to_json(LATEST_VERSION)),
            ok: false,
        }
    } else {
        invoke(std::env::vars(), &stdin)
    };
    if let Some(output) = &outcome.output {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{output}");
        let _ = out.flush();
    }
    std::process::exit(if outcome.ok { 0 } else { 1 });
}
