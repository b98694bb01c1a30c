//! [`EthAdapter`]: the Ethereum `ChainAdapter`: execution layer over
//! JSON-RPC with alloy, consensus layer over the standard Beacon API.
//!
//! - The pool is the custody account's balance plus the validators whose
//!   deposit data (in `deposit_data_dir`) points their withdrawal
//!   credentials to it. The planner sees one "validator": the configured
//!   operator label; stake moves in 32 ETH chunks, one deposit or one
//!   request per operation.
//! - Delegate = the first unused deposit entry of that amount, verified
//!   ([`crate::deposit::verify`]) and checked never deposited (Beacon API
//!   and the deposit contract's logs) before it is signed.
//! - Undelegate = an EIP-7002 request: a partial withdrawal from a 0x02
//!   validator that keeps 32 ETH, else a full exit; the fee is read from the
//!   request contract at signing time.
//! - Exited balances come back by themselves (the consensus layer's
//!   sweep), so nothing is ever "withdrawn" by softstake.
//! - Rewards, reported apart: consensus = balance growth plus withdrawals
//!   (skims) per validator over a slot range, against a high-water mark so
//!   a penalty is never followed by a double-counted recovery; execution =
//!   priority fees and payments to the fee recipient in blocks it received.
//! - Nonces come from the chain's pending count and this process's own
//!   signatures; an operation is `Expired` when the account's mined nonce is
//!   past the journaled transaction's and it has no receipt (another
//!   transaction took its nonce; it can never land).

use crate::deposit::{self, DepositEntry, VerifiedDeposit};
use crate::flows;
use crate::keys::LocalKey;
use crate::queue::{self, QueueConfig, Scheduled};
use crate::tx::{self, Action, TxParams};
use alloy::providers::{Provider, RootProvider};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest,
    IdentifyResponse, LookupRequest, LookupResponse, Maintenance, ObservedReward, OperationKind,
    PoolFlow, PoolStateRequest, PoolStateResponse, ReplaceRequest, RewardKind, RewardsRequest,
    RewardsResponse, SignedOperation, TxStatus, UnbondingEntry,
};
use softstake_core::secret::redact_endpoint;
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_rpc::{Endpoints, Head, Options, ServerErrors, sdk_error};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WEI_PER_GWEI: u128 = 1_000_000_000;

/// Settings from `[chains.network]` (type = "ethereum").
#[derive(Debug, Clone)]
pub struct EthSettings {
    /// Execution-layer JSON-RPC endpoints.
    pub endpoints: Vec<String>,
    /// Beacon API endpoints.
    pub beacon_endpoints: Vec<String>,
    /// EIP-155 chain id every endpoint must report.
    pub chain_id: u64,
    /// Genesis fork version (the deposit signature domain).
    pub fork_version: [u8; 4],
    /// Deposit contract address.
    pub deposit_contract: String,
    /// EIP-7002 withdrawal request contract address.
    pub withdrawal_request_contract: String,
    /// Directory of staking-deposit-cli `deposit_data-*.json` files.
    pub deposit_data_dir: PathBuf,
    /// The label the planner's validator list uses for this operator.
    pub operator: String,
    /// Fee recipient of the operator's validators (default: custody).
    pub fee_recipient: Option<String>,
    /// Refuse to sign above this max fee per gas, wei.
    pub max_fee_per_gas: u128,
    /// Refuse to sign above this gas limit.
    pub max_gas: u64,
    /// First block to scan deposit logs from.
    pub deposit_log_from_block: u64,
    /// Blocks on top of the inclusion block before an operation counts.
    pub confirmations: u64,
    /// Estimated time from withdrawable epoch to the sweep paying out.
    pub sweep_delay_secs: u64,
    /// Most slots scanned per rewards call.
    pub max_scan_slots: u64,
    /// Most execution blocks scanned per rewards call.
    pub max_scan_blocks: u64,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The adapter.
pub struct EthAdapter {
    s: EthSettings,
    key: Arc<LocalKey>,
    els: Endpoints<RootProvider>,
    beacon: Endpoints,
    /// Nonce after the last transaction this process signed.
    next_nonce: Mutex<Option<u64>>,
    /// Validators this process sent deposits or exit requests for.
    sent_deposits: Mutex<BTreeSet<String>>,
    sent_exits: Mutex<BTreeSet<String>>,
    /// Of those, the full exits (unbonding until the beacon chain shows them).
    sent_full_exits: Mutex<BTreeSet<String>>,
    /// The deposit transactions this process sent, by pubkey: a deposit
    /// counts as activating from the block that included it.
    deposit_txs: Mutex<BTreeMap<String, String>>,
    /// The execution block the last observing pool read was taken at: the
    /// books' flows are scanned to that block, so holdings and flows
    /// describe the same moment.
    observed_block: Mutex<Option<u64>>,
    /// The exit queue as last read: (epoch read at, epochs from then until
    /// an exit requested then is withdrawable). Read once per epoch.
    exit_queue: Mutex<Option<(u64, u64)>>,
}

impl std::fmt::Debug for EthAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthAdapter")
            .field("custody", &self.key.address())
            .field("chain_id", &self.s.chain_id)
            .finish_non_exhaustive()
    }
}

fn bad(what: &str, v: &Value) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "ethereum node".into(),
        message: format!("unexpected {what} answer: {v}"),
    }
}

fn hex_u128(v: &Value) -> Option<u128> {
    v.as_str()
        .and_then(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok())
}

fn hex_u64(v: &Value) -> Option<u64> {
    hex_u128(v).and_then(|x| u64::try_from(x).ok())
}

fn num_str(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

fn wei(gwei: u64) -> Amount {
    Amount::from_base(u128::from(gwei) * WEI_PER_GWEI)
}

/// One of our validators as the Beacon API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BeaconValidator {
    index: u64,
    pubkey: String,
    status: String,
    balance_gwei: u64,
    credential_type: u8,
    activation_epoch: u64,
    withdrawable_epoch: u64,
    slashed: bool,
}

/// The consensus reward cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Last slot accounted for (None: start at the current head).
    slot: Option<u64>,
    /// Per validator index: withdrawn so far and the high-water mark of
    /// balance + withdrawn, gwei.
    withdrawn: BTreeMap<u64, u64>,
    high_water: BTreeMap<u64, u64>,
    /// Last execution block accounted for.
    block: Option<u64>,
    /// End of the last execution reward's period (unix seconds): the next
    /// one is attributed from there, so execution income is shared by
    /// everyone who held since, not by whoever held in its 12-second slot
    /// (proposals are known an epoch ahead: a period that short is
    /// gameable).
    #[serde(default)]
    el_since: Option<i64>,
}

