//! Traffic between pods, through their real Linux stacks: ping (iputils), a TCP
//! transfer with its data checked end to end, UDP bursts, probes and sprays.

use super::node::Pod;
use super::traffic_threads::{enter, in_namespace};
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The wildcard address of `dst`'s family.
fn any_of(dst: IpAddr) -> IpAddr {
    if dst.is_ipv6() {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

/// Runs `body` on a thread inside the pod `pod`.
fn in_pod<T: Send + 'static>(
    pod: &Pod,
    body: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> JoinHandle<anyhow::Result<T>> {
    in_namespace(pod.ns.name(), body)
}

/// Starts a server inside `pod`: `bind` runs there first, and once it succeeded (or
/// failed) this returns; `serve` then runs on the bound socket.
fn serve_in<S, T>(
    pod: &Pod,
    bind: impl FnOnce() -> anyhow::Result<S> + Send + 'static,
    serve: impl FnOnce(S) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<T>>>
where
    T: Send + 'static,
{
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(1);
    let ns = pod.ns.name().to_string();
    let handle = std::thread::spawn(move || match enter(&ns).and_then(|_| bind()) {
        Ok(socket) => {
            let _ = ready_tx.send(Ok(()));
            serve(socket)
        }
        Err(e) => {
            let _ = ready_tx.send(Err(format!("{e:#}")));
            Err(e)
        }
    });
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => bail!("server in {}: {e}", pod.name),
        Err(_) => bail!("server in {} did not start", pod.name),
    }
}

fn join<T>(h: JoinHandle<anyhow::Result<T>>, what: &str) -> anyhow::Result<T> {
    h.join()
        .map_err(|_| anyhow::anyhow!("{what} thread panicked"))?
        .context(what.to_string())
}

/// True if `from` gets an echo reply from `to` within `tries` seconds.
pub fn ping(from: &Pod, to: IpAddr, tries: u32) -> bool {
    let deadline = tries.max(1).to_string();
    let family = if to.is_ipv6() { "-6" } else { "-4" };
    from.ns.succeeds(
        "ping",
        &[family, "-c", "1", "-w", &deadline, "-W", "1", "-q", &to.to_string()],
    )
}

/// The deterministic byte stream both ends of a transfer agree on.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (offset + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        *b = (x >> 56) as u8;
    }
}

/// FNV-1a, enough to tell intact data from damaged data.
fn fnv(hash: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Result of a transfer.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes the receiver got.
    pub bytes: u64,
    /// Whether every byte matched what was sent.
    pub intact: bool,
    /// Goodput in Mbit/s.
    pub mbit_per_s: f64,
}

/// Sends `bytes` over TCP from `from` to `to` (port 5201); the receiver checks them.
pub fn tcp_transfer(from: &Pod, to: &Pod, dst: IpAddr, bytes: u64) -> anyhow::Result<Transfer> {
    let server = serve_in(
        to,
        move || Ok(TcpListener::bind(SocketAddr::new(any_of(dst), 5201))?),
        |listener| {
            listener.set_nonblocking(true)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let (mut conn, _) = loop {
                match listener.accept() {
                    Ok(c) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            conn.set_nonblocking(false)?;
            conn.set_read_timeout(Some(Duration::from_secs(20)))?;
            let (mut hash, mut total) = (FNV_START, 0u64);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hash = fnv(hash, &buf[..n]);
                total += n as u64;
            }
            conn.write_all(&total.to_be_bytes())?;
            Ok((total, hash))
        },
    )?;
    let client = in_pod(from, move || {
        let mut conn = TcpStream::connect_timeout(&SocketAddr::new(dst, 5201), Duration::from_secs(10))?;
        conn.set_write_timeout(Some(Duration::from_secs(20)))?;
        conn.set_read_timeout(Some(Duration::from_secs(20)))?;
        let start = Instant::now();
        let (mut hash, mut sent) = (FNV_START, 0u64);
        let mut buf = vec![0u8; 64 * 1024];
        while sent < bytes {
            let n = (bytes - sent).min(buf.len() as u64) as usize;
            pattern(sent, &mut buf[..n]);
            conn.write_all(&buf[..n])?;
            hash = fnv(hash, &buf[..n]);
            sent += n as u64;
        }
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut ack = [0u8; 8];
        conn.read_exact(&mut ack)?;
        Ok((hash, start.elapsed()))
    });
    let (sent_hash, elapsed) = join(client, "TCP client")?;
    let (received, received_hash) = join(server, "TCP server")?;
    Ok(Transfer {
        bytes: received,
        intact: received == bytes && received_hash == sent_hash,
        mbit_per_s: received as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6,
    })
}

/// Result of a UDP burst.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// Datagrams sent.
    pub sent: u64,
    /// Distinct datagrams received.
    pub received: u64,
    /// Received datagrams per second over the send time.
    pub pps: f64,
}

