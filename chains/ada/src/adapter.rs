//! [`AdaAdapter`]: the Cardano `ChainAdapter` over a Blockfrost-compatible
//! REST API (hosted Blockfrost or a self-hosted compatible server), with
//! fallback across endpoints. The calls sit behind [`ChainApi`] so an
//! Ogmios or Koios backend can be added without touching the rest.
//!
//! - Delegation keeps funds spendable: the custody address's whole UTxO
//!   balance counts as liquid and is shown delegated (the books count it
//!   once); the planner only asks for a delegation when the stake key is
//!   not delegated to a configured pool. The reward account, the key
//!   deposit and lovelace beside native assets are `reserved` holdings.
//! - Flows ([`crate::flows`]): fees and transfers of every transaction of
//!   the custody address up to the block of the observing pool read.
//! - Delegate: stake key registration + pool delegation in one transaction
//!   (deposit from the protocol parameters) when the key is not registered,
//!   re-delegation otherwise. The pool must exist.
//! - Housekeeping ([`ChainAdapter::maintenance`]): a vote delegation (the
//!   configured DRep, default always-abstain) once the key is registered,
//!   since Conway refuses reward withdrawals without one; then a withdrawal
//!   of the whole reward balance once it reaches `min_withdrawal`.
//! - Rewards with evidence: the stake address's per-epoch reward history
//!   (earned epoch, amount, pool), attributed to that epoch's time range.
//! - Expiry is proven by the chain: every transaction has a TTL, and
//!   `lookup` reports `Expired` once the tip is past it without the
//!   transaction.

use crate::keys::LocalKey;
use crate::tx::{self, Action, TxParams, Utxo};
use async_trait::async_trait;
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, EndpointHealth, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse,
    IdentifyRequest, IdentifyResponse, LookupRequest, LookupResponse, Maintenance, ObservedReward,
    OperationKind, PoolFlow, PoolStateRequest, PoolStateResponse, RewardKind, RewardsRequest,
    RewardsResponse, SignedOperation, TxStatus,
};
use softstake_core::{Amount, ChainId, Period, Secret, Timestamp};
use softstake_rpc::{Endpoints, Head, Options, ServerErrors};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings from `[chains.network]` (type = "cardano").
#[derive(Debug, Clone)]
pub struct AdaSettings {
    /// Blockfrost-compatible base URLs (e.g. .../api/v0).
    pub endpoints: Vec<String>,
    /// Blockfrost project id, sent as the `project_id` header.
    pub project_id: Option<Secret<String>>,
    /// Address network id (0 testnets, 1 mainnet).
    pub network_id: u8,
    /// Network magic every endpoint must report (`/genesis`).
    pub network_magic: u64,
    /// DRep to delegate votes to: always_abstain, always_no_confidence,
    /// key:<hash>, script:<hash>.
    pub drep: String,
    /// Withdraw rewards once the balance reaches this, lovelace.
    pub min_withdrawal: u64,
    /// Transactions are valid for this many slots.
    pub ttl_slots: u64,
    /// Blocks deep (the including block counted) before a transaction is
    /// confirmed; until then it is pending (it can still be rolled back).
    pub confirmations: u64,
    /// Smallest change output, lovelace.
    pub min_change: u64,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The chain calls the adapter makes, so another backend (Ogmios, Koios)
/// can be slotted in.
#[async_trait]
pub trait ChainApi: Send + Sync {
    /// GET a path; `None` for 404.
    async fn get(&self, path: &str) -> Result<Option<Value>, AdapterError>;
    /// Submits CBOR; returns the node's transaction id.
    async fn submit(&self, cbor: &[u8]) -> Result<String, AdapterError>;
    /// Each endpoint's health, probed with `/blocks/latest`.
    async fn health(&self) -> Vec<EndpointHealth>;
}

/// Blockfrost over HTTP, through the endpoint layer (fallback, the network
/// magic checked once per endpoint, the project id a secret header).
pub struct Blockfrost {
    api: Endpoints,
}

impl Blockfrost {
    /// A client for these endpoints, which must report `network_magic`.
    pub fn new(
        endpoints: &[String],
        project_id: Option<Secret<String>>,
        network_magic: u64,
        timeout: Duration,
    ) -> Result<Self, AdapterError> {
        let headers = project_id
            .map(|p| vec![("project_id".to_owned(), p)])
            .unwrap_or_default();
        let api = Endpoints::http("cardano API", endpoints, Options { timeout, headers })?
            .with_identity(network_magic.to_string(), |ep| async move {
                let g = ep.get("/genesis").await?.json()?;
                g.get("network_magic")
                    .and_then(num)
                    .map(|m| m.to_string())
                    .ok_or_else(|| ep.bad_response("genesis", &g))
            });
        Ok(Blockfrost { api })
    }
}

/// The slot and time of `/blocks/latest`.
fn parse_tip(b: &Value) -> Option<(u64, i64)> {
    Some((
        b.get("slot").and_then(num)?,
        b.get("time").and_then(Value::as_i64)?,
    ))
}

#[async_trait]
impl ChainApi for Blockfrost {
    async fn get(&self, path: &str) -> Result<Option<Value>, AdapterError> {
        self.api
            .call(|ep| async move {
                let r = ep.get(path).await?;
                match r.status {
                    404 => Ok(None),
                    _ if r.is_success() => r.json().map(Some),
                    _ if r.status < 500 => Err(AdapterError::InvalidRequest(format!(
                        "{path}: {}",
                        r.text()
                    ))),
                    other => Err(ep.transport(format!("HTTP {other}"))),
                }
            })
            .await
    }

