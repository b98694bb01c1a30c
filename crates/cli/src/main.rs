//! The `softstake` binary: the daemon (`run`) and the operators' commands.
//!
//! Errors end the process with one line on stderr (`error: ...`) and a
//! non-zero exit code; `anyhow` is used only here, the libraries return
//! typed errors.

mod ledger_cmds;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use softstake_config::{Config, LogFormat};
use softstake_store::{ConnectOptions, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "softstake",
    version,
    about = "Soft staking for exchanges: delegate custody pools, distribute rewards exactly."
)]
struct Cli {
    /// Config file (TOML). Without it, built-in defaults (SQLite at ./softstake.db, no chains).
    #[arg(long, short, global = true, env = "SOFTSTAKE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL; overrides the file and SOFTSTAKE_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon until Ctrl-C or SIGTERM.
    Run,
    /// The whole loop on local chains with throwaway keys: starts the
    /// nodes, the daemon and a user population, runs the scripted steps,
    /// prints a summary, then keeps the API and metrics up until Ctrl-C.
    #[cfg(feature = "devnet")]
    Devnet {
        /// Users in the population.
        #[arg(long, default_value_t = 2000)]
        users: usize,
        /// Steps (six hours of chain time each; Polkadot unbonds in 28).
        #[arg(long, default_value_t = 40)]
        steps: u32,
        /// Comma-separated chains (default: every chain the devnet has).
        #[arg(long, value_delimiter = ',')]
        chains: Vec<softstake_core::ChainId>,
        /// Directory for keys, config and the SQLite file (recreated).
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
        /// PostgreSQL URL instead of SQLite.
        #[arg(long)]
        postgres: Option<String>,
        /// API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: std::net::SocketAddr,
        /// Metrics address.
        #[arg(long, default_value = "127.0.0.1:9100")]
        metrics: std::net::SocketAddr,
        /// Wall-clock milliseconds per step for the daemon's loops.
        #[arg(long, default_value_t = 1500)]
        settle_ms: u64,
        /// Print the summary as JSON and exit instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Copy a SQLite ledger to a new file, consistently, while the daemon
    /// runs (`VACUUM INTO`). PostgreSQL: use pg_dump or base backups with
    /// WAL archiving (README, Backup and restore).
    Backup {
        /// The new file.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print what the store holds (JSON).
    Status,
    /// Liquid balance updates.
    Balances {
        #[command(subcommand)]
        command: ledger_cmds::BalancesCommand,
    },
    /// Rewards.
    Rewards {
        #[command(subcommand)]
        command: ledger_cmds::RewardsCommand,
    },
    /// Distribute a reward (or every pending one) to users.
    Distribute {
        /// Reward id; without it, every reward not yet distributed.
        #[arg(long)]
        reward: Option<i64>,
    },
    /// Distributions.
    Distributions {
        #[command(subcommand)]
        command: ledger_cmds::DistributionsCommand,
    },
    /// The credit outbox: list published credits, acknowledge applied ones.
    Outbox {
        #[command(subcommand)]
        command: ledger_cmds::OutboxCommand,
    },
    /// The pool's books: holdings, declared transfers, suspense,
    /// incidents, unannounced income and backing.
    Books {
        #[command(subcommand)]
        command: ledger_cmds::BooksCommand,
    },
    /// The treasury's advance line: what it fronted for withdrawals the
    /// buffer could not cover and has not got back, per chain.
    Advances {
        /// Chain (default: every configured chain).
        #[arg(long)]
        chain: Option<softstake_core::ChainId>,
    },
    /// Approve an operation waiting in awaiting_approval.
    Approve {
        /// Operation id.
        op_id: String,
    },
    /// Pause a chain: its loop plans and sends nothing until resumed.
    Pause {
        /// Chain.
        #[arg(long)]
        chain: softstake_core::ChainId,
    },
    /// Resume a paused chain.
    Resume {
        /// Chain.
        #[arg(long)]
        chain: softstake_core::ChainId,
    },
    /// List a chain's open operations (JSON); with --all, every operation.
    Operations {
        /// Chain.
        #[arg(long)]
        chain: softstake_core::ChainId,
        /// Every operation, newest first (not only open ones).
        #[arg(long)]
        all: bool,
        /// With --all, at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Print the plan for a chain (JSON). Journals, signs and sends nothing.
    Plan {
        /// Chain (must be configured).
        #[arg(long)]
        chain: softstake_core::ChainId,
        /// Plan from this pool state (JSON, as the adapter reports it)
        /// instead of asking the chain: for review and what-if.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// After restoring the database from a backup: what each chain did
    /// since the ledger's last snapshot that the ledger does not know
    /// (transactions the custody key signed that the journal did not,
    /// transfers nobody declared). Books nothing; fails when a chain is
    /// ahead of the ledger. Keep such a chain paused until it is explained.
    VerifyRestore {
        /// Only this chain (default: every enabled chain).
        #[arg(long)]
        chain: Option<softstake_core::ChainId>,
    },
    /// Offline transactions (air-gapped signing).
    Tx {
        #[command(subcommand)]
        command: TxCommand,
    },
    /// A user's rewards over a date range (JSON, or CSV with --csv).
    Statement {
        /// The exchange's user id.
        #[arg(long)]
        user: String,
        /// From (RFC 3339 or Unix seconds), inclusive, by reward period end.
        #[arg(long)]
        from: softstake_core::Timestamp,
        /// To, exclusive.
        #[arg(long)]
        to: softstake_core::Timestamp,
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TxCommand {
    /// Build and sign one operation from a JSON request (docs/tx-requests.md)
    /// and print the signed bytes (hex) and tx id as JSON. Needs no node.
    Sign {
        /// Chain (atom for the Cosmos Hub).
        #[arg(long)]
        chain: String,
        /// The request file.
        #[arg(long)]
        request: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file (default: --config) and exit non-zero naming every problem.
    Validate {
        /// File to check.
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>, database_url: Option<&str>) -> Result<Config> {
    let mut file = softstake_config::load(path.map(PathBuf::as_path), std::env::vars())?;
    if let Some(url) = database_url {
        file.database.url = url.to_owned();
    }
    Ok(softstake_adapters::validate(&file)?)
}

fn init_logging(cfg: &Config, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOFTSTAKE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json || cfg.log_format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(cfg: &Config, create: bool) -> Result<Store> {
    let opts = ConnectOptions {
        max_connections: cfg.max_connections,
        create_if_missing: create,
        ..ConnectOptions::default()
    };
    Ok(Store::connect(&cfg.database_url, &opts).await?)
}

async fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Validate { file },
        } => {
            let path = file.as_ref().or(cli.config.as_ref());
            let cfg = load_config(path, cli.database_url.as_deref())?;
            println!(
                "config {} is valid: database {}, {} chain(s): {}",
                path.map_or("(defaults)".to_owned(), |p| p.display().to_string()),
                cfg.database_url_redacted(),
                cfg.chains.len(),
                cfg.chains
                    .iter()
                    .map(|c| c.chain.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Backup { to } => {
            let cfg = load_config(cli.config.as_ref(), cli.database_url.as_deref())?;
            init_logging(&cfg, cli.log_json);
            let store = open_store(&cfg, false).await?;
            store.sqlite_backup(to).await?;
            println!("backed up {} to {}", store.url_redacted(), to.display());
            store.close().await;
            Ok(())
        }
        Command::Migrate => {
            let cfg = load_config(cli.config.as_ref(), cli.database_url.as_deref())?;
            init_logging(&cfg, cli.log_json);
            let store = open_store(&cfg, true).await?;
            let r = store.migrate().await?;
            println!(
                "database {} at schema version {} (was {})",
                store.url_redacted(),
                r.after,
                r.before
            );
            store.close().await;
            Ok(())
        }
        Command::Status => {
            let cfg = load_config(cli.config.as_ref(), cli.database_url.as_deref())?;
            let store = open_store(&cfg, false).await?;
            let st = store.status().await?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            store.close().await;
            Ok(())
        }
        Command::Balances { .. }
        | Command::Rewards { .. }
        | Command::Distribute { .. }
        | Command::Distributions { .. }
        | Command::Outbox { .. }
        | Command::Books { .. }
        | Command::Advances { .. }
        | Command::Statement { .. }
        | Command::Approve { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Plan { .. }
        | Command::VerifyRestore { .. }
        | Command::Operations { .. } => {
            let cfg = load_config(cli.config.as_ref(), cli.database_url.as_deref())?;
            init_logging(&cfg, cli.log_json);
            let store = open_store(&cfg, false).await?;
            store.require_current_schema().await?;
            let r = ledger(&store, &cfg, cli.command).await;
            store.close().await;
            r
        }
        Command::Tx {
            command: TxCommand::Sign { chain, request },
        } => tx_sign(chain, request),
        Command::Run => {
            let cfg = load_config(cli.config.as_ref(), cli.database_url.as_deref())?;
            init_logging(&cfg, cli.log_json);
            run(cfg).await
        }
        #[cfg(feature = "devnet")]
        Command::Devnet {
            users,
            steps,
            chains,
            dir,
            postgres,
            api,
            metrics,
            settle_ms,
            exit,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("SOFTSTAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            let mut opts = softstake_devnet::Options {
                dir: dir.clone(),
                database_url: postgres.clone(),
                api_listen: *api,
                metrics_listen: *metrics,
                users: *users,
                steps: *steps,
                settle_ms: *settle_ms,
                ..softstake_devnet::Options::default()
            };
            if !chains.is_empty() {
                opts.chains = chains.clone();
            }
            let devnet = softstake_devnet::run(opts)
                .await
                .map_err(anyhow::Error::msg)?;
            if *exit {
                println!("{}", serde_json::to_string_pretty(&devnet.summary)?);
                devnet.daemon.shutdown().await;
                return Ok(());
            }
            // Listening before saying so: a Ctrl-C right after the line
            // below is caught, not fatal.
            let mut stop = ShutdownSignal::new()?;
            println!("{}", softstake_devnet::render(&devnet.summary));
            println!(
                "API http://{}/v1/chains  metrics http://{}/metrics  config {}/softstake.toml\nCtrl-C stops the devnet.",
                devnet.daemon.api_addr,
                devnet.daemon.metrics_addr,
                dir.display()
            );
            stop.recv().await?;
            // Say what stops, and stop within a few seconds: the daemon's
            // loops get 4 s to finish their journal steps (what they leave
            // is reconciled like after a crash), then the local nodes go.
            let nodes: Vec<&str> = devnet.summary.iter().map(|c| c.chain.as_str()).collect();
            eprintln!(
                "stopping: the daemon (API, metrics, chain loops), then the local nodes ({}); data stays in {}",
                nodes.join(", "),
                dir.display()
            );
            let softstake_devnet::Devnet { daemon, .. } = devnet;
            if tokio::time::timeout(std::time::Duration::from_secs(4), daemon.shutdown())
                .await
                .is_err()
            {
                eprintln!("the daemon did not stop within 4 s: stopped anyway");
            }
            eprintln!("stopped");
            Ok(())
        }
    }
}

async fn ledger(store: &Store, cfg: &Config, cmd: Command) -> Result<()> {
    match cmd {
        Command::Balances { command } => ledger_cmds::balances(store, command).await,
        Command::Rewards { command } => ledger_cmds::rewards(store, command).await,
        Command::Distribute { reward } => ledger_cmds::distribute(store, cfg, reward).await,
        Command::Distributions { command } => ledger_cmds::distributions(store, command).await,
        Command::Outbox { command } => ledger_cmds::outbox(store, command).await,
        Command::Books { command } => ledger_cmds::books(store, cfg, command).await,
        Command::Advances { chain } => ledger_cmds::advances(store, cfg, chain).await,
        Command::Statement {
            user,
            from,
            to,
            csv,
        } => ledger_cmds::statement(store, &user, from, to, csv).await,
        Command::Approve { op_id } => {
            store
                .journal_approve(&op_id, softstake_core::Timestamp::now())
                .await?;
            println!("operation {op_id} approved");
            Ok(())
        }
        Command::Pause { chain } => {
            store.set_paused(chain, true).await?;
            println!("{chain} paused");
            Ok(())
        }
        Command::Resume { chain } => {
            store.set_paused(chain, false).await?;
            println!("{chain} resumed");
            Ok(())
        }
        Command::Operations { chain, all, limit } => {
            let ops = if all {
                store.journal_list(chain, None, limit).await?
            } else {
                store.journal_open(chain).await?
            };
            println!("{}", serde_json::to_string_pretty(&ops)?);
            Ok(())
        }
        Command::Plan { chain, state } => plan(store, cfg, chain, state.as_deref()).await,
        Command::VerifyRestore { chain } => verify_restore(store, cfg, chain).await,
        _ => Ok(()),
    }
}

fn tx_sign(chain: &str, request: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read {}", request.display()))?;
    let chain: softstake_core::ChainId = chain.parse()?;
    let out = softstake_adapters::sign_request(chain, &text).with_context(|| {
        format!(
            "{} is not a {chain} sign request that can be signed",
            request.display()
        )
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn plan(
    store: &Store,
    cfg: &Config,
    chain: softstake_core::ChainId,
    state: Option<&std::path::Path>,
) -> Result<()> {
    let cc = cfg
        .chain(chain)
        .with_context(|| format!("{chain} is not configured (add a [[chains]] section)"))?;
    let ecfg = softstake_engine::EngineConfig::from_chain_config(cc);
    let state: softstake_core::adapter::PoolStateResponse = match state {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a pool state", path.display()))?
        }
        None => {
            let adapter = softstake_adapters::build_adapter(cc)?;
            adapter
                .pool_state(softstake_core::adapter::PoolStateRequest::default())
                .await?
        }
    };
    let now = softstake_core::Timestamp::now();
    let plan = softstake_engine::plan_for(store, &ecfg, &state, now).await?;
    let paused = store.is_paused(chain).await?;
    let out = serde_json::json!({
        "chain": chain,
        "as_of": state.as_of,
        "paused": paused,
        "dry_run": ecfg.dry_run,
        "approval_threshold": ecfg.approval_threshold,
        "plan": plan,
        "note": "nothing was journaled, signed or sent",
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn verify_restore(
    store: &Store,
    cfg: &Config,
    only: Option<softstake_core::ChainId>,
) -> Result<()> {
    let chains: Vec<&softstake_config::ChainConfig> = match only {
        Some(c) => vec![
            cfg.chain(c)
                .with_context(|| format!("{c} is not configured (add a [[chains]] section)"))?,
        ],
        None => cfg.chains.iter().filter(|c| c.enabled).collect(),
    };
    let mut ahead = Vec::new();
    let mut report = Vec::new();
    for cc in chains {
        let adapter = softstake_adapters::build_adapter(cc)?;
        let r = softstake_engine::verify_restore(store, adapter.as_ref())
            .await
            .with_context(|| format!("{}: reading what the chain did", cc.chain))?;
        let verdict = if !r.complete {
            "cannot tell: this chain's adapter does not prove every transfer and fee; keep it paused and compare it with `softstake plan`"
        } else if r.unknown.is_empty() {
            "the ledger knows everything the chain did since its last snapshot"
        } else if r.unexplained.is_empty() {
            "the chain is ahead of the ledger by operations softstake signed (listed in adoptable): the daemon journals them as the chain shows them at its next cycle, before planning anything"
        } else {
            ahead.push(cc.chain);
            "the chain is ahead of the ledger by what softstake did not sign (listed in unexplained): keep it paused until each is explained (declare the transfers; `softstake books resolve` the fees once booked)"
        };
        report.push(serde_json::json!({"check": r, "verdict": verdict}));
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !ahead.is_empty() {
        anyhow::bail!(
            "{} chain(s) did what the ledger does not know: {}",
            ahead.len(),
            ahead
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn run(cfg: Config) -> Result<()> {
    let store = open_store(&cfg, true).await?;
    let m = store.migrate().await?;
    tracing::info!(
        database = store.url_redacted(),
        schema_version = m.after,
        migrated_from = m.before,
        "store ready"
    );
    let mut adapters = std::collections::BTreeMap::new();
    for c in &cfg.chains {
        tracing::info!(
            chain = c.chain.as_str(),
            enabled = c.enabled,
            endpoints = c.endpoints.len(),
            validators = c.validators.len(),
            commission = %c.commission,
            "chain configured"
        );
        if c.enabled {
            let a = softstake_adapters::build_adapter(c)
                .with_context(|| format!("chain {}", c.chain))?;
            adapters.insert(c.chain, a);
        }
    }
    if cfg.chains.is_empty() {
        tracing::info!("no chains configured; add [[chains]] sections (see config/example.toml)");
    }
    let handle = softstake_daemon::Daemon::start(
        &cfg,
        softstake_daemon::DaemonOptions {
            store: store.clone(),
            adapters,
            clock: std::sync::Arc::new(softstake_core::SystemClock),
            faults: None,
        },
    )
    .await?;
    let mut stop = ShutdownSignal::new().context("listening for shutdown signals")?;
    tracing::info!(
        api = %handle.api_addr,
        metrics = %handle.metrics_addr,
        "softstake running; Ctrl-C or SIGTERM stops it"
    );
    stop.recv().await.context("waiting for a shutdown signal")?;
    tracing::info!("shutdown requested; finishing in-flight journal steps");
    handle.shutdown().await;
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// SIGINT and SIGTERM, listened for from creation on: a signal that
/// arrives after `new` and before `recv` is not lost (nor does it kill the
/// process by the default action).
struct ShutdownSignal {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn new() -> std::io::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignal {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignal {})
        }
    }

    async fn recv(&mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Ok(()),
                _ = self.term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}
