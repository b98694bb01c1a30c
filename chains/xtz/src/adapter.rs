//! [`XtzAdapter`]: the Tezos `ChainAdapter` over the Octez RPC.
//!
//! - Every operation is forged here ([`crate::forge`]), simulated with
//!   `simulate_operation` for gas (the node never forges what we sign),
//!   signed, and injected with `/injection/operation`. The counter comes
//!   from the chain; the engine never plans while an operation is open, so
//!   two operations never race for a counter. A new account is revealed in
//!   the same group as its first operation.
//! - Expiry is proven by the chain: an operation whose branch is more than
//!   `max_operations_time_to_live` levels behind the head can never be
//!   included, so `lookup` reports `Expired`.
//! - Staking mode: stake (frozen with the account's own delegate, earning
//!   on-chain), unstake requests finalizable from cycle n +
//!   `unstake_finalization_delay` + 1, finalize_unstake. Delegation mode:
//!   the whole balance is delegated and stays spendable.
//! - Staking rewards, as the protocol pays them since adaptive issuance: a
//!   staker's reward is never itemised (blocks credit the baker's stakers'
//!   pool, `{"staker":{"delegate":..}}`); it shows as growth of the
//!   account's `staked_balance` (pseudotokens over the pool). Per cycle, the
//!   reward is `staked_balance` at the cycle's last block minus at the
//!   previous cycle's last block, net of the account's own stake, unstake
//!   and delegate changes (their receipts' `deposits` updates, found by
//!   bisecting the account's counter, so no block is scanned). A fall is a
//!   loss (slashing), reported by the next observing `pool_state`.
//!   Evidence: both boundary blocks and the pool's credit in the cycle's
//!   last block.
//! - Delegation payouts from the baker's configured payout addresses,
//!   found by scanning blocks, attributed to the cycle
//!   `payout_delay_cycles` before the one they arrived in.
//! - Cycles and periods come from the node (`helpers/current_level`,
//!   `helpers/levels_in_current_cycle`, block timestamps), so a protocol
//!   change of cycle length or block time moves nothing. Only final blocks
//!   (two behind the head, Tenderbake) are read; nothing older than
//!   `start_level`; a block the node cannot serve stops the scan before it,
//!   keeping what was found, and is asked again next time.

use crate::forge::{self, Content, Kind, check_tz1};
use crate::keys::Signer;
use crate::ops::{AccountView, Mode, kinds_for};
use crate::rpc::{self, Constants, mutez as num};
use async_trait::async_trait;
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowKind, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse,
    IdentifyRequest, IdentifyResponse, LookupRequest, LookupResponse, LossEvent, Maintenance,
    ObservedReward, PoolFlow, PoolStateRequest, PoolStateResponse, RewardKind, RewardsRequest,
    RewardsResponse, SignedOperation, TxStatus, UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_rpc::{Endpoint, Endpoints, Head as RpcHead, Options, ServerErrors};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Blocks behind the head before a block is final (Tenderbake).
const FINALITY: i64 = 2;
/// Most cycles accounted per rewards call.
const MAX_WINDOWS: usize = 16;

/// Settings from `[chains.network]` (type = "tezos").
#[derive(Debug, Clone)]
pub struct XtzSettings {
    /// Octez RPC endpoints, in order of preference.
    pub endpoints: Vec<String>,
    /// Chain id every endpoint must report.
    pub chain_id: String,
    /// Delegation or staking.
    pub mode: Mode,
    /// Addresses the baker pays delegators from.
    pub payout_addresses: Vec<String>,
    /// A payout arriving in cycle c pays for cycle c - this.
    pub payout_delay_cycles: i64,
    /// Most blocks scanned per rewards call.
    pub max_scan: i64,
    /// Alert when no payout arrived for this many cycles.
    pub expected_payout_cycles: Option<i64>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// The level whose state is the baseline of the rewards scan: nothing
    /// older is read. `None`: the final block at the first scan.
    pub start_level: Option<i64>,
}