    async fn submit(&self, cbor: &[u8]) -> Result<String, AdapterError> {
        self.api
            .call(|ep| async move {
                let r = ep
                    .post_bytes(
                        "/tx/submit",
                        "application/cbor",
                        cbor.to_vec(),
                        ServerErrors::Retry,
                    )
                    .await?;
                if r.is_success() {
                    let v = r.json()?;
                    return Ok(v.as_str().unwrap_or_default().to_owned());
                }
                if r.status == 400 {
                    let v = r.json().unwrap_or(Value::Null);
                    let m = v
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("rejected")
                        .to_owned();
                    return Err(AdapterError::Rejected(m));
                }
                Err(ep.transport(format!("HTTP {}", r.status)))
            })
            .await
    }

    async fn health(&self) -> Vec<EndpointHealth> {
        self.api
            .health(|ep| async move {
                let b = ep.get("/blocks/latest").await?.json()?;
                let (slot, time) =
                    parse_tip(&b).ok_or_else(|| ep.bad_response("blocks/latest", &b))?;
                Ok(Head {
                    height: Some(slot),
                    time_unix: Some(time),
                })
            })
            .await
    }
}

/// What the adapter read from the chain.
#[derive(Debug, Clone, Default)]
struct View {
    utxos: Vec<Utxo>,
    registered: bool,
    pool: Option<String>,
    drep: Option<String>,
    rewards: u64,
    /// Lovelace in outputs that also carry native assets (never spent by
    /// softstake, still the custody's).
    with_assets: u64,
}

/// The adapter.
pub struct AdaAdapter {
    s: AdaSettings,
    payment: Arc<LocalKey>,
    stake: Arc<LocalKey>,
    api: Box<dyn ChainApi>,
    last: Mutex<Option<View>>,
    /// Block height of the last observing pool read: flows are read up to it.
    observed: Mutex<Option<u64>>,
}

impl std::fmt::Debug for AdaAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaAdapter")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

fn bad(what: &str, v: &Value) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "cardano API".into(),
        message: format!("unexpected {what} answer: {v}"),
    }
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// A pool id (bech32 `pool1...` or 56 hex digits) as hex.
pub fn pool_hex(id: &str) -> Result<String, AdapterError> {
    if id.len() == 56 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(id.to_lowercase());
    }
    match bech32::decode(id) {
        Ok((hrp, data)) if hrp.as_str() == "pool" && data.len() == 28 => Ok(hex::encode(data)),
        _ => Err(AdapterError::InvalidRequest(format!(
            "{id:?} is not a pool id (pool1... or 56 hex digits)"
        ))),
    }
}

