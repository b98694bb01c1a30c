//! [`SolAdapter`]: the Solana `ChainAdapter` over JSON-RPC
//! (solana-rpc-client), with fallback across endpoints.
//!
//! - Our stake accounts are the stake program's accounts whose withdraw
//!   authority is ours (`getProgramAccounts` with a memcmp filter), so the
//!   pool is found again after a restart with nothing stored; new ones are
//!   seed-derived (`softstake-<n>`, see [`crate::tx`]).
//! - Activation per account is computed from the account data and the
//!   StakeHistory sysvar ([`crate::stake`]).
//! - Every transaction takes a fresh blockhash. Its expiry is proven by the
//!   chain: `lookup` reports `Expired` only when the node (healthy) says the
//!   blockhash is no longer valid *and then* still has no status for the
//!   signature; the journal never resends blindly.
//! - Rewards: `getInflationReward` per stake account per finished epoch,
//!   once the epoch's partitioned reward distribution is over (the
//!   EpochRewards sysvar is inactive), attributed to that epoch's time range.

use crate::keys::LocalKey;
use crate::ops::{self, ChainView, VoteInfo};
use crate::stake::{self, Phase};
use crate::tx::{self, Action, STAKE_ACCOUNT_SIZE, STAKE_PROGRAM, TxParams};
use async_trait::async_trait;
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest,
    IdentifyResponse, LookupRequest, LookupResponse, Maintenance, ObservedReward, OperationKind,
    PoolStateRequest, PoolStateResponse, RewardKind, RewardsRequest, RewardsResponse,
    SignedOperation, TxStatus, UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_rpc::{Endpoints, Head, Options, sdk_error};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::request::{RpcError, RpcRequest};
use solana_sdk::pubkey::Pubkey;
use solana_stake_interface::stake_history::StakeHistory;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The StakeHistory sysvar.
const STAKE_HISTORY: Pubkey = solana_sdk::pubkey!("SysvarStakeHistory1111111111111111111111111");
/// The EpochRewards sysvar.
const EPOCH_REWARDS: Pubkey = solana_sdk::pubkey!("SysvarEpochRewards1111111111111111111111111");
/// Offset of the withdraw authority in stake account data.
const WITHDRAWER_OFFSET: usize = 44;

/// Settings from `[chains.network]` (type = "solana").
#[derive(Debug, Clone)]
pub struct SolSettings {
    /// JSON-RPC endpoints, in order of preference.
    pub endpoints: Vec<String>,
    /// Genesis hash every endpoint must report.
    pub genesis_hash: String,
    /// Withdraw authority when it is not the custody key (a cold key):
    /// withdrawals are then refused here and made with that key.
    pub withdrawer: Option<String>,
    /// Priority fee, micro-lamports per compute unit: the price without
    /// the market, and the floor with it (0: none).
    pub compute_unit_price: u64,
    /// Compute unit limit sent with a priority fee.
    pub compute_unit_limit: u32,
    /// Price each transaction at the priority-fee market: the
    /// `priority_fee_percentile` of `getRecentPrioritizationFees` for the
    /// accounts it writes, never below `compute_unit_price`.
    pub priority_fee_market: bool,
    /// Which percentile of the recent fees to pay (1 to 100).
    pub priority_fee_percentile: u8,
    /// The most micro-lamports per compute unit ever paid: with the market
    /// above it, nothing is signed (`TryLater`) and the operation waits.
    pub max_compute_unit_price: u64,
    /// How long a broadcast keeps re-sending the same signed bytes until
    /// the node reports the signature or the blockhash dies (zero: once).
    pub rebroadcast_for: Duration,
    /// Between two re-sends.
    pub rebroadcast_every: Duration,
    /// Lamports the custody account keeps for fees.
    pub fee_reserve: u64,
    /// Slot duration used for time estimates, milliseconds.
    pub slot_ms: u64,
    /// Most epochs scanned per rewards call.
    pub max_reward_epochs: u64,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The adapter.
pub struct SolAdapter {
    s: SolSettings,
    key: Arc<LocalKey>,
    rpc: Endpoints<RpcClient>,
    /// The last chain view (for housekeeping) and every stake account seen
    /// (so rewards of an account closed since are still looked up).
    last_view: Mutex<Option<ChainView>>,
    seen: Mutex<BTreeSet<String>>,
    /// The slot of the custody balance the last observing pool read saw:
    /// the books' flows stop there, so holdings and flows agree.
    observed_slot: Mutex<Option<u64>>,
}

impl std::fmt::Debug for SolAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolAdapter")
            .field("custody", &self.key.address())
            .field("genesis_hash", &self.s.genesis_hash)
            .finish_non_exhaustive()
    }
}

/// A solana-rpc-client failure at `endpoint` (every kind of it is worth
/// trying elsewhere, as before the endpoint layer).
fn classify(endpoint: &str, e: &ClientError) -> AdapterError {
    sdk_error(endpoint, &e.to_string())
}

fn bad_answer(what: &str, v: &Value) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "solana RPC".into(),
        message: format!("unexpected {what} answer: {v}"),
    }
}

