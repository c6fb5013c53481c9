//! Web servers in pods and an HTTP client, for the ingress checks: each server is
//! busybox's `httpd` (a real web server) in the pod's namespace, serving pages that
//! hold the pod's name, so a request shows which pod answered it.

use super::netns::Netns;
use super::traffic_threads::in_namespace;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The port the web servers listen on.
pub const WEB_PORT: u16 = 8080;

/// busybox httpd in a pod; stopped (and its pages removed) when dropped.
#[derive(Debug)]
pub struct WebServer {
    child: Child,
    pages: tempfile::TempDir,
}

impl WebServer {
    /// Starts it in `pod`, serving `index.html` and each of `pages` with the body
    /// `"<name>\n"`; returns once it accepts connections.
    pub fn start(pod: &Netns, name: &str, pages: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("the pages' directory")?;
        for page in std::iter::once("index.html").chain(pages.iter().copied()) {
            std::fs::write(dir.path().join(page.trim_start_matches('/')), format!("{name}\n"))?;
        }
        let child = pod
            .command("busybox")
            .args(["httpd", "-f", "-p", &WEB_PORT.to_string(), "-h"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("busybox httpd")?;
        let server = Self { child, pages: dir };
        let local: SocketAddr = ([127, 0, 0, 1], WEB_PORT).into();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let up = in_namespace(pod.name(), move || {
                Ok(TcpStream::connect_timeout(&local, Duration::from_millis(200)).is_ok())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
            if up {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("httpd in {} does not listen on {WEB_PORT}", pod.name());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl WebServer {
    /// Adds page `name` of `len` bytes (a long answer: a connection that stays busy
    /// while the test does something else).
    pub fn add_page(&self, name: &str, len: usize) -> anyhow::Result<()> {
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(self.pages.path().join(name), body)?;
        Ok(())
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// `GET path` with `Host: host` to `addr` from inside `ns` (HTTP/1.0: the server
/// closes), bounded by `timeout`.
pub fn get(ns: &Netns, addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> anyhow::Result<Answer> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: vrouter-lab\r\n\r\n");
    in_namespace(ns.name(), move || {
        let mut s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(request.as_bytes())?;
        read_answer(&mut s)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
}

/// A TCP connection to `addr` made from inside `ns` (it stays in that namespace;
/// any thread may use it).
pub fn connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    in_namespace(ns.name(), move || {
        let s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
        s.set_read_timeout(Some(timeout))?;
        Ok(s)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
}

/// Reads an answer to its end from `s`.
pub fn read_answer(s: &mut TcpStream) -> anyhow::Result<Answer> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).context("reading the answer")?;
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(text: &str) -> anyhow::Result<Answer> {
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_are_read_as_status_and_body() {
        let a = super::parse("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nqa-1\n").unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "qa-1\n"));
        assert!(super::parse("garbage").is_err());
    }
}
