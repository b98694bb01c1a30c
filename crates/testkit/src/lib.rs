//! Test-only parts for softstake. Never linked into the binary.
//!
//! - [`SimChain`]: a bonded proof-of-stake chain, deterministic from a seed,
//!   driven by a [`ManualClock`], implementing
//!   [`softstake_core::adapter::ChainAdapter`]. It has blocks, epochs (stake
//!   activates and rewards accrue at each boundary), unbonding with a delay
//!   and an entry limit, claimable rewards, fees, transactions that expire,
//!   and injectable faults: RPC errors, dropped transactions, and
//!   transactions included while the broadcast response is lost. It keeps an
//!   audit of every broadcast so tests can prove an operation was never sent
//!   twice with different bytes and that no funds were created or lost.
//! - [`CrashFaults`]: a seeded [`softstake_engine::Faults`] that kills the
//!   engine at its crash points.
//! - [`Rng`]: splitmix64, so a seed replays exactly on every platform.
//!
//! The sim's signed bytes are JSON with the operation id, kind, a nonce and
//! the expiry; the tx id is their SHA-256. It is a model of the protocol
//! rules the engine depends on, not of any real chain's encoding (the chain
//! adapters are proven against real nodes and reference SDK vectors).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, EndpointHealth, FlowKind, FlowsRequest, FlowsResponse, FoundOperation,
    HealthRequest, HealthResponse, IdentifyRequest, IdentifyResponse, LookupRequest,
    LookupResponse, LossEvent, ObservedReward, OperationKind, PoolFlow, PoolStateRequest,
    PoolStateResponse, RewardKind, RewardsRequest, RewardsResponse, SignedOperation, TxStatus,
    UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Clock, ManualClock, Period, Timestamp};
use softstake_engine::{CrashPoint, EngineError, Faults};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

pub use softstake_core::rng::Rng;

/// The simulated chain's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimParams {
    /// Which chain id it reports.
    pub chain: ChainId,
    /// Seconds per block (transactions are included at block times).
    pub block_secs: i64,
    /// Seconds per epoch (activation and rewards at each boundary).
    pub epoch_secs: i64,
    /// Seconds from undelegate to withdrawable.
    pub unbonding_delay_secs: i64,
    /// Smallest delegation.
    pub min_delegation: Amount,
    /// Unbonding entries per validator.
    pub max_unbonding_entries: Option<u32>,
    /// Reward per epoch, parts per million of active stake.
    pub reward_ppm_per_epoch: u32,
    /// Fee per included transaction.
    pub fee: Amount,
    /// How long a signed transaction stays valid (`None`: forever).
    pub validity_secs: Option<i64>,
    /// Validators that exist.
    pub validators: Vec<String>,
}

impl SimParams {
    /// A Cosmos-shaped chain: 6 s blocks, 10-minute epochs, 30-minute
    /// unbonding, 7 entries, 0.1% per epoch, a fee of `fee`, transactions
    /// valid for two minutes, with these validators.
    pub fn hub_like(validators: &[&str], fee: u128) -> SimParams {
        SimParams {
            chain: ChainId::Cosmos,
            block_secs: 6,
            epoch_secs: 600,
            unbonding_delay_secs: 1_800,
            min_delegation: Amount::from_base(1),
            max_unbonding_entries: Some(7),
            reward_ppm_per_epoch: 1_000,
            fee: Amount::from_base(fee),
            validity_secs: Some(120),
            validators: validators.iter().map(|v| (*v).to_owned()).collect(),
        }
    }
}

/// Fault rates, in parts per million per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    /// Any RPC call fails with a transport error before doing anything.
    pub rpc_error_ppm: u32,
    /// A broadcast is answered "ok" but the transaction is silently dropped.
    pub drop_tx_ppm: u32,
    /// A broadcast is accepted but the response is lost (transport error).
    pub lost_response_ppm: u32,
}

/// What a signed sim transaction says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTx {
    /// Journal operation id (memo).
    pub op_id: String,
    /// What it does.
    pub kind: OperationKind,
    /// Signing counter (a different signature gives different bytes).
    pub nonce: u64,
    /// Last second at which it can be included.
    pub valid_until: Option<i64>,
    /// The fee level it pays (see [`SimChain::raise_base_fee`]).
    #[serde(default)]
    pub fee: u32,
}

