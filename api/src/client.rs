//! A blocking client for the local API (one connection per request).

use crate::{ApiError, ErrorCode, Request};
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("connecting to the vrouter API at {path} (is `vrouter run` up?): {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed or timed out mid-request.
    #[error("talking to the vrouter API: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not an API answer.
    #[error("malformed API answer: {0}")]
    Protocol(String),
    /// The vrouter answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ClientError {
    /// The API error code, if the vrouter answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A connection to a running vrouter.
#[derive(Debug, Clone)]
pub struct ApiClient {
    path: PathBuf,
    timeout: Duration,
}

impl ApiClient {
    /// A client for the socket at `path`; a call waits up to 60 s for its answer.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The same client with another answer timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request`; returns the `ok` value, or the vrouter's error.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, ClientError> {
        let stream = UnixStream::connect(&self.path).map_err(|source| ClientError::Connect {
            path: self.path.clone(),
            source,
        })?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut line = serde_json::to_string(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        let written = (&stream).write_all(line.as_bytes());
        // A vrouter that refuses the connection (busy, permission) may answer and
        // close before the request is written: its answer says why.
        let mut reader = BufReader::new(&stream);
        let mut answer = String::new();
        match (written, reader.read_line(&mut answer)) {
            (_, Ok(n)) if n > 0 => decode_answer(&answer),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e.into()),
            (Ok(()), Ok(_)) => decode_answer(&answer),
        }
    }

    /// Every route (of VRF `vrf`, or all), read page by page; `page` routes per
    /// request (at most [`crate::MAX_ROUTES_PER_ANSWER`] are answered).
    pub fn all_routes(&self, vrf: Option<&str>, page: usize) -> Result<Vec<crate::RouteView>, ClientError> {
        let mut all: Vec<crate::RouteView> = Vec::new();
        loop {
            let request = Request::Routes {
                vrf: vrf.map(str::to_string),
                limit: page,
                after: all.last().map(|r| crate::RouteCursor {
                    vrf: r.vrf.clone(),
                    prefix: r.prefix,
                }),
            };
            let got: Vec<crate::RouteView> = self.call(&request)?;
            let last_page = got.len() < page.clamp(1, crate::MAX_ROUTES_PER_ANSWER);
            all.extend(got);
            if last_page {
                return Ok(all);
            }
        }
    }

    /// Waits until the API answers `status` with `ready` (the state directory is
    /// restored), up to `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.call::<crate::StatusView>(&Request::Status) {
                Ok(status) if status.ready => return Ok(()),
                Ok(_) if std::time::Instant::now() >= deadline => {
                    return Err(ClientError::Protocol("the vrouter is still restoring its state".into()))
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Decodes one answer line.
pub(crate) fn decode_answer<T: DeserializeOwned>(line: &str) -> Result<T, ClientError> {
    if line.is_empty() {
        return Err(ClientError::Protocol(
            "the vrouter closed the connection without answering".into(),
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ClientError::Protocol(format!("not JSON: {e}")))?;
    if let Some(message) = value.get("error") {
        let code = value
            .get("code")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or(ErrorCode::Internal);
        return Err(ApiError::new(code, message.as_str().unwrap_or("unknown error")).into());
    }
    let ok = value
        .get_mut("ok")
        .map(serde_json::Value::take)
        .ok_or_else(|| ClientError::Protocol("neither ok nor error".into()))?;
    serde_json::from_value(ok).map_err(|e| ClientError::Protocol(format!("unexpected answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_to_values_or_typed_errors() {
        let v: crate::AttachedView = decode_answer(r#"{"ok":{"vif":3,"label":18}}"#).unwrap();
        assert_eq!((v.vif, v.label), (3, 18));
        let e = decode_answer::<serde_json::Value>(r#"{"error":"no interface named \"x\"","code":"not_found"}"#)
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        for bad in ["", "nope", r#"{"neither":1}"#, r#"{"ok":{"vif":"x"}}"#] {
            assert!(
                matches!(decode_answer::<crate::AttachedView>(bad), Err(ClientError::Protocol(_))),
                "{bad:?}"
            );
        }
    }
}
