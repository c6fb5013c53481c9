//! `vrouter-lab control-node`: a control-node peer for the lab and the tests. It
//! speaks the control node's side of XMPP to the vrouters that connect to it and
//! reflects routes between them ([`Reflector`]). In production the vrouter connects
//! to Tungsten Fabric / OpenSDN control nodes; this peer has no BGP or policy, and
//! exists to exercise the vrouter's XMPP side without them. Configuration it serves
//! from a directory (`DIR/HOST/*.xml`, IF-MAP `<config>` documents), to each vrouter
//! that subscribed its own, in file name order; files added or changed later are
//! sent when they appear.

use control_client::xmpp::reflector::{AgentId, Outgoing, Reflector};
use control_client::xmpp::{Element, Frame, Framer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Keepalives go out this often: inside any hold time a vrouter may configure (the
/// peer does not know it; a control node sends at a third of the negotiated one).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// Longest stanza taken from a vrouter.
const MAX_STANZA: usize = 1 << 20;
/// A vrouter's end-of-RIB waits for this long without routes for it, as a control
/// node's does (tf-controller waits for a quiet channel): after this peer restarts,
/// the other vrouters reconnect and publish again before it tells one that its routes
/// are complete (which makes that vrouter sweep what it held from before).
const END_OF_RIB_QUIET: Duration = Duration::from_secs(3);
/// ... but no longer than this.
const END_OF_RIB_MAX: Duration = Duration::from_secs(30);
/// How often the config directory is looked at for new or changed files.
const CONFIG_POLL: Duration = Duration::from_millis(200);

/// The reflector and a way to reach each connected vrouter.
#[derive(Debug, Default)]
struct Shared {
    reflector: Reflector,
    outboxes: HashMap<AgentId, mpsc::UnboundedSender<String>>,
}

impl Shared {
    fn dispatch(&self, out: Vec<Outgoing>) {
        for (to, message) in out {
            if let Some(tx) = self.outboxes.get(&to) {
                let _ = tx.send(message);
            }
        }
    }
}

/// Serves vrouters on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    serve_with_config(listener, stop, None).await
}

/// Serves vrouters on `listener`, with the configuration in `config_dir`, until
/// `stop` turns true.
pub async fn serve_with_config(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    config_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    serve_with(listener, stop, config_dir, None).await
}

/// Serves vrouters on `listener`, with the configuration in `config_dir` and, with
/// `tls`, requiring STARTTLS (as a control node with `xmpp_auth_enable`), until
/// `stop` turns true.
pub async fn serve_with(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    config_dir: Option<PathBuf>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut next_id: AgentId = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, from) = accepted?;
                next_id += 1;
                tracing::info!(agent = next_id, %from, "vrouter connected");
                let connection = Connection {
                    id: next_id,
                    shared: Arc::clone(&shared),
                    config_dir: config_dir.clone(),
                    tls: acceptor.clone(),
                };
                tokio::spawn(agent(connection, stream, stop.clone()));
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// What one vrouter's connection is served with.
struct Connection {
    id: AgentId,
    shared: Arc<Mutex<Shared>>,
    config_dir: Option<PathBuf>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A connection's byte stream: TCP, or TLS over it after STARTTLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The STARTTLS features, the answer to `<starttls/>`.
const TLS_FEATURES: &str =
    "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls></stream:features>";
const TLS_PROCEED: &str = "<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>";

/// One vrouter's connection.
async fn agent(connection: Connection, tcp: TcpStream, mut stop: watch::Receiver<bool>) {
    let Connection {
        id,
        shared,
        config_dir,
        tls,
    } = connection;
    let mut stream: Box<dyn Io> = Box::new(tcp);
    // Until STARTTLS is through (with TLS required), only it is taken.
    let mut secured = tls.is_none();
    let mut start_tls = false;
    let mut host = String::new();
    let mut config_sent = ConfigSent::default();
    let mut config_poll = tokio::time::interval(CONFIG_POLL);
    let (tx, mut outbox) = mpsc::unbounded_channel();
    if let Ok(mut s) = shared.lock() {
        s.outboxes.insert(id, tx);
    }
    let mut framer = Framer::new(MAX_STANZA);
    let mut buf = vec![0u8; 64 * 1024];
    let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
    // The end-of-RIB held back, when it is due, and the latest it may wait until.
    let mut end_of_rib: Option<(String, tokio::time::Instant, tokio::time::Instant)> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    'connection: loop {
        let eor_due = end_of_rib.as_ref().map_or(far, |(_, due, _)| *due);
        let write = tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break 'connection,
                Ok(n) => {
                    framer.push(&buf[..n]);
                    let mut replies = String::new();
                    loop {
                        match framer.next_frame() {
                            Ok(Some(Frame::StreamOpen(tag))) => {
                                host = Element::parse(&format!("{tag}</stream:stream>"))
                                    .ok()
                                    .and_then(|e| e.attr("from").map(str::to_string))
                                    .unwrap_or_default();
                                replies.push_str(&control_client::xmpp::messages::control_node_stream_open(&host));
                                if !secured {
                                    replies.push_str(TLS_FEATURES);
                                } else if let Ok(mut s) = shared.lock() {
                                    s.reflector.connect(id, &host);
                                }
                            }
                            Ok(Some(Frame::Stanza(text))) if !secured => {
                                // Anything but STARTTLS in the clear ends the connection.
                                if !Element::parse(&text).is_ok_and(|e| e.name == "starttls") {
                                    break 'connection;
                                }
                                replies.push_str(TLS_PROCEED);
                                start_tls = true;
                                break;
                            }
                            Ok(Some(Frame::Stanza(text))) => {
                                let Ok(stanza) = Element::parse(&text) else { continue };
                                if let Ok(mut s) = shared.lock() {
                                    let out = s.reflector.handle(id, &stanza);
                                    s.dispatch(out);
                                }
                            }
                            Ok(Some(Frame::StreamClose)) | Err(_) => break 'connection,
                            Ok(None) => break,
                        }
                    }
                    replies
                }
            },
            message = outbox.recv() => match message {
                Some(m) if m.contains("0/0/EndOfRib") => {
                    let now = tokio::time::Instant::now();
                    end_of_rib = Some((m, now + END_OF_RIB_QUIET, now + END_OF_RIB_MAX));
                    String::new()
                }
                Some(m) => {
                    // Routes for it: its end-of-RIB waits for quiet again.
                    if let Some((_, due, latest)) = &mut end_of_rib {
                        *due = (tokio::time::Instant::now() + END_OF_RIB_QUIET).min(*latest);
                    }
                    m
                }
                None => break 'connection,
            },
            _ = tokio::time::sleep_until(eor_due), if end_of_rib.is_some() => {
                end_of_rib.take().map(|(m, ..)| m).unwrap_or_default()
            }
            _ = config_poll.tick(), if config_dir.is_some() => {
                let wants = shared.lock().is_ok_and(|s| s.reflector.wants_config(id));
                // The vrouter names its directory: never a path out of the config dir.
                let plain = !host.is_empty() && !host.starts_with('.') && !host.contains(['/', '\\']);
                match (&config_dir, wants && plain) {
                    (Some(dir), true) => config_sent.new_messages(&dir.join(&host), &host),
                    _ => String::new(),
                }
            }
            _ = keepalive.tick(), if secured => "\u{200}".to_string(),
            _ = stop.changed() => break 'connection,
        };
        if !write.is_empty() && stream.write_all(write.as_bytes()).await.is_err() {
            break;
        }
        if std::mem::take(&mut start_tls) {
            let Some(acceptor) = &tls else { break };
            let plain = std::mem::replace(&mut stream, Box::new(tokio::io::duplex(1).0));
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(plain)).await {
                Ok(Ok(secure)) => {
                    stream = Box::new(secure);
                    secured = true;
                    // The vrouter opens its stream again inside TLS.
                    framer = Framer::new(MAX_STANZA);
                }
                _ => {
                    tracing::warn!(agent = id, "TLS handshake with a vrouter failed");
                    break;
                }
            }
        }
    }
    let _ = stream.write_all(b"</stream:stream>").await;
    if let Ok(mut s) = shared.lock() {
        s.outboxes.remove(&id);
        let out = s.reflector.disconnect(id);
        s.dispatch(out);
    }
    tracing::info!(agent = id, "vrouter disconnected");
}

/// The config files sent to one vrouter, with the length and time they had.
#[derive(Debug, Default)]
struct ConfigSent(BTreeMap<PathBuf, (u64, std::time::SystemTime)>);

impl ConfigSent {
    /// The config messages for the files of `dir` not sent yet (or changed since).
    fn new_messages(&mut self, dir: &Path, host: &str) -> String {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return String::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        let mut out = String::new();
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
            if self.0.get(&path) == Some(&stamp) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // A file still being written does not parse: it is taken next time.
            if Element::parse(text.trim()).is_err() {
                continue;
            }
            self.0.insert(path, stamp);
            out.push_str(&control_client::xmpp::messages::config_message(host, text.trim()));
        }
        out
    }
}

#[cfg(test)]
mod tests;
