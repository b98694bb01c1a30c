//! The daemon behind `softstake run`.
//!
//! [`Daemon::start`] opens the leadership (a PostgreSQL advisory lock, or
//! an exclusive lock file next to the SQLite database), then runs:
//! - one supervised task per enabled chain ([`supervisor`]): on the leader
//!   it runs the engine's cycle (collect -> distribute -> reconcile -> plan
//!   -> execute -> promote) every `interval_secs`, with exponential backoff
//!   after failures; a panic in a cycle is caught, logged with the chain,
//!   counted and the chain retried after backoff while the other chains
//!   keep running; on a standby it only refreshes the pool state the read
//!   API shows;
//! - the HTTP API ([`api`]) and, on its own port, Prometheus metrics
//!   ([`metrics`]).
//!
//! Shutdown (SIGTERM/Ctrl-C in the binary, [`DaemonHandle::shutdown`] here)
//! lets running cycles finish their journal steps, then stops the servers
//! and releases the leader lock.

pub mod api;
pub mod instrumented;
pub mod leader;
pub mod metrics;
pub mod supervisor;

use softstake_config::{ChainConfig, Config};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{ChainId, Clock, Secret};
use softstake_engine::{Engine, EngineConfig};
use softstake_store::{Backend, Store};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use supervisor::ChainView;

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Leadership could not be set up.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A configured chain has no adapter, or the adapter is for another chain.
    #[error("chain {chain}: {reason}")]
    Chain {
        /// Chain.
        chain: ChainId,
        /// Why.
        reason: String,
    },
    /// An API token could not be read.
    #[error("{0}")]
    Token(String),
    /// The store cannot be used as the daemon needs (a SQLite store
    /// without a file to hold the leader lock on).
    #[error("store: {0}")]
    Store(String),
}

/// One chain as the daemon runs it.
pub struct ChainRuntime {
    /// The engine (store, instrumented adapter, policy, clock).
    pub engine: Engine,
    /// The validated chain section.
    pub config: ChainConfig,
    /// What the last cycle (or standby refresh) saw.
    pub view: std::sync::RwLock<ChainView>,
}

impl std::fmt::Debug for ChainRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRuntime")
            .field("chain", &self.config.chain)
            .finish_non_exhaustive()
    }
}

