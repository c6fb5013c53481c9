//! What the TCP benchmark measures between two pods: bulk throughput with iperf3
//! (Debian's package; one or several streams), new connections per second (each a
//! new flow: connect, a byte from the server, both ends close), and the latency of
//! one-byte request/response exchanges on an open connection (TCP_NODELAY). Every
//! loop is bounded in time; servers and clients stop with the measurement.

use crate::node::Pod;
use crate::traffic_threads::in_namespace;
use anyhow::{bail, Context};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// iperf3's port.
const IPERF_PORT: u16 = 5201;
/// The connection-rate server's port.
const CONNECT_PORT: u16 = 5301;
/// The request/response server's port.
const ECHO_PORT: u16 = 5302;
/// Client threads opening connections at once.
const CONNECTING_THREADS: usize = 4;

/// Kills a child process when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bulk TCP throughput from `client` to `server` over `streams` parallel streams for
/// `seconds`, in Gbit/s as the receiver counted it.
pub fn iperf(client: &Pod, server: &Pod, streams: u32, seconds: u32) -> anyhow::Result<f64> {
    let port = IPERF_PORT.to_string();
    let _server = Reaped(
        server
            .ns
            .command("iperf3")
            .args(["--server", "--one-off", "--port", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("iperf3 (scripts/setup.sh installs it)")?,
    );
    wait_listening(server, IPERF_PORT)?;
    let mut run = client
        .ns
        .command("iperf3")
        .args(["--client", &server.ipv4.to_string(), "--port", &port, "--json"])
        .args(["--time", &seconds.to_string(), "--parallel", &streams.to_string()])
        .args(["--connect-timeout", "3000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("iperf3 client")?;
    let mut stdout = run.stdout.take().context("iperf3's output")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 20);
    while run.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            bail!("iperf3 did not finish within {seconds} s + 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?
        .context("reading iperf3's output")?;
    received_gbps(&out)
}

/// The receiver's rate in iperf3's JSON report, in Gbit/s.
fn received_gbps(json: &str) -> anyhow::Result<f64> {
    let report: serde_json::Value = serde_json::from_str(json).context("iperf3's JSON report")?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3: {error}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .context("no end.sum_received.bits_per_second in iperf3's report")
}

/// Waits (bounded) until something listens on TCP `port` in `pod`.
fn wait_listening(pod: &Pod, port: u16) -> anyhow::Result<()> {
    let filter = format!("sport = :{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = pod.ns.exec("ss", &["-Hltn", &filter])?;
        if !out.stdout.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} in {} after 5 s", pod.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server thread in `pod` serving each accepted connection with `serve` until
/// `stop` is set; returns once it listens.
fn serve_in(
    pod: &Pod,
    port: u16,
    stop: Arc<AtomicBool>,
    serve: fn(TcpStream, &AtomicBool),
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = in_namespace(pod.ns.name(), move || {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
        listener.set_nonblocking(true)?;
        let _ = ready_tx.send(());
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    serve(s, &stop);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(50)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the server did not start listening")?;
    Ok(handle)
}

/// New connections per second from `client` to `server` over `seconds`: each
/// connects, reads the server's byte and its close, and closes (the server closes
/// first, so the client's ports are not held in TIME_WAIT).
pub fn connection_rate(client: &Pod, server: &Pod, seconds: u32) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let serving = serve_in(server, CONNECT_PORT, stop.clone(), |mut s, _| {
        let _ = s.write_all(b"!");
    })?;
    let to = SocketAddr::from((server.ipv4, CONNECT_PORT));
    let run = Duration::from_secs(u64::from(seconds));
    let clients: Vec<_> = (0..CONNECTING_THREADS)
        .map(|_| {
            in_namespace(client.ns.name(), move || {
                let end = Instant::now() + run;
                let mut made = 0u64;
                let mut buf = [0u8; 2];
                while Instant::now() < end {
                    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1))
                        .with_context(|| format!("connection {made} to {to}"))?;
                    s.set_read_timeout(Some(Duration::from_secs(1)))?;
                    s.read_exact(&mut buf[..1])?;
                    // The server's close.
                    let _ = s.read(&mut buf)?;
                    made += 1;
                }
                Ok(made)
            })
        })
        .collect();
    let started = Instant::now();
    let mut made = 0;
    let mut failure = None;
    for c in clients {
        match c.join().map_err(|_| anyhow::anyhow!("a client panicked"))? {
            Ok(n) => made += n,
            Err(e) => failure = Some(e),
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    serving.join().map_err(|_| anyhow::anyhow!("the server panicked"))??;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(made as f64 / elapsed.as_secs_f64())
}

/// Latency of one-byte request/response exchanges on one connection for up to
/// `seconds` (at most 200,000 exchanges): p50 and p99 in microseconds.
pub fn request_response(client: &Pod, server: &Pod, seconds: u32) -> anyhow::Result<(f64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let serving = serve_in(server, ECHO_PORT, stop.clone(), |mut s, stop| {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut byte = [0u8; 1];
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut byte) {
                Ok(0) => return,
                Ok(_) => {
                    if s.write_all(&byte).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    })?;
    let to = SocketAddr::from((server.ipv4, ECHO_PORT));
    let run = Duration::from_secs(u64::from(seconds));
    let measured = in_namespace(client.ns.name(), move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
        let end = Instant::now() + run;
        let mut byte = [7u8; 1];
        while Instant::now() < end && histogram.len() < 200_000 {
            let t0 = Instant::now();
            s.write_all(&byte)?;
            s.read_exact(&mut byte)?;
            histogram.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        Ok(histogram)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the client panicked"));
    stop.store(true, Ordering::Relaxed);
    serving.join().map_err(|_| anyhow::anyhow!("the server panicked"))??;
    let histogram = measured??;
    anyhow::ensure!(!histogram.is_empty(), "no exchange completed");
    let micros = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok((micros(0.5), micros(0.99)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_receivers_rate_and_iperfs_errors() {
        let report =
            r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2.5e9},"sum_received":{"bits_per_second":2.4e9}}}"#;
        assert_eq!(super::received_gbps(report).unwrap(), 2.4);
        let failed = r#"{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}"#;
        let e = super::received_gbps(failed).unwrap_err().to_string();
        assert!(e.contains("Connection refused"), "{e}");
        assert!(super::received_gbps("not json").is_err());
    }
}
