//! Threads, pinning, listeners and the drivers. Each shard is one thread pinned to
//! one core, with its own runtime (io_uring or epoll, see `crate::net`), listening
//! sockets, queue slice and delivery loop. Nothing on the per-message path is shared.
//! A shard that fails stops the whole process: a server with a dead shard would
//! keep accepting connections on its sockets that nobody serves.

mod accept;
mod ctx;
mod inbound;
mod iplimit;
mod spill;

pub use ctx::{InboundCtx, Settings};

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::Config;
use crate::delivery::DeliveryCtx;
use crate::net::{self, Backend, Listener};
use crate::policy::Policy;
use crate::queue::IdSource;
use crate::queue::Spool;

use crate::delivery::operator::OperatorRequest;

/// How long a stopping shard waits for sessions and deliveries in progress.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long the shards may take to start accepting.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The exit status when a shard fails (EX_SOFTWARE).
pub const SHARD_FAILED_EXIT: i32 = 70;

pub struct RunningServer {
    /// (listener name, bound address) for every listener; ports resolved.
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    spool: Arc<Spool>,
    admin_stop: Option<crate::admin::AdminServer>,
    reload: Vec<tokio::sync::mpsc::UnboundedSender<Arc<Settings>>>,
    /// The config at start: what restart-only keys still run with.
    started_with: Arc<Config>,
    auth: Arc<crate::auth::Authenticator>,
}

impl RunningServer {
    pub fn address(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, a)| *a)
    }

    /// Replace policy, routes and certificates in every shard without dropping
    /// connections. Listener addresses and shard count need a restart.
    pub fn reload(&self, config: Config, origin: &str) -> anyhow::Result<()> {
        let accounts = crate::auth::load_accounts(&config.auth)?;
        let settings = Arc::new(build_settings(config, origin, self.auth.clone())?);
        // Only once everything loaded: a bad file keeps the running accounts too.
        self.auth.replace(&settings.config.auth, accounts);
        let pending = crate::config::restart_only_changes(&self.started_with, &settings.config);
        if !pending.is_empty() {
            tracing::warn!(
                keys = %pending.join(", "),
                "reload: these changes take effect only after a restart; the running values stay"
            );
        }
        for tx in &self.reload {
            let _ = tx.send(settings.clone());
        }
        Ok(())
    }

    /// Stop accepting, let sessions and deliveries drain, flush the spool.
    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(a) = self.admin_stop.take() {
            a.stop();
        }
        let _ = self.spool.flush();
        self.reload.clear();
        // The last handle closes the store and releases its lock.
        drop(self.spool);
    }
}

fn build_settings(
    config: Config,
    origin: &str,
    auth: Arc<crate::auth::Authenticator>,
) -> anyhow::Result<Settings> {
    let tls_server = crate::tls::server_config(&config).context("TLS setup")?;
    let policy = Arc::new(Policy::from_config(&config, origin));
    Ok(Settings::build(Arc::new(config), policy, tls_server, auth))
}

