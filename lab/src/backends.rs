//! Backends that say who they are: servers in pods that answer every request with
//! the pod's name (TCP: a line per line; UDP: a datagram per datagram), and clients
//! that count which backend answered, so a test or the lab sees how a service spread
//! its connections and whether a connection stayed on its backend.

use super::netns::Netns;
use super::traffic_threads::in_namespace;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a server thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a client waits for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Named servers in one pod on some TCP and UDP ports (IPv4); they stop when dropped.
#[derive(Debug)]
pub struct NamedServers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

impl NamedServers {
    /// Starts servers in namespace `ns` answering with `name` on `tcp` and `udp`
    /// ports; returns once every socket is bound.
    pub fn start(ns: &Netns, name: &str, tcp: &[u16], udp: &[u16]) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut servers = Self {
            stop: stop.clone(),
            threads: Vec::new(),
            accepted: Arc::default(),
        };
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Result<(), String>>();
        let sockets = tcp.iter().map(|p| (*p, true)).chain(udp.iter().map(|p| (*p, false)));
        for (port, is_tcp) in sockets {
            let (stop, ready, name) = (stop.clone(), ready_tx.clone(), name.to_string());
            let accepted = servers.accepted.clone();
            servers.threads.push(in_namespace(ns.name(), move || {
                let bound = if is_tcp {
                    bind_tcp(port).map(Socket::Tcp)
                } else {
                    bind_udp(port).map(Socket::Udp)
                };
                let socket = match bound {
                    Ok(s) => {
                        let _ = ready.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("port {port}: {e:#}")));
                        return Err(e);
                    }
                };
                match socket {
                    Socket::Tcp(l) => serve_tcp(l, &name, &stop, &accepted),
                    Socket::Udp(s) => serve_udp(s, &name, &stop),
                }
            }));
        }
        for _ in 0..tcp.len() + udp.len() {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("named server {name}: {e}"),
                Err(_) => bail!("named server {name} did not start"),
            }
        }
        Ok(servers)
    }
}

impl NamedServers {
    /// TCP connections accepted so far (health probes included).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for NamedServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn bind_tcp(port: u16) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn bind_udp(port: u16) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

fn serve_tcp(
    listener: TcpListener,
    name: &str,
    stop: &Arc<AtomicBool>,
    accepted: &std::sync::atomic::AtomicU64,
) -> anyhow::Result<()> {
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                let (name, stop) = (name.to_string(), stop.clone());
                connections.push(std::thread::spawn(move || answer_lines(stream, &name, &stop)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e).context("accept"),
        }
        connections.retain(|c| !c.is_finished());
    }
    for c in connections {
        let _ = c.join();
    }
    Ok(())
}

/// Answers every line on `stream` with `name`, until the peer closes or `stop`.
fn answer_lines(stream: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                line.clear();
                if writer.write_all(format!("{name}\n").as_bytes()).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn serve_udp(socket: UdpSocket, name: &str, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            // "who": the name; a longer question (see `ask_udp_sized`): the name and
            // a line break, padded to the question's size.
            Ok((n, from)) if n > 3 => {
                let mut answer = format!("{name}\n").into_bytes();
                answer.resize(n.max(answer.len()), b'.');
                socket.send_to(&answer, from)?;
            }
            Ok((_, from)) => {
                socket.send_to(name.as_bytes(), from)?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("recv"),
        }
    }
    Ok(())
}

/// Which backends answered a run of connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spread {
    /// Connections answered, by the backend's name.
    pub by_backend: BTreeMap<String, u32>,
    /// Connections that failed (refused, reset, timed out).
    pub failed: u32,
    /// Why the first one failed.
    pub first_error: Option<String>,
}

impl Spread {
    /// The largest relative distance from an even share over `backends` backends
    /// (0.2: every backend got within 20 % of its share).
    pub fn worst_deviation(&self, backends: usize) -> f64 {
        let total: u32 = self.by_backend.values().sum();
        let even = f64::from(total) / backends.max(1) as f64;
        let seen = self.by_backend.values().map(|n| (f64::from(*n) - even).abs());
        let unseen = (self.by_backend.len() < backends).then_some(even);
        seen.chain(unseen).fold(0.0, f64::max) / even.max(1e-9)
    }
}

