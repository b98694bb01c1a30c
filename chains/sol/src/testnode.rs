//! Starts and drives the Solana test node (`testnode/svm_node.py`): the
//! real system, vote and stake programs executing in LiteSVM (PyPI
//! `solders`) behind the JSON-RPC methods the adapter calls. Tests only;
//! `scripts/svm-venv` prepares the Python environment.

use serde_json::{Value, json};
use softstake_testnode::Launched;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::request::RpcRequest;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Node parameters.
#[derive(Debug, Clone)]
pub struct SvmOptions {
    /// Slots per epoch.
    pub slots_per_epoch: u64,
    /// Epoch the node starts in.
    pub start_epoch: u64,
    /// Other validators' effective stake in the cluster history (small
    /// values make warm-up and cool-down take several epochs).
    pub cluster_stake: u64,
    /// Reward per epoch on effective stake, basis points.
    pub reward_bps: u64,
    /// Chain time per slot, milliseconds (Solana: 400).
    pub slot_ms: u64,
    /// Unix time of slot 0.
    pub genesis_time: i64,
}

impl Default for SvmOptions {
    fn default() -> Self {
        SvmOptions {
            slots_per_epoch: 32,
            start_epoch: 10,
            cluster_stake: 1_000_000_000_000_000_000,
            reward_bps: 10,
            slot_ms: 400,
            genesis_time: 1_700_000_000,
        }
    }
}

/// A running node; killed on drop.
pub struct SvmNode {
    _node: Launched<(String, String)>,
    /// JSON-RPC URL.
    pub url: String,
    /// Genesis hash it reports.
    pub genesis_hash: String,
    rpc: RpcClient,
}

impl std::fmt::Debug for SvmNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvmNode")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The Python interpreter with solders installed: `SOFTSTAKE_SVM_PYTHON`,
/// else the venv `scripts/svm-venv` makes under the target directory.
pub fn python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SOFTSTAKE_SVM_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let p = target.join("svm-venv/bin/python");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "no Python with solders for the Solana test node at {}: run scripts/svm-venv (scripts/test does) or set SOFTSTAKE_SVM_PYTHON",
            p.display()
        ))
    }
}