/// Shards as configured; 0 means one per core.
fn shard_count(config: &Config) -> usize {
    match config.server.shards {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
    .min(255)
}

/// Listening sockets for each shard (SO_REUSEPORT, one per shard and listener),
/// and each listener's bound address.
type Bound = (
    Vec<(String, SocketAddr)>,
    Vec<Vec<(String, std::net::TcpListener)>>,
);

fn bind_listeners(config: &Config, shards: usize) -> anyhow::Result<Bound> {
    let mut bound = Vec::new();
    let mut per_shard: Vec<Vec<(String, std::net::TcpListener)>> =
        (0..shards).map(|_| Vec::new()).collect();
    for l in &config.listeners {
        let (addr, sockets) = net::bind_all(l.address, shards)
            .with_context(|| format!("listener {} on {}", l.name, l.address))?;
        bound.push((l.name.clone(), addr));
        for (i, s) in sockets.into_iter().enumerate() {
            per_shard[i].push((l.name.clone(), s));
        }
    }
    Ok((bound, per_shard))
}

pub fn start(config: Config, origin: &str) -> anyhow::Result<RunningServer> {
    // First: `io = "uring"` without io_uring refuses before anything is opened.
    let backend = net::choose(config.server.io).map_err(anyhow::Error::msg)?;
    let shards = shard_count(&config);
    let spool = Arc::new(
        Spool::open_with(
            &config.server.spool,
            crate::queue::StoreOptions::from_config(&config.queue),
        )
        .with_context(|| format!("opening spool {}", config.server.spool.display()))?,
    );
    // After the spool's lock is ours: no other server is spilling into it.
    spill::reset_dir(&config.server.spool)
        .with_context(|| format!("clearing {}", spill::dir(&config.server.spool).display()))?;
    let accounts = crate::auth::load_accounts(&config.auth)?;
    let auth = crate::auth::Authenticator::start(
        &config.auth,
        accounts,
        crate::auth::Authenticator::default_workers(),
    );
    let settings = Arc::new(build_settings(config.clone(), origin, auth.clone())?);
    let (bound, per_shard) = bind_listeners(&config, shards)?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<usize>();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut threads = Vec::new();
    let mut admin_shards = Vec::new();
    let mut reload = Vec::new();
    // Slices left by a run with more shards are adopted by shard 0.
    let orphans: Vec<usize> = spool
        .shard_numbers()
        .into_iter()
        .filter(|&n| n >= shards)
        .collect();
    for (index, listeners) in per_shard.into_iter().enumerate() {
        let queue = spool.shard(index)?;
        let orphan_slices: Vec<_> = if index == 0 {
            orphans
                .iter()
                .map(|&n| spool.shard(n))
                .collect::<Result<_, _>>()?
        } else {
            vec![]
        };
        let (admin_tx, operator_rx) = tokio::sync::mpsc::unbounded_channel();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        admin_shards.push(crate::admin::ShardHandle {
            queue: queue.clone(),
            commands: admin_tx,
        });
        reload.push(reload_tx);
        let shard = ShardStart {
            index,
            backend,
            settings: settings.clone(),
            queue,
            orphan_slices,
            listeners,
            shutdown: shutdown_rx.clone(),
            operator_rx,
            reload_rx,
            shard_count: shards,
            ready: ready_tx.clone(),
        };
        let core = cores.get(index % cores.len().max(1)).copied();
        threads.push(spawn_shard_thread(shard, core)?);
    }
    drop(ready_tx);
    // "listening" is logged by the caller: only once every shard really accepts.
    for _ in 0..shards {
        if ready_rx.recv_timeout(START_DEADLINE).is_err() {
            anyhow::bail!(
                "the shards did not all start accepting within {} s",
                START_DEADLINE.as_secs()
            );
        }
    }
    let admin = if config.admin.address.is_empty() {
        None
    } else {
        let addr: SocketAddr = config.admin.address.parse().context("admin.address")?;
        Some(
            crate::admin::AdminServer::start(addr, admin_shards)
                .with_context(|| format!("admin API on {addr}"))?,
        )
    };
    Ok(RunningServer {
        listeners: bound,
        admin: admin.as_ref().map(|a| a.address()),
        shutdown: shutdown_tx,
        threads,
        spool,
        admin_stop: admin,
        reload,
        started_with: settings.config.clone(),
        auth,
    })
}

/// What one shard starts with.
struct ShardStart {
    index: usize,
    backend: Backend,
    settings: Arc<Settings>,
    queue: crate::queue::QueueView,
    /// Slices of a run with more shards, for shard 0 to adopt.
    orphan_slices: Vec<crate::queue::QueueView>,
    listeners: Vec<(String, std::net::TcpListener)>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    operator_rx: tokio::sync::mpsc::UnboundedReceiver<OperatorRequest>,
    reload_rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Settings>>,
    shard_count: usize,
    ready: std::sync::mpsc::Sender<usize>,
}

/// The shard's thread, pinned to `core`, running its runtime until shutdown.
/// Any failure there stops the process (see the module comment).
fn spawn_shard_thread(
    shard: ShardStart,
    core: Option<core_affinity::CoreId>,
) -> std::io::Result<JoinHandle<()>> {
    let (index, backend) = (shard.index, shard.backend);
    std::thread::Builder::new()
        .name(format!("mxring-shard{index}"))
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                net::run(backend, shard_main(shard))
            }));
            match outcome {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => shard_failed(index, backend, &e.to_string()),
                Ok(Err(e)) => shard_failed(
                    index,
                    backend,
                    &format!("its {} runtime could not start: {e}", backend.name()),
                ),
                Err(panic) => shard_failed(index, backend, &panic_text(&*panic)),
            }
        })
}

