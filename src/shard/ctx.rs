//! What one shard owns: its queue slice, id source, TLS config, session configs,
//! connection count and scheduler. Shard-local (Rc, Cell): never shared across cores.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::delivery::Scheduler;
use crate::policy::Policy;
use crate::proto::SessionConfig;
use crate::queue::IdSource;
use crate::queue::ShardQueue;

/// Settings that SIGHUP can replace as a whole.
pub struct Settings {
    pub config: Arc<Config>,
    pub policy: Arc<Policy>,
    pub tls_server: Arc<rustls::ServerConfig>,
    pub sessions: HashMap<String, (Arc<SessionConfig>, Arc<crate::config::ListenerConfig>)>,
    /// The password checkers (one pool for the server, kept across reloads).
    pub auth: Arc<crate::auth::Authenticator>,
}

impl Settings {
    pub fn build(
        config: Arc<Config>,
        policy: Arc<Policy>,
        tls_server: Arc<rustls::ServerConfig>,
        auth: Arc<crate::auth::Authenticator>,
    ) -> Settings {
        let sessions = config
            .listeners
            .iter()
            .map(|l| {
                let cfg = SessionConfig {
                    hostname: config.server.hostname.clone(),
                    max_message_size: config.server.max_message_size.0,
                    max_recipients: config.server.max_recipients,
                    max_errors: config.server.max_errors,
                    listener: l.name.clone(),
                    listener_tls: l.tls,
                    policy: policy.clone(),
                    auth: crate::proto::server::SubmissionConfig {
                        mode: l.auth,
                        show_login_in_received: config.auth.show_login_in_received,
                    },
                    postmaster: config.server.postmaster_address(),
                };
                (l.name.clone(), (Arc::new(cfg), Arc::new(l.clone())))
            })
            .collect();
        Settings {
            config,
            policy,
            tls_server,
            sessions,
            auth,
        }
    }
}

pub struct ShardCtx {
    pub index: usize,
    pub config: Arc<Config>,
    settings: RefCell<Arc<Settings>>,
    pub queue: ShardQueue,
    pub ids: IdSource,
    pub connections: Cell<usize>,
    pub space: crate::queue::space::SpaceGauge,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub scheduler: Rc<Scheduler>,
    pub ip_limits: RefCell<super::iplimit::IpLimits>,
    pub unreachable: Rc<crate::delivery::Unreachable>,
}

impl ShardCtx {
    pub fn new(
        index: usize,
        settings: Arc<Settings>,
        queue: ShardQueue,
        ids: IdSource,
        shutdown: tokio::sync::watch::Receiver<bool>,
        scheduler: Rc<Scheduler>,
        shards: usize,
    ) -> Self {
        let s = &settings.config.server;
        let ip_limits = super::iplimit::IpLimits::new(
            s.max_connections_per_ip,
            s.connection_rate_per_ip,
            shards,
        );
        ShardCtx {
            ip_limits: RefCell::new(ip_limits),
            index,
            config: settings.config.clone(),
            settings: RefCell::new(settings),
            queue,
            ids,
            connections: Cell::new(0),
            space: Default::default(),
            shutdown,
            scheduler,
            unreachable: Default::default(),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }

    pub fn replace_settings(&self, s: Arc<Settings>) {
        *self.settings.borrow_mut() = s;
    }

    pub fn tls_server(&self) -> Arc<rustls::ServerConfig> {
        self.settings.borrow().tls_server.clone()
    }
}

/// Counts a connection (per shard and per client address) for its lifetime.
pub struct ConnectionGuard(pub Rc<ShardCtx>, std::net::IpAddr);

impl ConnectionGuard {
    pub fn new(ctx: Rc<ShardCtx>, ip: std::net::IpAddr) -> Self {
        ctx.connections.set(ctx.connections.get() + 1);
        ConnectionGuard(ctx, ip)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.ip_limits.borrow_mut().release(self.1);
    }
}