#[derive(Debug)]
struct State {
    params: SimParams,
    rng: Rng,
    faults: FaultRates,
    height: u64,
    last_block_at: i64,
    next_epoch_at: i64,
    epoch: u64,
    liquid: u128,
    active: BTreeMap<String, u128>,
    activating: BTreeMap<String, u128>,
    unbonding: Vec<UnbondingEntry>,
    withdrawable: u128,
    claimable: u128,
    last_claim_at: i64,
    nonce: u64,
    mempool: BTreeMap<String, SimTx>,
    included: BTreeMap<String, (TxStatus, SimTx)>,
    rewards: Vec<ObservedReward>,
    flows: Vec<PoolFlow>,
    transfers: u64,
    missed_reward_events: u32,
    /// Slashings not yet reported by an observing pool read.
    pending_losses: Vec<LossEvent>,
    /// Whether `identify` names the journal id a transaction carries (a
    /// memo, as Cosmos can), or not (as Ethereum cannot).
    memo: bool,
    /// The base fee level: a transaction paying less is kept in the
    /// mempool and never included (as geth keeps one whose fee cap the
    /// base fee overtook), and new signatures pay this level.
    base_fee: u32,
    audit: Audit,
}

/// Everything the sim saw, for the simulation's assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Initial balance plus deposits.
    pub deposited: u128,
    /// Paid out to users.
    pub paid_out: u128,
    /// Fees charged.
    pub fees: u128,
    /// Rewards the chain created (accrued as claimable).
    pub rewards_accrued: u128,
    /// Income nobody announced (tips, MEV) paid into the liquid balance.
    pub unannounced: u128,
    /// Rewards claimed without a reward event (a missed event).
    pub unevidenced: u128,
    /// Losses nobody reported (a slashing the adapter misses).
    pub silent_losses: u128,
    /// Losses the chain reported (slashings).
    pub reported_losses: u128,
    /// Distinct tx ids broadcast per operation id.
    pub broadcasts: BTreeMap<String, BTreeSet<String>>,
    /// Successful inclusions per operation id.
    pub applied: BTreeMap<String, u32>,
    /// Transactions dropped by the fault injector.
    pub dropped: u64,
    /// Broadcast responses lost by the fault injector.
    pub lost_responses: u64,
    /// RPC errors injected.
    pub rpc_errors: u64,
}

/// The simulated chain. Clones share state.
#[derive(Debug, Clone)]
pub struct SimChain {
    clock: ManualClock,
    state: Arc<Mutex<State>>,
}

const ENDPOINT: &str = "sim://node";

fn add(a: u128, b: u128) -> u128 {
    a.checked_add(b).expect("simulated amounts overflow u128")
}

/// Where a cursor into one of the sim's logs (rewards, flows) points: the
/// number of entries already read.
fn log_position(cursor: Option<String>) -> Result<usize, AdapterError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| AdapterError::InvalidRequest(format!("bad cursor {c:?}"))),
    }
}

