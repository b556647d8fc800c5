//! mxring in-process: the library's own `shard::start` on loopback, with a temp
//! spool and the admin API on a free port.

use std::net::SocketAddr;
use std::time::Duration;

use mxring::shard::RunningServer;

use crate::config::Toml;

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub spool: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Start mxring with `extra` appended to a base config (one shard, spool in a
    /// temp dir, admin API on a free port). `listeners` are complete [[listener]] tables.
    pub fn start(extra: &str) -> TestServer {
        Self::start_cfg("", extra)
    }

    /// As `start`, with more keys for the `[server]` table.
    pub fn start_cfg(server_keys: &str, extra: &str) -> TestServer {
        Self::start_on(tempfile::tempdir().unwrap(), server_keys, extra)
    }

    pub fn start_on(spool: tempfile::TempDir, server_keys: &str, extra: &str) -> TestServer {
        let timeout = if server_keys.contains("command_timeout") {
            ""
        } else {
            "command_timeout = \"30s\"\n"
        };
        let text = Toml::new(spool.path(), 1)
            .server(timeout)
            .server(server_keys)
            .admin("127.0.0.1:0")
            .extra(extra)
            .text();
        let config =
            mxring::config::load_str(&text, "test").unwrap_or_else(|e| panic!("{e}\n{text}"));
        // Started from a thread of its own: the start probes io_uring, and a ring's
        // task work is signalled to the thread that made it, which would see EINTR
        // in its own blocking reads (the test's raw sockets) ever after.
        let server = std::thread::spawn(move || mxring::shard::start(config, "test"))
            .join()
            .expect("the start did not panic")
            .unwrap();
        TestServer {
            server: Some(server),
            spool: Some(spool),
        }
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.server.as_ref().unwrap().address(listener).unwrap()
    }

    pub fn admin(&self) -> mxring::admin::AdminClient {
        mxring::admin::AdminClient::new(self.server.as_ref().unwrap().admin.unwrap())
    }

    /// The queue as the admin API reports it.
    pub fn queue(&self) -> Vec<mxring::admin::MessageView> {
        let (status, body) = self.admin().request("GET", "/queue").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Poll the admin API until the queue is empty. There is no event for "the
    /// queue drained" outside the server, so this polls, bounded by `secs`.
    pub fn wait_queue_empty(&self, secs: u64) {
        let mut last = Vec::new();
        let drained = crate::wait_until(Duration::from_secs(secs), "the queue to drain", || {
            last = self.queue();
            last.is_empty()
        });
        if let Err(e) = drained {
            panic!("{e}: {last:?}");
        }
    }

    /// The first recipient whose first delivery attempt is over (fails the test
    /// after `secs`).
    pub fn after_first_attempt(&self, secs: u64) -> mxring::admin::RecipientView {
        crate::wait_for(
            Duration::from_secs(secs),
            "a first delivery attempt",
            || {
                self.queue()
                    .into_iter()
                    .flat_map(|m| m.recipients)
                    .find(|r| r.attempts >= 1)
            },
        )
        .unwrap()
    }

    /// Stop (draining) and hand back the spool for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.server.take().unwrap().shutdown();
        self.spool.take().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// A route sending every domain to `addr` (so no test ever looks up real DNS), as
/// TOML to append to a config.
pub fn route_all(addr: SocketAddr) -> String {
    Toml::default().route_all(addr).text()
}