impl EthAdapter {
    /// An adapter for `key`.
    pub fn new(s: EthSettings, key: Arc<LocalKey>) -> Result<Self, AdapterError> {
        if s.endpoints.is_empty() || s.beacon_endpoints.is_empty() {
            return Err(AdapterError::Config(
                "ethereum: endpoints and network.beacon_endpoints must both be set".into(),
            ));
        }
        tx::parse_address("deposit_contract", &s.deposit_contract)
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        tx::parse_address(
            "withdrawal_request_contract",
            &s.withdrawal_request_contract,
        )
        .map_err(|e| AdapterError::Config(e.to_string()))?;
        let opts = Options {
            timeout: s.request_timeout,
            ..Options::default()
        };
        let els =
            Endpoints::with_clients("ethereum execution RPC", &s.endpoints, opts.clone(), |e| {
                let url = e.parse().map_err(|_| {
                    AdapterError::Config(format!("endpoint {} is not a URL", redact_endpoint(e)))
                })?;
                Ok(RootProvider::new_http(url))
            })?
            .with_identity(s.chain_id.to_string(), |ep| async move {
                let v: Value = ep
                    .client()
                    .raw_request("eth_chainId".into(), json!([]))
                    .await
                    .map_err(|e| ep.transport(e))?;
                hex_u64(&v)
                    .map(|id| id.to_string())
                    .ok_or_else(|| ep.bad_response("eth_chainId", &v))
            });
        let beacon = Endpoints::http("ethereum Beacon API", &s.beacon_endpoints, opts)?
            .with_identity(
                format!("0x{}", hex::encode(s.fork_version)),
                |ep| async move {
                    let g = ep.get("/eth/v1/beacon/genesis").await?.json()?;
                    g.pointer("/data/genesis_fork_version")
                        .and_then(Value::as_str)
                        .map(str::to_lowercase)
                        .ok_or_else(|| ep.bad_response("genesis", &g))
                },
            );
        Ok(EthAdapter {
            s,
            key,
            els,
            beacon,
            next_nonce: Mutex::new(None),
            sent_deposits: Mutex::new(BTreeSet::new()),
            sent_exits: Mutex::new(BTreeSet::new()),
            sent_full_exits: Mutex::new(BTreeSet::new()),
            deposit_txs: Mutex::new(BTreeMap::new()),
            observed_block: Mutex::new(None),
            exit_queue: Mutex::new(None),
        })
    }

    fn custody(&self) -> String {
        self.key.address().to_checksum(None)
    }

    fn fee_recipient(&self) -> String {
        self.s
            .fee_recipient
            .clone()
            .unwrap_or_else(|| self.custody())
            .to_lowercase()
    }

    /// One execution-layer call through the endpoint layer (fallback,
    /// chain id checked once per endpoint).
    async fn el(&self, method: &'static str, params: Value) -> Result<Value, AdapterError> {
        self.els
            .call(|ep| {
                let params = params.clone();
                async move {
                    match ep
                        .client()
                        .raw_request::<Value, Value>(method.into(), params)
                        .await
                    {
                        Ok(v) => Ok(v),
                        Err(e) => {
                            let msg = e.to_string();
                            if msg.contains("error code")
                                || msg.contains("server returned an error")
                            {
                                // The node answered with a JSON-RPC error: not a
                                // transport problem; another endpoint says the same.
                                Err(AdapterError::Rejected(msg))
                            } else {
                                Err(sdk_error(ep.shown(), &msg))
                            }
                        }
                    }
                }
            })
            .await
    }

    async fn beacon_get(&self, path: &str) -> Result<Option<Value>, AdapterError> {
        self.beacon(path, None).await
    }

    /// A Beacon API call through the endpoint layer: `None` for 404; any
    /// other failure status tries the next endpoint.
    async fn beacon(
        &self,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, AdapterError> {
        self.beacon
            .call(|ep| async move {
                let r = match body {
                    Some(b) => ep.post_json(path, b, ServerErrors::Retry).await?,
                    None => ep.get(path).await?,
                };
                match r.status {
                    404 => Ok(None),
                    _ if r.is_success() => r.json().map(Some),
                    other => Err(ep.transport(format!("HTTP {other}"))),
                }
            })
            .await
    }

    async fn spec(&self) -> Result<(u64, u64, u64), AdapterError> {
        let g = self
            .beacon_get("/eth/v1/beacon/genesis")
            .await?
            .ok_or_else(|| bad("genesis", &Value::Null))?;
        // The genesis fork version was checked by the endpoint layer.
        let genesis = g
            .pointer("/data/genesis_time")
            .and_then(num_str)
            .ok_or_else(|| bad("genesis", &g))?;
        let sp = self
            .beacon_get("/eth/v1/config/spec")
            .await?
            .ok_or_else(|| bad("spec", &Value::Null))?;
        let sps = sp
            .pointer("/data/SECONDS_PER_SLOT")
            .and_then(num_str)
            .ok_or_else(|| bad("spec", &sp))?;
        let spe = sp
            .pointer("/data/SLOTS_PER_EPOCH")
            .and_then(num_str)
            .ok_or_else(|| bad("spec", &sp))?;
        Ok((genesis, sps, spe))
    }

    async fn head_slot(&self) -> Result<u64, AdapterError> {
        let h = self
            .beacon_get("/eth/v1/beacon/headers/head")
            .await?
            .ok_or_else(|| bad("head", &Value::Null))?;
        h.pointer("/data/header/message/slot")
            .and_then(num_str)
            .ok_or_else(|| bad("head", &h))
    }

    /// The constants the exit queue depends on, from the node's
    /// `/eth/v1/config/spec` (mainnet's for any it does not report).
    async fn queue_config(&self) -> Result<QueueConfig, AdapterError> {
        let sp = self
            .beacon_get("/eth/v1/config/spec")
            .await?
            .ok_or_else(|| bad("spec", &Value::Null))?;
        let d = QueueConfig::MAINNET;
        let get = |k: &str, default: u64| {
            sp.pointer(&format!("/data/{k}"))
                .and_then(num_str)
                .unwrap_or(default)
        };
        Ok(QueueConfig {
            max_seed_lookahead: get("MAX_SEED_LOOKAHEAD", d.max_seed_lookahead),
            withdrawability_delay: get(
                "MIN_VALIDATOR_WITHDRAWABILITY_DELAY",
                d.withdrawability_delay,
            ),
            min_churn: get("MIN_PER_EPOCH_CHURN_LIMIT_ELECTRA", d.min_churn),
            max_churn: get("MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT", d.max_churn),
            increment: get("EFFECTIVE_BALANCE_INCREMENT", d.increment),
            shard_committee_period: get("SHARD_COMMITTEE_PERIOD", d.shard_committee_period),
        })
    }

    /// Epochs from `epoch` until a 32 ETH exit requested now is
    /// withdrawable, from the state's exit queue (see [`crate::queue`]):
    /// every validator exiting at `state` and every queued partial
    /// withdrawal. Read once per epoch (on mainnet a long queue is tens of
    /// thousands of validators).
    async fn exit_delay_epochs(
        &self,
        state: &str,
        epoch: u64,
        partials: &BTreeMap<u64, Vec<(u64, u64)>>,
    ) -> Result<u64, AdapterError> {
        if let Ok(q) = self.exit_queue.lock()
            && let Some((at, epochs)) = *q
            && at == epoch
        {
            return Ok(epochs);
        }
        let cfg = self.queue_config().await?;
        let v = self
            .beacon(
                &format!("/eth/v1/beacon/states/{state}/validators"),
                Some(&json!({"statuses": ["active_exiting", "active_slashed"]})),
            )
            .await?
            .unwrap_or(json!({"data": []}));
        let mut scheduled = Vec::new();
        for x in v
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let status = x.get("status").and_then(Value::as_str).unwrap_or("");
            let exit = x.pointer("/validator/exit_epoch").and_then(num_str);
            let gwei = x.pointer("/validator/effective_balance").and_then(num_str);
            if let ("active_exiting" | "active_slashed", Some(e), Some(g)) = (status, exit, gwei)
                && e != u64::MAX
            {
                scheduled.push(Scheduled {
                    exit_epoch: e,
                    gwei: g,
                });
            }
        }
        for (gwei, withdrawable) in partials.values().flatten() {
            scheduled.push(Scheduled {
                exit_epoch: withdrawable.saturating_sub(cfg.withdrawability_delay),
                gwei: *gwei,
            });
        }
        let epochs =
            queue::epochs_to_withdrawable(&cfg, epoch, &scheduled, deposit::STAKE_0X01_GWEI);
        if let Ok(mut q) = self.exit_queue.lock() {
            *q = Some((epoch, epochs));
        }
        Ok(epochs)
    }