/// The shard's two roles over its queue slice: inbound (one acceptor per
/// listener) and delivery; operator requests and reloads until shutdown, then
/// the drain.
async fn shard_main(shard: ShardStart) -> std::io::Result<()> {
    let ShardStart {
        index,
        backend,
        settings,
        queue,
        orphan_slices,
        listeners,
        mut shutdown,
        mut operator_rx,
        mut reload_rx,
        shard_count,
        ready,
    } = shard;
    let queue = crate::queue::ShardQueue::start(queue)
        .await
        .map_err(|e| std::io::Error::other(format!("its queue log cannot be opened: {e}")))?;
    let now = SystemTime::now();
    let ids = IdSource::new(index as u8, now, queue.max_id() + 1);
    let scheduler = Rc::new(crate::delivery::Scheduler::new(now));
    let delivery_ctx = Rc::new(DeliveryCtx::new(
        index,
        Rc::new(queue),
        ids,
        scheduler,
        shutdown.clone(),
        settings.delivery(),
    ));
    let ctx = Rc::new(InboundCtx::new(&delivery_ctx, settings, shard_count));
    crate::delivery::recover(&delivery_ctx, &orphan_slices).await;

    let listener_count = listeners.len();
    for (name, std_listener) in listeners {
        let listener = Listener::from_std(std_listener)?;
        accept::spawn_acceptor(ctx.clone(), name, listener, shutdown.clone());
    }
    let mut delivery = tokio::task::spawn_local(crate::delivery::run(delivery_ctx.clone()));
    let mut delivery_ended = false;
    tracing::info!(
        shard = index,
        backend = %backend.name(),
        listeners = listener_count,
        "shard accepting"
    );
    let _ = ready.send(index);
    loop {
        tokio::select! {
            done = &mut delivery, if !delivery_ended => {
                delivery_ended = true;
                // The delivery loop ends only at shutdown; a panic there fails the shard.
                if let Err(e) = done {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
            Some(req) = operator_rx.recv() => crate::delivery::operator_request(&delivery_ctx, req),
            Some(s) = reload_rx.recv() => {
                delivery_ctx.replace_settings(s.delivery());
                ctx.replace_settings(s);
                // CA and client certificate files are read again under the new settings.
                crate::delivery::forget_client_configs();
                tracing::info!(shard = index, "configuration reloaded");
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // Drain: sessions idle between commands leave at once (421); others finish.
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    while (ctx.connections.get() > 0 || ctx.scheduler.in_flight() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !delivery_ended {
        let _ = delivery.await;
    }
    Ok(())
}

/// A shard is gone: say so and why, and stop the process (see the module comment).
fn shard_failed(index: usize, backend: Backend, why: &str) -> ! {
    let text = format!(
        "shard {index} ({} back end) failed: {why}; mxring stops, since a server with a \
         dead shard would accept connections it never serves",
        backend.name()
    );
    tracing::error!("{text}");
    eprintln!("mxring: {text}");
    std::process::exit(SHARD_FAILED_EXIT);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("it panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("it panicked: {s}")
    } else {
        "it panicked".to_string()
    }
}
