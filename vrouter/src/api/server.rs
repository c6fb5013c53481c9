//! The API server: a Unix socket, one task per connection, until shutdown.
//!
//! What it defends against (each a finding of the reliability review): a second
//! vrouter taking the socket over (a socket that answers is refused, not unlinked);
//! local users other than root, the vrouter's own user and `api_group` (peer
//! credentials, mode 0600 or 0660); connections that never send or never read (a
//! cap on connections, an idle timeout, a write timeout); answers that grow with
//! traffic (bounded lists, built off the runtime); accept errors such as running out
//! of file descriptors (logged, then a back-off instead of a spin); and changes whose
//! client gave up (not applied: see [`crate::control::task`]).

use crate::api::{ApiError, ErrorCode, Request};
use crate::control::task::{Change, ChangeResult, ControlHandle};
use crate::control::views::Views;
use anyhow::Context;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

/// Longest request line accepted: a set of network policies with their selectors
/// resolved to the pods' addresses (thousands of pods) goes in one request. Each of
/// the bounded connections buffers at most this much.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Limits of the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; more are answered `busy` and closed.
    pub max_connections: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// An answer the client does not read within this is dropped with the connection.
    pub write_timeout: Duration,
    /// Besides root and the vrouter's own user, members of this group may connect.
    pub group: Option<nix::unistd::Gid>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            group: None,
        }
    }
}

/// The bound socket, made before anything else starts so that a bad `api_socket`
/// or a running vrouter stops the start early.
#[derive(Debug)]
pub struct ApiListener {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    inode: u64,
}

impl ApiListener {
    /// Binds `path` (mode 0600, or 0660 with group `group`). Refuses a socket some
    /// process answers on; replaces one nobody answers on (left by a crash).
    pub fn bind(path: &Path, group: Option<nix::unistd::Gid>) -> anyhow::Result<Self> {
        let name = || format!("api_socket {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: creating its directory", name()))?;
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{}: another vrouter answers there; stop it first or choose another socket",
                name()
            );
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(path).with_context(|| format!("{}: removing a stale socket", name()))?
            }
            Ok(_) => anyhow::bail!("{}: exists and is not a socket", name()),
            Err(_) => {}
        }
        let listener = std::os::unix::net::UnixListener::bind(path).with_context(name)?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(name)?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(gid)).with_context(|| format!("{}: chown to group {gid}", name()))?;
        }
        listener.set_nonblocking(true).with_context(name)?;
        let inode = std::fs::metadata(path).with_context(name)?.ino();
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            inode,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Serves requests until `shutdown` resolves; then removes the socket file if it is
/// still the one this process bound.
pub async fn serve(
    listener: ApiListener,
    views: Arc<Views>,
    control: ControlHandle,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let ApiListener { listener, path, inode } = listener;
    let listener = UnixListener::from_std(listener).context("api_socket")?;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => { failures = 0; stream }
                    Err(e) => {
                        // Out of file descriptors, or memory: accept would fail again at
                        // once; wait instead of spinning, longer while it lasts.
                        failures = failures.saturating_add(1);
                        if failures.is_power_of_two() {
                            tracing::warn!("api_socket accept failed ({failures} in a row): {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10 * u64::from(failures.min(50)))).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    let busy = ApiError::new(
                        ErrorCode::Busy,
                        format!("{} connections are open already; retry", limits.max_connections),
                    );
                    let limits = Arc::clone(&limits);
                    tokio::spawn(async move { refuse(stream, busy, &limits).await });
                    continue;
                };
                let (views, control, limits) = (Arc::clone(&views), control.clone(), Arc::clone(&limits));
                tokio::spawn(async move {
                    connection(stream, &views, &control, &limits).await;
                    drop(slot);
                });
            }
        }
    }
    if std::fs::metadata(&path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

/// Answers a connection that will not be served with `error`: its first request is
/// read first (briefly), so that the client gets the answer rather than a broken
/// pipe, then the connection is closed.
async fn refuse(stream: UnixStream, error: ApiError, limits: &ServerLimits) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let _ = tokio::time::timeout(Duration::from_secs(1), read_line(&mut reader)).await;
    let _ = write_answer(&mut write, Err(error), limits).await;
}