    /// Our deposit entries (unverified; withdrawal credentials to custody).
    fn entries(&self) -> Result<Vec<DepositEntry>, AdapterError> {
        let custody = self.custody().to_lowercase();
        let all = deposit::read_dir(&self.s.deposit_data_dir)
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(all
            .into_iter()
            .filter(|e| {
                e.withdrawal_credentials
                    .to_lowercase()
                    .ends_with(&custody[2..])
            })
            .collect())
    }

    async fn validators_at(
        &self,
        state: &str,
        pubkeys: &[String],
    ) -> Result<Vec<BeaconValidator>, AdapterError> {
        if pubkeys.is_empty() {
            return Ok(Vec::new());
        }
        let v = self
            .beacon(
                &format!("/eth/v1/beacon/states/{state}/validators"),
                Some(&json!({"ids": pubkeys})),
            )
            .await?
            .unwrap_or(json!({"data": []}));
        let mut out = Vec::new();
        for x in v
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let wc = x
                .pointer("/validator/withdrawal_credentials")
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push(BeaconValidator {
                index: x
                    .get("index")
                    .and_then(num_str)
                    .ok_or_else(|| bad("validators", x))?,
                pubkey: x
                    .pointer("/validator/pubkey")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_lowercase(),
                status: x
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                balance_gwei: x
                    .get("balance")
                    .and_then(num_str)
                    .ok_or_else(|| bad("validators", x))?,
                credential_type: u8::from_str_radix(
                    wc.trim_start_matches("0x").get(..2).unwrap_or("00"),
                    16,
                )
                .unwrap_or(0),
                activation_epoch: x
                    .pointer("/validator/activation_epoch")
                    .and_then(num_str)
                    .unwrap_or(u64::MAX),
                withdrawable_epoch: x
                    .pointer("/validator/withdrawable_epoch")
                    .and_then(num_str)
                    .unwrap_or(u64::MAX),
                slashed: x
                    .pointer("/validator/slashed")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        Ok(out)
    }

    /// The state's queued partial withdrawals (Electra's
    /// `pending_partial_withdrawals`) by validator index: (gwei,
    /// withdrawable epoch) each. A node before Electra answers 404: none.
    async fn pending_partials(
        &self,
        state: &str,
    ) -> Result<BTreeMap<u64, Vec<(u64, u64)>>, AdapterError> {
        let v = self
            .beacon_get(&format!(
                "/eth/v1/beacon/states/{state}/pending_partial_withdrawals"
            ))
            .await?
            .unwrap_or(json!({"data": []}));
        let mut out: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for w in v
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |k: &str| {
                w.get(k)
                    .and_then(num_str)
                    .ok_or_else(|| bad("pending_partial_withdrawals", w))
            };
            out.entry(field("validator_index")?)
                .or_default()
                .push((field("amount")?, field("withdrawable_epoch")?));
        }
        Ok(out)
    }

    /// Pubkeys the deposit contract has seen (its DepositEvent logs).
    async fn deposited_pubkeys(&self) -> Result<BTreeSet<String>, AdapterError> {
        let logs = self
            .el(
                "eth_getLogs",
                json!([{"address": self.s.deposit_contract, "fromBlock": format!("0x{:x}", self.s.deposit_log_from_block), "toBlock": "latest"}]),
            )
            .await?;
        let mut out = BTreeSet::new();
        for l in logs.as_array().into_iter().flatten() {
            // DepositEvent(bytes,bytes,bytes,bytes,bytes): the first word is
            // the pubkey's offset; at it, its length (48) then its bytes.
            let data = l.get("data").and_then(Value::as_str).unwrap_or("");
            let bytes = hex::decode(data.trim_start_matches("0x")).unwrap_or_default();
            if bytes.len() < 32 {
                continue;
            }
            let off = usize::try_from(u64::from_be_bytes(
                bytes[24..32].try_into().unwrap_or([0; 8]),
            ))
            .unwrap_or(usize::MAX);
            if let Some(pk) = bytes.get(off + 32..off + 80) {
                out.insert(format!("0x{}", hex::encode(pk)));
            }
        }
        Ok(out)
    }

    async fn nonce(&self) -> Result<u64, AdapterError> {
        let v = self
            .el(
                "eth_getTransactionCount",
                json!([self.custody(), "pending"]),
            )
            .await?;
        let chain = hex_u64(&v).ok_or_else(|| bad("eth_getTransactionCount", &v))?;
        let mine = self.next_nonce.lock().ok().and_then(|n| *n);
        if mine.is_none() {
            // This process has sent nothing yet, but the node holds
            // transactions from the custody account it has not mined: sent
            // before a restart, before the database was restored from a
            // backup (the journal no longer knows them), or by another
            // signer. Signing now would take the next nonce and send a
            // second operation beside them; once they are mined the books
            // find and adopt them, and planning sees what they did.
            let l = self
                .el("eth_getTransactionCount", json!([self.custody(), "latest"]))
                .await?;
            let latest = hex_u64(&l).ok_or_else(|| bad("eth_getTransactionCount", &l))?;
            if chain > latest {
                return Err(AdapterError::TryLater(format!(
                    "{} transaction(s) from the custody account wait in the node's mempool that this process did not send (before a restart or a restore, or another signer): nothing is signed until they are mined",
                    chain - latest
                )));
            }
        }
        Ok(chain.max(mine.unwrap_or(0)))
    }

    async fn fees(&self) -> Result<(u64, u64), AdapterError> {
        let block = self
            .el("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        let base = block.get("baseFeePerGas").and_then(hex_u128).unwrap_or(0);
        let tip = self
            .el("eth_maxPriorityFeePerGas", json!([]))
            .await
            .ok()
            .and_then(|v| hex_u128(&v))
            .unwrap_or(1_000_000_000);
        let max_fee = base.saturating_mul(2).saturating_add(tip);
        if max_fee > self.s.max_fee_per_gas {
            return Err(AdapterError::InvalidRequest(format!(
                "the network asks a max fee of {max_fee} wei per gas, above the configured cap {}",
                self.s.max_fee_per_gas
            )));
        }
        let cap = |v: u128| {
            u64::try_from(v).map_err(|_| {
                AdapterError::InvalidRequest(format!("fee {v} wei per gas is out of range"))
            })
        };
        Ok((cap(max_fee)?, cap(tip)?))
    }

    /// The action for `op`, checked against the chain.
    async fn choose(&self, op: &OperationKind) -> Result<(Action, String), AdapterError> {
        let refuse = |m: String| Err(AdapterError::InvalidRequest(m));
        match op {
            OperationKind::Delegate { validator, amount } => {
                if *validator != self.s.operator {
                    return refuse(format!(
                        "unknown operator {validator:?} (this chain's operator is {:?})",
                        self.s.operator
                    ));
                }
                let entries = self.entries()?;
                let pubkeys: Vec<String> = entries.iter().map(|e| format!("0x{}", e.pubkey.to_lowercase())).collect();
                let known: BTreeSet<String> = self
                    .validators_at("head", &pubkeys)
                    .await?
                    .into_iter()
                    .map(|v| v.pubkey)
                    .collect();
                let logged = self.deposited_pubkeys().await?;
                let sent = self.sent_deposits.lock().map(|s| s.clone()).unwrap_or_default();
                let custody: [u8; 20] = self.key.address().into_array();
                let unused = entries.iter().find(|e| {
                    let pk = format!("0x{}", e.pubkey.to_lowercase());
                    !known.contains(&pk) && !logged.contains(&pk) && !sent.contains(&pk)
                        && u128::from(e.amount) * WEI_PER_GWEI == amount.base()
                });
                let Some(e) = unused else {
                    return refuse(format!(
                        "no unused deposit data for {amount} wei in {} (every entry is deposited already or of another amount)",
                        self.s.deposit_data_dir.display()
                    ));
                };
                let d: VerifiedDeposit = deposit::verify(e, &custody, self.s.fork_version)
                    .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
                Ok((
                    Action::Deposit {
                        pubkey: d.pubkey_hex(),
                        withdrawal_credentials: format!("0x{}", hex::encode(d.withdrawal_credentials)),
                        signature: format!("0x{}", hex::encode(d.signature)),
                        deposit_data_root: format!("0x{}", hex::encode(d.deposit_data_root)),
                        amount_gwei: d.amount_gwei,
                    },
                    d.pubkey_hex(),
                ))
            }
            OperationKind::Undelegate { validator, amount } => {
                if *validator != self.s.operator {
                    return refuse(format!("unknown operator {validator:?}"));
                }
                let pubkeys: Vec<String> = self.entries()?.iter().map(|e| format!("0x{}", e.pubkey.to_lowercase())).collect();
                let exits = self.sent_exits.lock().map(|s| s.clone()).unwrap_or_default();
                // What a queued partial withdrawal will take is not
                // available again (read from the chain: a restart forgets
                // nothing).
                let queued = self.pending_partials("head").await?;
                let cfg = self.queue_config().await?;
                let (_, _, spe) = self.spec().await?;
                let epoch = self.head_slot().await? / spe.max(1);
                let active: Vec<BeaconValidator> = self
                    .validators_at("head", &pubkeys)
                    .await?
                    .into_iter()
                    .filter(|v| v.status == "active_ongoing" && !exits.contains(&v.pubkey))
                    .collect();
                // The consensus layer ignores a request (its fee paid, no
                // error anywhere) from a validator active for less than
                // SHARD_COMMITTEE_PERIOD epochs: none is sent for one.
                let Some(ready_at) = active
                    .iter()
                    .map(|v| v.activation_epoch.saturating_add(cfg.shard_committee_period))
                    .min()
                else {
                    return refuse("no active validator to exit".into());
                };
                if ready_at > epoch {
                    return Err(AdapterError::TryLater(format!(
                        "no validator may exit or withdraw before epoch {ready_at} (SHARD_COMMITTEE_PERIOD: {} epochs after activation; the chain is at epoch {epoch}): a request now would be ignored by the consensus layer",
                        cfg.shard_committee_period
                    )));
                }
                let active: Vec<BeaconValidator> = active
                    .into_iter()
                    .filter(|v| v.activation_epoch.saturating_add(cfg.shard_committee_period) <= epoch)
                    .map(|mut v| {
                        let out: u64 = queued.get(&v.index).into_iter().flatten().map(|(g, _)| *g).sum();
                        v.balance_gwei = v.balance_gwei.saturating_sub(out);
                        v
                    })
                    .collect();
                let want_gwei = u64::try_from(amount.base() / WEI_PER_GWEI)
                    .map_err(|_| AdapterError::InvalidRequest("amount too large".into()))?;
                if want_gwei == 0 {
                    return refuse("nothing to undelegate".into());
                }
                // A 0x02 validator that keeps 32 ETH after a partial withdrawal.
                if let Some(v) = active.iter().find(|v| {
                    v.credential_type == 2
                        && v.balance_gwei.saturating_sub(want_gwei) >= deposit::STAKE_0X01_GWEI
                }) {
                    return Ok((
                        Action::WithdrawalRequest { pubkey: v.pubkey.clone(), amount_gwei: want_gwei, fee_wei: self.request_fee().await? },
                        v.pubkey.clone(),
                    ));
                }
                // A full exit is ignored while the validator has partial
                // withdrawals queued.
                let Some(v) = active
                    .iter()
                    .filter(|v| !queued.contains_key(&v.index))
                    .min_by_key(|v| (v.balance_gwei.abs_diff(want_gwei), v.index))
                else {
                    return Err(AdapterError::TryLater(
                        "every validator that could exit has partial withdrawals queued, and the consensus layer ignores a full exit until they are paid".into(),
                    ));
                };
                Ok((
                    Action::WithdrawalRequest { pubkey: v.pubkey.clone(), amount_gwei: 0, fee_wei: self.request_fee().await? },
                    v.pubkey.clone(),
                ))
            }
            OperationKind::WithdrawUnbonded { .. } => refuse(
                "the consensus layer sweeps exited balances to the withdrawal address by itself; there is nothing to withdraw".into(),
            ),
            OperationKind::ClaimRewards { .. } => refuse(
                "consensus rewards are skimmed to the withdrawal address by the chain; there is nothing to claim".into(),
            ),
            OperationKind::Redelegate { .. } => refuse(
                "Ethereum cannot move stake between validators without an exit; undelegate and delegate instead".into(),
            ),
            OperationKind::Setup { step } => refuse(format!("unknown Ethereum setup step {step:?}")),
        }
    }

    /// The EIP-7002 fee, read from the contract (empty calldata).
    pub async fn request_fee(&self) -> Result<u64, AdapterError> {
        let v = self
            .el(
                "eth_call",
                json!([{"to": self.s.withdrawal_request_contract, "data": "0x"}, "latest"]),
            )
            .await?;
        hex_u64(&v).ok_or_else(|| bad("withdrawal request fee (over 18 ETH?)", &v))
    }

    /// Where a pool read is taken: the beacon head's slot and the execution
    /// block its payload carries, so validator balances and the custody
    /// balance describe one moment (a skim leaves the one in the block
    /// that credits the other). A consensus layer whose blocks carry no
    /// payload number pairs the head with the newest
    /// execution block.
    async fn reading_point(&self) -> Result<(u64, u64), AdapterError> {
        let slot = self.head_slot().await?;
        let latest = self.el("eth_blockNumber", json!([])).await?;
        let latest = hex_u64(&latest).ok_or_else(|| bad("eth_blockNumber", &latest))?;
        let payload = self
            .beacon_get(&format!("/eth/v2/beacon/blocks/{slot}"))
            .await?
            .and_then(|b| {
                b.pointer("/data/message/body/execution_payload/block_number")
                    .and_then(num_str)
            });
        // An execution node behind the consensus layer: its newest block.
        Ok((slot, payload.map_or(latest, |n| n.min(latest))))
    }

    /// The flows of execution block `n` (see [`crate::flows`]), and whether
    /// the node traced it (without traces, a contract's internal transfer
    /// to the custody account is not seen).
    async fn block_flows(&self, n: u64) -> Result<(Vec<PoolFlow>, bool), AdapterError> {
        let custody = self.custody().to_lowercase();
        let b = self
            .el("eth_getBlockByNumber", json!([format!("0x{n:x}"), true]))
            .await?;
        if b.is_null() {
            return Err(bad(
                "eth_getBlockByNumber (a block below the head is missing)",
                &b,
            ));
        }
        let at = Timestamp::from_unix(
            b.get("timestamp")
                .and_then(hex_u64)
                .and_then(|t| i64::try_from(t).ok())
                .ok_or_else(|| bad("block timestamp", &b))?,
        );
        let miner = b
            .get("miner")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        let base = b.get("baseFeePerGas").and_then(hex_u128).unwrap_or(0);
        let txs: Vec<Value> = b
            .get("transactions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let lower = |t: &Value, f: &str| {
            t.get(f)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase()
        };
        // Receipts of the transactions that touch the custody account at
        // the top level: fees of our own, success of the others.
        let mut own = Vec::new();
        let mut ok = vec![false; txs.len()];
        for (i, t) in txs.iter().enumerate() {
            let (from, to) = (lower(t, "from"), lower(t, "to"));
            if from != custody && to != custody {
                continue;
            }
            let r = self
                .el("eth_getTransactionReceipt", json!([t.get("hash")]))
                .await?;
            ok[i] = r.get("status").and_then(hex_u64) == Some(1);
            if from == custody {
                let used = r.get("gasUsed").and_then(hex_u128).unwrap_or(0);
                let price = r.get("effectiveGasPrice").and_then(hex_u128).unwrap_or(0);
                let blob = r
                    .get("blobGasUsed")
                    .and_then(hex_u128)
                    .unwrap_or(0)
                    .saturating_mul(r.get("blobGasPrice").and_then(hex_u128).unwrap_or(0));
                let mut fee = used.saturating_mul(price).saturating_add(blob);
                if miner == custody {
                    // The tip came back to us as the block's fee recipient.
                    fee = fee.saturating_sub(used.saturating_mul(price.saturating_sub(base)));
                }
                own.push(flows::OwnTx {
                    hash: lower(t, "hash"),
                    fee,
                });
            }
        }
        let (moves, traced) = match self.el("trace_block", json!([format!("0x{n:x}")])).await {
            Ok(v) => (
                flows::moves_from_traces(&v).ok_or_else(|| bad("trace_block", &v))?,
                true,
            ),
            // No trace API on this node: the transactions' own values.
            Err(AdapterError::Rejected(_)) => (flows::moves_from_transactions(&b, &ok), false),
            Err(e) => return Err(e),
        };
        let recipient = self.fee_recipient();
        let builder = match flows::builder_payment(&b, &recipient) {
            Some((h, _)) => {
                let i = txs.len().saturating_sub(1);
                // Its success was read above when the recipient is custody.
                (ok.get(i).copied().unwrap_or(false) || recipient != custody).then_some(h)
            }
            None => None,
        };
        let parties = flows::Parties {
            custody,
            deposit_contract: self.s.deposit_contract.to_lowercase(),
            request_contract: self.s.withdrawal_request_contract.to_lowercase(),
        };
        Ok((
            flows::classify(&parties, &moves, &own, builder.as_deref(), at),
            traced,
        ))
    }

    async fn block_time(&self, genesis: u64, sps: u64, slot: u64) -> Timestamp {
        Timestamp::from_unix(i64::try_from(genesis + slot * sps).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl ChainAdapter for EthAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Ethereum
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        let (genesis, sps, spe) = self.spec().await?;
        // Validators at the head slot, the custody balance at the block its
        // payload carries (at least as new as any confirmed operation).
        let (slot, at) = self.reading_point().await?;
        let as_of = self.block_time(genesis, sps, slot).await;
        if req.observe
            && let Ok(mut o) = self.observed_block.lock()
        {
            *o = Some(at);
        }
        let bal = self
            .el(
                "eth_getBalance",
                json!([self.custody(), format!("0x{at:x}")]),
            )
            .await?;
        let liquid = Amount::from_base(hex_u128(&bal).ok_or_else(|| bad("eth_getBalance", &bal))?);
        let pubkeys: Vec<String> = self
            .entries()?
            .iter()
            .map(|e| format!("0x{}", e.pubkey.to_lowercase()))
            .collect();
        let vals = self.validators_at(&slot.to_string(), &pubkeys).await?;
        let seen: BTreeSet<&str> = vals.iter().map(|v| v.pubkey.as_str()).collect();
        // Partial withdrawals the consensus layer has queued: unbonding, no
        // longer active, from the chain's own queue.
        let partials = self.pending_partials(&slot.to_string()).await?;
        // Epochs until an exit asked for now is paid, from the exit queue.
        let epoch = slot / spe.max(1);
        let exit_epochs = self
            .exit_delay_epochs(&slot.to_string(), epoch, &partials)
            .await?;
        let cfg = self.queue_config().await?;
        let mut active = Amount::ZERO;
        let mut activating = Amount::ZERO;
        let mut unbonding = Vec::new();
        let mut alerts = Vec::new();
        let epoch_secs = sps * spe;
        let add = |a: Amount, b: Amount| a.checked_add(b).unwrap_or(Amount::MAX);
        let exiting = self
            .sent_full_exits
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        for v in &vals {
            let b = wei(v.balance_gwei);
            // An exit this process requested that the consensus layer has
            // not processed yet is unbonding, not active: otherwise the
            // planner would ask for the same liquidity again.
            let status = if v.status == "active_ongoing" && exiting.contains(&v.pubkey) {
                "active_exiting"
            } else {
                v.status.as_str()
            };
            match status {
                "pending_initialized" | "pending_queued" => activating = add(activating, b),
                "active_ongoing" => {
                    let mut left = v.balance_gwei;
                    for (gwei, epoch) in partials.get(&v.index).into_iter().flatten() {
                        let out = (*gwei).min(left);
                        left -= out;
                        let t = genesis + epoch * epoch_secs + self.s.sweep_delay_secs;
                        unbonding.push(UnbondingEntry {
                            validator: self.s.operator.clone(),
                            amount: wei(out),
                            completes_at: Timestamp::from_unix(
                                i64::try_from(t).unwrap_or(i64::MAX),
                            ),
                        });
                    }
                    active = add(active, wei(left));
                }
                "active_exiting"
                | "active_slashed"
                | "exited_unslashed"
                | "exited_slashed"
                | "withdrawal_possible" => {
                    // An exit asked for and not yet processed joins the
                    // queue's tail.
                    let due = if v.withdrawable_epoch == u64::MAX {
                        slot / spe.max(1) + exit_epochs
                    } else {
                        v.withdrawable_epoch
                    };
                    let t = genesis + due * epoch_secs + self.s.sweep_delay_secs;
                    unbonding.push(UnbondingEntry {
                        validator: self.s.operator.clone(),
                        amount: b,
                        completes_at: Timestamp::from_unix(i64::try_from(t).unwrap_or(i64::MAX)),
                    });
                }
                _ => {}
            }
            if v.slashed {
                alerts.push(format!(
                    "validator {} (index {}) is slashed",
                    v.pubkey, v.index
                ));
            }
        }
        // Deposits the consensus layer holds in its queue (Electra's
        // `pending_deposits`: no validator yet), read from the chain, so a
        // restart loses none of them. A node before Electra answers 404.
        let entries = self.entries()?;
        let ours: BTreeSet<String> = pubkeys.iter().cloned().collect();
        let mut queued: BTreeSet<String> = BTreeSet::new();
        let pending = self
            .beacon_get(&format!("/eth/v1/beacon/states/{slot}/pending_deposits"))
            .await?
            .unwrap_or(json!({"data": []}));
        for d in pending
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pk = d
                .get("pubkey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            if ours.contains(&pk) && !seen.contains(pk.as_str()) {
                let gwei = d
                    .get("amount")
                    .and_then(num_str)
                    .ok_or_else(|| bad("pending_deposits", d))?;
                activating = add(activating, wei(gwei));
                queued.insert(pk);
            }
        }
        // When the first of our validators may exit: an exit or withdrawal
        // request is only taken SHARD_COMMITTEE_PERIOD epochs after
        // activation, so a promise made while every validator is new (or
        // still a deposit) waits for that too. A validator without an
        // activation epoch yet is assumed active after its deposit is
        // finalized and processed (the activation churn, at its lower bound,
        // for the deposits queued ahead of it), its eligibility finalized,
        // and MAX_SEED_LOOKAHEAD + 1 epochs: with prompt finality, about
        // nine epochs on mainnet.
        let settle = 5 + cfg.max_seed_lookahead;
        let mut ready: Vec<u64> = vals
            .iter()
            .filter_map(|v| match v.status.as_str() {
                "active_ongoing" => Some(v.activation_epoch),
                "pending_initialized" | "pending_queued" if v.activation_epoch != u64::MAX => {
                    Some(v.activation_epoch)
                }
                "pending_initialized" | "pending_queued" => Some(epoch.saturating_add(settle)),
                _ => None,
            })
            .collect();
        let mut ahead: u64 = 0;
        for d in pending
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            ahead = ahead.saturating_add(d.get("amount").and_then(num_str).unwrap_or(0));
            let pk = d
                .get("pubkey")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            if queued.contains(&pk) {
                ready.push(
                    epoch
                        .saturating_add(ahead.div_ceil(cfg.min_churn.max(1)))
                        .saturating_add(settle),
                );
            }
        }
        let wait = ready
            .iter()
            .map(|a| {
                a.saturating_add(cfg.shard_committee_period)
                    .saturating_sub(epoch)
            })
            .min()
            .unwrap_or(0);
        // Deposits this process sent that the consensus layer has not
        // taken in yet, from the block that included them (before it, the
        // balance read above still holds the ether).
        let sent = self
            .deposit_txs
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        for (pk, hash) in sent
            .iter()
            .filter(|(p, _)| !seen.contains(p.as_str()) && !queued.contains(p.as_str()))
        {
            let r = self.el("eth_getTransactionReceipt", json!([hash])).await?;
            let included = r.get("blockNumber").and_then(hex_u64);
            if r.get("status").and_then(hex_u64) != Some(1) || included.is_none_or(|b| b > at) {
                continue;
            }
            if let Some(e) = entries
                .iter()
                .find(|e| format!("0x{}", e.pubkey.to_lowercase()) == *pk)
            {
                activating = add(activating, wei(e.amount));
            }
        }
        Ok(PoolStateResponse {
            chain: ChainId::Ethereum,
            as_of,
            liquid,
            delegations: vec![Delegation {
                validator: self.s.operator.clone(),
                active,
                activating,
                impaired: vals.iter().any(|v| v.slashed),
                commission: None,
            }],
            unbonding,
            withdrawable: Amount::ZERO,
            claimable_rewards: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: wei(deposit::STAKE_0X01_GWEI),
                max_unbonding_entries: None,
                // Waiting for a validator old enough to exit, the exit
                // queue as the state shows it, the epochs until
                // withdrawable, and the sweep.
                unbonding_delay_secs: exit_epochs
                    .saturating_add(wait)
                    .saturating_mul(epoch_secs)
                    .saturating_add(self.s.sweep_delay_secs),
                delegation_keeps_funds_liquid: false,
                stake_chunk: Some(wei(deposit::STAKE_0X01_GWEI)),
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses: Vec::new(),
            alerts,
        })
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Scanned to the block the observing pool read was taken at, so
        // the books compare holdings and flows of one moment.
        let (_, settled) = self.reading_point().await?;
        let target = self
            .observed_block
            .lock()
            .ok()
            .and_then(|o| *o)
            .map_or(settled, |b| b.min(settled));
        // Builder payments to another fee recipient never reach the pool.
        let recipient_ok = self.fee_recipient() == self.custody().to_lowercase();
        let from = match req.cursor.as_deref() {
            None => {
                return Ok(FlowsResponse {
                    flows: Vec::new(),
                    next_cursor: Some(format!("el:{target}")),
                    complete: recipient_ok,
                });
            }
            Some(c) => c
                .strip_prefix("el:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| AdapterError::Config(format!("ethereum flow cursor {c:?}")))?,
        };
        let to = target.min(from.saturating_add(self.s.max_scan_blocks));
        let mut out = Vec::new();
        let mut traced = true;
        for n in from.saturating_add(1)..=to {
            let (flows, t) = self.block_flows(n).await?;
            out.extend(flows);
            traced &= t;
        }
        Ok(FlowsResponse {
            flows: out,
            next_cursor: Some(format!("el:{}", to.max(from))),
            // Complete only when every block up to the pool read was
            // traced, and builders pay into the pool.
            complete: recipient_ok && traced && to >= target,
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let (genesis, sps, spe) = self.spec().await?;
        let mut c: Cursor = match req.cursor.as_deref() {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| AdapterError::Config(format!("ethereum reward cursor: {e}")))?,
            None => Cursor::default(),
        };
        let head = self.head_slot().await?;
        let mut rewards = Vec::new();
        // Consensus layer.
        let pubkeys: Vec<String> = self
            .entries()?
            .iter()
            .map(|e| format!("0x{}", e.pubkey.to_lowercase()))
            .collect();
        let start = c.slot.unwrap_or(head);
        let end = head.min(start.saturating_add(self.s.max_scan_slots));
        if end > start || c.slot.is_none() {
            let vals = self.validators_at(&end.to_string(), &pubkeys).await?;
            let ours: BTreeMap<u64, &BeaconValidator> = vals.iter().map(|v| (v.index, v)).collect();
            let mut withdrawn_now: BTreeMap<u64, u64> = BTreeMap::new();
            if c.slot.is_some() {
                for slot in start + 1..=end {
                    let Some(b) = self
                        .beacon_get(&format!("/eth/v2/beacon/blocks/{slot}"))
                        .await?
                    else {
                        continue;
                    };
                    let ws = b
                        .pointer("/data/message/body/execution_payload/withdrawals")
                        .and_then(Value::as_array);
                    for w in ws.into_iter().flatten() {
                        let idx = w
                            .get("validator_index")
                            .and_then(num_str)
                            .unwrap_or(u64::MAX);
                        if ours.contains_key(&idx) {
                            *withdrawn_now.entry(idx).or_default() +=
                                w.get("amount").and_then(num_str).unwrap_or(0);
                        }
                    }
                }
            }
            let t0 = self.block_time(genesis, sps, start).await;
            let t1 = self.block_time(genesis, sps, end.max(start + 1)).await;
            for (idx, v) in &ours {
                let w = c.withdrawn.get(idx).copied().unwrap_or(0)
                    + withdrawn_now.get(idx).copied().unwrap_or(0);
                c.withdrawn.insert(*idx, w);
                let value = v.balance_gwei.saturating_add(w);
                match c.high_water.get(idx).copied() {
                    None => {
                        c.high_water.insert(*idx, value);
                    }
                    Some(hw) if value > hw => {
                        c.high_water.insert(*idx, value);
                        rewards.push(ObservedReward {
                            key: format!("cl:{idx}:{start}-{end}"),
                            period: Period::new(t0, t1)
                                .map_err(|e| bad("period", &json!(e.to_string())))?,
                            amount: wei(value - hw),
                            validator: self.s.operator.clone(),
                            kind: RewardKind::Consensus,
                            tx_hash: Some(format!("beacon:validator:{idx}:slots:{start}-{end}")),
                            epoch: Some(end / spe.max(1)),
                        });
                    }
                    Some(_) => {}
                }
            }
            c.slot = Some(end);
        }
        // Execution layer: priority fees of the blocks whose fee recipient
        // is ours, and builders' payments (MEV-boost: the builder is the
        // block's fee recipient and pays ours in the block's last
        // transaction). Any other transfer into the custody account is
        // not income: the pool's books see it as a transfer.
        // Up to the block the pool is read at: income is never evidenced
        // before the holdings show it (the books would see a fall, then a
        // rise).
        let (_, latest) = self.reading_point().await?;
        let from = c.block.map_or(latest, |b| b + 1);
        let to = latest.min(from.saturating_add(self.s.max_scan_blocks));
        let recipient = self.fee_recipient();
        if c.block.is_some() {
            for n in from..=to {
                let b = self
                    .el("eth_getBlockByNumber", json!([format!("0x{n:x}"), true]))
                    .await?;
                let miner = b
                    .get("miner")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase)
                    .unwrap_or_default();
                let base = b.get("baseFeePerGas").and_then(hex_u128).unwrap_or(0);
                let mut priority: u128 = 0;
                let mut mev: u128 = 0;
                if miner != recipient
                    && let Some((h, value)) = flows::builder_payment(&b, &recipient)
                {
                    let r = self.el("eth_getTransactionReceipt", json!([h])).await?;
                    if r.get("status").and_then(hex_u64) == Some(1) {
                        mev = value;
                    }
                }
                for t in b
                    .get("transactions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|_| miner == recipient)
                {
                    let from_addr = t.get("from").and_then(Value::as_str).map(str::to_lowercase);
                    if from_addr.as_deref() == Some(recipient.as_str()) {
                        // Our own transaction's tip comes back to us: a
                        // smaller cost, not a reward.
                        continue;
                    }
                    let h = t.get("hash").cloned().unwrap_or(Value::Null);
                    let r = self.el("eth_getTransactionReceipt", json!([h])).await?;
                    let used = r.get("gasUsed").and_then(hex_u128).unwrap_or(0);
                    let price = r.get("effectiveGasPrice").and_then(hex_u128).unwrap_or(0);
                    priority =
                        priority.saturating_add(used.saturating_mul(price.saturating_sub(base)));
                }
                let total = priority.saturating_add(mev);
                if total == 0 {
                    continue;
                }
                let ts = b.get("timestamp").and_then(hex_u64).unwrap_or(0);
                let ts = i64::try_from(ts).unwrap_or(i64::MAX);
                let start = c.el_since.filter(|s| *s < ts).unwrap_or(ts - 12);
                c.el_since = Some(ts);
                rewards.push(ObservedReward {
                    key: format!("el:{n}"),
                    period: Period::new(Timestamp::from_unix(start), Timestamp::from_unix(ts))
                        .map_err(|e| bad("period", &json!(e.to_string())))?,
                    amount: Amount::from_base(total),
                    validator: self.s.operator.clone(),
                    kind: RewardKind::Execution,
                    tx_hash: b
                        .get("hash")
                        .and_then(Value::as_str)
                        .map(|h| format!("block:{h}")),
                    epoch: None,
                });
            }
        }
        c.block = Some(to.max(from.saturating_sub(1)));
        if c.block.is_none() || from > to {
            c.block = Some(latest);
        }
        if c.el_since.is_none() {
            // Income from now on is shared from now on (the execution
            // layer's own clock: the periods are its blocks' times).
            let b = self
                .el(
                    "eth_getBlockByNumber",
                    json!([format!("0x{latest:x}"), false]),
                )
                .await?;
            c.el_since = b
                .get("timestamp")
                .and_then(hex_u64)
                .and_then(|t| i64::try_from(t).ok());
        }
        let next = serde_json::to_string(&c).map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(RewardsResponse {
            rewards,
            next_cursor: Some(next),
            foreign: Vec::new(),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        let (action, pubkey) = self.choose(&req.kind).await?;
        let (max_fee, tip) = self.fees().await?;
        let nonce = self.nonce().await?;
        let mut p = TxParams {
            chain_id: self.s.chain_id,
            nonce,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            gas_limit: 0,
            deposit_contract: self.s.deposit_contract.clone(),
            withdrawal_request_contract: self.s.withdrawal_request_contract.clone(),
        };
        let (to, value, data) =
            tx::call_of(&action, &p).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        // The node simulates the call: a revert (bad deposit, low fee) is
        // refused here, before anything is signed.
        let est = self
            .el(
                "eth_estimateGas",
                json!([{"from": self.custody(), "to": format!("{to:#x}"), "value": format!("{value:#x}"), "data": format!("0x{}", hex::encode(&data))}]),
            )
            .await
            .map_err(|e| match e {
                AdapterError::Rejected(m) => AdapterError::InvalidRequest(format!("the chain would reject it: {m}")),
                other => other,
            })?;
        let est = hex_u64(&est).ok_or_else(|| bad("eth_estimateGas", &est))?;
        let gas = est.saturating_add(est / 5);
        if gas > self.s.max_gas {
            return Err(AdapterError::InvalidRequest(format!(
                "needs {gas} gas, above the configured max_gas {}",
                self.s.max_gas
            )));
        }
        p.gas_limit = gas;
        let cost = value.saturating_add(alloy::primitives::U256::from(
            u128::from(gas).saturating_mul(u128::from(max_fee)),
        ));
        let bal = self
            .el("eth_getBalance", json!([self.custody(), "latest"]))
            .await?;
        let bal = hex_u128(&bal).ok_or_else(|| bad("eth_getBalance", &bal))?;
        if alloy::primitives::U256::from(bal) < cost {
            return Err(AdapterError::InvalidRequest(format!(
                "needs {cost} wei with gas; the custody account holds {bal}"
            )));
        }
        let signed = tx::build(&action, &self.key, &p)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        if let Ok(mut n) = self.next_nonce.lock() {
            *n = Some(nonce + 1);
        }
        if matches!(action, Action::Deposit { .. })
            && let Ok(mut d) = self.deposit_txs.lock()
        {
            d.insert(pubkey.clone(), signed.hash.clone());
        }
        let sets: &[&Mutex<BTreeSet<String>>] = match action {
            Action::Deposit { .. } => &[&self.sent_deposits],
            // A full exit also counts as unbonding in the pool state; a
            // partial withdrawal leaves the validator active and earning.
            // Either keeps the validator out of the next request.
            Action::WithdrawalRequest { amount_gwei: 0, .. } => {
                &[&self.sent_exits, &self.sent_full_exits]
            }
            Action::WithdrawalRequest { .. } => &[&self.sent_exits],
        };
        for set in sets {
            if let Ok(mut s) = set.lock() {
                s.insert(pubkey.clone());
            }
        }
        Ok(SignedOperation {
            bytes: signed.bytes,
            tx_id: signed.hash,
            valid_until: None,
        })
    }

    /// The same call under the same nonce with fees at today's market and
    /// at least 10% above the refused version's on both (what execution
    /// clients require of a replacement), within `max_fee_per_gas`; only
    /// while the nonce is unmined.
    async fn replace(&self, req: ReplaceRequest) -> Result<SignedOperation, AdapterError> {
        let (nonce, prev_max, prev_tip) = tx::fees_of(&req.previous.bytes)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        let l = self
            .el("eth_getTransactionCount", json!([self.custody(), "latest"]))
            .await?;
        let mined = hex_u64(&l).ok_or_else(|| bad("eth_getTransactionCount", &l))?;
        if mined > nonce {
            return Err(AdapterError::TryLater(format!(
                "nonce {nonce} is used already (the account's next is {mined}): not signed again; the chain shows which transaction used it"
            )));
        }
        let (market_max, market_tip) = self
            .fees()
            .await
            .map_err(|e| AdapterError::TryLater(e.to_string()))?;
        let bump = |v: u128| v.saturating_add(v.div_ceil(10));
        let tip = u128::from(market_tip).max(bump(prev_tip));
        let max_fee = u128::from(market_max).max(bump(prev_max)).max(tip);
        if max_fee > self.s.max_fee_per_gas {
            return Err(AdapterError::TryLater(format!(
                "a replacement needs a max fee of {max_fee} wei per gas, above the configured cap {}",
                self.s.max_fee_per_gas
            )));
        }
        let r = tx::refee(&req.previous.bytes, &self.key, max_fee, tip)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        // A deposit in flight is followed by its new transaction.
        if let Ok(mut d) = self.deposit_txs.lock() {
            for h in d.values_mut() {
                if h.eq_ignore_ascii_case(&req.previous.tx_id) {
                    h.clone_from(&r.signed.hash);
                }
            }
        }
        tracing::info!(op = %req.operation_id, nonce, max_fee, tip, previous_max_fee = prev_max, tx = %r.signed.hash, replaces = %req.previous.tx_id, "signed again at a higher fee");
        Ok(SignedOperation {
            bytes: r.signed.bytes,
            tx_id: r.signed.hash,
            valid_until: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let raw = format!("0x{}", hex::encode(&req.signed.bytes));
        match self.el("eth_sendRawTransaction", json!([raw])).await {
            Ok(v) => {
                let h = v.as_str().unwrap_or_default().to_lowercase();
                if h != req.signed.tx_id.to_lowercase() {
                    return Err(AdapterError::Rejected(format!(
                        "node answered {h}, journaled {}",
                        req.signed.tx_id
                    )));
                }
                Ok(BroadcastResponse {
                    tx_id: req.signed.tx_id,
                })
            }
            // The base fee rose above the transaction's max fee (geth's
            // `ErrFeeCapTooLow`, anvil's and reth's words too): the node
            // holds nothing of it; a replacement at today's fees may.
            Err(AdapterError::Rejected(m)) if m.contains("less than block base fee") => {
                Err(AdapterError::Underpriced(m))
            }
            Err(AdapterError::Rejected(m))
                if m.contains("already known") || m.contains("AlreadyKnown") =>
            {
                Ok(BroadcastResponse {
                    tx_id: req.signed.tx_id,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let head_time = Timestamp::now();
        let r = self
            .el("eth_getTransactionReceipt", json!([req.tx_id]))
            .await?;
        if !r.is_null() {
            let block = r.get("blockNumber").and_then(hex_u64).unwrap_or(0);
            let latest = self.el("eth_blockNumber", json!([])).await?;
            let latest = hex_u64(&latest).unwrap_or(0);
            let status = if r.get("status").and_then(hex_u64) == Some(1) {
                if latest + 1 >= block + self.s.confirmations.max(1) {
                    TxStatus::Confirmed { height: block }
                } else {
                    TxStatus::Pending
                }
            } else {
                TxStatus::Failed {
                    reason: "execution reverted".into(),
                }
            };
            return Ok(LookupResponse { status, head_time });
        }
        let t = self
            .el("eth_getTransactionByHash", json!([req.tx_id]))
            .await?;
        if !t.is_null() {
            // Held in the pool under a fee cap the base fee has overtaken
            // (geth keeps it until the base fee falls): stuck, to be
            // replaced under its nonce at today's price.
            let cap = t.get("maxFeePerGas").and_then(hex_u128);
            let block = self
                .el("eth_getBlockByNumber", json!(["latest", false]))
                .await?;
            let base = block.get("baseFeePerGas").and_then(hex_u128);
            let status = match (cap, base) {
                (Some(cap), Some(base)) if cap < base => TxStatus::Stuck {
                    reason: format!(
                        "held by the node with a max fee per gas of {cap} wei, below the base fee of {base}: it cannot be included until the base fee falls"
                    ),
                },
                _ => TxStatus::Pending,
            };
            return Ok(LookupResponse { status, head_time });
        }
        if let Some(bytes) = req.signed_bytes {
            let nonce = tx::decode_nonce(&bytes)
                .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
            let mined = self
                .el("eth_getTransactionCount", json!([self.custody(), "latest"]))
                .await?;
            let mined = hex_u64(&mined).unwrap_or(0);
            if mined > nonce {
                // The nonce was used by another transaction: re-check the
                // receipt (it may have landed in between) before saying so.
                let again = self
                    .el("eth_getTransactionReceipt", json!([req.tx_id]))
                    .await?;
                if again.is_null() {
                    return Ok(LookupResponse {
                        status: TxStatus::Expired,
                        head_time,
                    });
                }
            }
        }
        Ok(LookupResponse {
            status: TxStatus::NotFound,
            head_time,
        })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        let t = self
            .el("eth_getTransactionByHash", json!([req.tx_id]))
            .await?;
        if t.is_null() {
            return Ok(IdentifyResponse::not_ours());
        }
        let field = |k: &str| {
            t.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase()
        };
        if field("from") != self.custody().to_lowercase() {
            return Ok(IdentifyResponse::not_ours());
        }
        let to = field("to");
        let input = hex::decode(field("input").trim_start_matches("0x"))
            .map_err(|_| bad("eth_getTransactionByHash", &t))?;
        let kind = if to == self.s.deposit_contract.to_lowercase() {
            // deposit(pubkey, withdrawal_credentials, signature, root): the
            // value is the stake.
            let value = t
                .get("value")
                .and_then(hex_u128)
                .ok_or_else(|| bad("eth_getTransactionByHash", &t))?;
            OperationKind::Delegate {
                validator: self.s.operator.clone(),
                amount: Amount::from_base(value),
            }
        } else if to == self.s.withdrawal_request_contract.to_lowercase() {
            // EIP-7002 calldata: pubkey (48 bytes) ++ amount in gwei (8
            // bytes, big-endian); 0 is a full exit of the validator's
            // balance.
            let (Some(pubkey), Some(amount)) = (input.get(..48), input.get(48..56)) else {
                return Ok(IdentifyResponse::not_ours());
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(amount);
            let mut gwei = u64::from_be_bytes(be);
            if gwei == 0 {
                let pk = format!("0x{}", hex::encode(pubkey));
                gwei = self
                    .validators_at("head", &[pk])
                    .await?
                    .first()
                    .map_or(deposit::STAKE_0X01_GWEI, |v| v.balance_gwei);
            }
            OperationKind::Undelegate {
                validator: self.s.operator.clone(),
                amount: wei(gwei),
            }
        } else {
            // A plain transfer or another contract: not a staking
            // operation this adapter signs.
            return Ok(IdentifyResponse::not_ours());
        };
        let status = self
            .lookup(LookupRequest {
                tx_id: req.tx_id,
                signed_bytes: None,
            })
            .await?
            .status;
        Ok(IdentifyResponse::operation(kind, status))
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let mut endpoints = self
            .els
            .health(|ep| async move {
                let b: Value = ep
                    .client()
                    .raw_request("eth_getBlockByNumber".into(), json!(["latest", false]))
                    .await
                    .map_err(|e| ep.transport(e))?;
                Ok(Head {
                    height: b.get("number").and_then(hex_u64),
                    time_unix: b
                        .get("timestamp")
                        .and_then(hex_u64)
                        .and_then(|t| i64::try_from(t).ok()),
                })
            })
            .await;
        endpoints.extend(
            self.beacon
                .health(|ep| async move {
                    let r = ep.get("/eth/v1/beacon/headers/head").await?;
                    let v = r.json()?;
                    let slot = v
                        .pointer("/data/header/message/slot")
                        .and_then(num_str)
                        .ok_or_else(|| ep.bad_response("head", &v))?;
                    Ok(Head {
                        height: Some(slot),
                        time_unix: None,
                    })
                })
                .await,
        );
        Ok(HealthResponse { endpoints })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        Vec::new()
    }
}