impl AdaAdapter {
    /// An adapter over Blockfrost.
    pub fn new(
        s: AdaSettings,
        payment: Arc<LocalKey>,
        stake: Arc<LocalKey>,
    ) -> Result<Self, AdapterError> {
        if s.endpoints.is_empty() {
            return Err(AdapterError::Config("cardano: no endpoints".into()));
        }
        let api = Box::new(Blockfrost::new(
            &s.endpoints,
            s.project_id.clone(),
            s.network_magic,
            s.request_timeout,
        )?);
        AdaAdapter::with_api(s, payment, stake, api)
    }

    /// An adapter over another backend of the same calls.
    pub fn with_api(
        s: AdaSettings,
        payment: Arc<LocalKey>,
        stake: Arc<LocalKey>,
        api: Box<dyn ChainApi>,
    ) -> Result<Self, AdapterError> {
        tx::DRep::parse(&s.drep).map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(AdaAdapter {
            s,
            payment,
            stake,
            api,
            last: Mutex::new(None),
            observed: Mutex::new(None),
        })
    }

    /// The custody (base) address.
    pub fn address(&self) -> String {
        tx::bech32(&tx::base_address(
            self.s.network_id,
            &self.payment.key_hash(),
            &self.stake.key_hash(),
        ))
    }

    /// The stake (reward) address.
    pub fn stake_address(&self) -> String {
        tx::bech32(&tx::reward_address(
            self.s.network_id,
            &self.stake.key_hash(),
        ))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, AdapterError> {
        self.api.get(path).await
    }

    async fn read(&self) -> Result<View, AdapterError> {
        let mut utxos = Vec::new();
        let mut with_assets = 0u64;
        let mut page = 1;
        loop {
            let Some(list) = self
                .get(&format!(
                    "/addresses/{}/utxos?page={page}&count=100",
                    self.address()
                ))
                .await?
            else {
                break;
            };
            let items = list.as_array().ok_or_else(|| bad("utxos", &list))?;
            for u in items {
                let amounts = u
                    .get("amount")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                // Only ada-only outputs are spent: softstake never carries
                // native assets along by accident. Their lovelace is the
                // custody's all the same.
                if amounts.len() != 1 {
                    for a in &amounts {
                        if a.get("unit").and_then(Value::as_str) == Some("lovelace") {
                            with_assets += a.get("quantity").and_then(num).unwrap_or(0);
                        }
                    }
                    continue;
                }
                let lovelace = amounts[0]
                    .get("quantity")
                    .and_then(num)
                    .ok_or_else(|| bad("utxo amount", u))?;
                utxos.push(Utxo {
                    tx_hash: u
                        .get("tx_hash")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    output_index: u.get("output_index").and_then(num).unwrap_or(0),
                    lovelace,
                });
            }
            if items.len() < 100 {
                break;
            }
            page += 1;
        }
        let mut v = View {
            utxos,
            with_assets,
            ..View::default()
        };
        if let Some(a) = self
            .get(&format!("/accounts/{}", self.stake_address()))
            .await?
        {
            v.registered = a.get("active").and_then(Value::as_bool).unwrap_or(false);
            v.pool = a.get("pool_id").and_then(Value::as_str).map(str::to_owned);
            v.drep = a.get("drep_id").and_then(Value::as_str).map(str::to_owned);
            v.rewards = a.get("withdrawable_amount").and_then(num).unwrap_or(0);
        }
        if let Ok(mut l) = self.last.lock() {
            *l = Some(v.clone());
        }
        Ok(v)
    }

    /// The tip's block height and time.
    async fn tip_block(&self) -> Result<(u64, i64), AdapterError> {
        let b = self
            .get("/blocks/latest")
            .await?
            .ok_or_else(|| bad("blocks/latest", &Value::Null))?;
        let height = b
            .get("height")
            .and_then(num)
            .ok_or_else(|| bad("blocks/latest", &b))?;
        let time = b
            .get("time")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("blocks/latest", &b))?;
        Ok((height, time))
    }

