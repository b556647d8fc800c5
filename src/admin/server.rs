//! The admin HTTP server (tiny_http on its own thread).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Method, Response, Server};

use super::views::MessageView;
use crate::delivery::operator::{OperatorAction, OperatorRefusal, OperatorReply, OperatorRequest};
use crate::queue::parse_id;
use crate::queue::{QueueView, QueuedMessage};

pub struct ShardHandle {
    pub queue: QueueView,
    pub commands: tokio::sync::mpsc::UnboundedSender<OperatorRequest>,
}

pub struct AdminServer {
    server: Arc<Server>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    pub fn start(addr: SocketAddr, shards: Vec<ShardHandle>) -> std::io::Result<AdminServer> {
        let server =
            Arc::new(Server::http(addr).map_err(|e| std::io::Error::other(e.to_string()))?);
        let s = server.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mxring-admin".into())
            .spawn(move || {
                // Polls a stop flag: tiny_http's unblock() can be missed by a thread not
                // yet waiting, and a stuck admin thread would hold the spool open.
                while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = match s.recv_timeout(std::time::Duration::from_millis(200)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(_) => continue,
                    };
                    let (status, body) = route(&shards, request.method(), request.url());
                    let content_type: &[u8] = if request.url() == "/metrics" {
                        b"text/plain; version=0.0.4; charset=utf-8"
                    } else {
                        b"application/json"
                    };
                    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type)
                        .expect("static header");
                    let _ = request.respond(
                        Response::from_string(body)
                            .with_status_code(status)
                            .with_header(header),
                    );
                }
            })?;
        Ok(AdminServer {
            server,
            stop,
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.server.server_addr().to_ip().expect("TCP listener")
    }

    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn error(status: u16, msg: &str) -> (u16, String) {
    (status, json(&serde_json::json!({ "error": msg })))
}

/// The slice holding `id`: the shard that made it, or shard 0 for adopted slices.
fn owner(shards: &[ShardHandle], id: u64) -> usize {
    let s = QueuedMessage::shard_of(id);
    if s < shards.len() {
        s
    } else {
        0
    }
}

fn find(shards: &[ShardHandle], id: u64) -> Option<(usize, QueuedMessage)> {
    shards
        .iter()
        .enumerate()
        .find_map(|(i, h)| h.queue.get(id).ok().flatten().map(|r| (i, r)))
}

fn route(shards: &[ShardHandle], method: &Method, url: &str) -> (u16, String) {
    let parts: Vec<&str> = url.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::Get, ["health"]) => (200, json(&serde_json::json!({"status": "ok"}))),
        (Method::Get, ["queue"]) => {
            let mut all: Vec<MessageView> = shards
                .iter()
                .enumerate()
                .flat_map(|(i, h)| {
                    h.queue
                        .scan()
                        .map(move |(id, r)| MessageView::from_record(id, i, &r))
                })
                .collect();
            all.sort_by_key(|m| m.arrival_ms);
            (200, json(&all))
        }
        (Method::Get, ["tls-report"]) => {
            let mut all = Vec::new();
            for h in shards {
                let counts = h
                    .queue
                    .aux(crate::tlsrpt::counters::TREE)
                    .and_then(|t| crate::tlsrpt::counters::read(&t));
                match counts {
                    Ok(c) => all.extend(c),
                    Err(e) => return error(500, &e.to_string()),
                }
            }
            all.sort_by(|a, b| {
                (a.period_start_ms, &a.policy_domain).cmp(&(b.period_start_ms, &b.policy_domain))
            });
            (200, json(&all))
        }
        (Method::Get, ["metrics"]) => (200, super::metrics::prometheus(shards)),
        (Method::Get, ["metrics.json"]) => {
            let sizes: Vec<usize> = shards.iter().map(|h| h.queue.len()).collect();
            (
                200,
                json(&serde_json::json!({
                    "queue_per_shard": sizes,
                    "queued": sizes.iter().sum::<usize>(),
                    "store": shards.first().map(|h| h.queue.stats()),
                })),
            )
        }
        (Method::Get, ["queue", id]) => {
            let Some(id) = parse_id(id) else {
                return error(400, "bad queue id");
            };
            let Some((shard, rec)) = find(shards, id) else {
                return error(404, "no such message");
            };
            let mut view = MessageView::from_record(id, shard, &rec);
            if let Ok(Some(body)) = shards[shard].queue.body(id) {
                let end = body
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 2)
                    .unwrap_or(body.len());
                view.headers = Some(String::from_utf8_lossy(&body[..end]).into_owned());
            }
            (200, json(&view))
        }
        (Method::Post, ["queue", id, action]) => {
            let Some(id) = parse_id(id) else {
                return error(400, "bad queue id");
            };
            let action = match *action {
                "retry" => OperatorAction::Retry,
                "delete" => OperatorAction::Delete,
                "bounce" => OperatorAction::Bounce,
                _ => return error(404, "unknown action (retry, delete, bounce)"),
            };
            let (tx, rx) = std::sync::mpsc::channel();
            let shard = owner(shards, id);
            if shards[shard]
                .commands
                .send(OperatorRequest {
                    id,
                    action,
                    reply: tx,
                })
                .is_err()
            {
                return error(503, "shard is stopping");
            }
            match rx.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(Ok(OperatorReply::Done(msg))) => {
                    (200, json(&serde_json::json!({ "result": msg })))
                }
                Ok(Ok(OperatorReply::AfterAttempt(msg))) => (
                    202,
                    json(&serde_json::json!({ "result": msg, "after_attempt": true })),
                ),
                Ok(Err(OperatorRefusal::NoSuchMessage(msg))) => error(404, &msg),
                Ok(Err(OperatorRefusal::InProgress(msg))) => error(409, &msg),
                Ok(Err(OperatorRefusal::Failed(msg))) => error(500, &msg),
                Err(_) => error(504, "shard did not answer"),
            }
        }
        _ => error(404, "not found"),
    }
}
