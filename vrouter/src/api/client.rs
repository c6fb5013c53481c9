//! A blocking client for the local API.

use super::Request;
use anyhow::{anyhow, Context};
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A connection to a running vrouter.
#[derive(Debug)]
pub struct ApiClient {
    path: PathBuf,
}

impl ApiClient {
    /// A client for the socket at `path` (connects per request).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Sends `request`; returns the `ok` value or the server's error.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> anyhow::Result<T> {
        let stream = UnixStream::connect(&self.path).with_context(|| {
            format!(
                "connecting to the vrouter API at {} (is `vrouter run` up?)",
                self.path.display()
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        (&stream).write_all(line.as_bytes())?;
        let mut reader = BufReader::new(&stream);
        let mut answer = String::new();
        reader.read_line(&mut answer).context("reading the API answer")?;
        let mut value: serde_json::Value = serde_json::from_str(&answer).context("API answer is not JSON")?;
        if let Some(err) = value.get("error") {
            return Err(anyhow!("{}", err.as_str().unwrap_or("unknown error")));
        }
        let ok = value
            .get_mut("ok")
            .map(serde_json::Value::take)
            .ok_or_else(|| anyhow!("API answer has neither ok nor error"))?;
        Ok(serde_json::from_value(ok)?)
    }

    /// Waits until the API answers `status`, up to `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.call::<serde_json::Value>(&Request::Status) {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e.context("vrouter API not ready")),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