    async fn tip(&self) -> Result<(u64, i64), AdapterError> {
        let b = self
            .get("/blocks/latest")
            .await?
            .ok_or_else(|| bad("blocks/latest", &Value::Null))?;
        parse_tip(&b).ok_or_else(|| bad("blocks/latest", &b))
    }

    async fn action(
        &self,
        op: &OperationKind,
        v: &View,
        params: &Value,
    ) -> Result<(Action, u64), AdapterError> {
        let refuse = |m: String| Err(AdapterError::InvalidRequest(m));
        let key_deposit = params
            .get("key_deposit")
            .and_then(num)
            .ok_or_else(|| bad("parameters", params))?;
        match op {
            OperationKind::Delegate { validator, .. }
            | OperationKind::Redelegate { to: validator, .. } => {
                let hexid = pool_hex(validator)?;
                let bech = tx::pool_bech32(
                    &hex::decode(&hexid)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0u8; 28]),
                );
                if self.get(&format!("/pools/{bech}")).await?.is_none() {
                    return refuse(format!("unknown pool id {validator}"));
                }
                if !v.registered {
                    Ok((
                        Action::RegisterAndDelegate {
                            pool: hexid,
                            deposit: key_deposit,
                        },
                        key_deposit,
                    ))
                } else if v.pool.as_deref() == Some(bech.as_str()) {
                    refuse(format!("the stake key is already delegated to {bech}"))
                } else {
                    Ok((Action::Delegate { pool: hexid }, 0))
                }
            }
            OperationKind::ClaimRewards { .. } => {
                if !v.registered {
                    return refuse("the stake key is not registered: there are no rewards".into());
                }
                if v.drep.is_none() {
                    return refuse("a withdrawal without a DRep delegation is refused by the Conway ledger; delegate the stake key's vote first (setup step vote_delegation)".into());
                }
                if v.rewards == 0 {
                    return refuse("the reward balance is zero".into());
                }
                Ok((Action::Withdraw { amount: v.rewards }, 0))
            }
            OperationKind::Setup { step } => {
                let (name, arg) = step
                    .split_once(':')
                    .map_or((step.as_str(), None), |(a, b)| (a, Some(b)));
                match name {
                    "vote_delegation" => {
                        if !v.registered {
                            return refuse("register and delegate the stake key first".into());
                        }
                        let drep = arg.unwrap_or(&self.s.drep).to_owned();
                        tx::DRep::parse(&drep)
                            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
                        Ok((Action::VoteDelegation { drep }, 0))
                    }
                    "deregister" => {
                        if !v.registered {
                            return refuse("the stake key is not registered".into());
                        }
                        if v.rewards > 0 && v.drep.is_none() {
                            return refuse(
                                "rewards remain and cannot be withdrawn without a DRep delegation"
                                    .into(),
                            );
                        }
                        Ok((
                            Action::Deregister {
                                refund: key_deposit,
                                withdraw: v.rewards,
                            },
                            0,
                        ))
                    }
                    other => refuse(format!(
                        "unknown Cardano setup step {other:?} (vote_delegation[:drep], deregister)"
                    )),
                }
            }
            OperationKind::Undelegate { .. } | OperationKind::WithdrawUnbonded { .. } => refuse(
                "delegated ada stays spendable on Cardano: there is nothing to unbond or withdraw"
                    .into(),
            ),
        }
    }
}