/// True if the peer may use the API: root, the vrouter's own user, or a member of the
/// configured group (primary or supplementary).
fn peer_allowed(stream: &UnixStream, group: Option<nix::unistd::Gid>) -> bool {
    let Ok(cred) = stream.peer_cred() else {
        return false;
    };
    if cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw() {
        return true;
    }
    let Some(gid) = group.map(|g| g.as_raw()) else {
        return false;
    };
    cred.gid() == gid
        || cred.pid().is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .is_some_and(|g| g.split_whitespace().any(|n| n.parse() == Ok(gid)))
            })
        })
}

async fn connection(stream: UnixStream, views: &Arc<Views>, control: &ControlHandle, limits: &ServerLimits) {
    if !peer_allowed(&stream, limits.group) {
        let error = ApiError::new(
            ErrorCode::PermissionDenied,
            "only root, the vrouter's user and api_group may use the API",
        );
        refuse(stream, error, limits).await;
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut next: Option<Vec<u8>> = None;
    loop {
        let line = match next.take() {
            Some(line) => line,
            None => match tokio::time::timeout(limits.idle_timeout, read_line(&mut reader)).await {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => return,
            },
        };
        if line.len() > MAX_LINE {
            let error = ApiError::new(ErrorCode::BadRequest, format!("request longer than {MAX_LINE} bytes"));
            let _ = write_answer(&mut write, Err(error), limits).await;
            return;
        }
        let request = match std::str::from_utf8(&line)
            .map_err(|_| "request is not UTF-8".to_string())
            .and_then(|l| serde_json::from_str::<Request>(l.trim_end()).map_err(|e| format!("bad request: {e}")))
        {
            Ok(r) => r,
            Err(message) => {
                if write_answer(&mut write, Err(ApiError::new(ErrorCode::BadRequest, message)), limits)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let answer = match Change::from_request(request.clone()) {
            Some(change) => match change_answer(change, control, &mut reader).await {
                ChangeOutcome::Answer(answer, pipelined) => {
                    next = pipelined;
                    answer
                }
                ChangeOutcome::ClientGone => return,
            },
            None => view_answer(request, views).await,
        };
        if write_answer(&mut write, answer, limits).await.is_err() {
            return;
        }
    }
}

/// One line (with its newline), at most `MAX_LINE + 1` bytes; `None` at the end.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    match reader.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(buf),
    }
}

enum ChangeOutcome {
    /// The answer, and a request the client sent meanwhile.
    Answer(ChangeResult, Option<Vec<u8>>),
    /// The client closed the connection before the change started; it is skipped.
    ClientGone,
}

/// Submits a change and waits for it while watching the connection: a client that
/// closes it gives the change up (the control task then skips it if it has not
/// started).
async fn change_answer(
    change: Change,
    control: &ControlHandle,
    reader: &mut BufReader<OwnedReadHalf>,
) -> ChangeOutcome {
    let mut answer = match control.submit(change) {
        Ok(answer) => answer,
        Err(e) => return ChangeOutcome::Answer(Err(e), None),
    };
    let mut pipelined = None;
    loop {
        tokio::select! {
            result = &mut answer => {
                let result = result.unwrap_or_else(|_| Err(ApiError::new(ErrorCode::Unavailable, "the control task stopped")));
                return ChangeOutcome::Answer(result, pipelined);
            }
            line = read_line(reader), if pipelined.is_none() => match line {
                Some(line) => pipelined = Some(line),
                None => return ChangeOutcome::ClientGone,
            },
        }
    }
}

/// Answers a view off the runtime's thread (a large flow table takes a while to
/// scan), serialized there too, so only bytes come back.
async fn view_answer(request: Request, views: &Arc<Views>) -> ChangeResult {
    let views = Arc::clone(views);
    tokio::task::spawn_blocking(move || views.answer(&request))
        .await
        .unwrap_or_else(|e| Err(ApiError::new(ErrorCode::Internal, format!("view failed: {e}"))))
}

async fn write_answer(write: &mut OwnedWriteHalf, answer: ChangeResult, limits: &ServerLimits) -> Result<(), ()> {
    let mut bytes = match answer {
        Ok(v) => serde_json::to_vec(&serde_json::json!({ "ok": v })),
        Err(e) => serde_json::to_vec(&e.to_json()),
    }
    .unwrap_or_else(|_| br#"{"error":"answer not serializable","code":"internal"}"#.to_vec());
    bytes.push(b'\n');
    match tokio::time::timeout(limits.write_timeout, write.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
