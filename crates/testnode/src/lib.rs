//! The kit the chain crates' test nodes and devnet drivers share (each
//! chain crate enables it with its `testnode` feature; nothing here is in a
//! `softstake` built without the `devnet` feature):
//!
//! - [`Launched::spawn`]: starts a node's process, waits for the line that
//!   says where it listens, and keeps draining its output (to a log file
//!   when one is named) so it never blocks on a full pipe; killed on drop.
//! - [`serve`]: an axum router on a port-0 (or given) address.
//! - [`JsonRpc`]: a minimal JSON-RPC client for driving a node in tests.
//! - [`send_and_confirm`] / [`confirm`]: build, broadcast, include, and check
//!   the adapter finds the transaction confirmed.
//! - [`DevnetChain`], [`Driver`], [`Started`]: what a chain gives
//!   `softstake devnet` (start its node, fund a throwaway key, write its
//!   config section, move its time).
//! - [`openapi`]: holds a test node to the real node's published OpenAPI
//!   documents (every answer checked; one that does not conform becomes a
//!   500 naming the endpoint and the schema path).

pub mod openapi;
use serde_json::{Value, json};
use softstake_core::ChainId;
use softstake_core::adapter::{
    BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind, SignedOperation,
    TxStatus,
};
pub use softstake_core::rng::Rng;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A node process; killed when dropped.
pub struct Launched<T> {
    _child: tokio::process::Child,
    /// What the readiness line said (the URL it listens on).
    pub ready: T,
}

impl<T> Launched<T> {
    /// Spawns `cmd` with stdout piped, reads lines until `ready` finds what
    /// it waits for (within `timeout`), then drains the rest (appending it
    /// to `log` when given). `what` names the node in errors.
    pub async fn spawn(
        what: &str,
        mut cmd: tokio::process::Command,
        timeout: Duration,
        log: Option<String>,
        ready: impl Fn(&str) -> Option<T>,
    ) -> Result<Self, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {what}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(v) = ready(&line) {
                    return Some(v);
                }
            }
            None
        })
        .await
        .map_err(|_| format!("{what} did not get ready within {} s", timeout.as_secs()))?
        .ok_or_else(|| format!("{what} exited before it was ready"))?;
        tokio::spawn(async move {
            let mut file = match log {
                Some(p) => tokio::fs::File::create(p).await.ok(),
                None => None,
            };
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                }
            }
        });
        Ok(Launched {
            _child: child,
            ready: found,
        })
    }
}

/// A node process that serves JSON-RPC at the URL its readiness line
/// names; killed when dropped.
pub struct RpcNode {
    _node: Launched<String>,
    /// Its JSON-RPC URL.
    pub url: String,
    rpc: JsonRpc,
}

impl std::fmt::Debug for RpcNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcNode")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RpcNode {
    /// [`Launched::spawn`], where `ready` finds the node's URL.
    pub async fn spawn(
        what: &str,
        cmd: tokio::process::Command,
        timeout: Duration,
        log: Option<String>,
        ready: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let node = Launched::spawn(what, cmd, timeout, log, ready).await?;
        let url = node.ready.clone();
        Ok(RpcNode {
            rpc: JsonRpc::new(url.clone()),
            _node: node,
            url,
        })
    }

    /// One JSON-RPC call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.rpc.call(method, params).await
    }
}

/// Serves `app` on `addr` (port 0 picks a free port); returns the bound
/// address. The server runs until the runtime ends.
pub async fn serve(
    app: axum::Router,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

/// A JSON-RPC client for driving a test node (errors as text).
#[derive(Debug, Clone)]
pub struct JsonRpc {
    url: String,
    http: reqwest::Client,
}

impl JsonRpc {
    /// A client for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        JsonRpc {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    /// One call; a JSON-RPC error is an `Err` naming the method.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let r: Value = self
            .http
            .post(&self.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = r.get("error") {
            return Err(format!("{method}: {e}"));
        }
        Ok(r["result"].clone())
    }
}

/// Builds an operation for a test (operation id `t`).
pub fn operation(kind: OperationKind) -> BuildRequest {
    BuildRequest {
        operation_id: "t".into(),
        kind,
    }
}

/// Broadcasts `signed`, lets the node include it (`include`: make a block,
/// move a slot), and checks the adapter then finds it confirmed.
pub async fn confirm<F, Fut>(
    a: &dyn ChainAdapter,
    signed: &SignedOperation,
    include: F,
) -> Result<(), String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let r = a
        .broadcast(BroadcastRequest {
            signed: signed.clone(),
        })
        .await
        .map_err(|e| format!("broadcast: {e}"))?;
    if r.tx_id != signed.tx_id {
        return Err(format!(
            "broadcast answered {}, signed {}",
            r.tx_id, signed.tx_id
        ));
    }
    include().await;
    let l = a
        .lookup(LookupRequest {
            tx_id: signed.tx_id.clone(),
            signed_bytes: Some(signed.bytes.clone()),
        })
        .await
        .map_err(|e| format!("lookup: {e}"))?;
    match l.status {
        TxStatus::Confirmed { .. } => Ok(()),
        other => Err(format!("{} is {other:?}, not confirmed", signed.tx_id)),
    }
}

