//! The inbound role's context and the settings SIGHUP replaces. Shard-local (Rc,
//! Cell): never shared across cores. The delivery role's is `delivery::DeliveryCtx`;
//! both are built in `shard::shard_main` over the same queue.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::delivery::{DeliveryCtx, DeliverySettings, Scheduler};
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
    /// What delivery reads of these settings.
    pub fn delivery(&self) -> DeliverySettings {
        DeliverySettings {
            config: self.config.clone(),
            policy: self.policy.clone(),
        }
    }

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

/// What one shard's inbound role owns and reads: the sessions' settings, the
/// connection counts and per-address limits, and the queue it stores into (shared
/// with the shard's delivery role, which it tells of each new message).
pub struct InboundCtx {
    pub shard: usize,
    /// Where spilled bodies go and free space is measured: the spool the server
    /// started on (`server.spool` needs a restart).
    pub spool_dir: PathBuf,
    settings: RefCell<Arc<Settings>>,
    pub queue: Rc<ShardQueue>,
    pub ids: IdSource,
    pub scheduler: Rc<Scheduler>,
    pub connections: Cell<usize>,
    pub space: crate::queue::space::SpaceGauge,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub ip_limits: RefCell<super::iplimit::IpLimits>,
}

impl InboundCtx {
    pub fn new(delivery: &DeliveryCtx, settings: Arc<Settings>, shards: usize) -> Self {
        let s = &settings.config.server;
        let ip_limits = super::iplimit::IpLimits::new(
            s.max_connections_per_ip,
            s.connection_rate_per_ip,
            shards,
        );
        InboundCtx {
            shard: delivery.shard,
            spool_dir: s.spool.clone(),
            ip_limits: RefCell::new(ip_limits),
            settings: RefCell::new(settings),
            queue: delivery.queue.clone(),
            ids: delivery.ids.clone(),
            scheduler: delivery.scheduler.clone(),
            connections: Cell::new(0),
            space: Default::default(),
            shutdown: delivery.shutdown.clone(),
        }
    }

    /// The settings of this moment; a session takes them once, when it begins.
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
pub struct ConnectionGuard(pub Rc<InboundCtx>, std::net::IpAddr);

impl ConnectionGuard {
    pub fn new(ctx: Rc<InboundCtx>, ip: std::net::IpAddr) -> Self {
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