fn lovelace(v: u64) -> Amount {
    Amount::from_base(u128::from(v))
}

#[async_trait]
impl ChainAdapter for AdaAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Cardano
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        // Blockfrost cannot answer at a height: read until the tip did not
        // move during the read, so the holdings are those of one block,
        // the one the flows are read up to.
        let mut tries = 0;
        let (v, height, time) = loop {
            let (before, _) = self.tip_block().await?;
            let v = self.read().await?;
            let (after, time) = self.tip_block().await?;
            if before == after {
                break (v, after, time);
            }
            tries += 1;
            if tries == 3 {
                return Err(AdapterError::Transport {
                    endpoint: "cardano API".into(),
                    message: format!(
                        "the tip moved during three pool reads (block {before} to {after}); retrying next cycle"
                    ),
                });
            }
        };
        let key_deposit = if v.registered {
            let params = self
                .get("/epochs/latest/parameters")
                .await?
                .ok_or_else(|| bad("parameters", &Value::Null))?;
            params
                .get("key_deposit")
                .and_then(num)
                .ok_or_else(|| bad("parameters", &params))?
        } else {
            0
        };
        if req.observe {
            *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = Some(height);
        }
        let balance: u64 = v.utxos.iter().map(|u| u.lovelace).sum();
        let mut alerts = Vec::new();
        let mut delegations = Vec::new();
        if let Some(pool) = v.pool.as_ref().filter(|_| v.registered) {
            let exists = self.get(&format!("/pools/{pool}")).await?.is_some();
            if !exists {
                alerts.push(format!(
                    "pool {pool} is unknown or retired: the stake earns nothing"
                ));
            }
            delegations.push(Delegation {
                validator: pool.clone(),
                active: lovelace(balance),
                activating: Amount::ZERO,
                impaired: !exists,
                commission: None,
            });
            if v.drep.is_none() {
                alerts.push("the stake key has no DRep delegation: rewards cannot be withdrawn until it has one".into());
            }
        }
        Ok(PoolStateResponse {
            chain: ChainId::Cardano,
            as_of: Timestamp::from_unix(time),
            liquid: lovelace(balance),
            delegations,
            unbonding: Vec::new(),
            withdrawable: Amount::ZERO,
            claimable_rewards: lovelace(v.rewards),
            // The custody's beside its spendable outputs: the reward
            // account (rewards are recorded when they land in it, so it
            // is holdings, not a receivable), the stake key deposit, and
            // lovelace in outputs with native assets.
            reserved: lovelace(v.rewards + key_deposit + v.with_assets),
            limits: ChainLimits {
                min_delegation: Amount::ZERO,
                max_unbonding_entries: None,
                unbonding_delay_secs: 0,
                delegation_keeps_funds_liquid: true,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses: Vec::new(),
            alerts,
        })
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        let observed = *self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let to = match observed {
            Some(h) => h,
            None => self.tip_block().await?.0,
        };
        let from = req.after_height(to)?;
        let mut flows = Vec::new();
        if from < to {
            let (addr, reward) = (self.address(), self.stake_address());
            let mut page = 1;
            loop {
                let Some(list) = self
                    .get(&format!(
                        "/addresses/{addr}/transactions?page={page}&count=100&order=asc&from={}&to={to}",
                        from + 1
                    ))
                    .await?
                else {
                    break;
                };
                let items = list
                    .as_array()
                    .ok_or_else(|| bad("address transactions", &list))?;
                for t in items {
                    let hash = t
                        .get("tx_hash")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("address transaction", t))?;
                    // The holdings read at `to` include this transaction:
                    // while a rollback can still take it out, booking them
                    // would turn the rollback into a residual (a fee or a
                    // top-up booked, then undone with no flow to explain
                    // it). The books wait until it is final.
                    let height = t
                        .get("block_height")
                        .and_then(num)
                        .ok_or_else(|| bad("address transaction", t))?;
                    let depth = (to + 1).saturating_sub(height);
                    if depth < self.s.confirmations {
                        return Err(AdapterError::TryLater(format!(
                            "the pool's transaction {hash} is {depth} block(s) deep, fewer than network.confirmations = {}: a rollback could still undo it, so the books wait until it is final",
                            self.s.confirmations
                        )));
                    }
                    let at = Timestamp::from_unix(
                        t.get("block_time")
                            .and_then(Value::as_i64)
                            .ok_or_else(|| bad("address transaction", t))?,
                    );
                    let tx = self
                        .get(&format!("/txs/{hash}"))
                        .await?
                        .ok_or_else(|| bad("tx", t))?;
                    let utxos = self
                        .get(&format!("/txs/{hash}/utxos"))
                        .await?
                        .ok_or_else(|| bad("tx utxos", t))?;
                    let withdrawals = if tx.get("withdrawal_count").and_then(num).unwrap_or(0) > 0 {
                        self.get(&format!("/txs/{hash}/withdrawals"))
                            .await?
                            .unwrap_or(Value::Array(Vec::new()))
                    } else {
                        Value::Array(Vec::new())
                    };
                    let found = crate::flows::tx_flows(&tx, &utxos, &withdrawals, &addr, &reward)
                        .map_err(|e| AdapterError::BadResponse {
                        endpoint: "cardano API".into(),
                        message: format!("tx {hash}: {e}"),
                    })?;
                    for f in found {
                        flows.push(PoolFlow {
                            key: format!("{}:{hash}", f.kind.as_str()),
                            kind: f.kind,
                            amount: Amount::from_base(f.amount),
                            tx_id: hash.to_owned(),
                            counterparty: f.counterparty,
                            at,
                        });
                    }
                }
                if items.len() < 100 {
                    break;
                }
                page += 1;
            }
        }
        Ok(FlowsResponse {
            flows,
            next_cursor: Some(to.max(from).to_string()),
            complete: true,
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        // Cursor `epoch:N:seen:M`: rewards up to epoch N are recorded and
        // the history's first M rows were read, so the next read starts at
        // the page holding row M+1 instead of page 1 (the history only
        // grows, in epoch order). `epoch:N` (older cursors) reads from page 1.
        let (after, seen_before): (Option<u64>, u64) = match req.cursor.as_deref() {
            Some(c) => {
                let bad_cursor = || {
                    AdapterError::Config(format!(
                        "cardano reward cursor {c:?} is not epoch:N or epoch:N:seen:M"
                    ))
                };
                let rest = c.strip_prefix("epoch:").ok_or_else(bad_cursor)?;
                let (epoch, seen) = match rest.split_once(":seen:") {
                    Some((e, m)) => (e, m.parse::<u64>().map_err(|_| bad_cursor())?),
                    None => (rest, 0),
                };
                (Some(epoch.parse().map_err(|_| bad_cursor())?), seen)
            }
            None => (None, 0),
        };
        let first_page = seen_before / 100 + 1;
        let mut seen = (first_page - 1) * 100;
        let mut rewards = Vec::new();
        let mut last = after;
        let mut page = first_page;
        loop {
            let Some(list) = self
                .get(&format!(
                    "/accounts/{}/rewards?page={page}&count=100&order=asc",
                    self.stake_address()
                ))
                .await?
            else {
                break;
            };
            let items = list.as_array().ok_or_else(|| bad("rewards", &list))?;
            seen += u64::try_from(items.len()).unwrap_or(0);
            for r in items {
                let epoch = r
                    .get("epoch")
                    .and_then(num)
                    .ok_or_else(|| bad("reward", r))?;
                if after.is_some_and(|a| epoch <= a) {
                    continue;
                }
                let amount = r
                    .get("amount")
                    .and_then(num)
                    .ok_or_else(|| bad("reward", r))?;
                let pool = r
                    .get("pool_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let kind = r.get("type").and_then(Value::as_str).unwrap_or("member");
                match kind {
                    "member" | "leader" => {}
                    // A retiring pool's deposit returned to its reward
                    // account: principal coming back, never income.
                    "pool_deposit_refund" => {
                        tracing::warn!(epoch, amount, %pool, "a pool deposit refund arrived in the reward account: principal, not distributed; declare it as a transfer in");
                        last = Some(last.map_or(epoch, |l| l.max(epoch)));
                        continue;
                    }
                    other => {
                        return Err(bad(&format!("reward of unknown type {other:?}"), r));
                    }
                }
                let e = self
                    .get(&format!("/epochs/{epoch}"))
                    .await?
                    .ok_or_else(|| bad("epoch", &Value::Null))?;
                let (t0, t1) = (
                    e.get("start_time").and_then(Value::as_i64).unwrap_or(0),
                    e.get("end_time").and_then(Value::as_i64).unwrap_or(0),
                );
                rewards.push(ObservedReward {
                    key: format!("reward:{epoch}:{pool}:{kind}"),
                    period: Period::new(
                        Timestamp::from_unix(t0),
                        Timestamp::from_unix(t1.max(t0 + 1)),
                    )
                    .map_err(|e| bad("epoch times", &json!(e.to_string())))?,
                    amount: lovelace(amount),
                    validator: pool,
                    kind: RewardKind::Consensus,
                    tx_hash: Some(format!(
                        "reward-history:{}:epoch:{epoch}",
                        self.stake_address()
                    )),
                    epoch: Some(epoch),
                });
                last = Some(last.map_or(epoch, |l| l.max(epoch)));
            }
            if items.len() < 100 {
                break;
            }
            page += 1;
        }
        Ok(RewardsResponse {
            rewards,
            next_cursor: last.map(|e| format!("epoch:{e}:seen:{seen}")),
            foreign: Vec::new(),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        let v = self.read().await?;
        let params = self
            .get("/epochs/latest/parameters")
            .await?
            .ok_or_else(|| bad("parameters", &Value::Null))?;
        let (action, deposit) = self.action(&req.kind, &v, &params).await?;
        let a = params
            .get("min_fee_a")
            .and_then(num)
            .ok_or_else(|| bad("parameters", &params))?;
        let b = params
            .get("min_fee_b")
            .and_then(num)
            .ok_or_else(|| bad("parameters", &params))?;
        let (slot, time) = self.tip().await?;
        // Largest first, until deposit + a change output + a generous fee.
        let mut utxos = v.utxos.clone();
        utxos.sort_by(|x, y| y.lovelace.cmp(&x.lovelace).then(x.tx_hash.cmp(&y.tx_hash)));
        let target = deposit
            .saturating_add(self.s.min_change)
            .saturating_add(2_000_000);
        let mut inputs = Vec::new();
        let mut sum = 0u64;
        for u in utxos {
            if sum >= target {
                break;
            }
            sum = sum.saturating_add(u.lovelace);
            inputs.push(u);
        }
        let p = TxParams {
            network_id: self.s.network_id,
            min_fee_a: a,
            min_fee_b: b,
            ttl: slot + self.s.ttl_slots,
            inputs,
            min_change: self.s.min_change,
        };
        let signed = tx::build(&action, &self.payment, &self.stake, &p)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        Ok(SignedOperation {
            bytes: signed.tx,
            tx_id: signed.tx_hash,
            valid_until: Some(Timestamp::from_unix(
                time + i64::try_from(self.s.ttl_slots).unwrap_or(i64::MAX),
            )),
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let id = self.api.submit(&req.signed.bytes).await?;
        if id != req.signed.tx_id {
            return Err(AdapterError::Rejected(format!(
                "node answered {id}, journaled {}",
                req.signed.tx_id
            )));
        }
        Ok(BroadcastResponse { tx_id: id })
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let (slot, time) = self.tip().await?;
        let head_time = Timestamp::from_unix(time);
        if let Some(t) = self.get(&format!("/txs/{}", req.tx_id)).await? {
            let height = t
                .get("block_height")
                .and_then(num)
                .ok_or_else(|| bad("transaction's block height", &t))?;
            let tip = self
                .get("/blocks/latest")
                .await?
                .and_then(|b| b.get("height").and_then(num))
                .ok_or_else(|| bad("tip height", &Value::Null))?;
            // Included in a block that is still shallow: a rollback can
            // take it out again, so nothing may act on it yet.
            let depth = (tip + 1).saturating_sub(height);
            let status = if depth >= self.s.confirmations {
                TxStatus::Confirmed { height }
            } else {
                TxStatus::Pending
            };
            return Ok(LookupResponse { status, head_time });
        }
        if let Some(bytes) = req.signed_bytes {
            let ttl = ttl_of(&bytes)?;
            if ttl.is_some_and(|ttl| slot > ttl) {
                // Past its validity interval: re-check, then it can never land.
                if self.get(&format!("/txs/{}", req.tx_id)).await?.is_none() {
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
        let hash = &req.tx_id;
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AdapterError::InvalidRequest(format!("bad tx id {hash:?}")));
        }
        let (Some(tx), Some(cbor)) = (
            self.get(&format!("/txs/{hash}")).await?,
            self.get(&format!("/txs/{hash}/cbor")).await?,
        ) else {
            return Ok(IdentifyResponse::not_ours());
        };
        let bytes = hex::decode(cbor.get("cbor").and_then(Value::as_str).unwrap_or(""))
            .map_err(|_| bad("tx cbor", &cbor))?;
        let address = tx::base_address(
            self.s.network_id,
            &self.payment.key_hash(),
            &self.stake.key_hash(),
        );
        let Some(kind) = crate::flows::operation_of(&bytes, &self.stake.key_hash(), &address)
        else {
            return Ok(IdentifyResponse::not_ours());
        };
        let status = if tx.get("valid_contract").and_then(Value::as_bool) == Some(false) {
            TxStatus::Failed {
                reason: "scripts failed: only the collateral was taken".into(),
            }
        } else {
            TxStatus::Confirmed {
                height: tx.get("block_height").and_then(num).unwrap_or(0),
            }
        };
        Ok(IdentifyResponse::operation(kind, status))
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        Ok(HealthResponse {
            endpoints: self.api.health().await,
        })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        let Some(v) = self.last.lock().ok().and_then(|l| l.clone()) else {
            return Vec::new();
        };
        if !v.registered {
            return Vec::new();
        }
        if v.drep.is_none() {
            return vec![Maintenance {
                kind: OperationKind::Setup {
                    step: "vote_delegation".into(),
                },
                reason: format!(
                    "Conway needs a DRep delegation to withdraw rewards: delegate the vote to {}",
                    self.s.drep
                ),
            }];
        }
        if v.rewards >= self.s.min_withdrawal && v.rewards > 0 {
            return vec![Maintenance {
                kind: OperationKind::ClaimRewards {
                    validators: Vec::new(),
                },
                reason: format!(
                    "{} lovelace of rewards to withdraw into the custody address",
                    v.rewards
                ),
            }];
        }
        Vec::new()
    }
}

/// The TTL of journaled transaction bytes.
fn ttl_of(bytes: &[u8]) -> Result<Option<u64>, AdapterError> {
    let t: pallas_primitives::conway::Tx = pallas_codec::minicbor::decode(bytes).map_err(|e| {
        AdapterError::InvalidRequest(format!("journaled bytes are not a transaction: {e}"))
    })?;
    Ok(t.transaction_body.ttl)
}
