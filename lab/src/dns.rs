//! kube-dns for the lab and the tests, and a resolver that queries it the way glibc's
//! does. kube-dns is dnsmasq (a real DNS server, Debian's `dnsmasq-base`) in a pod,
//! answering `cluster.local` from the hosts file `vrouter apply --dns-hosts` writes
//! (and nothing else: no upstream). The resolver sends the A and AAAA queries of a
//! name from one socket back to back, as `getaddrinfo` does, which is what makes
//! connection-tracking races show (a lost query is a five-second timeout).
//!
//! The DNS messages are written and read here (RFC 1035 section 4: a 12-byte header,
//! one question; of an answer only the header and the A / AAAA records are read).

use super::netns::Netns;
use super::traffic_threads::in_namespace;
use anyhow::{bail, Context};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Record types asked for.
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// dnsmasq in a pod; stopped when dropped.
#[derive(Debug)]
pub struct KubeDns {
    child: Child,
}

impl KubeDns {
    /// Starts dnsmasq in `pod`, on `listen` port 53 (UDP and TCP), serving the hosts
    /// file `hosts` for `cluster.local`; returns once it answers.
    pub fn start(pod: &Netns, listen: Ipv4Addr, hosts: &Path) -> anyhow::Result<Self> {
        let child = pod
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--local=/cluster.local/",
                "--bind-interfaces",
                "--user=root",
                "--pid-file",
                "--cache-size=1000",
            ])
            .arg(format!("--listen-address={listen}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("dnsmasq (Debian's dnsmasq-base)")?;
        let mut dns = Self { child };
        let server = SocketAddr::new(listen.into(), 53);
        let deadline = Instant::now() + Duration::from_secs(5);
        while resolve(
            pod,
            server,
            "kube-dns.invalid.cluster.local",
            Duration::from_millis(200),
        )
        .is_err()
        {
            if let Ok(Some(status)) = dns.child.try_wait() {
                let mut said = String::new();
                if let Some(mut e) = dns.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut said);
                }
                bail!("dnsmasq exited ({status}): {said}");
            }
            if Instant::now() > deadline {
                bail!("dnsmasq on {listen} does not answer");
            }
        }
        Ok(dns)
    }
}

impl Drop for KubeDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The A answers.
    pub v4: Vec<Ipv4Addr>,
    /// The AAAA answers.
    pub v6: Vec<Ipv6Addr>,
    /// The A query's response code (0: no error, 3: no such name).
    pub rcode: u8,
}

/// Looks `name` up at `server` from inside `ns`: A and AAAA from one new socket, back
/// to back; both answers within `timeout`, or an error saying which is missing.
pub fn resolve(ns: &Netns, server: SocketAddr, name: &str, timeout: Duration) -> anyhow::Result<Resolved> {
    let name = name.to_string();
    in_namespace(ns.name(), move || resolve_here(server, &name, 1, timeout))
        .join()
        .map_err(|_| anyhow::anyhow!("resolver thread panicked"))?
}

/// Counts of many lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupRun {
    /// Lookups made (each an A and an AAAA query).
    pub lookups: u32,
    /// Lookups with an answer missing after the timeout.
    pub timeouts: u32,
    /// Lookups answered with another address than expected.
    pub wrong: u32,
    /// The slowest lookup.
    pub slowest: Duration,
}

/// `count` lookups of `name` (expected: `want`) at `server` from inside `ns`, each
/// from a new socket (a new flow), one after the other.
pub fn lookups(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    want: Ipv4Addr,
    count: u32,
    timeout: Duration,
) -> anyhow::Result<LookupRun> {
    let name = name.to_string();
    in_namespace(ns.name(), move || {
        let mut run = LookupRun::default();
        for i in 0..count {
            let started = Instant::now();
            run.lookups += 1;
            match resolve_here(server, &name, i as u16, timeout) {
                Ok(r) if r.v4 == [want] => {}
                Ok(_) => run.wrong += 1,
                Err(_) => run.timeouts += 1,
            }
            run.slowest = run.slowest.max(started.elapsed());
        }
        Ok(run)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("resolver thread panicked"))?
}

fn resolve_here(server: SocketAddr, name: &str, id: u16, timeout: Duration) -> anyhow::Result<Resolved> {
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))?;
    socket.connect(server)?;
    let (id_a, id_aaaa) = (id.wrapping_mul(2), id.wrapping_mul(2).wrapping_add(1));
    socket.send(&query(id_a, name, TYPE_A))?;
    socket.send(&query(id_aaaa, name, TYPE_AAAA))?;
    let deadline = Instant::now() + timeout;
    let (mut a, mut aaaa): (Option<Answer>, Option<Answer>) = (None, None);
    let mut buf = [0u8; 1500];
    while a.is_none() || aaaa.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "{name}: no answer to {} within {timeout:?}",
                match (&a, &aaaa) {
                    (None, None) => "A and AAAA",
                    (None, _) => "A",
                    _ => "AAAA",
                }
            );
        }
        socket.set_read_timeout(Some(left))?;
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let Some(answer) = parse(&buf[..n]) else { continue };
        if answer.id == id_a {
            a = Some(answer);
        } else if answer.id == id_aaaa {
            aaaa = Some(answer);
        }
    }
    let (a, aaaa) = (a.unwrap_or_default(), aaaa.unwrap_or_default());
    Ok(Resolved {
        v4: a.v4,
        v6: aaaa.v6,
        rcode: a.rcode,
    })
}

/// A recursive query for `name`'s `qtype` records (RFC 1035 4.1).
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

#[derive(Debug, Default)]
struct Answer {
    id: u16,
    rcode: u8,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

/// Skips a (possibly compressed) name at `at`; where it ends.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The header and the A / AAAA answers of a response.
fn parse(m: &[u8]) -> Option<Answer> {
    let word = |at: usize| Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]));
    if m.len() < 12 || m[2] & 0x80 == 0 {
        return None; // not a response
    }
    let mut answer = Answer {
        id: word(0)?,
        rcode: m[3] & 0x0f,
        ..Answer::default()
    };
    let (questions, answers) = (word(4)?, word(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(m, at)? + 4;
    }
    for _ in 0..answers {
        at = skip_name(m, at)?;
        let (rtype, rdlen) = (word(at)?, usize::from(word(at + 8)?));
        let data = m.get(at + 10..at + 10 + rdlen)?;
        match (rtype, data.len()) {
            (TYPE_A, 4) => answer.v4.push(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (TYPE_AAAA, 16) => answer.v6.push(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => {}
        }
        at += 10 + rdlen;
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_the_rfc_1035_bytes_and_an_answer_is_read_back() {
        let q = query(0x1234, "web.default.svc.cluster.local", TYPE_A);
        assert_eq!(&q[..12], &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..16], b"\x03web");
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0, 1]);
        // The response: the query turned round with one A answer (a pointer to the name).
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 198, 18, 100, 50]);
        let a = parse(&r).unwrap();
        assert_eq!((a.id, a.rcode), (0x1234, 0));
        assert_eq!(a.v4, [Ipv4Addr::new(198, 18, 100, 50)]);
        assert!(parse(&q).is_none(), "a query is no answer");
        assert!(parse(&r[..20]).is_none_or(|a| a.v4.is_empty()), "cut short: no panic");
    }
}
