//! The plugin's side of the vrouter's API: the client, readiness, and API failures
//! as CNI errors.

use crate::config::Loaded;
use crate::link::Netns;
use crate::spec::{CniError, ErrorCode};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};
use vrouter_api::{ApiClient, ClientError, ErrorCode as ApiCode, Request, StatusView};

/// How long one API call may take: a change waits for the vrouter to publish it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call retries while the vrouter answers `busy`.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);

/// A client for the configured socket.
pub fn client(conf: &Loaded) -> Vrouter {
    Vrouter(ApiClient::new(&conf.conf.api_socket).with_timeout(CALL_TIMEOUT))
}

/// The API as the plugin uses it: a vrouter that answers `busy` (a burst of pods
/// being added at once: its connections or its change queue are full) is asked again,
/// with growing pauses, for up to 30 s, instead of failing the pod.
#[derive(Debug, Clone)]
pub struct Vrouter(ApiClient);

impl Vrouter {
    /// Sends `request`, again while the answer is `busy`.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, ClientError> {
        let deadline = Instant::now() + BUSY_RETRY_FOR;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.0.call(request) {
                Err(e) if e.code() == Some(ApiCode::Busy) && Instant::now() + pause < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }
}

/// The namespace the vrouter's ports live in; a configured one that is gone is a
/// configuration error.
pub fn host_netns(conf: &Loaded) -> Result<Netns, CniError> {
    let ns = Netns::at_or_own(conf.conf.host_netns.as_deref());
    match &conf.conf.host_netns {
        Some(path) if !ns.exists() => Err(CniError::new(
            ErrorCode::InvalidConfig,
            format!("hostNetns {} does not exist", path.display()),
        )),
        _ => Ok(ns),
    }
}

/// The vrouter's status if it answers and has restored its state; otherwise the
/// STATUS verb's "not available" (code 50) saying why.
pub fn ready_status(api: &Vrouter) -> Result<StatusView, CniError> {
    match api.call::<StatusView>(&Request::Status) {
        Ok(s) if s.ready => Ok(s),
        Ok(_) => Err(CniError::new(
            ErrorCode::NotAvailable,
            "the vrouter is restoring its state",
        )),
        Err(e) => {
            Err(CniError::new(ErrorCode::NotAvailable, "the vrouter is not answering").with_details(e.to_string()))
        }
    }
}

/// An API failure as a CNI error: a vrouter that does not answer is "try again
/// later" (11); a refusal carries the vrouter's code and message (100).
pub fn error(what: &str, e: ClientError) -> CniError {
    match e {
        ClientError::Api(api) => CniError::new(ErrorCode::VrouterRefused, format!("{what}: the vrouter refused"))
            .with_details(format!("{}: {}", api.code, api.message)),
        ClientError::Connect { .. } | ClientError::Io(_) => CniError::new(
            ErrorCode::TryAgainLater,
            format!("{what}: the vrouter is not answering"),
        )
        .with_details(e.to_string()),
        ClientError::Protocol(m) => {
            CniError::new(ErrorCode::Io, format!("{what}: bad answer from the vrouter")).with_details(m)
        }
    }
}

/// Removes port `name` from the vrouter: Ok(true) when it is gone (or was never
/// there), Ok(false) when the vrouter does not answer (the removal is still due).
pub fn remove_port(api: &Vrouter, name: &str) -> Result<bool, CniError> {
    match api.call::<serde_json::Value>(&Request::RemoveInterface { name: name.to_string() }) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(ApiCode::NotFound) => Ok(true),
        Err(ClientError::Connect { .. } | ClientError::Io(_)) => Ok(false),
        Err(e) => Err(error("removing the port", e)),
    }
}
