//! Shared pieces of the integration tests: an in-process mxring on loopback with a
//! temp spool, a blocking SMTP client with rustls, and a scriptable receiving SMTP
//! server (the next hop) that reports each message on a channel.

use std::net::SocketAddr;

use mxring::shard::RunningServer;

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
        let text = format!(
            "[server]\nhostname = \"mx.test\"\nshards = 1\nspool = \"{}\"\n{timeout}{server_keys}[admin]\naddress = \"127.0.0.1:0\"\n{extra}",
            spool.path().display()
        );
        let config =
            mxring::config::load_str(&text, "test").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let server = mxring::shard::start(config, "test").unwrap();
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let q = self.queue();
            if q.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "queue did not drain: {q:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
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

/// A route sending every domain to `addr` (so no test ever looks up real DNS).
pub fn route_all(addr: SocketAddr) -> String {
    format!(
        "[[route]]\ndomains = [\"*\"]\nnext_hop = \"[{}]:{}\"\n",
        addr.ip(),
        addr.port()
    )
}

/// A loopback port with nothing listening (connections are refused).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