fn u64_at(v: &Value, ptr: &str, what: &str) -> Result<u64, AdapterError> {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_answer(what, v))
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// The epoch, slot and timing facts one reading uses.
#[derive(Debug, Clone, Copy)]
struct EpochFacts {
    epoch: u64,
    slot: u64,
    /// The slot the custody balance was read at (`read_view`).
    balance_slot: u64,
    slot_index: u64,
    slots_in_epoch: u64,
}

impl SolAdapter {
    /// An adapter for `key` against the settings' endpoints.
    pub fn new(s: SolSettings, key: Arc<LocalKey>) -> Result<Self, AdapterError> {
        if let Some(w) = &s.withdrawer {
            tx::parse_address("withdrawer", w).map_err(|e| AdapterError::Config(e.to_string()))?;
        }
        let timeout = s.request_timeout;
        let rpc = Endpoints::with_clients(
            "solana RPC",
            &s.endpoints,
            Options {
                timeout,
                ..Options::default()
            },
            |e| Ok(RpcClient::new_with_timeout(e.to_owned(), timeout)),
        )?
        .with_identity(s.genesis_hash.clone(), |ep| async move {
            ep.client()
                .send::<String>(RpcRequest::GetGenesisHash, Value::Null)
                .await
                .map_err(|e| classify(ep.shown(), &e))
        });
        Ok(SolAdapter {
            s,
            key,
            rpc,
            last_view: Mutex::new(None),
            seen: Mutex::new(BTreeSet::new()),
            observed_slot: Mutex::new(None),
        })
    }

    /// The custody address.
    pub fn custody(&self) -> String {
        self.key.address()
    }

    fn withdrawer(&self) -> Pubkey {
        self.s
            .withdrawer
            .as_deref()
            .and_then(|w| tx::parse_address("withdrawer", w).ok())
            .unwrap_or_else(|| self.key.pubkey())
    }

    /// One JSON-RPC call through the endpoint layer (fallback, genesis
    /// hash checked once per endpoint).
    async fn call(&self, req: RpcRequest, params: Value) -> Result<Value, AdapterError> {
        self.rpc
            .call(|ep| {
                let params = params.clone();
                async move {
                    let v = ep
                        .client()
                        .send::<Value>(req, params)
                        .await
                        .map_err(|e| classify(ep.shown(), &e))?;
                    crate::shape::check(req, &v).map_err(|message| AdapterError::BadResponse {
                        endpoint: ep.shown().to_owned(),
                        message,
                    })?;
                    Ok(v)
                }
            })
            .await
    }

    async fn epoch_facts(&self) -> Result<EpochFacts, AdapterError> {
        let v = self
            .call(
                RpcRequest::GetEpochInfo,
                json!([{"commitment": "confirmed"}]),
            )
            .await?;
        Ok(EpochFacts {
            epoch: u64_at(&v, "/epoch", "getEpochInfo")?,
            slot: u64_at(&v, "/absoluteSlot", "getEpochInfo")?,
            balance_slot: 0,
            slot_index: u64_at(&v, "/slotIndex", "getEpochInfo")?,
            slots_in_epoch: u64_at(&v, "/slotsInEpoch", "getEpochInfo")?,
        })
    }

    async fn account_data(&self, address: &Pubkey) -> Result<Option<(u64, Vec<u8>)>, AdapterError> {
        let v = self
            .call(
                RpcRequest::GetAccountInfo,
                json!([address.to_string(), {"encoding": "base64", "commitment": "confirmed"}]),
            )
            .await?;
        let value = v.get("value").unwrap_or(&Value::Null);
        if value.is_null() {
            return Ok(None);
        }
        let lamports = u64_at(value, "/lamports", "getAccountInfo")?;
        let data = value
            .pointer("/data/0")
            .and_then(Value::as_str)
            .and_then(unb64)
            .ok_or_else(|| bad_answer("getAccountInfo", &v))?;
        Ok(Some((lamports, data)))
    }