/// The adapter.
pub struct XtzAdapter {
    s: XtzSettings,
    signer: Arc<dyn Signer>,
    rpc: Endpoints,
    /// Cycle of the last payout seen (or of the first reading): for the
    /// expected-payout check.
    last_payout_cycle: Mutex<Option<i64>>,
    /// Falls of the staked balance found by the rewards scan, reported by
    /// the next observing `pool_state`; and the cycles already reported
    /// (a scan repeated from an older cursor reports nothing twice).
    losses: Mutex<(Vec<LossEvent>, std::collections::BTreeSet<i64>)>,
    /// The level the last observing pool read was taken at: the flows are
    /// scanned to it.
    observed_level: Mutex<Option<i64>>,
    /// The level of each operation of ours the flows scan met, for
    /// `identify` (asked about the flows just returned).
    seen_ops: Mutex<std::collections::BTreeMap<String, i64>>,
}

impl std::fmt::Debug for XtzAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XtzAdapter")
            .field("address", &self.signer.address())
            .field("chain_id", &self.s.chain_id)
            .finish_non_exhaustive()
    }
}

fn inv(m: impl Into<String>) -> AdapterError {
    AdapterError::InvalidRequest(m.into())
}

fn bad(message: impl Into<String>) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "tezos RPC".into(),
        message: message.into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Head {
    hash: String,
    level: i64,
    time: Timestamp,
}

/// One cycle's staking result.
enum Window {
    Reward(ObservedReward),
    Loss(i64, LossEvent),
    Nothing,
}