fn tx_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl SimChain {
    /// A chain at the clock's time with `initial` liquid in custody.
    pub fn new(seed: u64, params: SimParams, clock: ManualClock, initial: Amount) -> SimChain {
        let now = clock.now().unix();
        let state = State {
            next_epoch_at: now + params.epoch_secs,
            params,
            rng: Rng::new(seed.wrapping_mul(31).wrapping_add(7)),
            faults: FaultRates::default(),
            height: 1,
            last_block_at: now,
            epoch: 0,
            liquid: initial.base(),
            active: BTreeMap::new(),
            activating: BTreeMap::new(),
            unbonding: Vec::new(),
            withdrawable: 0,
            claimable: 0,
            last_claim_at: now,
            nonce: 0,
            mempool: BTreeMap::new(),
            included: BTreeMap::new(),
            rewards: Vec::new(),
            flows: Vec::new(),
            transfers: 0,
            missed_reward_events: 0,
            pending_losses: Vec::new(),
            memo: true,
            base_fee: 0,
            audit: Audit {
                deposited: initial.base(),
                ..Audit::default()
            },
        };
        SimChain {
            clock,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a test failure anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the fault rates.
    pub fn set_faults(&self, f: FaultRates) {
        self.st().faults = f;
    }

    /// The clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Moves time forward by `secs`, producing blocks and epochs on the way.
    pub fn advance(&self, secs: i64) {
        let target = self.clock.now().unix() + secs;
        let mut st = self.st();
        loop {
            let next_block = st.last_block_at + st.params.block_secs;
            if next_block > target {
                break;
            }
            self.clock.set(Timestamp::from_unix(next_block));
            st.last_block_at = next_block;
            st.block(next_block);
            while st.next_epoch_at <= next_block {
                st.epoch_boundary();
            }
        }
        self.clock.set(Timestamp::from_unix(target));
    }

    /// A transfer into custody (a user deposit the exchange tops the pool
    /// up with, or anyone's payment); returns its tx id.
    pub fn deposit(&self, amount: Amount) -> String {
        let mut st = self.st();
        st.liquid = add(st.liquid, amount.base());
        st.audit.deposited = add(st.audit.deposited, amount.base());
        st.transfer(FlowKind::TransferIn, amount, self.clock.now())
    }

    /// A transfer out of the liquid custody balance (the exchange paying a
    /// user, or a theft); returns its tx id.
    pub fn pay_out(&self, amount: Amount) -> Result<String, String> {
        let mut st = self.st();
        if st.liquid < amount.base() {
            return Err(format!(
                "liquid {} cannot pay out {}",
                st.liquid,
                amount.base()
            ));
        }
        st.liquid -= amount.base();
        st.audit.paid_out = add(st.audit.paid_out, amount.base());
        Ok(st.transfer(FlowKind::TransferOut, amount, self.clock.now()))
    }

    /// Income nobody announces (a tip, an MEV payment) lands in the liquid
    /// balance: no reward event, no transfer the adapter reports.
    pub fn pay_unannounced(&self, amount: Amount) {
        let mut st = self.st();
        st.liquid = add(st.liquid, amount.base());
        st.audit.unannounced = add(st.audit.unannounced, amount.base());
    }

    /// A loss nobody reports (a slashing the adapter misses): up to
    /// `amount` of the liquid balance leaves the pool with no flow and no
    /// loss event. Returns what was lost.
    pub fn lose_silently(&self, amount: Amount) -> Amount {
        let mut st = self.st();
        let x = amount.base().min(st.liquid);
        st.liquid -= x;
        st.audit.silent_losses = add(st.audit.silent_losses, x);
        Amount::from_base(x)
    }

    /// A slashing the chain reports: `amount` of `validator`'s active
    /// stake is gone, and the next observing pool read reports it as a
    /// loss event against the validator. Returns what was slashed.
    pub fn slash(&self, validator: &str, amount: Amount) -> Amount {
        let mut st = self.st();
        let active = st.active.get(validator).copied().unwrap_or(0);
        let x = amount.base().min(active);
        st.active.insert(validator.to_owned(), active - x);
        st.audit.reported_losses = add(st.audit.reported_losses, x);
        st.pending_losses.push(LossEvent {
            validator: validator.to_owned(),
            amount: Amount::from_base(x),
            reason: "validator slashed".into(),
        });
        Amount::from_base(x)
    }

    /// The next `n` reward claims pay without a reward event (the adapter
    /// misses them).
    pub fn miss_reward_events(&self, n: u32) {
        self.st().missed_reward_events = n;
    }

    /// Whether `identify` names the journal id a transaction carries
    /// (default) or, like a chain without memos, only what it did.
    pub fn set_memo(&self, memo: bool) {
        self.st().memo = memo;
    }

    /// Transfers and fees so far, in order.
    pub fn flows(&self) -> Vec<PoolFlow> {
        self.st().flows.clone()
    }

    /// Everything the pool holds: liquid, bonded, unbonding, withdrawable,
    /// claimable.
    pub fn total(&self) -> u128 {
        let st = self.st();
        let bonded = st
            .active
            .values()
            .chain(st.activating.values())
            .fold(0u128, |a, v| add(a, *v));
        let unbonding = st
            .unbonding
            .iter()
            .fold(0u128, |a, u| add(a, u.amount.base()));
        [st.liquid, bonded, unbonding, st.withdrawable, st.claimable]
            .into_iter()
            .fold(0, add)
    }

    /// Rewards accrued and claimable, not yet claimed.
    pub fn claimable(&self) -> u128 {
        self.st().claimable
    }

    /// The audit so far.
    pub fn audit(&self) -> Audit {
        self.st().audit.clone()
    }

    /// Rewards the chain has reported (claimed), in order.
    pub fn observed_rewards(&self) -> Vec<ObservedReward> {
        self.st().rewards.clone()
    }

    /// Raises the base fee level to `level`: transactions signed at a
    /// lower level stay in the mempool, reported `Stuck`, until replaced.
    pub fn raise_base_fee(&self, level: u32) {
        self.st().base_fee = level;
    }

    /// Transactions included so far.
    pub fn included_count(&self) -> usize {
        self.st().included.len()
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.st().mempool.len()
    }

    fn maybe_rpc_error(&self) -> Result<(), AdapterError> {
        let mut st = self.st();
        let ppm = st.faults.rpc_error_ppm;
        if st.rng.chance(ppm) {
            st.audit.rpc_errors += 1;
            return Err(AdapterError::Transport {
                endpoint: ENDPOINT.into(),
                message: "injected timeout".into(),
            });
        }
        Ok(())
    }
}

impl State {
    fn transfer(&mut self, kind: FlowKind, amount: Amount, at: Timestamp) -> String {
        self.transfers += 1;
        let id = tx_id(format!("transfer:{}:{}", self.transfers, amount.base()).as_bytes());
        let dir = if kind == FlowKind::TransferIn {
            "in"
        } else {
            "out"
        };
        self.flows.push(PoolFlow {
            key: format!("{dir}:{id}"),
            kind,
            amount,
            tx_id: id.clone(),
            counterparty: Some("sim://exchange".into()),
            at,
        });
        id
    }

    fn bonded(&self, v: &str) -> u128 {
        add(
            self.active.get(v).copied().unwrap_or(0),
            self.activating.get(v).copied().unwrap_or(0),
        )
    }

    fn block(&mut self, now: i64) {
        self.height += 1;
        // Matured unbonding becomes withdrawable.
        let (matured, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unbonding)
            .into_iter()
            .partition(|u| u.completes_at.unix() <= now);
        self.unbonding = waiting;
        for u in matured {
            self.withdrawable = add(self.withdrawable, u.amount.base());
        }
        let pool = std::mem::take(&mut self.mempool);
        let mut txs: Vec<(String, SimTx)> = pool.into_iter().collect();
        txs.sort_by_key(|(_, t)| t.nonce);
        for (id, tx) in txs {
            if tx.valid_until.is_some_and(|v| v < now) {
                continue; // expired: can never be included
            }
            if tx.fee < self.base_fee {
                // Priced out: kept, not included.
                self.mempool.insert(id, tx);
                continue;
            }
            let status = self.apply(&id, &tx, now);
            if matches!(status, TxStatus::Confirmed { .. }) {
                *self.audit.applied.entry(tx.op_id.clone()).or_default() += 1;
            }
            self.included.insert(id, (status, tx));
        }
    }

    fn apply(&mut self, id: &str, tx: &SimTx, now: i64) -> TxStatus {
        let fee = self.params.fee.base();
        if self.liquid < fee {
            return TxStatus::Failed {
                reason: "insufficient funds for fee".into(),
            };
        }
        self.liquid -= fee;
        self.audit.fees = add(self.audit.fees, fee);
        if fee > 0 {
            self.flows.push(PoolFlow {
                key: format!("fee:{id}"),
                kind: FlowKind::Fee,
                amount: Amount::from_base(fee),
                tx_id: id.to_owned(),
                counterparty: None,
                at: Timestamp::from_unix(now),
            });
        }
        let fail = |r: &str| TxStatus::Failed { reason: r.into() };
        let known = |s: &State, v: &str| s.params.validators.iter().any(|x| x == v);
        match &tx.kind {
            OperationKind::Delegate { validator, amount } => {
                let a = amount.base();
                if !known(self, validator) {
                    return fail("unknown validator");
                }
                if a < self.params.min_delegation.base() || a > self.liquid {
                    return fail("bad delegation amount");
                }
                self.liquid -= a;
                let e = self.activating.entry(validator.clone()).or_default();
                *e = add(*e, a);
            }
            OperationKind::Undelegate { validator, amount } => {
                let a = amount.base();
                if a == 0 || a > self.bonded(validator) {
                    return fail("undelegate more than bonded");
                }
                let entries = self
                    .unbonding
                    .iter()
                    .filter(|u| &u.validator == validator)
                    .count();
                if self
                    .params
                    .max_unbonding_entries
                    .is_some_and(|m| entries >= m as usize)
                {
                    return fail("too many unbonding entries");
                }
                let from_act = a.min(self.activating.get(validator).copied().unwrap_or(0));
                if let Some(x) = self.activating.get_mut(validator) {
                    *x -= from_act;
                }
                if let Some(x) = self.active.get_mut(validator) {
                    *x -= a - from_act;
                }
                self.unbonding.push(UnbondingEntry {
                    validator: validator.clone(),
                    amount: *amount,
                    completes_at: Timestamp::from_unix(now + self.params.unbonding_delay_secs),
                });
            }
            OperationKind::Redelegate { from, to, amount } => {
                let a = amount.base();
                if !known(self, to) || a == 0 || a > self.bonded(from) {
                    return fail("bad redelegation");
                }
                let from_act = a.min(self.activating.get(from).copied().unwrap_or(0));
                if let Some(x) = self.activating.get_mut(from) {
                    *x -= from_act;
                }
                if let Some(x) = self.active.get_mut(from) {
                    *x -= a - from_act;
                }
                let e = self.activating.entry(to.clone()).or_default();
                *e = add(*e, a);
            }
            OperationKind::ClaimRewards { .. } => {
                if self.claimable > 0 {
                    let amount = std::mem::take(&mut self.claimable);
                    self.liquid = add(self.liquid, amount);
                    let start = self.last_claim_at.min(now - 1);
                    self.last_claim_at = now;
                    if self.missed_reward_events > 0 {
                        self.missed_reward_events -= 1;
                        self.audit.unevidenced = add(self.audit.unevidenced, amount);
                    } else if let Ok(period) =
                        Period::new(Timestamp::from_unix(start), Timestamp::from_unix(now))
                    {
                        self.rewards.push(ObservedReward {
                            key: format!("claim:{id}"),
                            period,
                            amount: Amount::from_base(amount),
                            validator: self.params.validators.join(","),
                            kind: RewardKind::Consensus,
                            tx_hash: Some(id.to_owned()),
                            epoch: Some(self.epoch),
                        });
                    }
                }
            }
            OperationKind::WithdrawUnbonded { .. } => {
                self.liquid = add(self.liquid, std::mem::take(&mut self.withdrawable));
            }
            OperationKind::Setup { .. } => {}
        }
        TxStatus::Confirmed {
            height: self.height,
        }
    }

    fn epoch_boundary(&mut self) {
        self.epoch += 1;
        self.next_epoch_at += self.params.epoch_secs;
        for (v, a) in std::mem::take(&mut self.activating) {
            let e = self.active.entry(v).or_default();
            *e = add(*e, a);
        }
        let active = self.active.values().fold(0u128, |a, v| add(a, *v));
        let reward = Amount::from_base(active)
            .mul_div_floor(u128::from(self.params.reward_ppm_per_epoch), 1_000_000)
            .map_or(0, |(a, _)| a.base());
        self.claimable = add(self.claimable, reward);
        self.audit.rewards_accrued = add(self.audit.rewards_accrued, reward);
    }
}

#[async_trait]
impl ChainAdapter for SimChain {
    fn chain(&self) -> ChainId {
        self.st().params.chain
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let mut st = self.st();
        let losses = if req.observe {
            std::mem::take(&mut st.pending_losses)
        } else {
            Vec::new()
        };
        let delegations = st
            .params
            .validators
            .iter()
            .filter(|v| st.bonded(v) > 0)
            .map(|v| Delegation {
                validator: v.clone(),
                active: Amount::from_base(st.active.get(v).copied().unwrap_or(0)),
                activating: Amount::from_base(st.activating.get(v).copied().unwrap_or(0)),
                impaired: false,
                commission: Some("0.05".into()),
            })
            .collect();
        Ok(PoolStateResponse {
            chain: st.params.chain,
            as_of: self.clock.now(),
            liquid: Amount::from_base(st.liquid),
            delegations,
            unbonding: st.unbonding.clone(),
            withdrawable: Amount::from_base(st.withdrawable),
            claimable_rewards: Amount::from_base(st.claimable),
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: st.params.min_delegation,
                max_unbonding_entries: st.params.max_unbonding_entries,
                unbonding_delay_secs: u64::try_from(st.params.unbonding_delay_secs)
                    .unwrap_or_default(),
                delegation_keeps_funds_liquid: false,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses,
            alerts: Vec::new(),
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let st = self.st();
        let from = log_position(req.cursor)?;
        Ok(RewardsResponse {
            rewards: st.rewards.get(from..).unwrap_or_default().to_vec(),
            next_cursor: Some(st.rewards.len().to_string()),
            foreign: Vec::new(),
        })
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let st = self.st();
        let from = log_position(req.cursor)?;
        Ok(FlowsResponse {
            flows: st.flows.get(from..).unwrap_or_default().to_vec(),
            next_cursor: Some(st.flows.len().to_string()),
            complete: true,
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.maybe_rpc_error()?;
        if req.kind.value_moved().is_zero()
            && !matches!(
                req.kind,
                OperationKind::ClaimRewards { .. }
                    | OperationKind::Setup { .. }
                    | OperationKind::WithdrawUnbonded { .. }
            )
        {
            return Err(AdapterError::InvalidRequest("amount is 0".into()));
        }
        let mut st = self.st();
        st.nonce += 1;
        let now = self.clock.now().unix();
        let tx = SimTx {
            op_id: req.operation_id,
            kind: req.kind,
            nonce: st.nonce,
            valid_until: st.params.validity_secs.map(|v| now + v),
            fee: st.base_fee,
        };
        let bytes = serde_json::to_vec(&tx).map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(SignedOperation {
            tx_id: tx_id(&bytes),
            valid_until: tx.valid_until.map(Timestamp::from_unix),
            bytes,
        })
    }

    /// The same transaction at today's base fee level, while the priced-out
    /// version is not included.
    async fn replace(
        &self,
        req: softstake_core::adapter::ReplaceRequest,
    ) -> Result<SignedOperation, AdapterError> {
        self.maybe_rpc_error()?;
        let prev: SimTx = serde_json::from_slice(&req.previous.bytes)
            .map_err(|e| AdapterError::InvalidRequest(format!("undecodable transaction: {e}")))?;
        let mut st = self.st();
        if st.included.contains_key(&req.previous.tx_id) {
            return Err(AdapterError::TryLater(
                "the previous version is included".into(),
            ));
        }
        if st.base_fee <= prev.fee {
            return Err(AdapterError::TryLater(
                "the base fee is not above the previous version's".into(),
            ));
        }
        st.nonce += 1;
        let tx = SimTx {
            nonce: st.nonce,
            fee: st.base_fee,
            ..prev
        };
        let bytes = serde_json::to_vec(&tx).map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(SignedOperation {
            tx_id: tx_id(&bytes),
            valid_until: tx.valid_until.map(Timestamp::from_unix),
            bytes,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let bytes = &req.signed.bytes;
        let id = tx_id(bytes);
        let tx: SimTx = serde_json::from_slice(bytes)
            .map_err(|e| AdapterError::Rejected(format!("undecodable transaction: {e}")))?;
        let mut st = self.st();
        st.audit
            .broadcasts
            .entry(tx.op_id.clone())
            .or_default()
            .insert(id.clone());
        if st.included.contains_key(&id) || st.mempool.contains_key(&id) {
            return Ok(BroadcastResponse { tx_id: id });
        }
        let now = self.clock.now().unix();
        if tx.valid_until.is_some_and(|v| v < now) {
            return Err(AdapterError::Rejected("transaction expired".into()));
        }
        let (drop, lose) = (st.faults.drop_tx_ppm, st.faults.lost_response_ppm);
        if st.rng.chance(drop) {
            st.audit.dropped += 1;
            return Ok(BroadcastResponse { tx_id: id });
        }
        // A replacement (same operation, a higher fee) takes the held
        // version's place, as a pool replaces under the same nonce.
        let op = tx.op_id.clone();
        let fee = tx.fee;
        st.mempool.retain(|_, t| t.op_id != op || t.fee >= fee);
        st.mempool.insert(id.clone(), tx);
        if st.rng.chance(lose) {
            st.audit.lost_responses += 1;
            return Err(AdapterError::Transport {
                endpoint: ENDPOINT.into(),
                message: "injected: response lost after the node accepted the transaction".into(),
            });
        }
        Ok(BroadcastResponse { tx_id: id })
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let st = self.st();
        let status = if let Some((s, _)) = st.included.get(&req.tx_id) {
            s.clone()
        } else if let Some(tx) = st.mempool.get(&req.tx_id) {
            if tx.fee < st.base_fee {
                TxStatus::Stuck {
                    reason: format!(
                        "held at fee level {}, below the base fee level {}",
                        tx.fee, st.base_fee
                    ),
                }
            } else {
                TxStatus::Pending
            }
        } else {
            TxStatus::NotFound
        };
        Ok(LookupResponse {
            status,
            head_time: Timestamp::from_unix(st.last_block_at),
        })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        self.maybe_rpc_error()?;
        let st = self.st();
        let memo = |tx: &SimTx| st.memo.then(|| tx.op_id.clone());
        let found = if let Some((status, tx)) = st.included.get(&req.tx_id) {
            Some(FoundOperation {
                kind: tx.kind.clone(),
                status: status.clone(),
                operation_id: memo(tx),
            })
        } else {
            st.mempool.get(&req.tx_id).map(|tx| FoundOperation {
                kind: tx.kind.clone(),
                status: TxStatus::Pending,
                operation_id: memo(tx),
            })
        };
        Ok(IdentifyResponse {
            found,
            supported: true,
        })
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let st = self.st();
        Ok(HealthResponse {
            endpoints: vec![EndpointHealth {
                endpoint: ENDPOINT.into(),
                up: true,
                head_height: Some(st.height),
                lag_secs: Some(0),
                latency_ms: Some(0),
            }],
        })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<softstake_core::adapter::Maintenance> {
        Vec::new()
    }
}

/// Seeded crashes at the engine's crash points.
#[derive(Debug)]
pub struct CrashFaults {
    rng: Mutex<Rng>,
    ppm: u32,
    crashes: Mutex<Vec<CrashPoint>>,
}

impl CrashFaults {
    /// Crashes at each crash point with probability `ppm` / 1e6.
    pub fn new(seed: u64, ppm: u32) -> CrashFaults {
        CrashFaults {
            rng: Mutex::new(Rng::new(seed.wrapping_mul(131).wrapping_add(3))),
            ppm,
            crashes: Mutex::new(Vec::new()),
        }
    }

    /// Where it crashed so far.
    pub fn crashes(&self) -> Vec<CrashPoint> {
        self.crashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops crashing (for the final settle).
    pub fn disarm(&self) -> CrashFaults {
        CrashFaults {
            rng: Mutex::new(Rng::new(0)),
            ppm: 0,
            crashes: Mutex::new(Vec::new()),
        }
    }
}

impl Faults for CrashFaults {
    fn check(&self, point: CrashPoint) -> Result<(), EngineError> {
        let hit = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .chance(self.ppm);
        if hit {
            self.crashes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(point);
            return Err(EngineError::Crash(point));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SimParams {
        SimParams {
            validity_secs: Some(60),
            ..SimParams::hub_like(&["val1", "val2"], 3)
        }
    }

    fn sim() -> SimChain {
        SimChain::new(
            1,
            params(),
            ManualClock::new(Timestamp::from_unix(1_000_000)),
            Amount::from_base(1_000_000),
        )
    }

    async fn send(s: &SimChain, kind: OperationKind) -> String {
        let signed = s
            .build_and_sign(BuildRequest {
                operation_id: "op".into(),
                kind,
            })
            .await
            .unwrap();
        s.broadcast(BroadcastRequest {
            signed: signed.clone(),
        })
        .await
        .unwrap();
        signed.tx_id
    }

    #[test]
    fn the_rng_replays_a_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(9);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(9);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(10).next_u64(), a[0]);
    }

    #[tokio::test]
    async fn delegation_activates_at_the_epoch_and_earns_claimable_rewards() {
        let s = sim();
        let tx = send(
            &s,
            OperationKind::Delegate {
                validator: "val1".into(),
                amount: Amount::from_base(500_000),
            },
        )
        .await;
        s.advance(6);
        let l = s
            .lookup(LookupRequest {
                tx_id: tx,
                signed_bytes: None,
            })
            .await
            .unwrap();
        assert!(matches!(l.status, TxStatus::Confirmed { .. }), "{l:?}");
        let p = s.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(p.liquid, Amount::from_base(1_000_000 - 500_000 - 3));
        assert_eq!(p.delegations[0].activating, Amount::from_base(500_000));
        s.advance(600);
        let p = s.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(p.delegations[0].active, Amount::from_base(500_000));
        // One epoch of 0.1% on what was active at the boundary.
        assert_eq!(p.claimable_rewards, Amount::from_base(500));
        send(&s, OperationKind::ClaimRewards { validators: vec![] }).await;
        s.advance(6);
        let r = s
            .rewards_since(RewardsRequest { cursor: None })
            .await
            .unwrap();
        assert_eq!(r.rewards.len(), 1);
        assert_eq!(r.rewards[0].amount, Amount::from_base(500));
        let again = s
            .rewards_since(RewardsRequest {
                cursor: r.next_cursor,
            })
            .await
            .unwrap();
        assert!(again.rewards.is_empty());
        let a = s.audit();
        assert_eq!(s.total(), a.deposited + a.rewards_accrued - a.fees);
    }

    #[tokio::test]
    async fn unbonding_matures_after_the_delay_and_respects_the_entry_limit() {
        let mut p = params();
        p.max_unbonding_entries = Some(1);
        let s = SimChain::new(
            2,
            p,
            ManualClock::new(Timestamp::from_unix(0)),
            Amount::from_base(1_000),
        );
        send(
            &s,
            OperationKind::Delegate {
                validator: "val1".into(),
                amount: Amount::from_base(600),
            },
        )
        .await;
        s.advance(6);
        let un = |n| OperationKind::Undelegate {
            validator: "val1".into(),
            amount: Amount::from_base(n),
        };
        let a = send(&s, un(100)).await;
        let b = send(&s, un(50)).await;
        s.advance(6);
        let st = |t: String| {
            let s = s.clone();
            async move {
                s.lookup(LookupRequest {
                    tx_id: t,
                    signed_bytes: None,
                })
                .await
                .unwrap()
                .status
            }
        };
        assert!(matches!(st(a).await, TxStatus::Confirmed { .. }));
        assert!(matches!(st(b).await, TxStatus::Failed { .. }));
        s.advance(1_800);
        let p = s.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(p.withdrawable, Amount::from_base(100));
        assert!(p.unbonding.is_empty());
    }

    #[tokio::test]
    async fn expired_transactions_are_never_included_and_replays_are_deduplicated() {
        let s = sim();
        let signed = s
            .build_and_sign(BuildRequest {
                operation_id: "op".into(),
                kind: OperationKind::ClaimRewards { validators: vec![] },
            })
            .await
            .unwrap();
        s.clock().advance(61);
        let err = s
            .broadcast(BroadcastRequest {
                signed: signed.clone(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, AdapterError::Rejected(_)));
        let fresh = send(&s, OperationKind::ClaimRewards { validators: vec![] }).await;
        // The audit sees both signatures sent under one operation id (what
        // the simulation forbids the engine to do).
        assert_eq!(s.audit().broadcasts["op"].len(), 2);
        // The same bytes again are one transaction.
        let signed_fresh = s.st().mempool.get(&fresh).cloned().unwrap();
        let bytes = serde_json::to_vec(&signed_fresh).unwrap();
        s.broadcast(BroadcastRequest {
            signed: SignedOperation {
                tx_id: fresh.clone(),
                bytes,
                valid_until: None,
            },
        })
        .await
        .unwrap();
        assert_eq!(s.mempool_len(), 1);
        s.advance(6);
        assert_eq!(s.audit().applied["op"], 1);
        assert!(matches!(
            s.lookup(LookupRequest {
                tx_id: fresh,
                signed_bytes: None
            })
            .await
            .unwrap()
            .status,
            TxStatus::Confirmed { .. }
        ));
    }
}