    async fn block_time(&self, slot: u64) -> Result<Timestamp, AdapterError> {
        if let Ok(Value::Number(n)) = self.call(RpcRequest::GetBlockTime, json!([slot])).await {
            return n
                .as_i64()
                .map(Timestamp::from_unix)
                .ok_or_else(|| bad_answer("getBlockTime", &Value::Number(n)));
        }
        // A skipped slot has no block: take the next block's time.
        let blocks = self
            .call(RpcRequest::GetBlocksWithLimit, json!([slot, 1]))
            .await?;
        let next = blocks
            .pointer("/0")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_answer("getBlocksWithLimit", &blocks))?;
        let t = self.call(RpcRequest::GetBlockTime, json!([next])).await?;
        t.as_i64()
            .map(Timestamp::from_unix)
            .ok_or_else(|| bad_answer("getBlockTime", &t))
    }

    /// Reads everything the adapter decides from.
    async fn read_view(&self) -> Result<(ChainView, EpochFacts, StakeHistory), AdapterError> {
        let mut facts = self.epoch_facts().await?;
        let history = match self.account_data(&STAKE_HISTORY).await? {
            Some((_, data)) => stake::decode_history(&data)
                .map_err(|e| bad_answer("StakeHistory", &json!(e.to_string())))?,
            None => Default::default(),
        };
        let custody = self.key.pubkey();
        let withdrawer = self.withdrawer();
        let list = self
            .call(
                RpcRequest::GetProgramAccounts,
                json!([STAKE_PROGRAM.to_string(), {
                    "encoding": "base64",
                    "commitment": "confirmed",
                    "filters": [
                        {"dataSize": STAKE_ACCOUNT_SIZE},
                        {"memcmp": {"offset": WITHDRAWER_OFFSET, "bytes": withdrawer.to_string()}}
                    ]
                }]),
            )
            .await?;
        let entries = list
            .as_array()
            .ok_or_else(|| bad_answer("getProgramAccounts", &list))?;
        let mut accounts = Vec::new();
        for e in entries {
            let addr = e
                .get("pubkey")
                .and_then(Value::as_str)
                .and_then(|p| tx::parse_address("stake account", p).ok())
                .ok_or_else(|| bad_answer("getProgramAccounts", e))?;
            let lamports = u64_at(e, "/account/lamports", "getProgramAccounts")?;
            let data = e
                .pointer("/account/data/0")
                .and_then(Value::as_str)
                .and_then(unb64)
                .ok_or_else(|| bad_answer("getProgramAccounts", e))?;
            match stake::view(&addr, lamports, &data, facts.epoch, &history) {
                Ok(Some(v)) => accounts.push(v),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(account = %addr, error = %err, "unreadable stake account skipped")
                }
            }
        }
        accounts.sort_by(|a, b| a.address.cmp(&b.address));
        let balance = self
            .call(
                RpcRequest::GetBalance,
                json!([custody.to_string(), {"commitment": "confirmed"}]),
            )
            .await?;
        let liquid = u64_at(&balance, "/value", "getBalance")?;
        facts.balance_slot = u64_at(&balance, "/context/slot", "getBalance")?;
        let rent = self
            .call(
                RpcRequest::GetMinimumBalanceForRentExemption,
                json!([STAKE_ACCOUNT_SIZE]),
            )
            .await?
            .as_u64()
            .ok_or_else(|| bad_answer("getMinimumBalanceForRentExemption", &Value::Null))?;
        let min = self
            .call(
                RpcRequest::GetStakeMinimumDelegation,
                json!([{"commitment": "confirmed"}]),
            )
            .await?;
        let min_delegation = u64_at(&min, "/value", "getStakeMinimumDelegation")?;
        let va = self
            .call(
                RpcRequest::GetVoteAccounts,
                json!([{"commitment": "confirmed"}]),
            )
            .await?;
        let mut votes = BTreeMap::new();
        for (list, delinquent) in [("current", false), ("delinquent", true)] {
            for v in va.get(list).and_then(Value::as_array).into_iter().flatten() {
                if let Some(pk) = v.get("votePubkey").and_then(Value::as_str) {
                    let commission = v
                        .get("commission")
                        .and_then(Value::as_u64)
                        .and_then(|c| u8::try_from(c).ok())
                        .unwrap_or(100);
                    votes.insert(
                        pk.to_owned(),
                        VoteInfo {
                            delinquent,
                            commission,
                        },
                    );
                }
            }
        }
        // The first seed index whose address holds nothing at all.
        let existing: BTreeSet<&str> = accounts.iter().map(|a| a.address.as_str()).collect();
        let mut free_seed_index = 0u32;
        loop {
            let addr = tx::stake_address(&custody, free_seed_index);
            let s = addr.to_string();
            if !existing.contains(s.as_str()) && self.account_data(&addr).await?.is_none() {
                break;
            }
            free_seed_index = free_seed_index
                .checked_add(1)
                .ok_or_else(|| AdapterError::Config("no free stake account seed".into()))?;
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(accounts.iter().map(|a| a.address.clone()));
        }
        let view = ChainView {
            liquid,
            accounts,
            rent_exempt_reserve: rent,
            min_delegation,
            votes,
            free_seed_index,
            fee_reserve: self.s.fee_reserve,
        };
        if let Ok(mut l) = self.last_view.lock() {
            *l = Some(view.clone());
        }
        Ok((view, facts, history))
    }

    fn epoch_secs(&self, facts: &EpochFacts) -> u64 {
        facts.slots_in_epoch.saturating_mul(self.s.slot_ms) / 1000
    }

    fn params(&self, blockhash: String, rent: u64) -> TxParams {
        TxParams {
            blockhash,
            rent_exempt_reserve: rent,
            compute_unit_price: self.s.compute_unit_price,
            compute_unit_limit: self.s.compute_unit_limit,
            withdrawer: self.s.withdrawer.clone(),
        }
    }

    async fn head_time(&self) -> Timestamp {
        let now = Timestamp::now();
        match self
            .call(RpcRequest::GetSlot, json!([{"commitment": "confirmed"}]))
            .await
        {
            Ok(v) => match v.as_u64() {
                Some(slot) => self.block_time(slot).await.unwrap_or(now),
                None => now,
            },
            Err(_) => now,
        }
    }

    /// One `sendTransaction` of the signed bytes (a re-send skips the
    /// preflight: the first one checked them).
    async fn send_once(
        &self,
        req: &BroadcastRequest,
        resend: bool,
    ) -> Result<BroadcastResponse, AdapterError> {
        let params = json!([b64(&req.signed.bytes), {
            "encoding": "base64",
            "skipPreflight": resend,
            "preflightCommitment": "confirmed",
            "maxRetries": 0
        }]);
        let journaled = req.signed.tx_id.clone();
        self.rpc
            .call(|ep| {
                let params = params.clone();
                let journaled = journaled.clone();
                async move {
                    match ep
                        .client()
                        .send::<Value>(RpcRequest::SendTransaction, params)
                        .await
                    {
                        Ok(v) => {
                            let id = v.as_str().unwrap_or_default().to_owned();
                            if id != journaled {
                                return Err(AdapterError::Rejected(format!(
                                    "node answered signature {id}, journaled {journaled}"
                                )));
                            }
                            Ok(BroadcastResponse { tx_id: id })
                        }
                        Err(e) => {
                            if let ErrorKind::RpcError(RpcError::RpcResponseError {
                                message,
                                data,
                                ..
                            }) = e.kind()
                            {
                                let text = format!("{message} {data}");
                                if text.contains("AlreadyProcessed")
                                    || text.contains("already been processed")
                                {
                                    return Ok(BroadcastResponse { tx_id: journaled });
                                }
                                if text.contains("BlockhashNotFound")
                                    || text.contains("Blockhash not found")
                                {
                                    // This node does not know the blockhash (yet or
                                    // any more): `lookup` decides, from the chain.
                                    return Err(classify(ep.shown(), &e));
                                }
                                return Err(AdapterError::Rejected(message.clone()));
                            }
                            Err(classify(ep.shown(), &e))
                        }
                    }
                }
            })
            .await
    }

    /// The compute units a simulation of `bytes` used; a simulation the
    /// chain fails is a refusal before anything is sent.
    async fn simulated_units(&self, bytes: &[u8]) -> Result<u64, AdapterError> {
        let v = self
            .call(
                RpcRequest::SimulateTransaction,
                json!([b64(bytes), {"encoding": "base64", "sigVerify": false,
                    "replaceRecentBlockhash": false, "commitment": "confirmed"}]),
            )
            .await?;
        let r = v.pointer("/value").unwrap_or(&Value::Null);
        if let Some(err) = r.get("err").filter(|e| !e.is_null()) {
            let logs: Vec<&str> = r["logs"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if err.as_str() == Some("BlockhashNotFound") {
                return Err(AdapterError::TryLater(
                    "the node does not know the blockhash yet".into(),
                ));
            }
            return Err(AdapterError::InvalidRequest(format!(
                "the chain would refuse it: {err} ({})",
                logs.join("; ")
            )));
        }
        r.get("unitsConsumed")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_answer("simulateTransaction", &v))
    }

    /// The priority fee to pay now for a transaction writing `accounts`:
    /// the configured percentile of the node's recent prioritization fees
    /// for them, never below the floor; above the ceiling, `TryLater`.
    async fn priority_price(&self, accounts: &[String]) -> Result<u64, AdapterError> {
        let v = self
            .call(RpcRequest::GetRecentPrioritizationFees, json!([accounts]))
            .await?;
        let fees: Vec<u64> = v
            .as_array()
            .ok_or_else(|| bad_answer("getRecentPrioritizationFees", &v))?
            .iter()
            .map(|e| e.get("prioritizationFee").and_then(Value::as_u64))
            .collect::<Option<_>>()
            .ok_or_else(|| bad_answer("getRecentPrioritizationFees", &v))?;
        let market = percentile(fees, self.s.priority_fee_percentile);
        let price = market.max(self.s.compute_unit_price);
        if price > self.s.max_compute_unit_price {
            return Err(AdapterError::TryLater(format!(
                "the priority-fee market asks {market} micro-lamports per compute unit (percentile {}), above max_compute_unit_price {}: nothing signed",
                self.s.priority_fee_percentile, self.s.max_compute_unit_price
            )));
        }
        Ok(price)
    }

    /// Builds and signs an explicit action with a fresh blockhash.
    pub async fn sign_action(
        &self,
        action: &Action,
        rent: u64,
    ) -> Result<SignedOperation, AdapterError> {
        let bh = self
            .call(
                RpcRequest::GetLatestBlockhash,
                json!([{"commitment": "confirmed"}]),
            )
            .await?;
        let blockhash = bh
            .pointer("/value/blockhash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_answer("getLatestBlockhash", &bh))?
            .to_owned();
        let mut params = self.params(blockhash, rent);
        let build = |p: &TxParams| {
            tx::build(action, &self.key, p).map_err(|e| AdapterError::InvalidRequest(e.to_string()))
        };
        if self.s.priority_fee_market {
            // The accounts it write-locks decide its fee market.
            let accounts = tx::writable_accounts(&build(&params)?.bytes)
                .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
            params.compute_unit_price = self.priority_price(&accounts).await?;
        }
        if params.compute_unit_price > 0 {
            // A priority fee is paid per compute unit asked for, and a
            // leader schedules by fee per unit asked for: ask for what the
            // simulation used plus a fifth, never above the configured limit.
            let used = self.simulated_units(&build(&params)?.bytes).await?;
            params.compute_unit_limit = compute_unit_limit(used, self.s.compute_unit_limit);
        }
        let signed = build(&params)?;
        tracing::info!(tx = %signed.signature, compute_unit_price = params.compute_unit_price,
            compute_unit_limit = params.compute_unit_limit, "signed");
        Ok(SignedOperation {
            bytes: signed.bytes,
            tx_id: signed.signature,
            // Expiry is proven by the chain in `lookup` (blockhash validity),
            // never guessed from the clock.
            valid_until: None,
        })
    }
}

