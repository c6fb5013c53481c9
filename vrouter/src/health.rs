//! Backend health checks (the seed's "health check implementation", Contrail's
//! service health check): the vrouter probes each backend of a service that asks for
//! it (a TCP connection, or an HTTP GET answered 2xx / 3xx) from its own process, off
//! the forwarding cores, through the node's interface (so probes reach backends on
//! this node and, through the tunnels, on others). A backend whose probes fail
//! `retries` times in a row is taken out of its service's group (its new flows and
//! the flows it held go to the others); one answered probe puts it back. The time
//! from its first failed probe to its removal is logged and counted.

use crate::control::task::{Change, ControlHandle};
use control_client::{HealthCheck, HealthCheckKind};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One backend to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// The service's name.
    pub service: String,
    /// The backend's address.
    pub backend: IpAddr,
    /// The port probed.
    pub port: u16,
    /// How.
    pub check: HealthCheck,
    /// Whether the model has it out now (the prober tells again when its own view
    /// differs: a report lost, or a service made again).
    pub down: bool,
}

/// The backends to probe, kept by the control side (on every publication).
pub type Targets = Arc<Mutex<Vec<ProbeTarget>>>;

/// What the prober knows of one backend.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    up: bool,
    failures: u32,
    /// When the failures in a row began.
    failing_since: Option<Instant>,
    next: Instant,
}

/// Counters of the prober.
#[derive(Debug, Default)]
pub struct HealthStats {
    /// Probes sent.
    pub probes: std::sync::atomic::AtomicU64,
    /// Backends taken out.
    pub taken_out: std::sync::atomic::AtomicU64,
    /// Backends put back.
    pub put_back: std::sync::atomic::AtomicU64,
}

/// Probes every due target until `stop`; tells the control side of each change.
pub async fn run(
    targets: Targets,
    control: ControlHandle,
    stats: Arc<HealthStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut known: HashMap<(String, IpAddr), Tracked> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let current: Vec<ProbeTarget> = targets.lock().map(|t| t.clone()).unwrap_or_default();
        let live: std::collections::HashSet<(&str, IpAddr)> =
            current.iter().map(|t| (t.service.as_str(), t.backend)).collect();
        known.retain(|key, _| live.contains(&(key.0.as_str(), key.1)));
        let due: Vec<ProbeTarget> = current
            .into_iter()
            .filter(|t| known.get(&(t.service.clone(), t.backend)).is_none_or(|k| k.next <= now))
            .collect();
        let mut probes = tokio::task::JoinSet::new();
        for t in due {
            let entry = known.entry((t.service.clone(), t.backend)).or_insert(Tracked {
                up: !t.down,
                failures: 0,
                failing_since: None,
                next: now,
            });
            entry.next = now + Duration::from_secs(u64::from(t.check.interval_secs));
            stats.probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            probes.spawn(async move {
                let ok = probe(&t).await;
                (t, ok)
            });
        }
        while let Some(Ok((t, ok))) = probes.join_next().await {
            let Some(k) = known.get_mut(&(t.service.clone(), t.backend)) else {
                continue;
            };
            if ok {
                k.failures = 0;
                k.failing_since = None;
                if !k.up || t.down {
                    k.up = true;
                    stats.put_back.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(service = %t.service, backend = %t.backend, "backend answers its health check again: put back");
                    tell(&control, &t, true);
                }
                continue;
            }
            k.failures += 1;
            let since = *k.failing_since.get_or_insert(now);
            if (k.up || !t.down) && k.failures >= t.check.retries {
                k.up = false;
                stats.taken_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    service = %t.service,
                    backend = %t.backend,
                    failures = k.failures,
                    after_ms = since.elapsed().as_millis() as u64,
                    "backend fails its health check: taken out"
                );
                tell(&control, &t, false);
            }
        }
    }
}

fn tell(control: &ControlHandle, t: &ProbeTarget, healthy: bool) {
    let change = Change::BackendHealth {
        service: t.service.clone(),
        backend: t.backend,
        healthy,
    };
    if let Err(e) = control.post(change) {
        tracing::warn!(service = %t.service, backend = %t.backend, "health change not queued: {e}");
    }
}