impl SvmNode {
    /// Starts a node and waits until it listens.
    pub async fn start(opts: SvmOptions) -> Result<Self, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testnode/svm_node.py");
        let mut cmd = tokio::process::Command::new(python()?);
        cmd.arg(&script)
            .args(["--port", "0"])
            .args(["--slots-per-epoch", &opts.slots_per_epoch.to_string()])
            .args(["--start-epoch", &opts.start_epoch.to_string()])
            .args(["--cluster-stake", &opts.cluster_stake.to_string()])
            .args(["--reward-bps", &opts.reward_bps.to_string()])
            .args(["--slot-ms", &opts.slot_ms.to_string()])
            .args(["--genesis-time", &opts.genesis_time.to_string()])
            .stderr(Stdio::inherit());
        // The banner: "listening on PORT genesis HASH".
        let node = Launched::spawn(
            "the Solana test node",
            cmd,
            Duration::from_secs(60),
            None,
            |line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["listening", "on", port, "genesis", hash] => {
                    Some(((*port).to_owned(), (*hash).to_owned()))
                }
                _ => None,
            },
        )
        .await?;
        let (port, genesis) = node.ready.clone();
        let url = format!("http://127.0.0.1:{port}");
        Ok(SvmNode {
            _node: node,
            rpc: RpcClient::new_with_timeout(url.clone(), Duration::from_secs(60)),
            url,
            genesis_hash: genesis,
        })
    }

    /// The chain's time at its current slot (the block time of the slot).
    pub async fn time(&self) -> Result<softstake_core::Timestamp, String> {
        let slot = self.call("getSlot", json!([])).await?;
        let t = self.call("getBlockTime", json!([slot])).await?;
        t.as_i64()
            .map(softstake_core::Timestamp::from_unix)
            .ok_or_else(|| format!("bad block time {t}"))
    }

    /// Adapter settings for this node: no priority fee, 0.01 SOL kept for
    /// fees, ten reward epochs a call.
    pub fn settings(&self) -> crate::SolSettings {
        crate::SolSettings {
            endpoints: vec![self.url.clone()],
            genesis_hash: self.genesis_hash.clone(),
            withdrawer: None,
            compute_unit_price: 0,
            compute_unit_limit: 200_000,
            priority_fee_market: true,
            priority_fee_percentile: 75,
            max_compute_unit_price: 1_000_000,
            rebroadcast_for: Duration::from_secs(2),
            rebroadcast_every: Duration::from_millis(200),
            fee_reserve: 10_000_000,
            slot_ms: 400,
            max_reward_epochs: 10,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Calls a JSON-RPC method (including the `test_*` controls).
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, String> {
        self.rpc
            .send::<Value>(RpcRequest::Custom { method }, params)
            .await
            .map_err(|e| format!("{method}: {e}"))
    }

    /// Advances `n` slots (crossing epoch boundaries as they come).
    pub async fn advance_slots(&self, n: u64) -> Result<(), String> {
        self.call("test_advanceSlots", json!([n])).await.map(|_| ())
    }

    /// Advances to the start of the `n`-th next epoch; returns the epoch.
    pub async fn advance_epochs(&self, n: u64) -> Result<u64, String> {
        let v = self.call("test_advanceEpochs", json!([n])).await?;
        v.as_u64().ok_or_else(|| format!("bad epoch {v}"))
    }

    /// Creates a vote account with `commission` percent through the vote
    /// program; returns its address.
    pub async fn create_vote(&self, commission: u8) -> Result<String, String> {
        let v = self.call("test_createVote", json!([commission])).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("bad vote {v}"))
    }

    /// Marks a vote account delinquent (or not).
    pub async fn set_delinquent(&self, vote: &str, delinquent: bool) -> Result<(), String> {
        self.call("test_setDelinquent", json!([vote, delinquent]))
            .await
            .map(|_| ())
    }

    /// Transfers `lamports` from the node's faucet.
    pub async fn airdrop(&self, address: &str, lamports: u64) -> Result<(), String> {
        self.call("test_airdrop", json!([address, lamports]))
            .await
            .map(|_| ())
    }

    /// A system transfer of `lamports` from the node's faucet (the
    /// exchange's wallet, or a stranger) in a recorded transaction: its
    /// signature.
    pub async fn transfer(&self, address: &str, lamports: u64) -> Result<String, String> {
        let v = self
            .call("test_transfer", json!([address, lamports]))
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("bad signature {v}"))
    }

    /// The next `n` sendTransaction calls answer with the signature but
    /// the transaction is lost.
    pub async fn drop_sends(&self, n: u64) -> Result<(), String> {
        self.call("test_dropSends", json!([n])).await.map(|_| ())
    }

    /// The next `n` sendTransaction calls are accepted and held (pending),
    /// until [`SvmNode::release_held`].
    pub async fn hold_sends(&self, n: u64) -> Result<(), String> {
        self.call("test_holdSends", json!([n])).await.map(|_| ())
    }

    /// Includes the held transactions in order: (signature, the chain's
    /// error or `None`) for each.
    pub async fn release_held(&self) -> Result<Vec<(String, Option<Value>)>, String> {
        let v = self.call("test_releaseHeld", json!([])).await?;
        v.as_array()
            .ok_or_else(|| format!("bad answer {v}"))?
            .iter()
            .map(|p| {
                let sig = p[0].as_str().ok_or_else(|| format!("bad answer {v}"))?;
                Ok((sig.to_owned(), Some(p[1].clone()).filter(|e| !e.is_null())))
            })
            .collect()
    }

    /// From the current slot on, leaders require `fee` micro-lamports
    /// per compute unit (what getRecentPrioritizationFees reports for
    /// these slots); cheaper transactions are answered and dropped.
    /// Returns how many were dropped as underpriced so far.
    pub async fn set_priority_market(&self, fee: u64) -> Result<u64, String> {
        let v = self.call("test_setPriorityMarket", json!([fee])).await?;
        v.as_u64().ok_or_else(|| format!("bad count {v}"))
    }

    /// Lamports at an address.
    pub async fn balance(&self, address: &str) -> Result<u64, String> {
        let v = self.call("getBalance", json!([address])).await?;
        v.pointer("/value")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("bad balance {v}"))
    }
}