fn amount(v: u64) -> Amount {
    Amount::from_base(u128::from(v))
}

#[async_trait]
impl ChainAdapter for SolAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Solana
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        let (view, facts, history) = self.read_view().await?;
        if req.observe
            && let Ok(mut o) = self.observed_slot.lock()
        {
            *o = Some(facts.balance_slot);
        }
        let as_of = self
            .block_time(facts.slot)
            .await
            .unwrap_or_else(|_| Timestamp::from_unix(0));
        let epoch_secs = self.epoch_secs(&facts);
        let to_boundary = facts
            .slots_in_epoch
            .saturating_sub(facts.slot_index)
            .saturating_mul(self.s.slot_ms)
            / 1000;
        let mut by_vote: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut unbonding = Vec::new();
        let mut withdrawable = 0u64;
        // Lamports in delegated accounts beyond their stake: the rent
        // reserve and anything paid into them (tips).
        let mut reserved = 0u64;
        let mut alerts = Vec::new();
        let custody = self.key.address();
        let cooldown = stake::cooldown_epochs(&history, 0).max(1);
        for a in &view.accounts {
            if a.staker != custody {
                alerts.push(format!(
                    "stake account {} has staker {} (not the custody key): softstake counts it but cannot manage it",
                    a.address, a.staker
                ));
            }
            match a.phase {
                Phase::Active | Phase::Activating => {
                    let e = by_vote
                        .entry(a.voter.clone().unwrap_or_default())
                        .or_default();
                    e.0 = e.0.saturating_add(a.effective);
                    e.1 = e.1.saturating_add(a.activating);
                    reserved = reserved.saturating_add(
                        a.lamports
                            .saturating_sub(a.effective.saturating_add(a.activating)),
                    );
                }
                Phase::Deactivating => {
                    let secs = to_boundary
                        .saturating_add(cooldown.saturating_sub(1).saturating_mul(epoch_secs));
                    unbonding.push(UnbondingEntry {
                        validator: a.voter.clone().unwrap_or_default(),
                        amount: amount(a.lamports),
                        completes_at: Timestamp::from_unix(
                            as_of
                                .unix()
                                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
                        ),
                    });
                }
                Phase::Inactive | Phase::Initialized => {
                    withdrawable = withdrawable.saturating_add(a.lamports);
                }
            }
        }
        let delegations =
            by_vote
                .into_iter()
                .map(|(validator, (active, activating))| {
                    let info = view.votes.get(&validator);
                    let impaired = info.is_none_or(|i| i.delinquent);
                    if impaired && active.saturating_add(activating) > 0 {
                        alerts.push(format!(
                        "vote account {validator} is {} while the pool stakes {} lamports with it",
                        if info.is_none() { "unknown to the cluster" } else { "delinquent" },
                        active.saturating_add(activating)
                    ));
                    }
                    Delegation {
                        commission: info.map(|i| commission_fraction(i.commission)),
                        validator,
                        active: amount(active),
                        activating: amount(activating),
                        impaired,
                    }
                })
                .collect();
        Ok(PoolStateResponse {
            chain: ChainId::Solana,
            as_of,
            liquid: amount(view.liquid),
            delegations,
            unbonding,
            withdrawable: amount(withdrawable),
            claimable_rewards: Amount::ZERO,
            reserved: amount(reserved),
            limits: ChainLimits {
                min_delegation: amount(view.min_delegation),
                max_unbonding_entries: None,
                // Deactivation takes effect at the next boundary (up to one
                // epoch), then cools down for at least one more.
                unbonding_delay_secs: epoch_secs.saturating_mul(cooldown.saturating_add(1)),
                delegation_keeps_funds_liquid: false,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses: Vec::new(),
            alerts,
        })
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Every transaction that touched the custody wallet (its own, and
        // anyone's transfer to it), newest first from the node, up to the
        // slot of the observing pool read. Lamports paid into a stake
        // account by others (MEV tips) are not listed under the wallet:
        // they show in the stake account's balance, as the books' residual,
        // and become income by the books' rules.
        let custody = self.custody();
        let upto = self.observed_slot.lock().ok().and_then(|o| *o);
        let until = match req.cursor.as_deref() {
            None => None,
            Some("start") => None,
            Some(c) => Some(
                c.strip_prefix("sig:")
                    .ok_or_else(|| AdapterError::Config(format!("solana flow cursor {c:?}")))?
                    .to_owned(),
            ),
        };
        const PAGE: usize = 1000;
        let mut sigs: Vec<(String, u64)> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut cfg = json!({"limit": PAGE, "commitment": "confirmed"});
            if let Some(u) = &until {
                cfg["until"] = json!(u);
            }
            if let Some(b) = &before {
                cfg["before"] = json!(b);
            }
            let page = self
                .call(RpcRequest::GetSignaturesForAddress, json!([custody, cfg]))
                .await?;
            let page = page
                .as_array()
                .ok_or_else(|| bad_answer("getSignaturesForAddress", &page))?;
            for e in page {
                let sig = e
                    .get("signature")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_answer("getSignaturesForAddress", e))?;
                sigs.push((
                    sig.to_owned(),
                    u64_at(e, "/slot", "getSignaturesForAddress")?,
                ));
            }
            if page.len() < PAGE || (req.cursor.is_none() && !sigs.is_empty()) {
                break;
            }
            before = sigs.last().map(|(s, _)| s.clone());
        }
        sigs.reverse();
        let upto = upto.unwrap_or(u64::MAX);
        if req.cursor.is_none() {
            // The books open here: what happened before is in the opening
            // holdings.
            let last = sigs.iter().rev().find(|(_, slot)| *slot <= upto);
            // (No signature at all yet: every later one is a flow. Only
            // newer ones than the read: open again next time.)
            let next = match last {
                Some((s, _)) => Some(format!("sig:{s}")),
                None if sigs.is_empty() => Some("start".to_owned()),
                None => None,
            };
            return Ok(FlowsResponse {
                flows: Vec::new(),
                next_cursor: next,
                complete: true,
            });
        }
        let view = self.last_view.lock().ok().and_then(|v| v.clone());
        let derived: BTreeSet<String> = (0..view
            .as_ref()
            .map_or(0, |v| v.free_seed_index)
            .saturating_add(32))
            .map(|i| tx::stake_address(&self.key.pubkey(), i).to_string())
            .collect();
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let ours = |a: &str| a == custody || seen.contains(a) || derived.contains(a);
        let mut flows = Vec::new();
        let mut cursor = req.cursor.clone();
        for (sig, slot) in sigs {
            if slot > upto {
                break; // after the pool read: the next call books it
            }
            let t = self
                .call(
                    RpcRequest::GetTransaction,
                    json!([sig, {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}]),
                )
                .await?;
            if t.is_null() {
                break; // listed but not served yet: retried next time
            }
            flows.extend(
                crate::flows::classify(&sig, &t, &custody, ours)
                    .map_err(|e| bad_answer("getTransaction", &json!(e.to_string())))?,
            );
            cursor = Some(format!("sig:{sig}"));
        }
        Ok(FlowsResponse {
            flows,
            next_cursor: cursor,
            complete: true,
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let (view, facts, _) = self.read_view().await?;
        let distributing = match self.account_data(&EPOCH_REWARDS).await? {
            Some((_, data)) => epoch_rewards_active(&data),
            None => false,
        };
        // Finished epochs whose rewards are fully paid.
        let last_done = if distributing {
            facts.epoch.checked_sub(2)
        } else {
            facts.epoch.checked_sub(1)
        };
        let start = match req.cursor.as_deref() {
            Some(c) => c
                .strip_prefix("epoch:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    AdapterError::Config(format!("solana reward cursor {c:?} is not epoch:N"))
                })?,
            None => view
                .accounts
                .iter()
                .filter_map(|a| a.activation_epoch)
                .filter(|e| *e != u64::MAX)
                .min()
                .unwrap_or(facts.epoch),
        };
        let Some(last_done) = last_done else {
            return Ok(RewardsResponse {
                rewards: vec![],
                next_cursor: Some(format!("epoch:{start}")),
                foreign: Vec::new(),
            });
        };
        let end = last_done.min(start.saturating_add(self.s.max_reward_epochs.saturating_sub(1)));
        let addresses: Vec<String> = self
            .seen
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let voter_of: BTreeMap<&str, &str> = view
            .accounts
            .iter()
            .filter_map(|a| a.voter.as_deref().map(|v| (a.address.as_str(), v)))
            .collect();
        let mut rewards = Vec::new();
        let mut epoch = start;
        while epoch <= end && !addresses.is_empty() {
            let mut found: Vec<(String, u64, u64)> = Vec::new();
            for chunk in addresses.chunks(100) {
                let v = self
                    .call(
                        RpcRequest::GetInflationReward,
                        json!([chunk, {"epoch": epoch, "commitment": "finalized"}]),
                    )
                    .await?;
                let list = v
                    .as_array()
                    .ok_or_else(|| bad_answer("getInflationReward", &v))?;
                for (addr, r) in chunk.iter().zip(list) {
                    if r.is_null() {
                        continue;
                    }
                    let amt = u64_at(r, "/amount", "getInflationReward")?;
                    let slot = u64_at(r, "/effectiveSlot", "getInflationReward")?;
                    if amt > 0 {
                        found.push((addr.clone(), amt, slot));
                    }
                }
            }
            if !found.is_empty() {
                let schedule = self.call(RpcRequest::GetEpochSchedule, Value::Null).await?;
                let first = first_slot(&schedule, epoch)?;
                let next = first_slot(&schedule, epoch + 1)?;
                let t0 = self.block_time(first).await?;
                let t1 = self.block_time(next).await?;
                let period = Period::new(t0, t1.max(Timestamp::from_unix(t0.unix() + 1)))
                    .map_err(|e| bad_answer("epoch times", &json!(e.to_string())))?;
                for (addr, amt, slot) in found {
                    rewards.push(ObservedReward {
                        key: format!("epoch:{epoch}:{addr}"),
                        period,
                        amount: amount(amt),
                        validator: voter_of
                            .get(addr.as_str())
                            .map(|v| (*v).to_owned())
                            .unwrap_or_default(),
                        kind: RewardKind::Consensus,
                        tx_hash: Some(format!("inflation-reward@slot:{slot}")),
                        epoch: Some(epoch),
                    });
                }
            }
            epoch += 1;
        }
        let next = if addresses.is_empty() {
            start.max(end.saturating_add(1).min(facts.epoch))
        } else {
            epoch
        };
        Ok(RewardsResponse {
            rewards,
            next_cursor: Some(format!("epoch:{next}")),
            foreign: Vec::new(),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        let (view, _, _) = self.read_view().await?;
        let action = ops::choose(&req.kind, &view)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        self.sign_action(&action, view.rent_exempt_reserve).await
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let sent = self.send_once(&req, false).await?;
        // Under load a leader drops what it cannot schedule, and a node
        // forwards a transaction once: keep re-sending the very same bytes
        // (one signature, so it can land at most once) until the node
        // reports the signature or its blockhash dies (then `lookup`
        // proves the expiry and the journal plans again).
        let deadline = tokio::time::Instant::now() + self.s.rebroadcast_for;
        // A slot or so for the first look, then every `rebroadcast_every`.
        let mut wait = self.s.rebroadcast_every.min(Duration::from_millis(500));
        while tokio::time::Instant::now() + wait <= deadline {
            tokio::time::sleep(wait).await;
            wait = self.s.rebroadcast_every;
            if matches!(self.signature_status(&sent.tx_id).await, Ok(Some(_))) {
                break;
            }
            let Ok((_, blockhash)) = tx::decode(&req.signed.bytes) else {
                break;
            };
            let valid = self
                .call(
                    RpcRequest::IsBlockhashValid,
                    json!([blockhash, {"commitment": "processed"}]),
                )
                .await
                .ok()
                .and_then(|v| v.pointer("/value").and_then(Value::as_bool));
            if valid == Some(false) {
                break;
            }
            if let Err(e) = self.send_once(&req, true).await {
                tracing::debug!(tx = %sent.tx_id, error = %e, "re-send refused");
            }
        }
        Ok(sent)
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let status = self.signature_status(&req.tx_id).await?;
        let head_time = self.head_time().await;
        if let Some(s) = status {
            return Ok(LookupResponse {
                status: s,
                head_time,
            });
        }
        let Some(bytes) = req.signed_bytes else {
            return Ok(LookupResponse {
                status: TxStatus::NotFound,
                head_time,
            });
        };
        let (_, blockhash) =
            tx::decode(&bytes).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        self.call(RpcRequest::GetHealth, Value::Null).await?;
        let valid = self
            .call(
                RpcRequest::IsBlockhashValid,
                json!([blockhash, {"commitment": "processed"}]),
            )
            .await?;
        let valid = valid
            .pointer("/value")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad_answer("isBlockhashValid", &valid))?;
        if valid {
            return Ok(LookupResponse {
                status: TxStatus::NotFound,
                head_time,
            });
        }
        // The blockhash expired before this second look: if the signature is
        // still unknown, it can never be included.
        let status = match self.signature_status(&req.tx_id).await? {
            Some(s) => s,
            None => TxStatus::Expired,
        };
        Ok(LookupResponse { status, head_time })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        let t = self
            .call(
                RpcRequest::GetTransaction,
                json!([req.tx_id, {"encoding": "base64", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}]),
            )
            .await?;
        if t.is_null() {
            return Ok(IdentifyResponse::not_ours());
        }
        let bytes = t
            .pointer("/transaction/0")
            .and_then(Value::as_str)
            .and_then(unb64)
            .ok_or_else(|| bad_answer("getTransaction", &t))?;
        let post: Vec<u64> = t
            .pointer("/meta/postBalances")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_answer("getTransaction", &t))?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()
            .ok_or_else(|| bad_answer("getTransaction", &t))?;
        // Delegations as the chain shows them now (the cycle's observing
        // read has just taken the view).
        let view = match self.last_view.lock().ok().and_then(|v| v.clone()) {
            Some(v) => v,
            None => self.read_view().await?.0,
        };
        let vote_of = |a: &str| {
            view.accounts
                .iter()
                .find(|s| s.address == a)
                .and_then(|s| s.voter.clone())
        };
        let custody = self.key.pubkey();
        let Some(kind) = crate::found::operation_of(
            &bytes,
            &crate::found::Context {
                custody: &custody,
                post_balances: &post,
                rent_exempt_reserve: view.rent_exempt_reserve,
                vote_of: &vote_of,
            },
        ) else {
            return Ok(IdentifyResponse::not_ours());
        };
        let status = match t.pointer("/meta/err") {
            None | Some(Value::Null) => TxStatus::Confirmed {
                height: t.get("slot").and_then(Value::as_u64).unwrap_or(0),
            },
            Some(e) => TxStatus::Failed {
                reason: e.to_string(),
            },
        };
        Ok(IdentifyResponse::operation(kind, status))
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let endpoints = self
            .rpc
            .health(|ep| async move {
                let c = ep.client();
                let slot = c
                    .send::<Value>(RpcRequest::GetSlot, json!([{"commitment": "confirmed"}]))
                    .await
                    .map_err(|e| classify(ep.shown(), &e))?;
                let slot = slot
                    .as_u64()
                    .ok_or_else(|| ep.bad_response("getSlot", &slot))?;
                let time = c
                    .send::<Value>(RpcRequest::GetBlockTime, json!([slot]))
                    .await
                    .ok()
                    .and_then(|v| v.as_i64());
                Ok(Head {
                    height: Some(slot),
                    time_unix: time,
                })
            })
            .await;
        Ok(HealthResponse { endpoints })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        let view = self.last_view.lock().ok().and_then(|v| v.clone());
        match view.as_ref().and_then(ops::maintenance) {
            Some(Action::Merge {
                destination,
                source,
            }) => vec![Maintenance {
                kind: OperationKind::Setup {
                    step: "merge".into(),
                },
                reason: format!(
                    "stake accounts {source} and {destination} are both active on the same vote account: merge them"
                ),
            }],
            _ => Vec::new(),
        }
    }
}