/// Opens `connections` TCP connections, one after the other, from namespace `from`
/// to `dst`:`port`, asks each who answers, and closes it.
pub fn tcp_spread(from: &Netns, dst: IpAddr, port: u16, connections: u32) -> anyhow::Result<Spread> {
    let client = in_namespace(from.name(), move || {
        let mut spread = Spread::default();
        for _ in 0..connections {
            let answer = TcpStream::connect_timeout(&SocketAddr::new(dst, port), ANSWER_TIMEOUT)
                .map_err(anyhow::Error::from)
                .and_then(|mut s| ask(&mut s));
            match answer {
                Ok(name) => *spread.by_backend.entry(name).or_default() += 1,
                Err(e) => {
                    spread.failed += 1;
                    spread.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        Ok(spread)
    });
    client.join().map_err(|_| anyhow::anyhow!("spread client panicked"))?
}

/// Opens `count` TCP connections from namespace `from` to `dst`:`port` and keeps them
/// open (ask each with [`ask`]).
pub fn tcp_sessions(from: &Netns, dst: IpAddr, port: u16, count: u32) -> anyhow::Result<Vec<TcpStream>> {
    let client = in_namespace(from.name(), move || {
        (0..count)
            .map(|_| {
                let s = TcpStream::connect_timeout(&SocketAddr::new(dst, port), ANSWER_TIMEOUT)?;
                s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                Ok(s)
            })
            .collect()
    });
    client.join().map_err(|_| anyhow::anyhow!("session client panicked"))?
}

/// Asks the backend at the other end of `stream` its name.
pub fn ask(stream: &mut TcpStream) -> anyhow::Result<String> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(b"who\n")?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.last() != Some(&b'\n') {
        match std::io::Read::read(stream, &mut byte)? {
            0 => bail!("closed"),
            _ => answer.push(byte[0]),
        }
    }
    answer.pop();
    Ok(String::from_utf8(answer)?)
}

/// A UDP socket in namespace `from` bound to `src_port` (one flow per destination:
/// ask it with [`ask_udp`]).
pub fn udp_client(from: &Netns, src_port: u16) -> anyhow::Result<UdpSocket> {
    let client = in_namespace(from.name(), move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, src_port))?;
        s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(s)
    });
    client.join().map_err(|_| anyhow::anyhow!("UDP client panicked"))?
}

/// Sends one datagram from `socket` to `dst`:`port` and returns the name that answers
/// it (one datagram, no retry: a lost datagram is an error).
pub fn ask_udp(socket: &UdpSocket, dst: IpAddr, port: u16) -> anyhow::Result<String> {
    socket.send_to(b"who", (dst, port))?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).context("no answer")?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// [`ask_udp`] with a question of `size` bytes (at least 4), answered in as many:
/// datagrams larger than the path's MTU go both ways in fragments.
pub fn ask_udp_sized(socket: &UdpSocket, dst: IpAddr, port: u16, size: usize) -> anyhow::Result<String> {
    let mut question = b"who".to_vec();
    question.resize(size.max(4), b'.');
    socket.send_to(&question, (dst, port))?;
    let mut buf = vec![0u8; 65_536];
    let (n, _) = socket.recv_from(&mut buf).context("no answer")?;
    let answer = String::from_utf8_lossy(&buf[..n]);
    let Some((name, _)) = answer.split_once('\n') else {
        bail!("an answer of {n} bytes without the name's line break");
    };
    if n != question.len() {
        bail!("{name} answered {n} bytes to {}", question.len());
    }
    Ok(name.to_string())
}

/// A health check that notices quickly (TCP, probed every second, a second to
/// answer, out after two failures in a row), as the lab and the tests use it.
pub fn quick_tcp_check() -> control_client::HealthCheck {
    control_client::HealthCheck {
        kind: control_client::HealthCheckKind::Tcp,
        port: None,
        http_path: None,
        interval_secs: 1,
        timeout_secs: 1,
        retries: 2,
    }
}

/// Asks, from namespace `from` on a thread of its own, who answers at `dst`:`port`
/// over TCP (a new connection) or UDP (a datagram from an ephemeral port): the name,
/// or an error when nothing answers within the answer timeout. Many probes run at
/// once this way, so a matrix of denied pairs costs one timeout, not one each.
pub fn spawn_ask(from: &Netns, dst: IpAddr, port: u16, udp: bool) -> JoinHandle<anyhow::Result<String>> {
    in_namespace(from.name(), move || {
        if udp {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            ask_udp(&s, dst, port)
        } else {
            let mut s = TcpStream::connect_timeout(&SocketAddr::new(dst, port), ANSWER_TIMEOUT)?;
            ask(&mut s)
        }
    })
}