impl XtzAdapter {
    /// An adapter signing with `signer`.
    pub fn new(s: XtzSettings, signer: Arc<dyn Signer>) -> Result<XtzAdapter, AdapterError> {
        for p in &s.payout_addresses {
            check_tz1("payout address", p).map_err(|e| AdapterError::Config(e.to_string()))?;
        }
        if s.start_level.is_some_and(|l| l < 1) {
            return Err(AdapterError::Config(
                "start_level must be at least 1".into(),
            ));
        }
        let rpc = Endpoints::http(
            "tezos RPC",
            &s.endpoints,
            Options {
                timeout: s.request_timeout,
                ..Options::default()
            },
        )?
        .with_identity(s.chain_id.clone(), |ep| async move {
            let r = ep.get("/chains/main/chain_id").await?;
            let v = r.json()?;
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ep.bad_response("chain_id", &v))
        });
        Ok(XtzAdapter {
            s,
            signer,
            rpc,
            last_payout_cycle: Mutex::new(None),
            losses: Mutex::new((Vec::new(), std::collections::BTreeSet::new())),
            observed_level: Mutex::new(None),
            seen_ops: Mutex::new(std::collections::BTreeMap::new()),
        })
    }
    /// The custody address.
    pub fn address(&self) -> String {
        self.signer.address()
    }

    /// One Octez call at one endpoint: `None` for 404; a 4xx (and a 5xx
    /// answering a POST: Octez refuses an injection so) is the node's
    /// refusal with its first error.
    async fn req_at(
        ep: &Endpoint,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, AdapterError> {
        let r = match body {
            Some(b) => ep.post_json(path, b, ServerErrors::Return).await?,
            None => ep.get(path).await?,
        };
        if r.status == 404 {
            return Ok(None);
        }
        if r.status >= 400 {
            // An error body that is not Octez's JSON error list (a proxy's
            // page) says nothing about the operation: retryable.
            let v = r.json()?;
            let first = v.as_array().and_then(|a| a.first());
            let msg = first
                .and_then(|e| e["msg"].as_str().or(e["id"].as_str()))
                .unwrap_or("error")
                .to_owned();
            // One manager operation per source and block ("1M"): an
            // operation of ours still waits for its block. Not a refusal of
            // this one: it is sent again once the other is included.
            let id = first.and_then(|e| e["id"].as_str()).unwrap_or("");
            if id.contains("manager_restriction")
                || msg.to_lowercase().contains("only one manager operation")
            {
                return Err(AdapterError::TryLater(msg));
            }
            return Err(AdapterError::Rejected(msg));
        }
        r.json().map(Some)
    }

    /// GET/POST through the endpoint layer (fallback, chain id checked).
    async fn req(&self, path: &str, body: Option<Value>) -> Result<Option<Value>, AdapterError> {
        self.rpc
            .call(|ep| {
                let body = body.clone();
                async move { Self::req_at(&ep, path, body.as_ref()).await }
            })
            .await
    }

    async fn get(&self, path: &str) -> Result<Value, AdapterError> {
        self.req(path, None)
            .await?
            .ok_or_else(|| AdapterError::Rejected(format!("{path}: not found")))
    }

    /// Makes sure an endpoint on our chain answers (the endpoint layer
    /// checks the chain id before an endpoint's first use).
    async fn check_chain(&self) -> Result<(), AdapterError> {
        self.rpc.call(|_| async { Ok(()) }).await
    }

    async fn head(&self) -> Result<Head, AdapterError> {
        self.header("head").await
    }

    /// A block's header; a block the node does not have (pruned, or not
    /// yet baked) is named in the error.
    async fn header(&self, block: &str) -> Result<Head, AdapterError> {
        let h = self
            .req(&format!("/chains/main/blocks/{block}/header"), None)
            .await?
            .ok_or_else(|| {
                AdapterError::TryLater(format!(
                    "block {block} is not available on the node (pruned by its history mode, or not baked yet)"
                ))
            })?;
        Ok(Head {
            hash: h["hash"].as_str().unwrap_or("").to_owned(),
            level: h["level"]
                .as_i64()
                .ok_or_else(|| bad(format!("header of {block}: no level")))?,
            time: h["timestamp"]
                .as_str()
                .unwrap_or("")
                .parse()
                .map_err(|e| bad(format!("block time: {e}")))?,
        })
    }

    async fn constants(&self) -> Result<Constants, AdapterError> {
        let c = self
            .get("/chains/main/blocks/head/context/constants")
            .await?;
        rpc::constants(&c).map_err(bad)
    }

    /// The level, cycle and position of a block, from the node.
    async fn level_info(&self, block: &str) -> Result<rpc::LevelInfo, AdapterError> {
        let v = self
            .get(&format!(
                "/chains/main/blocks/{block}/helpers/current_level"
            ))
            .await?;
        rpc::level_info(&v).map_err(bad)
    }

    /// First and last level of the cycle `offset` cycles after the one of
    /// `block`, by the protocol's own cycle eras.
    async fn cycle_levels(&self, block: &str, offset: i64) -> Result<(i64, i64), AdapterError> {
        let v = self
            .get(&format!(
                "/chains/main/blocks/{block}/helpers/levels_in_current_cycle?offset={offset}"
            ))
            .await?;
        rpc::cycle_levels(&v).map_err(bad)
    }

    fn contract(&self, field: &str) -> String {
        self.contract_at("head", field)
    }

    fn contract_at(&self, block: &str, field: &str) -> String {
        format!(
            "/chains/main/blocks/{block}/context/contracts/{}/{field}",
            self.address()
        )
    }

    /// A mutez value of the custody account at a block (0 when the account
    /// does not exist there).
    async fn mutez_at(&self, level: i64, field: &str) -> Result<u128, AdapterError> {
        let v = self
            .req(&self.contract_at(&level.to_string(), field), None)
            .await?;
        Ok(v.as_ref().and_then(num).unwrap_or(0))
    }

    async fn account(&self) -> Result<(AccountView, u128, u128), AdapterError> {
        let revealed = self
            .req(&self.contract("manager_key"), None)
            .await?
            .is_some_and(|v| !v.is_null());
        let delegate = self
            .req(&self.contract("delegate"), None)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned));
        let counter = num(&self.get(&self.contract("counter")).await?).unwrap_or(0);
        let balance = num(&self.get(&self.contract("balance")).await?).unwrap_or(0);
        Ok((AccountView { revealed, delegate }, counter, balance))
    }

    /// The baker exists, is active, and (staking) accepts stakers with room
    /// for `stake`.
    async fn check_baker(&self, baker: &str, stake: u128) -> Result<(), AdapterError> {
        let Some(v) = self
            .req(
                &format!("/chains/main/blocks/head/context/delegates/{baker}"),
                None,
            )
            .await?
        else {
            return Err(inv(format!("{baker} is not a registered baker")));
        };
        let b = rpc::baker(&v).map_err(bad)?;
        if b.deactivated {
            return Err(inv(format!("baker {baker} is deactivated")));
        }
        if stake == 0 {
            return Ok(());
        }
        if b.limit_millionth == 0 {
            return Err(inv(format!("baker {baker} does not accept stakers")));
        }
        let room = b.room();
        if stake > room {
            return Err(inv(format!(
                "baker {baker} can take {room} mutez more stake, not {stake}"
            )));
        }
        Ok(())
    }

    fn content_json(&self, c: &Content) -> Value {
        let mut v = json!({"source": c.source, "fee": c.fee.to_string(), "counter": c.counter.to_string(),
            "gas_limit": c.gas_limit.to_string(), "storage_limit": c.storage_limit.to_string()});
        match &c.kind {
            Kind::Reveal { public_key } => {
                v["kind"] = json!("reveal");
                v["public_key"] = json!(public_key);
            }
            Kind::Delegation { delegate } => {
                v["kind"] = json!("delegation");
                if let Some(d) = delegate {
                    v["delegate"] = json!(d);
                }
            }
            Kind::StakingCall { amount, entrypoint } => {
                v["kind"] = json!("transaction");
                v["amount"] = json!(amount.to_string());
                v["destination"] = json!(c.source);
                v["parameters"] =
                    json!({"entrypoint": entrypoint.name(), "value": {"prim": "Unit"}});
            }
        }
        v
    }

    /// The manager operations of a block (pass 3); a block the node cannot
    /// serve is an error naming it.
    async fn scan_ops(&self, level: i64) -> Result<Vec<Value>, AdapterError> {
        Ok(self
            .req(&format!("/chains/main/blocks/{level}/operations/3"), None)
            .await?
            .ok_or_else(|| {
                AdapterError::TryLater(format!(
                    "the operations of block {level} are not available on the node (pruned by its history mode?)"
                ))
            })?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The period of the cycle `offset` cycles after the one of block
    /// `at`: from the timestamp of the block before its first to the one of
    /// its last. A boundary block the node no longer (or not yet) has is
    /// placed by the current block time from `at`.
    async fn cycle_period(&self, at: i64, offset: i64) -> Result<Period, AdapterError> {
        let (first, last) = self.cycle_levels(&at.to_string(), offset).await?;
        let here = self.header(&at.to_string()).await?;
        let mut block_secs = None;
        let mut time_of = async |level: i64| -> Result<Timestamp, AdapterError> {
            if level <= at
                && let Ok(h) = self.header(&level.max(1).to_string()).await
            {
                return Ok(h.time);
            }
            let secs = match block_secs {
                Some(s) => s,
                None => {
                    let s = self.constants().await?.block_secs;
                    block_secs = Some(s);
                    s
                }
            };
            Ok(here.time.plus_secs((level - at) * secs))
        };
        let start = time_of(first - 1).await?;
        let end = time_of(last).await?;
        Period::new(start, end).map_err(|e| bad(format!("cycle period: {e}")))
    }

    /// How the account's own operations in levels (b0, b1] changed its
    /// staked deposits. Each manager operation moves the account's counter,
    /// so the blocks holding them are found by bisecting the counter: no
    /// block is scanned, however long the window.
    async fn own_deposit_changes(&self, b0: i64, b1: i64) -> Result<(i128, usize), AdapterError> {
        let me = self.address();
        let counter = async |level: i64| self.mutez_at(level, "counter").await;
        let end = counter(b1).await?;
        let mut c = counter(b0).await?;
        let mut lo = b0;
        let (mut total, mut ops) = (0i128, 0usize);
        while c < end {
            // counter(lo) <= c < counter(hi)
            let mut hi = b1;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if counter(mid).await? > c {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            for op in self.scan_ops(hi).await? {
                if rpc::is_source(&op, &me) {
                    total += rpc::own_deposit_change(&op, &me);
                    ops += 1;
                }
            }
            c = counter(hi).await?;
            lo = hi;
        }
        Ok((total, ops))
    }

    /// The staking result of one cycle: levels (b0, b1], b1 the cycle's
    /// last block.
    async fn staking_window(&self, b0: i64, b1: i64) -> Result<Window, AdapterError> {
        let s0 = self.mutez_at(b0, "staked_balance").await?;
        let s1 = self.mutez_at(b1, "staked_balance").await?;
        let (own, ops) = self.own_deposit_changes(b0, b1).await?;
        if s0 == 0 && s1 == 0 && own == 0 {
            return Ok(Window::Nothing);
        }
        let overflow = || bad("staked balance overflows");
        let net = i128::try_from(s1)
            .ok()
            .zip(i128::try_from(s0).ok())
            .and_then(|(a, b)| a.checked_sub(b))
            .and_then(|d| d.checked_sub(own))
            .ok_or_else(overflow)?;
        let (h0, h1) = (
            self.header(&b0.to_string()).await?,
            self.header(&b1.to_string()).await?,
        );
        let cycle = self.level_info(&b1.to_string()).await?.cycle;
        let baker = self
            .req(&self.contract_at(&b1.to_string(), "delegate"), None)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let md = self
            .get(&format!("/chains/main/blocks/{b1}/metadata"))
            .await?;
        let pool = rpc::pool_credits(&md, &baker);
        let evidence = format!(
            "staked_balance {s0} at {b0} ({}) to {s1} at {b1} ({}); own stake/unstake {own} in {ops} operation(s); pool of {baker} credited {} in block {b1}",
            h0.hash, h1.hash, pool.stakers
        );
        tracing::debug!(cycle, %evidence, net, "staking window");
        if net < 0 {
            let lost = Amount::from_base(net.unsigned_abs());
            tracing::error!(cycle, %baker, %lost, %evidence, "the staked balance fell: slashing");
            return Ok(Window::Loss(
                cycle,
                LossEvent {
                    validator: baker,
                    amount: lost,
                    reason: format!(
                        "staked balance fell in cycle {cycle} (slashing; pool slashed {} in block {b1}): {evidence}",
                        pool.slashed
                    ),
                },
            ));
        }
        if net == 0 {
            return Ok(Window::Nothing);
        }
        Ok(Window::Reward(ObservedReward {
            key: format!("staking:{cycle}"),
            period: Period::new(h0.time, h1.time).map_err(|e| bad(format!("{e}")))?,
            amount: Amount::from_base(net.unsigned_abs()),
            validator: baker,
            kind: RewardKind::Consensus,
            tx_hash: Some(evidence),
            epoch: u64::try_from(cycle).ok(),
        }))
    }

    /// Delegation payouts in one block.
    async fn payouts_in(&self, level: i64) -> Result<Vec<ObservedReward>, AdapterError> {
        let ops = self.scan_ops(level).await?;
        let me = self.address();
        let found: Vec<(String, String, u128)> = rpc::payouts(&ops, &me, &self.s.payout_addresses)
            .into_iter()
            .map(|(h, p, a)| (h.to_owned(), p.to_owned(), a))
            .collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let cycle = self.level_info(&level.to_string()).await?.cycle;
        let paid_for = cycle - self.s.payout_delay_cycles;
        let period = self
            .cycle_period(level, -self.s.payout_delay_cycles)
            .await?;
        *lock(&self.last_payout_cycle) = Some(cycle);
        Ok(found
            .into_iter()
            .map(|(hash, payer, amount)| ObservedReward {
                key: format!("payout:{hash}"),
                period,
                amount: Amount::from_base(amount),
                validator: payer,
                kind: RewardKind::DelegationPayout,
                tx_hash: Some(hash),
                epoch: u64::try_from(paid_for).ok(),
            })
            .collect())
    }
}

#[async_trait]
impl ChainAdapter for XtzAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        self.check_chain().await?;
        // Read at one block, named by its level (the head when read), the
        // block the flows are then scanned to: the books compare one moment.
        // The head, not a final block: what `lookup` confirms at the head
        // must show here, or a plan could repeat it.
        let head = self.head().await?;
        let at = head.level.to_string();
        let k = self.constants().await?;
        let cycle = self.level_info(&at).await?.cycle;
        let delegate = self
            .req(&self.contract_at(&at, "delegate"), None)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned));
        let acct = AccountView {
            revealed: true,
            delegate,
        };
        let balance = self.mutez_at(head.level, "balance").await?;
        let staked = self.mutez_at(head.level, "staked_balance").await?;
        let reqs = rpc::unstake_requests(
            &self
                .req(&self.contract_at(&at, "unstake_requests"), None)
                .await?
                .unwrap_or(Value::Null),
        );
        if req.observe {
            *lock(&self.observed_level) = Some(head.level);
        }
        // A request of cycle n is finalizable from the first block of cycle
        // n + delay + 1: placed by the protocol's cycle eras, timed at the
        // current block time.
        let mut unbonding = Vec::new();
        for (c, amount) in &reqs.unfinalizable {
            let target = c + k.unstake_delay + 1;
            let first = self.cycle_levels(&at, target - cycle).await?.0;
            unbonding.push(UnbondingEntry {
                validator: reqs
                    .delegate
                    .clone()
                    .or(acct.delegate.clone())
                    .unwrap_or_default(),
                amount: Amount::from_base(*amount),
                completes_at: head
                    .time
                    .plus_secs((first - head.level).max(0) * k.block_secs),
            });
        }
        let liquid_delegation = self.s.mode == Mode::Delegation;
        let mut alerts = Vec::new();
        if let Some(expected) = self.s.expected_payout_cycles {
            let mut last = lock(&self.last_payout_cycle);
            let since = *last.get_or_insert(cycle);
            if acct.delegate.is_some() && cycle - since > expected {
                alerts.push(format!(
                    "no delegation payout from {:?} for {} cycles (expected every {expected})",
                    self.s.payout_addresses,
                    cycle - since
                ));
            }
        }
        let delegations = acct
            .delegate
            .iter()
            .map(|d| Delegation {
                validator: d.clone(),
                active: Amount::from_base(if liquid_delegation { balance } else { staked }),
                activating: Amount::ZERO,
                impaired: false,
                commission: None,
            })
            .collect();
        let losses = if req.observe {
            std::mem::take(&mut lock(&self.losses).0)
        } else {
            Vec::new()
        };
        // The unstake delay in seconds: its cycles at the current cycle length.
        let delay_cycles = k.unstake_delay + 1;
        Ok(PoolStateResponse {
            chain: ChainId::Tezos,
            as_of: head.time,
            liquid: Amount::from_base(balance),
            delegations,
            unbonding,
            withdrawable: Amount::from_base(reqs.finalizable),
            claimable_rewards: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: Amount::from_base(1),
                max_unbonding_entries: None,
                unbonding_delay_secs: u64::try_from(
                    delay_cycles * k.blocks_per_cycle * k.block_secs,
                )
                .unwrap_or(0),
                delegation_keeps_funds_liquid: liquid_delegation,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses,
            alerts,
        })
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Scanned to the block the observing pool read was taken at.
        let tip = self.head().await?.level;
        let target = lock(&self.observed_level).map_or(tip, |o| o.min(tip));
        let from = match req.cursor.as_deref() {
            None => {
                return Ok(FlowsResponse {
                    flows: Vec::new(),
                    next_cursor: Some(target.to_string()),
                    complete: true,
                });
            }
            Some(c) => {
                c.parse::<i64>()
                    .map_err(|_| AdapterError::Config(format!("tezos flow cursor {c:?}")))?
                    + 1
            }
        };
        let to = target.min(from + self.s.max_scan - 1);
        let me = self.address();
        let mut flows = Vec::new();
        let mut done = to;
        for level in from..=to {
            let found = async {
                let ops = self.scan_ops(level).await?;
                let f = rpc::block_flows(&ops, &me, &self.s.payout_addresses);
                let time = if f.is_empty() {
                    None
                } else {
                    Some(self.header(&level.to_string()).await?.time)
                };
                Ok::<_, AdapterError>((f, time))
            };
            match found.await {
                Ok((f, Some(at))) => {
                    let mut seen = lock(&self.seen_ops);
                    for x in f {
                        if x.kind == FlowKind::Fee {
                            seen.insert(x.op.clone(), level);
                        }
                        flows.push(PoolFlow {
                            key: x.key,
                            kind: x.kind,
                            amount: Amount::from_base(x.amount),
                            tx_id: x.op,
                            counterparty: x.counterparty,
                            at,
                        });
                    }
                }
                Ok(_) => {}
                Err(e) if level == from => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, through = level - 1, "tezos flows scan stopped early; the rest is read next time");
                    done = level - 1;
                    break;
                }
            }
        }
        Ok(FlowsResponse {
            flows,
            next_cursor: Some(done.max(from - 1).to_string()),
            complete: done >= target,
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let head = self.head().await?;
        let final_level = (head.level - FINALITY).max(1);
        let floor = self.s.start_level.unwrap_or(1);
        let from = match (&req.cursor, self.s.start_level) {
            (Some(c), _) => {
                c.parse::<i64>()
                    .map_err(|_| inv(format!("bad cursor {c}")))?
                    + 1
            }
            (None, Some(start)) => start,
            // No start level: the account's history before the first scan
            // is not read; the baseline is the final block now.
            (None, None) => {
                return Ok(RewardsResponse {
                    rewards: Vec::new(),
                    next_cursor: Some(final_level.to_string()),
                    foreign: Vec::new(),
                });
            }
        };
        let mut to = final_level;
        if !self.s.payout_addresses.is_empty() {
            to = to.min(from + self.s.max_scan - 1);
        }
        if to < from {
            return Ok(RewardsResponse {
                rewards: Vec::new(),
                next_cursor: Some((from - 1).to_string()),
                foreign: Vec::new(),
            });
        }
        // (level, reward): anything past a failure is dropped and asked
        // again next time, so the cursor never passes what was not read.
        let mut found: Vec<(i64, ObservedReward)> = Vec::new();
        let mut done = to;
        let mut failure = None;
        if !self.s.payout_addresses.is_empty() {
            for level in from..=to {
                match self.payouts_in(level).await {
                    Ok(r) => found.extend(r.into_iter().map(|x| (level, x))),
                    Err(e) => {
                        done = level - 1;
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        let mut losses = Vec::new();
        if self.s.mode == Mode::Staking {
            let mut level = from;
            let mut windows = 0;
            while level <= done {
                let step = async {
                    let (first, last) = self.cycle_levels(&level.to_string(), 0).await?;
                    if last > done {
                        return Ok(None);
                    }
                    let b0 = (first - 1).max(floor).max(1);
                    Ok::<_, AdapterError>(Some((last, self.staking_window(b0, last).await?)))
                };
                match step.await {
                    Ok(None) => break,
                    Ok(Some((last, w))) => {
                        match w {
                            Window::Reward(r) => found.push((last, r)),
                            Window::Loss(c, l) => losses.push((c, l)),
                            Window::Nothing => {}
                        }
                        level = last + 1;
                        windows += 1;
                        if windows == MAX_WINDOWS {
                            done = last;
                        }
                    }
                    Err(e) => {
                        done = level - 1;
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            if done < from {
                return Err(e);
            }
            tracing::warn!(error = %e, through = done, "tezos rewards scan stopped early; the rest is read next time");
        }
        found.retain(|(l, _)| *l <= done);
        let mut pending = lock(&self.losses);
        for (c, l) in losses {
            if pending.1.insert(c) {
                pending.0.push(l);
            }
        }
        drop(pending);
        Ok(RewardsResponse {
            rewards: found.into_iter().map(|(_, r)| r).collect(),
            next_cursor: Some(done.to_string()),
            foreign: Vec::new(),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.check_chain().await?;
        let head = self.head().await?;
        let (acct, counter, balance) = self.account().await?;
        let kinds = kinds_for(&req.kind, self.s.mode, &acct, &self.signer.public_key())
            .map_err(|e| inv(e.to_string()))?;
        let mut spend = 0u128;
        for k in &kinds {
            match k {
                Kind::Delegation { delegate: Some(d) } => self.check_baker(d, 0).await?,
                Kind::StakingCall {
                    amount,
                    entrypoint: forge::Entrypoint::Stake,
                } => {
                    let baker = kinds
                        .iter()
                        .find_map(|k| match k {
                            Kind::Delegation { delegate: Some(d) } => Some(d.clone()),
                            _ => None,
                        })
                        .or(acct.delegate.clone())
                        .ok_or_else(|| inv("staking needs a delegate"))?;
                    self.check_baker(&baker, *amount).await?;
                    spend += amount;
                }
                _ => {}
            }
        }
        let mut contents: Vec<Content> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Content {
                source: self.address(),
                fee: 0,
                counter: counter + 1 + i as u128,
                gas_limit: 10_000,
                storage_limit: 0,
                kind,
            })
            .collect();
        // Simulate for gas; refuse what the chain would refuse.
        let sim = self
            .req(
                "/chains/main/blocks/head/helpers/scripts/simulate_operation",
                Some(json!({"operation": {"branch": head.hash, "contents": contents.iter().map(|c| self.content_json(c)).collect::<Vec<_>>(),
                    "signature": forge::b58(forge::prefix::EDSIG, &[0u8; 64])},
                    "chain_id": self.s.chain_id})),
            )
            .await?
            .unwrap_or(Value::Null);
        for (c, r) in contents
            .iter_mut()
            .zip(sim["contents"].as_array().cloned().unwrap_or_default())
        {
            let res = &r["metadata"]["operation_result"];
            if res["status"] != "applied" {
                return Err(inv(format!("the chain would refuse it: {}", res["status"])));
            }
            let milligas = num(&res["consumed_milligas"]).unwrap_or(1_000_000);
            c.gas_limit = milligas.div_ceil(1000) + 100;
        }
        // Minimal fee: 100 mutez + 1 per byte + 0.1 per gas unit, per operation.
        let size = forge::forge(&head.hash, &contents)
            .map_err(|e| inv(e.to_string()))?
            .len() as u128
            + 64;
        let per_op_bytes = size.div_ceil(contents.len() as u128);
        for c in &mut contents {
            c.fee = 100 + per_op_bytes + c.gas_limit.div_ceil(10) + 100;
        }
        let fees: u128 = contents.iter().map(|c| c.fee).sum();
        if spend + fees > balance {
            return Err(inv(format!(
                "needs {} mutez, more than the spendable balance {balance}",
                spend + fees
            )));
        }
        let signed = crate::request::sign_contents(self.signer.as_ref(), &head.hash, &contents)
            .map_err(|e| inv(e.to_string()))?;
        let hash = forge::operation_hash(&signed);
        tracing::info!(op = %req.operation_id, kind = req.kind.name(), counter = counter + 1, fees, hash = %hash, "signed");
        Ok(SignedOperation {
            bytes: signed,
            tx_id: hash,
            valid_until: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let v = self
            .req(
                "/injection/operation?chain=main",
                Some(json!(hex::encode(&req.signed.bytes))),
            )
            .await?
            .unwrap_or(Value::Null);
        let hash = v.as_str().unwrap_or(&req.signed.tx_id).to_owned();
        Ok(BroadcastResponse { tx_id: hash })
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let head = self.head().await?;
        let k = self.constants().await?;
        let bytes = req
            .signed_bytes
            .ok_or_else(|| inv("Tezos lookups need the signed bytes (for the branch)"))?;
        let branch = forge::b58(
            forge::prefix::BLOCK,
            bytes
                .get(..32)
                .ok_or_else(|| inv("signed bytes too short"))?,
        );
        let branch_level = match self
            .req(&format!("/chains/main/blocks/{branch}/header"), None)
            .await?
        {
            Some(h) => h["level"].as_i64().unwrap_or(0),
            None => {
                return Ok(LookupResponse {
                    status: TxStatus::NotFound,
                    head_time: head.time,
                });
            }
        };
        let last = head.level.min(branch_level + k.ttl);
        for level in (branch_level + 1)..=last {
            for op in self.scan_ops(level).await? {
                if op["hash"].as_str() == Some(req.tx_id.as_str()) {
                    let failed = rpc::failure(&op);
                    let status = match failed {
                        None => TxStatus::Confirmed {
                            height: u64::try_from(level).unwrap_or(0),
                        },
                        Some(reason) => TxStatus::Failed { reason },
                    };
                    return Ok(LookupResponse {
                        status,
                        head_time: head.time,
                    });
                }
            }
        }
        let status = if head.level > branch_level + k.ttl {
            TxStatus::Expired
        } else {
            TxStatus::NotFound
        };
        Ok(LookupResponse {
            status,
            head_time: head.time,
        })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        // Asked about the fee flows the scan just returned: their blocks
        // are known. An operation the scan did not meet cannot be placed
        // without scanning blocks (octez has no index by hash).
        let Some(level) = lock(&self.seen_ops).get(&req.tx_id).copied() else {
            return Ok(IdentifyResponse::unsupported());
        };
        let ops = self.scan_ops(level).await?;
        let Some(op) = ops.iter().find(|o| o["hash"] == req.tx_id.as_str()) else {
            return Ok(IdentifyResponse::not_ours());
        };
        let me = self.address();
        let delegate = self
            .req(&self.contract_at(&level.to_string(), "delegate"), None)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned));
        Ok(match rpc::found_operation(op, &me, delegate.as_deref()) {
            Ok((kind, None)) => IdentifyResponse::operation(
                kind,
                TxStatus::Confirmed {
                    height: u64::try_from(level).unwrap_or(0),
                },
            ),
            Ok((kind, Some(reason))) => {
                IdentifyResponse::operation(kind, TxStatus::Failed { reason })
            }
            Err(_) => IdentifyResponse::not_ours(),
        })
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let endpoints = self
            .rpc
            .health(|ep| async move {
                let h = Self::req_at(&ep, "/chains/main/blocks/head/header", None)
                    .await?
                    .ok_or_else(|| ep.bad_response("head header", &"404"))?;
                Ok(RpcHead {
                    height: h["level"].as_u64(),
                    time_unix: h["timestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok())
                        .map(|t| t.unix()),
                })
            })
            .await;
        Ok(HealthResponse { endpoints })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        Vec::new()
    }
}