impl SolAdapter {
    async fn signature_status(&self, sig: &str) -> Result<Option<TxStatus>, AdapterError> {
        let v = self
            .call(
                RpcRequest::GetSignatureStatuses,
                json!([[sig], {"searchTransactionHistory": true}]),
            )
            .await?;
        let s = v.pointer("/value/0").unwrap_or(&Value::Null);
        if s.is_null() {
            return Ok(None);
        }
        if let Some(err) = s.get("err").filter(|e| !e.is_null()) {
            return Ok(Some(TxStatus::Failed {
                reason: err.to_string(),
            }));
        }
        let slot = u64_at(s, "/slot", "getSignatureStatuses")?;
        Ok(Some(
            match s.get("confirmationStatus").and_then(Value::as_str) {
                Some("finalized") => TxStatus::Confirmed { height: slot },
                _ => TxStatus::Pending,
            },
        ))
    }
}

/// The compute-unit limit for a transaction whose simulation used `used`
/// units: a fifth more (accounts can change between simulation and
/// execution), at least 1, at most `max`.
pub fn compute_unit_limit(used: u64, max: u32) -> u32 {
    let want = used.saturating_add(used.div_ceil(5)).max(1);
    u32::try_from(want).unwrap_or(u32::MAX).min(max)
}

/// The `p`-th percentile (nearest rank, 1 to 100) of `v`; 0 for none.
pub fn percentile(mut v: Vec<u64>, p: u8) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    // Nearest rank: ceil(p / 100 x n), at least 1.
    let rank = (usize::from(p.clamp(1, 100)) * n).div_ceil(100).max(1);
    v[rank.min(n) - 1]
}