/// Sends `count` numbered datagrams of `size` bytes from `from` to `to` (port 5202).
pub fn udp_burst(from: &Pod, to: &Pod, dst: IpAddr, count: u64, size: usize) -> anyhow::Result<Burst> {
    if size < 8 {
        bail!("datagrams need at least 8 bytes for the sequence number");
    }
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let server = serve_in(
        to,
        move || {
            let s = UdpSocket::bind(SocketAddr::new(any_of(dst), 5202))?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
        },
        move |sock| {
            let mut seen = vec![false; count as usize];
            let mut received = 0u64;
            let mut buf = [0u8; 2048];
            let mut sender_done_at: Option<Instant> = None;
            while received < count {
                if sender_done_at.is_none() && done_rx.try_recv().is_ok() {
                    sender_done_at = Some(Instant::now());
                }
                if sender_done_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
                    break;
                }
                if let Ok(n) = sock.recv(&mut buf) {
                    let seq = buf
                        .get(..8)
                        .filter(|_| n >= 8)
                        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                    if let Some(s) = seq.and_then(|s| seen.get_mut(s as usize)) {
                        if !*s {
                            *s = true;
                            received += 1;
                        }
                    }
                }
            }
            Ok(received)
        },
    )?;
    let client = in_pod(from, move || {
        let sock = UdpSocket::bind(SocketAddr::new(any_of(dst), 0))?;
        sock.connect(SocketAddr::new(dst, 5202))?;
        let mut buf = vec![0u8; size];
        let start = Instant::now();
        for seq in 0..count {
            buf[..8].copy_from_slice(&seq.to_be_bytes());
            // A full socket buffer just loses the datagram, as on a real network.
            let _ = sock.send(&buf);
        }
        Ok(start.elapsed())
    });
    let elapsed = join(client, "UDP client")?;
    let _ = done_tx.send(());
    let received = join(server, "UDP server")?;
    Ok(Burst {
        sent: count,
        received,
        pps: received as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

/// Sends one datagram from `from` (bound to `src_port`) to `to` (listening on
/// `dst_port`), up to three times; true if `to` received one.
pub fn udp_probe(from: &Pod, to: &Pod, dst: IpAddr, src_port: u16, dst_port: u16) -> anyhow::Result<bool> {
    udp_datagram(from, to, dst, src_port, dst_port, 5)
}

/// As [`udp_probe`] with a datagram of `size` bytes; true only if one arrived whole
/// (every byte as sent).
pub fn udp_datagram(
    from: &Pod,
    to: &Pod,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    size: usize,
) -> anyhow::Result<bool> {
    let datagram: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let expected = datagram.clone();
    let server = serve_in(
        to,
        move || {
            let s = UdpSocket::bind(SocketAddr::new(any_of(dst), dst_port))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            Ok(s)
        },
        move |sock| {
            let mut buf = vec![0u8; 65536];
            Ok(sock.recv(&mut buf).is_ok_and(|n| buf[..n] == expected[..]))
        },
    )?;
    let client = in_pod(from, move || {
        let sock = UdpSocket::bind(SocketAddr::new(any_of(dst), src_port))?;
        for _ in 0..3 {
            sock.send_to(&datagram, SocketAddr::new(dst, dst_port))?;
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    });
    join(client, "probe client")?;
    join(server, "probe server")
}

/// Sends one datagram to each of `flows` different (source port, destination port)
/// pairs towards `dst`, paced at about `pps` datagrams per second; returns how many
/// were handed to the pod's stack.
pub fn udp_spray(from: &Pod, dst: IpAddr, flows: u32, pps: u32) -> anyhow::Result<u32> {
    udp_spray_from(from, dst, flows, pps, 0)
}

/// As [`udp_spray`], from source ports `src_port`, `src_port + 1`, ... (one socket per
/// 59000 flows; 0 lets the kernel choose), so a second run repeats the same flows.
pub fn udp_spray_from(from: &Pod, dst: IpAddr, flows: u32, pps: u32, src_port: u16) -> anyhow::Result<u32> {
    let sender = in_pod(from, move || {
        // Destination ports 1024..=60023 from as many source sockets as needed.
        let per_socket = 59_000u32;
        let sockets: Vec<UdpSocket> = (0..flows.div_ceil(per_socket))
            .map(|i| {
                UdpSocket::bind(SocketAddr::new(
                    any_of(dst),
                    if src_port == 0 { 0 } else { src_port + i as u16 },
                ))
            })
            .collect::<Result<_, _>>()?;
        let start = Instant::now();
        let mut sent = 0u32;
        for i in 0..flows {
            let port = 1024 + (i % per_socket) as u16;
            if sockets[(i / per_socket) as usize]
                .send_to(b"spray", SocketAddr::new(dst, port))
                .is_ok()
            {
                sent += 1;
            }
            // Pace: never run ahead of the wanted rate.
            let due = Duration::from_secs_f64(f64::from(i + 1) / f64::from(pps.max(1)));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(sent)
    });
    join(sender, "UDP sender")
}
