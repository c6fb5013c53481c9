//! The API server: accepts connections on the Unix socket, one task per connection,
//! until `shutdown` fires.

use super::Request;
use crate::control::Control;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Serves requests on `path` until `shutdown` resolves; removes the socket file then.
pub async fn serve(
    path: &Path,
    control: Arc<Mutex<Control>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a crashed process would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| anyhow::anyhow!("api_socket {}: {e}", path.display()))?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let control = Arc::clone(&control);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let mut buf = Vec::new();
                        match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        let too_long = buf.len() > MAX_LINE;
                        let answer = match std::str::from_utf8(&buf) {
                            _ if too_long => json!({"error": format!("request longer than {MAX_LINE} bytes")}),
                            Ok(line) => handle_line(&control, line.trim_end()),
                            Err(_) => json!({"error": "request is not UTF-8"}),
                        };
                        let mut text = answer.to_string();
                        text.push('\n');
                        if write.write_all(text.as_bytes()).await.is_err() || too_long {
                            break;
                        }
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

fn handle_line(control: &Mutex<Control>, line: &str) -> Value {
    let request: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return json!({"error": format!("bad request: {e}")}),
    };
    let mut c = match control.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    let result: anyhow::Result<Value> = (|| {
        Ok(match request {
            Request::AddInterface { spec } => {
                let id = c.add_interface(spec)?;
                json!({"vif": id.vif, "label": id.label})
            }
            Request::RemoveInterface { name } => {
                c.remove_interface(&name)?;
                Value::Null
            }
            Request::AddRoute { route } => {
                c.add_route(route)?;
                Value::Null
            }
            Request::RemoveRoute { vrf, prefix } => {
                c.remove_route(&vrf, prefix)?;
                Value::Null
            }
            Request::Interfaces => serde_json::to_value(c.interfaces())?,
            Request::Routes { vrf } => serde_json::to_value(c.routes(vrf.as_deref())?)?,
            Request::NextHops => serde_json::to_value(c.nexthops())?,
            Request::DropStats => serde_json::to_value(c.drop_stats())?,
            Request::Status => serde_json::to_value(c.status())?,
            Request::Flows { filter, limit } => serde_json::to_value(c.flows(&filter, limit))?,
            Request::FlowStats => serde_json::to_value(c.flow_stats())?,
            Request::SetVrfVni { vrf, vni } => {
                c.set_vrf_vni(&vrf, vni)?;
                Value::Null
            }
            Request::Mpls => serde_json::to_value(c.mpls())?,
            Request::Vxlan => serde_json::to_value(c.vxlan())?,
            Request::Tunnels => serde_json::to_value(c.tunnels())?,
        })
    })();
    match result {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": format!("{e:#}") }),
    }
}