fn commission_fraction(c: u8) -> String {
    // Commission as a decimal fraction, like the other adapters report it.
    let whole = c / 100;
    let frac = c % 100;
    format!("{whole}.{frac:02}")
}

fn first_slot(schedule: &Value, epoch: u64) -> Result<u64, AdapterError> {
    let spe = u64_at(schedule, "/slotsPerEpoch", "getEpochSchedule")?;
    let warmup = schedule
        .get("warmup")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let first_normal_epoch = u64_at(schedule, "/firstNormalEpoch", "getEpochSchedule")?;
    let first_normal_slot = u64_at(schedule, "/firstNormalSlot", "getEpochSchedule")?;
    if warmup && epoch <= first_normal_epoch {
        // Warm-up epochs double from 32 slots.
        let mut slot = 0u64;
        let mut len = 32u64;
        for _ in 0..epoch {
            slot = slot.saturating_add(len);
            len = len.saturating_mul(2);
        }
        return Ok(slot);
    }
    Ok(first_normal_slot.saturating_add((epoch - first_normal_epoch).saturating_mul(spe)))
}

/// Whether the EpochRewards sysvar says rewards are still being paid out.
/// Layout: distribution_starting_block_height u64, num_partitions u64,
/// parent_blockhash [32], total_points u128, total_rewards u64,
/// distributed_rewards u64, active bool.
fn epoch_rewards_active(data: &[u8]) -> bool {
    data.get(8 + 8 + 32 + 16 + 8 + 8).is_some_and(|b| *b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_percentile_is_the_nearest_rank() {
        assert_eq!(percentile(vec![], 75), 0);
        assert_eq!(percentile(vec![9], 1), 9);
        // 150 slots, 100 of them at 50,000: the 75th percentile is 50,000,
        // the 25th is 0.
        let mut v = vec![0; 50];
        v.extend(std::iter::repeat_n(50_000, 100));
        assert_eq!(percentile(v.clone(), 75), 50_000);
        assert_eq!(percentile(v.clone(), 25), 0);
        assert_eq!(percentile(v, 100), 50_000);
        assert_eq!(percentile(vec![1, 2, 3, 4], 50), 2);
    }

    #[test]
    fn the_compute_unit_limit_is_the_simulation_plus_a_fifth_within_the_cap() {
        assert_eq!(compute_unit_limit(0, 200_000), 1);
        assert_eq!(compute_unit_limit(4_500, 200_000), 5_400);
        assert_eq!(compute_unit_limit(4_501, 200_000), 5_402);
        assert_eq!(compute_unit_limit(190_000, 200_000), 200_000);
        assert_eq!(compute_unit_limit(u64::MAX, 1_400_000), 1_400_000);
    }
}