/// Builds and signs `kind`, then [`confirm`]s it.
pub async fn send_and_confirm<F, Fut>(
    a: &dyn ChainAdapter,
    kind: OperationKind,
    include: F,
) -> Result<SignedOperation, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let s = a
        .build_and_sign(operation(kind))
        .await
        .map_err(|e| format!("build: {e}"))?;
    confirm(a, &s, include).await?;
    Ok(s)
}

/// A started devnet chain.
pub struct Started {
    /// Its driver.
    pub driver: Box<dyn Driver>,
    /// The `[[chains]]` section (TOML), key file written.
    pub section: String,
    /// What the custody holds for users, base units.
    pub liabilities: u128,
    /// Base units per coin.
    pub unit: u128,
}

/// Moves one chain's time.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// The chain.
    fn chain(&self) -> ChainId;
    /// What runs it, for the summary and the README.
    fn node(&self) -> &'static str;
    /// Moves the chain to devnet time `t` (unix seconds).
    async fn advance_to(&self, t: i64) -> Result<(), String>;
    /// Includes what waits in the mempool on a node that only makes blocks
    /// when told, without moving the devnet clock; `false` when this node
    /// cannot do that safely (the devnet then moves everyone's time).
    async fn nudge(&self) -> Result<bool, String> {
        Ok(false)
    }
    /// Pays the platform's own float for fees into the custody account in
    /// a real transaction; its tx id and amount, which the devnet declares
    /// as the platform's money (`purpose: commission`), so fees are paid
    /// from it and the pool's backing stays 1. `None` on chains whose
    /// adapter does not book fees yet (their custody is funded with a
    /// float at start instead).
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        Ok(None)
    }
    /// Moves `amount` out of custody to the treasury in a real transaction
    /// signed by the custody key, repaying a treasury advance the pool has
    /// set aside; its tx id, which the devnet reports as the repayment (the
    /// daemon declares it as a principal outflow). `None` where this devnet
    /// chain cannot move coins out of custody yet (the advance stays due).
    async fn repay_treasury(&self, _amount: u128) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// The next devnet time after `now` at which the chain changes what
    /// the daemon may do (on Ethereum: a validator becomes old enough to
    /// exit), so the devnet's clock stops there as a daemon's cycles
    /// would; `None`: no such moment.
    async fn wake_at(&self, _now: i64) -> Result<Option<i64>, String> {
        Ok(None)
    }
}

/// Starts a devnet chain's node at devnet time `t0`, funds a throwaway
/// custody key written under `dir`, and returns its driver and config
/// section and the start time it actually used.
pub type StartFn =
    for<'a> fn(
        &'a Path,
        i64,
        &'a mut Rng,
    ) -> futures_util::future::BoxFuture<'a, Result<(Started, i64), String>>;

/// When a node's tools are missing: what to install (for the progress line)
/// and the command (run from the repository root) that installs them.
pub type InstallFn = fn(&Path) -> Option<(&'static str, std::process::Command)>;

/// What a chain gives `softstake devnet`.
pub struct DevnetChain {
    /// The chain.
    pub chain: ChainId,
    /// The progress line while it starts.
    pub starting: &'static str,
    /// Whether this chain's node fixes the devnet's start time (chopsticks
    /// starts at the wall clock): it is started first and its time is `t0`
    /// for the others.
    pub sets_start_time: bool,
    /// What to install first, if anything.
    pub install: InstallFn,
    /// Starts it.
    pub start: StartFn,
}

/// For chains whose test node needs nothing installed.
pub fn nothing_to_install(_root: &Path) -> Option<(&'static str, std::process::Command)> {
    None
}

/// Writes a key file readable by its owner only; returns its path.
pub fn write_key(dir: &Path, name: &str, content: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p.display().to_string())
}

/// The common part of a devnet `[[chains]]` section.
pub fn common_section(
    endpoint: &str,
    key_file: &str,
    validators: &[&str],
    min_operation: &str,
    max_op: &str,
) -> String {
    let mut s = format!(
        "[[chains]]\nenabled = true\nendpoints = [\"{endpoint}\"]\nkey = {{ file = \"{key_file}\" }}\n\
         interval_secs = 1\ncommission = \"0.10\"\n"
    );
    for v in validators {
        s.push_str(&format!(
            "[[chains.validators]]\naddress = \"{v}\"\nweight = 1\ncap = \"1\"\n"
        ));
    }
    s.push_str(&format!(
        "[chains.buffer]\ntarget = \"0.2\"\nband = \"0.05\"\nmin_operation = \"{min_operation}\"\n\
         [chains.safety]\nmax_per_operation = \"{max_op}\"\nmax_per_day = \"100000000\"\napproval_threshold = \"{max_op}\"\n"
    ));
    s
}

/// A u128 the test nodes keep as u64.
pub fn u128_to_u64(v: u128) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{v} does not fit the test node's u64"))
}