/// One probe of `t`, bounded by its timeout.
async fn probe(t: &ProbeTarget) -> bool {
    let timeout = Duration::from_secs(u64::from(t.check.timeout_secs));
    if t.check.kind == HealthCheckKind::Icmp {
        let IpAddr::V4(backend) = t.backend else {
            return false;
        };
        let ident = next_ident();
        return tokio::task::spawn_blocking(move || echo(backend, ident, timeout))
            .await
            .unwrap_or(false);
    }
    let addr = SocketAddr::new(t.backend, t.port);
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        if t.check.kind == HealthCheckKind::Tcp {
            return Some(true);
        }
        let path = t.check.http_path.as_deref().unwrap_or("/");
        let host = match t.backend {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: vrouter-health-check\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut got = 0;
        while got < 12 {
            match stream.read(&mut head[got..]).await.ok()? {
                0 => break,
                n => got += n,
            }
        }
        Some(http_ok(&head[..got]))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

/// An identifier for the next echo probe (its replies are told apart by it).
fn next_ident() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    (std::process::id() as u16) ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An ICMP echo to `backend`, answered within `timeout`: a raw socket of its own (the
/// vrouter has CAP_NET_RAW), on a blocking thread off the runtime.
fn echo(backend: std::net::Ipv4Addr, ident: u16, timeout: Duration) -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::Read;
    let Ok(mut socket) = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) else {
        return false;
    };
    let mut request = [0u8; 16];
    request[0] = wire::icmp::v4::ECHO_REQUEST;
    request[4..6].copy_from_slice(&ident.to_be_bytes());
    request[6..8].copy_from_slice(&1u16.to_be_bytes());
    request[8..].copy_from_slice(b"vrouter!");
    let check = wire::checksum::finish(wire::checksum::sum(&request, 0));
    request[2..4].copy_from_slice(&check.to_be_bytes());
    if socket
        .send_to(&request, &SocketAddr::from((backend, 0)).into())
        .is_err()
    {
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        // A raw socket gets every ICMP message with its IP header: ours is the echo
        // reply from the backend with our identifier.
        let Ok(n) = socket.read(&mut buf) else {
            return false;
        };
        let Some(header_len) = buf.first().map(|b| usize::from(b & 0x0f) * 4) else {
            continue;
        };
        let (ip, icmp) = buf[..n].split_at(header_len.min(n));
        let from_backend = ip.get(12..16) == Some(&backend.octets()[..]);
        let reply =
            icmp.first() == Some(&wire::icmp::v4::ECHO_REPLY) && icmp.get(4..6) == Some(&ident.to_be_bytes()[..]);
        if from_backend && reply {
            return true;
        }
    }
}

/// True for a status line of a 2xx or 3xx answer (`HTTP/1.x 200 ...`).
fn http_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_whitespace();
    let (Some(version), Some(status)) = (parts.next(), parts.next()) else {
        return false;
    };
    version.starts_with("HTTP/1.") && status.len() == 3 && (status.starts_with('2') || status.starts_with('3'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(http_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(http_ok(b"HTTP/1.0 302 Found"));
        assert!(!http_ok(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!http_ok(b"SSH-2.0-OpenSSH"));
        assert!(!http_ok(b""));
        assert!(!http_ok(b"HTTP/1.1 20"));
    }

    fn target(port: u16, kind: HealthCheckKind) -> ProbeTarget {
        ProbeTarget {
            service: "default/web".into(),
            backend: "127.0.0.1".parse().unwrap(),
            port,
            down: false,
            check: HealthCheck {
                kind,
                port: None,
                http_path: Some("/healthz".into()),
                interval_secs: 1,
                timeout_secs: 1,
                retries: 1,
            },
        }
    }

    #[tokio::test]
    async fn a_probe_passes_only_what_answers_as_asked() {
        // An HTTP server that answers /healthz 200 and anything else 404.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if line.starts_with("GET /healthz ") {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes()).await;
            }
        });
        assert!(probe(&target(port, HealthCheckKind::Http)).await);
        let mut other = target(port, HealthCheckKind::Http);
        other.check.http_path = Some("/missing".into());
        assert!(!probe(&other).await);
        assert!(probe(&target(port, HealthCheckKind::Tcp)).await);
        server.await.unwrap();
        // Nothing listens there now: refused.
        assert!(!probe(&target(port, HealthCheckKind::Tcp)).await);
    }
}