impl ChainRuntime {
    /// A copy of the current view.
    pub fn view(&self) -> ChainView {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn update_view(&self, f: impl FnOnce(&mut ChainView)) {
        match self.view.write() {
            Ok(mut v) => f(&mut v),
            Err(e) => f(&mut e.into_inner()),
        }
    }
}

/// State shared by the chain tasks and the API.
#[derive(Debug)]
pub struct Shared {
    /// The ledger.
    pub store: Store,
    /// Enabled chains.
    pub chains: BTreeMap<ChainId, Arc<ChainRuntime>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Whether this instance is the leader.
    pub leader: watch::Receiver<bool>,
    /// Exchange bearer token (`None`: exchange endpoints refuse everyone).
    pub exchange_token: Option<Secret<String>>,
    /// Operator bearer token (`None`: operator endpoints refuse everyone).
    pub admin_token: Option<Secret<String>>,
    /// Public reads per second per client address.
    pub read_rate_limit: u32,
    /// When the daemon started.
    pub started_at: softstake_core::Timestamp,
}

/// Everything [`Daemon::start`] needs besides the config.
pub struct DaemonOptions {
    /// The store (migrated).
    pub store: Store,
    /// One adapter per enabled chain.
    pub adapters: BTreeMap<ChainId, Arc<dyn ChainAdapter>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Engine fault injection (tests); `None` in production.
    pub faults: Option<Arc<dyn softstake_engine::Faults>>,
}

/// A running daemon.
pub struct DaemonHandle {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Where metrics are served.
    pub metrics_addr: SocketAddr,
    /// Shared state (for tests and the binary's status line).
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    chain_tasks: Vec<JoinHandle<()>>,
    leader_task: Option<JoinHandle<()>>,
    _sqlite_lock: Option<leader::SqliteLock>,
    /// SQLite: the leader flag's sender, kept for the daemon's life.
    _sqlite_leader: Option<watch::Sender<bool>>,
}

impl std::fmt::Debug for DaemonHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonHandle")
            .field("api_addr", &self.api_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

/// How long shutdown waits for running cycles to finish their journal steps.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The daemon.
#[derive(Debug)]
pub struct Daemon;

impl Daemon {
    /// Starts everything; returns once the listeners are bound.
    pub async fn start(cfg: &Config, opts: DaemonOptions) -> Result<DaemonHandle, DaemonError> {
        let metrics = Arc::new(metrics::Metrics::new());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (leader_tx, leader_rx) = watch::channel(false);

        // A ledger that refuses writes would make every cycle and write fail
        // while /readyz said ready: refuse to start, saying why.
        opts.store
            .check_writable()
            .await
            .map_err(|e| DaemonError::Store(e.to_string()))?;

        // Leadership.
        let mut sqlite_lock = None;
        let mut sqlite_leader = None;
        let mut leader_task = None;
        // The chain loops' store: on PostgreSQL fenced by the leader's term.
        let mut engine_store = opts.store.clone();
        match opts.store.backend() {
            Backend::Sqlite => {
                let path = opts
                    .store
                    .sqlite_path()
                    .ok_or_else(|| DaemonError::Store(
                        "a SQLite store without a file path (an in-memory database) cannot hold the leader lock".into(),
                    ))?;
                let lock = leader::SqliteLock::acquire(&path)?;
                tracing::info!(lock = %lock.path().display(), "SQLite: single instance; this daemon runs the chain loops");
                sqlite_lock = Some(lock);
                leader_tx.send_replace(true);
                sqlite_leader = Some(leader_tx);
            }
            Backend::Postgres => {
                let url = cfg.database_url.clone();
                let slot = softstake_store::FenceSlot::new();
                engine_store = opts.store.with_fence(slot.clone());
                leader_task = Some(tokio::spawn(leader::pg_campaign(
                    url,
                    leader_tx,
                    slot,
                    shutdown_rx.clone(),
                )));
            }
        }

        // Chains.
        let mut chains = BTreeMap::new();
        for c in cfg.chains.iter().filter(|c| c.enabled) {
            let adapter =
                opts.adapters
                    .get(&c.chain)
                    .cloned()
                    .ok_or_else(|| DaemonError::Chain {
                        chain: c.chain,
                        reason: "enabled in config but no adapter was built for it".into(),
                    })?;
            let adapter: Arc<dyn ChainAdapter> =
                Arc::new(instrumented::Instrumented::new(adapter, metrics.clone()));
            let mut engine = Engine::new(
                engine_store.clone(),
                adapter,
                EngineConfig::from_chain_config(c),
                opts.clock.clone(),
            )
            .map_err(|e| DaemonError::Chain {
                chain: c.chain,
                reason: e.to_string(),
            })?;
            if let Some(f) = &opts.faults {
                engine = engine.with_faults(f.clone());
            }
            chains.insert(
                c.chain,
                Arc::new(ChainRuntime {
                    engine,
                    config: c.clone(),
                    view: std::sync::RwLock::new(ChainView::default()),
                }),
            );
        }

        let token = |r: &Option<softstake_config::SecretRef>, what: &str| {
            r.as_ref()
                .map(|r| {
                    r.resolve()
                        .map_err(|e| DaemonError::Token(format!("api.{what}: {e}")))
                })
                .transpose()
        };
        let exchange_token = token(&cfg.exchange_token, "exchange_token")?;
        let admin_token = token(&cfg.admin_token, "admin_token")?;
        if exchange_token.is_none() {
            tracing::warn!(
                "api.exchange_token is not set: exchange endpoints answer 401 to everyone"
            );
        }
        if admin_token.is_none() {
            tracing::warn!("api.admin_token is not set: operator endpoints answer 401 to everyone");
        }
        let shared = Arc::new(Shared {
            store: opts.store.clone(),
            chains,
            clock: opts.clock.clone(),
            metrics: metrics.clone(),
            leader: leader_rx.clone(),
            exchange_token,
            admin_token,
            read_rate_limit: cfg.read_rate_limit,
            started_at: opts.clock.now(),
        });

        // Servers.
        let bind = |addr: SocketAddr, what: &'static str| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Bind {
                    what,
                    addr,
                    reason: e.to_string(),
                })
        };
        let api_listener = bind(cfg.api_listen, "api").await?;
        let metrics_listener = bind(cfg.metrics_listen, "metrics").await?;
        let api_addr = api_listener.local_addr().map_err(|e| DaemonError::Bind {
            what: "api",
            addr: cfg.api_listen,
            reason: e.to_string(),
        })?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| DaemonError::Bind {
                what: "metrics",
                addr: cfg.metrics_listen,
                reason: e.to_string(),
            })?;
        tracing::info!(%api_addr, %metrics_addr, "listening");
        let mut tasks = Vec::new();
        let api_limits = api::ServeLimits {
            max_connections: cfg.api_max_connections,
            header_read_timeout: cfg.api_header_read_timeout,
            request_timeout: cfg.api_request_timeout,
        };
        tasks.push(tokio::spawn(api::serve(
            api_listener,
            api::router(shared.clone()),
            api_limits,
            shutdown_rx.clone(),
        )));
        // Scrapes and probes: few clients, their own small budget.
        tasks.push(tokio::spawn(api::serve(
            metrics_listener,
            api::metrics_router(shared.clone()),
            api::ServeLimits {
                max_connections: 64,
                ..api_limits
            },
            shutdown_rx.clone(),
        )));
        let mut chain_tasks = Vec::new();
        for rt in shared.chains.values() {
            chain_tasks.push(tokio::spawn(supervisor::supervise(
                rt.clone(),
                shared.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(supervisor::leader_gauge(
            shared.clone(),
            shutdown_rx.clone(),
        )));
        Ok(DaemonHandle {
            api_addr,
            metrics_addr,
            shared,
            shutdown: shutdown_tx,
            tasks,
            chain_tasks,
            leader_task,
            _sqlite_lock: sqlite_lock,
            _sqlite_leader: sqlite_leader,
        })
    }
}

impl DaemonHandle {
    /// Whether this instance currently leads.
    pub fn is_leader(&self) -> bool {
        *self.shared.leader.borrow()
    }

    /// Graceful stop: running cycles finish (up to [`DRAIN_TIMEOUT`]), then
    /// the servers stop and the leader lock is released.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for t in self.chain_tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout(DRAIN_TIMEOUT, t).await.is_err() {
                tracing::error!(
                    "a chain task did not finish within the drain timeout; aborting it"
                );
                abort.abort();
            }
        }
        if let Some(t) = self.leader_task.take() {
            let _ = t.await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Simulates a crash (tests): every task is aborted at once, connections
    /// are dropped without goodbye, nothing drains.
    pub fn kill(mut self) {
        for t in self
            .chain_tasks
            .drain(..)
            .chain(self.tasks.drain(..))
            .chain(self.leader_task.take())
        {
            t.abort();
        }
    }
}
