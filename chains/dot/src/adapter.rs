//! [`DotAdapter`]: the Polkadot `ChainAdapter` over the node's JSON-RPC.
//!
//! - Metadata comes from the node (`Metadata_metadata_at_version(15)`), is
//!   re-read when the runtime's spec version changes, and is checked for
//!   every call, storage entry and constant the adapter uses
//!   ([`crate::state::check_metadata`]): a runtime without them is a clear
//!   configuration error, never a mis-encoded transaction.
//! - Custody: a stash (sr25519) that signs everything, or a staking proxy
//!   that signs `Proxy.proxy(stash, ..)` for every stash call; payouts are
//!   permissionless and the signer sends them directly.
//! - Stake is one bond nominating the configured validators
//!   (`[[chains.validators]]`). `Delegate` bonds (with the nominations in the
//!   same `batch_all`), rebonds unlocking funds first, then bonds extra;
//!   `Undelegate` unbonds; `WithdrawUnbonded` passes the stash's slashing
//!   spans; `ClaimRewards` batches `payout_stakers` for unclaimed eras.
//!   Housekeeping ([`ChainAdapter::maintenance`]) asks for payouts, the
//!   nominations and the payee when they differ from config.
//! - Pool state: the ledger (active, unlocking chunks with their era), the
//!   free balance, and per target the stake the chain exposed to it in the
//!   active era; bonded stake not exposed to any target is `activating`.
//! - Expiry is proven by the runtime: a transaction whose nonce is unused
//!   at the finalized head is asked to
//!   `TaggedTransactionQueue_validate_transaction` at the best block;
//!   `BadProof` (its mortal era's birth block is no longer the one the era
//!   points at) and `AncientBirthBlock` mean it can never be included, while
//!   `Stale` there means a block not yet final holds its nonce: `Pending`
//!   until finality decides. A nonce used at the finalized head is looked up
//!   in the finalized blocks: found is confirmed (or failed), not found is
//!   expired.
//! - Rewards with evidence, scanning finalized blocks from the cursor:
//!   `Staking.Rewarded` to our stash after the `PayoutStarted` that names
//!   the era and validator, attributed to the era's time range;
//!   `Staking.Slashed` of our stash becomes a loss.

use crate::rpc::{Rpc, block_number, hex_bytes};
use crate::state::{
    self, Event, Runtime, Shape, V, Validity, account, decode_storage, events, items, num, num_at,
    some, storage_key, variant,
};
use crate::tx::{self, Call, Payee, TxParams};
use async_trait::async_trait;
use serde_json::json;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowKind, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse,
    IdentifyRequest, IdentifyResponse, LookupRequest, LookupResponse, LossEvent, Maintenance,
    ObservedReward, OperationKind, PoolFlow, PoolStateRequest, PoolStateResponse, RewardKind,
    RewardsRequest, RewardsResponse, SignedOperation, TxStatus, UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Period, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subxt::ext::codec::{Decode, Encode};
use subxt::ext::scale_value::At;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;

/// Settings from `[chains.network]` (type = "polkadot") and the validators.
#[derive(Debug, Clone)]
pub struct DotSettings {
    /// RPC endpoints (HTTP), in order of preference.
    pub endpoints: Vec<String>,
    /// 0x-hex genesis hash every endpoint must report.
    pub genesis_hash: String,
    /// Nomination targets as configured (SS58 text, account).
    pub targets: Vec<(String, AccountId32)>,
    /// The stash, when the key is a staking proxy; `None`: the key is the stash.
    pub stash: Option<AccountId32>,
    /// Where rewards go.
    pub payee: Payee,
    /// Planck the stash always keeps free for fees.
    pub fee_reserve: u128,
    /// Mortal era length of our transactions, in blocks (a power of two).
    pub era_period: u64,
    /// First block the reward scan reads when it has no cursor (`None`: the
    /// finalized head at the first call).
    pub rewards_from_block: Option<u64>,
    /// Most blocks read per rewards call and per lookup.
    pub max_scan_blocks: u64,
    /// Most `payout_stakers` calls batched in one transaction.
    pub max_payouts_per_tx: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// What the last pool reading saw, for [`ChainAdapter::maintenance`].
#[derive(Debug, Clone, Default)]
struct Observed {
    bonded: bool,
    nominations: Vec<[u8; 32]>,
    payee_matches: bool,
    unclaimed: Vec<(u32, [u8; 32], u32)>,
    history_depth: u32,
}

/// The adapter.
pub struct DotAdapter {
    s: DotSettings,
    key: Arc<Keypair>,
    rpc: Rpc,
    runtime: Mutex<Option<Arc<Runtime>>>,
    observed: Mutex<Observed>,
    /// Block of the engine's last observing pool read: flows are scanned up
    /// to it, so the books compare holdings and flows at the same height.
    observed_height: Mutex<Option<u64>>,
    /// Extrinsics the flows scan met paying a fee of the stash: hash ->
    /// (block, index), for [`ChainAdapter::identify`].
    seen_fees: Mutex<BTreeMap<String, (u64, u32)>>,
    /// (era, validator) pairs known to be claimed or not ours to claim.
    payout_done: Mutex<BTreeSet<(u32, [u8; 32])>>,
    losses: Mutex<Vec<LossEvent>>,
    /// Nonces this process signed (see [`DotAdapter::sign_call`]).
    signed_nonces: Mutex<BTreeSet<u64>>,
}

impl std::fmt::Debug for DotAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotAdapter")
            .field("signer", &self.signer().to_string())
            .field("stash", &self.stash().to_string())
            .field("genesis_hash", &self.s.genesis_hash)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, AdapterError> {
    m.lock()
        .map_err(|_| AdapterError::Config("poisoned lock".into()))
}

fn inv(m: impl Into<String>) -> AdapterError {
    AdapterError::InvalidRequest(m.into())
}

fn st(e: state::StateError) -> AdapterError {
    match e {
        state::StateError::Missing(m) => AdapterError::Config(format!("polkadot: {m}")),
        other @ state::StateError::Decode { .. } => bad_response(&other.to_string()),
    }
}

/// How much of the ledger's `total` still sits in the account's `free`
/// balance: all of it under a relay chain's lock (the lock only forbids
/// spending it), none under staking-async, which puts the bond on hold
/// (pallet-balances moves held funds out of `free`).
fn bond_in_free(shape: Shape, total: u128) -> u128 {
    match shape {
        Shape::Relay => total,
        Shape::AssetHub => 0,
    }
}

/// What `stash` has at stake in an exposure (`others: [{who, value}]`).
fn stake_in(exposure: Option<&V>, stash: &[u8; 32]) -> u128 {
    exposure
        .and_then(|x| x.at("others"))
        .map(items)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.at("who").and_then(account).as_ref() == Some(stash))
        .filter_map(|o| num_at(o, "value"))
        .sum()
}

/// The value inside a one-field tuple struct (a SCALE newtype), or `v`.
fn newtype_inner(v: &V) -> &V {
    match &v.value {
        subxt::ext::scale_value::ValueDef::Composite(
            subxt::ext::scale_value::Composite::Unnamed(f),
        ) if f.len() == 1 => &f[0],
        _ => v,
    }
}

fn amount(v: u128) -> Amount {
    Amount::from_base(v)
}

/// The staking ledger of the stash.
#[derive(Debug, Clone, Default)]
struct Ledger {
    active: u128,
    total: u128,
    /// (value, era it becomes withdrawable).
    unlocking: Vec<(u128, u32)>,
}

/// Era facts.
#[derive(Debug, Clone, Copy)]
struct Eras {
    current: u32,
    active: u32,
    active_start_ms: Option<u64>,
    era_ms: u64,
    bonding_duration: u32,
    history_depth: u32,
}

struct Head {
    number: u64,
    hash: String,
    time: Timestamp,
}

impl DotAdapter {
    /// An adapter signing with `key` (the stash, or its staking proxy when
    /// `s.stash` is set).
    pub fn new(s: DotSettings, key: Arc<Keypair>) -> Result<DotAdapter, AdapterError> {
        if s.targets.is_empty() {
            return Err(AdapterError::Config(
                "polkadot: no nomination targets in [[chains.validators]]".into(),
            ));
        }
        if !(4..=65_536).contains(&s.era_period) || !s.era_period.is_power_of_two() {
            return Err(AdapterError::Config(format!(
                "polkadot: era_period_blocks {} is not a power of two from 4 to 65536",
                s.era_period
            )));
        }
        let rpc = Rpc::new(
            s.endpoints.clone(),
            s.genesis_hash.clone(),
            s.request_timeout,
        )?;
        Ok(DotAdapter {
            s,
            key,
            rpc,
            runtime: Mutex::new(None),
            observed: Mutex::new(Observed::default()),
            observed_height: Mutex::new(None),
            seen_fees: Mutex::new(BTreeMap::new()),
            payout_done: Mutex::new(BTreeSet::new()),
            signed_nonces: Mutex::new(BTreeSet::new()),
            losses: Mutex::new(Vec::new()),
        })
    }

    /// The signing account.
    pub fn signer(&self) -> AccountId32 {
        AccountId32(self.key.public_key().0)
    }

    /// The stash.
    pub fn stash(&self) -> AccountId32 {
        self.s.stash.unwrap_or_else(|| self.signer())
    }

    /// The RPC client (tests use it to read what the adapter reads).
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// The runtime at the node's head: metadata re-read when the spec
    /// version changes.
    pub async fn runtime(&self) -> Result<Arc<Runtime>, AdapterError> {
        let v = self.rpc.call("state_getRuntimeVersion", json!([])).await?;
        let spec = v["specVersion"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad_response("runtime version without specVersion"))?;
        let txv = v["transactionVersion"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad_response("runtime version without transactionVersion"))?;
        if let Some(r) = lock(&self.runtime)?.as_ref()
            && r.spec_version == spec
            && r.transaction_version == txv
        {
            return Ok(r.clone());
        }
        let raw = self
            .rpc
            .state_call("Metadata_metadata_at_version", &15u32.encode(), None)
            .await?;
        let bytes = match Option::<Vec<u8>>::decode(&mut &raw[..]) {
            Ok(Some(b)) => b,
            _ => {
                let h = self.rpc.call("state_getMetadata", json!([])).await?;
                hex_bytes(h.as_str().unwrap_or(""))?
            }
        };
        let meta = tx::metadata(&bytes).map_err(|e| AdapterError::Rejected(e.to_string()))?;
        let shape = state::check_metadata(&meta, self.s.stash.is_some()).map_err(st)?;
        let r = Arc::new(Runtime {
            spec_version: spec,
            transaction_version: txv,
            meta,
            shape,
        });
        *lock(&self.runtime)? = Some(r.clone());
        tracing::info!(spec_version = spec, shape = ?shape, "polkadot runtime metadata loaded");
        Ok(r)
    }

    async fn read(
        &self,
        rt: &Runtime,
        at: &str,
        pallet: &str,
        entry: &str,
        keys: &[&[u8]],
    ) -> Result<Option<V>, AdapterError> {
        let k = storage_key(&rt.meta, pallet, entry, keys).map_err(st)?;
        let raw = self.rpc.storage(&k, Some(at)).await?;
        decode_storage(&rt.meta, pallet, entry, raw.as_deref()).map_err(st)
    }

    fn constant(&self, rt: &Runtime, pallet: &str, name: &str) -> Result<u128, AdapterError> {
        state::constant_u128(&rt.meta, pallet, name).map_err(st)
    }

    async fn finalized_head(&self, rt: &Runtime) -> Result<Head, AdapterError> {
        let hash = self
            .rpc
            .call("chain_getFinalizedHead", json!([]))
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned();
        self.head_at(rt, hash).await
    }

    async fn head_at(&self, rt: &Runtime, hash: String) -> Result<Head, AdapterError> {
        let h = self.rpc.call("chain_getHeader", json!([hash])).await?;
        let number =
            block_number(&h["number"]).ok_or_else(|| bad_response("header without a number"))?;
        let now = self
            .read(rt, &hash, "Timestamp", "Now", &[])
            .await?
            .as_ref()
            .and_then(num)
            .unwrap_or(0);
        let time = Timestamp::from_unix(i64::try_from(now / 1000).unwrap_or(i64::MAX));
        Ok(Head { number, hash, time })
    }

    async fn block_hash(&self, n: u64) -> Result<Option<String>, AdapterError> {
        Ok(self
            .rpc
            .call("chain_getBlockHash", json!([n]))
            .await?
            .as_str()
            .map(str::to_owned))
    }

    async fn ledger(&self, rt: &Runtime, at: &str) -> Result<Option<Ledger>, AdapterError> {
        let stash = self.stash().0;
        let Some(ctrl) = self
            .read(rt, at, "Staking", "Bonded", &[&stash])
            .await?
            .as_ref()
            .and_then(account)
        else {
            return Ok(None);
        };
        let Some(l) = self.read(rt, at, "Staking", "Ledger", &[&ctrl]).await? else {
            return Ok(None);
        };
        let unlocking = l
            .at("unlocking")
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| Some((num_at(c, "value")?, u32::try_from(num_at(c, "era")?).ok()?)))
            .collect();
        Ok(Some(Ledger {
            active: num_at(&l, "active").unwrap_or(0),
            total: num_at(&l, "total").unwrap_or(0),
            unlocking,
        }))
    }

    async fn eras(&self, rt: &Runtime, at: &str) -> Result<Eras, AdapterError> {
        let current = self
            .read(rt, at, "Staking", "CurrentEra", &[])
            .await?
            .as_ref()
            .and_then(num)
            .unwrap_or(0);
        let active = self.read(rt, at, "Staking", "ActiveEra", &[]).await?;
        let (active_index, start) = match active.as_ref() {
            Some(a) => (
                num_at(a, "index").unwrap_or(0),
                a.at("start").and_then(some).and_then(num),
            ),
            None => (0, None),
        };
        let bonding = self.constant(rt, "Staking", "BondingDuration")?;
        let (era_ms, bonding) = match rt.shape {
            Shape::Relay => {
                let sessions = self.constant(rt, "Staking", "SessionsPerEra")?;
                let epoch = self.constant(rt, "Babe", "EpochDuration")?;
                let block_ms = self.constant(rt, "Babe", "ExpectedBlockTime")?;
                (
                    sessions.saturating_mul(epoch).saturating_mul(block_ms),
                    bonding,
                )
            }
            Shape::AssetHub => {
                // The era's nominal length; the relay chain's session
                // reports end it. A nominator unbonds in
                // NominatorFastUnbondDuration eras while the chain says
                // nominators are not slashable (staking-async).
                let era_ms = self.constant(rt, "Staking", "MaxEraDuration")?;
                let slashable = self
                    .read(rt, at, "Staking", "AreNominatorsSlashable", &[])
                    .await
                    .ok()
                    .flatten()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true);
                let fast = state::constant_u128(&rt.meta, "Staking", "NominatorFastUnbondDuration")
                    .ok()
                    .filter(|_| !slashable);
                (era_ms, fast.map_or(bonding, |f| f.min(bonding)))
            }
        };
        Ok(Eras {
            current: u32::try_from(current).unwrap_or(u32::MAX),
            active: u32::try_from(active_index).unwrap_or(u32::MAX),
            active_start_ms: start.and_then(|s| u64::try_from(s).ok()),
            era_ms: u64::try_from(era_ms.max(1)).unwrap_or(u64::MAX),
            bonding_duration: u32::try_from(bonding).unwrap_or(u32::MAX),
            history_depth: u32::try_from(self.constant(rt, "Staking", "HistoryDepth")?)
                .unwrap_or(u32::MAX),
        })
    }

    /// Start of era `e` in ms, from the active era's start and the era length.
    fn era_start_ms(e: &Eras, era: u32, fallback_ms: u64) -> u64 {
        let base = e.active_start_ms.unwrap_or(fallback_ms);
        let diff = i64::from(era) - i64::from(e.active);
        let ms = i128::from(base) + i128::from(diff) * i128::from(e.era_ms);
        u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
    }

    async fn balances(&self, rt: &Runtime, at: &str) -> Result<(u128, u128), AdapterError> {
        let stash = self.stash().0;
        let a = self.read(rt, at, "System", "Account", &[&stash]).await?;
        let data = a.as_ref().and_then(|a| a.at("data"));
        let free = data.and_then(|d| num_at(d, "free")).unwrap_or(0);
        let frozen = data
            .and_then(|d| num_at(d, "frozen").or_else(|| num_at(d, "misc_frozen")))
            .unwrap_or(0);
        Ok((free, frozen))
    }

    /// The stash's `reserved` balance (holds included: under staking-async
    /// the bond is one).
    async fn reserved_balance(&self, rt: &Runtime, at: &str) -> Result<u128, AdapterError> {
        let stash = self.stash().0;
        let a = self.read(rt, at, "System", "Account", &[&stash]).await?;
        Ok(a.as_ref()
            .and_then(|a| a.at("data"))
            .and_then(|d| num_at(d, "reserved"))
            .unwrap_or(0))
    }

    async fn nominations(&self, rt: &Runtime, at: &str) -> Result<Vec<[u8; 32]>, AdapterError> {
        let stash = self.stash().0;
        Ok(self
            .read(rt, at, "Staking", "Nominators", &[&stash])
            .await?
            .as_ref()
            .and_then(|n| n.at("targets"))
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(account)
            .collect())
    }

    fn target_ids(&self) -> Vec<[u8; 32]> {
        self.s.targets.iter().map(|(_, a)| a.0).collect()
    }

    /// Whether the chain's nominations are the configured targets, in any
    /// order: staking-async sorts and dedups the targets it stores, the
    /// relay chain's pallet keeps them as sent.
    fn nominates_targets(&self, on_chain: &[[u8; 32]]) -> bool {
        let mut a = on_chain.to_vec();
        let mut b = self.target_ids();
        a.sort_unstable();
        b.sort_unstable();
        b.dedup();
        a == b
    }

    fn label(&self, v: &[u8; 32]) -> String {
        self.s
            .targets
            .iter()
            .find(|(_, a)| &a.0 == v)
            .map_or_else(|| AccountId32(*v).to_string(), |(t, _)| t.clone())
    }

    fn target_by_label(&self, label: &str) -> Option<[u8; 32]> {
        self.s
            .targets
            .iter()
            .find(|(t, _)| t == label)
            .map(|(_, a)| a.0)
            .or_else(|| label.parse::<AccountId32>().ok().map(|a| a.0))
    }

    async fn payee_matches(&self, rt: &Runtime, at: &str) -> Result<bool, AdapterError> {
        let stash = self.stash().0;
        let p = self.read(rt, at, "Staking", "Payee", &[&stash]).await?;
        let Some((name, fields)) = p.as_ref().and_then(variant) else {
            return Ok(false);
        };
        Ok(match (&self.s.payee, name) {
            (Payee::Staked, "Staked") | (Payee::Stash, "Stash") => true,
            (Payee::Account(a), "Account") => fields.values().next().and_then(account) == Some(a.0),
            _ => false,
        })
    }

    /// On staking-async: the page of `validator`'s exposure in `era` that
    /// holds our stash, and our stake in it (`ErasStakersOverview` gives the
    /// page count, `ErasStakersPaged` the pages). `None`: not exposed.
    async fn our_page(
        &self,
        rt: &Runtime,
        at: &str,
        era: u32,
        validator: &[u8; 32],
    ) -> Result<Option<(u32, u128)>, AdapterError> {
        let stash = self.stash().0;
        let era_key = era.to_le_bytes();
        let Some(overview) = self
            .read(
                rt,
                at,
                "Staking",
                "ErasStakersOverview",
                &[&era_key, validator],
            )
            .await?
        else {
            return Ok(None);
        };
        let pages = u32::try_from(num_at(&overview, "page_count").unwrap_or(0)).unwrap_or(0);
        for page in 0..pages {
            let p = self
                .read(
                    rt,
                    at,
                    "Staking",
                    "ErasStakersPaged",
                    &[&era_key, validator, &page.to_le_bytes()],
                )
                .await?;
            // `BoundedExposurePage(ExposurePage { page_total, others })`: a
            // newtype around the page.
            let ours = stake_in(p.as_ref().map(newtype_inner), &stash);
            if ours > 0 {
                return Ok(Some((page, ours)));
            }
        }
        Ok(None)
    }

    /// (era, validator, page) payouts our stash is owed and nobody has
    /// claimed, oldest first, over the eras the chain still pays (the page
    /// is 0 on a relay chain's unpaged staking).
    async fn unclaimed(
        &self,
        rt: &Runtime,
        at: &str,
        e: &Eras,
        validators: &[[u8; 32]],
    ) -> Result<Vec<(u32, [u8; 32], u32)>, AdapterError> {
        let stash = self.stash().0;
        let first = e.active.saturating_sub(e.history_depth);
        let mut out = Vec::new();
        for era in first..e.active {
            let era_key = era.to_le_bytes();
            if self
                .read(rt, at, "Staking", "ErasValidatorReward", &[&era_key])
                .await?
                .is_none()
            {
                continue;
            }
            for v in validators {
                if lock(&self.payout_done)?.contains(&(era, *v)) {
                    continue;
                }
                if rt.shape == Shape::AssetHub {
                    let page = self.our_page(rt, at, era, v).await?;
                    let claimed = match page {
                        Some((page, _)) => self
                            .read(rt, at, "Staking", "ClaimedRewards", &[&era_key, v])
                            .await?
                            .as_ref()
                            .map(items)
                            .unwrap_or_default()
                            .into_iter()
                            .any(|x| num(x) == Some(u128::from(page))),
                        None => true,
                    };
                    match page {
                        Some((page, _)) if !claimed => out.push((era, *v, page)),
                        _ => {
                            lock(&self.payout_done)?.insert((era, *v));
                        }
                    }
                    continue;
                }
                let exposure = self
                    .read(rt, at, "Staking", "ErasStakersClipped", &[&era_key, v])
                    .await?;
                let ours = stake_in(exposure.as_ref(), &stash) > 0;
                let claimed = if ours {
                    let ctrl = self
                        .read(rt, at, "Staking", "Bonded", &[v])
                        .await?
                        .as_ref()
                        .and_then(account);
                    match ctrl {
                        Some(c) => self
                            .read(rt, at, "Staking", "Ledger", &[&c])
                            .await?
                            .as_ref()
                            .and_then(|l| {
                                l.at("claimed_rewards")
                                    .or_else(|| l.at("legacy_claimed_rewards"))
                            })
                            .map(items)
                            .unwrap_or_default()
                            .into_iter()
                            .any(|x| num(x) == Some(u128::from(era))),
                        // An unbonded validator cannot be paid out.
                        None => true,
                    }
                } else {
                    false
                };
                if ours && !claimed {
                    out.push((era, *v, 0));
                } else {
                    lock(&self.payout_done)?.insert((era, *v));
                }
            }
        }
        Ok(out)
    }

    async fn quota(&self, at: &str, balance: u128) -> Result<u32, AdapterError> {
        match self
            .rpc
            .state_call("StakingApi_nominations_quota", &balance.encode(), Some(at))
            .await
        {
            Ok(b) => u32::decode(&mut &b[..])
                .map_err(|e| AdapterError::Rejected(format!("nominations quota: {e}"))),
            // Runtimes without the API: Polkadot's fixed 16.
            Err(AdapterError::Rejected(_)) => Ok(16),
            Err(e) => Err(e),
        }
    }

    fn wrap(&self, mut calls: Vec<Call>) -> Result<Call, AdapterError> {
        let call = match calls.len() {
            0 => return Err(inv("nothing to do")),
            1 => calls.remove(0),
            _ => Call::BatchAll(calls),
        };
        Ok(match &self.s.stash {
            Some(stash) => Call::Proxy {
                real: *stash,
                call: Box::new(call),
            },
            None => call,
        })
    }

    fn nominate_call(&self) -> Call {
        Call::Nominate {
            targets: self.s.targets.iter().map(|(_, a)| *a).collect(),
        }
    }

    async fn calls_for(
        &self,
        rt: &Runtime,
        head: &Head,
        kind: &OperationKind,
    ) -> Result<Call, AdapterError> {
        let at = head.hash.as_str();
        let min_bond = self
            .read(rt, at, "Staking", "MinNominatorBond", &[])
            .await?
            .as_ref()
            .and_then(num)
            .unwrap_or(0);
        let ed = self.constant(rt, "Balances", "ExistentialDeposit")?;
        let ledger = self.ledger(rt, at).await?;
        let eras = self.eras(rt, at).await?;
        let fmt = |v: u128| format!("{v} planck");
        match kind {
            OperationKind::Delegate { validator, amount } => {
                if !self.s.targets.iter().any(|(t, _)| t == validator) {
                    return Err(inv(format!(
                        "{validator} is not a configured nomination target"
                    )));
                }
                let amount = amount.base();
                if amount == 0 {
                    return Err(inv("delegate amount is zero"));
                }
                let (free, frozen) = self.balances(rt, at).await?;
                let quota = self.quota(at, free).await?;
                if self.s.targets.len() > quota as usize {
                    return Err(inv(format!(
                        "{} nomination targets configured; the chain allows at most {quota}",
                        self.s.targets.len()
                    )));
                }
                let nominated = self.nominations(rt, at).await?;
                let renominate = !self.nominates_targets(&nominated);
                match ledger {
                    None => {
                        if amount < min_bond {
                            return Err(inv(format!(
                                "a bond of {} is below the chain's minimum nominator bond of {}",
                                fmt(amount),
                                fmt(min_bond)
                            )));
                        }
                        let spendable = free
                            .saturating_sub(frozen.max(ed))
                            .saturating_sub(self.s.fee_reserve);
                        if amount > spendable {
                            return Err(inv(format!(
                                "bond of {} is more than the {} the stash can spend after its fee reserve",
                                fmt(amount),
                                fmt(spendable)
                            )));
                        }
                        self.wrap(vec![
                            Call::Bond {
                                value: amount,
                                payee: self.s.payee.clone(),
                            },
                            self.nominate_call(),
                        ])
                    }
                    Some(l) => {
                        let unlocking: u128 = l.unlocking.iter().map(|(v, _)| v).sum();
                        let rebond = amount.min(unlocking);
                        let extra = amount - rebond;
                        // bond_extra takes from what is free beyond the bond.
                        let spendable = free
                            .saturating_sub(bond_in_free(rt.shape, l.total).max(frozen).max(ed))
                            .saturating_sub(self.s.fee_reserve);
                        if extra > spendable {
                            return Err(inv(format!(
                                "bonding {} more is more than the {} the stash can spend after its fee reserve",
                                fmt(extra),
                                fmt(spendable)
                            )));
                        }
                        if l.active + amount < min_bond {
                            return Err(inv(format!(
                                "an active bond of {} would be below the chain's minimum nominator bond of {}",
                                fmt(l.active + amount),
                                fmt(min_bond)
                            )));
                        }
                        let mut calls = Vec::new();
                        if rebond > 0 {
                            calls.push(Call::Rebond { value: rebond });
                        }
                        if extra > 0 {
                            calls.push(Call::BondExtra { value: extra });
                        }
                        if renominate {
                            calls.push(self.nominate_call());
                        }
                        self.wrap(calls)
                    }
                }
            }
            OperationKind::Undelegate { amount, .. } => {
                let l = ledger.ok_or_else(|| inv("the stash is not bonded"))?;
                let amount = amount.base();
                if amount == 0 {
                    return Err(inv("unbond amount is zero"));
                }
                if amount > l.active {
                    return Err(inv(format!(
                        "cannot unbond {}: only {} is active",
                        fmt(amount),
                        fmt(l.active)
                    )));
                }
                let rest = l.active - amount;
                if rest > 0 && rest < min_bond {
                    return Err(inv(format!(
                        "unbonding {} would leave {} bonded, below the chain's minimum nominator bond of {}; unbond all or less",
                        fmt(amount),
                        fmt(rest),
                        fmt(min_bond)
                    )));
                }
                let max_chunks = self.constant(rt, "Staking", "MaxUnlockingChunks")?;
                let open = l
                    .unlocking
                    .iter()
                    .filter(|(_, era)| *era > eras.current)
                    .count();
                if open as u128 >= max_chunks {
                    return Err(inv(format!(
                        "the stash already has {open} unlocking chunks, the chain's limit"
                    )));
                }
                let mut calls = Vec::new();
                if rest == 0 {
                    calls.push(Call::Chill);
                }
                calls.push(Call::Unbond { value: amount });
                self.wrap(calls)
            }
            OperationKind::WithdrawUnbonded { .. } => {
                let l = ledger.ok_or_else(|| inv("the stash is not bonded"))?;
                let ready: u128 = l
                    .unlocking
                    .iter()
                    .filter(|(_, era)| *era <= eras.current)
                    .map(|(v, _)| v)
                    .sum();
                if ready == 0 {
                    return Err(inv("no unlocking chunk has matured"));
                }
                let stash = self.stash().0;
                // staking-async keeps no slashing spans: the argument is
                // unused there and 0 is what its weight expects.
                let spans = match rt.shape {
                    Shape::AssetHub => 0,
                    Shape::Relay => self
                        .read(rt, at, "Staking", "SlashingSpans", &[&stash])
                        .await?
                        .map_or(0, |s| {
                            1 + u32::try_from(s.at("prior").map(items).unwrap_or_default().len())
                                .unwrap_or(u32::MAX)
                        }),
                };
                self.wrap(vec![Call::WithdrawUnbonded {
                    num_slashing_spans: spans,
                }])
            }
            OperationKind::ClaimRewards { validators } => {
                let wanted: Vec<[u8; 32]> = if validators.is_empty() {
                    let mut v = self.nominations(rt, at).await?;
                    for t in self.target_ids() {
                        if !v.contains(&t) {
                            v.push(t);
                        }
                    }
                    v
                } else {
                    validators
                        .iter()
                        .map(|l| {
                            self.target_by_label(l)
                                .ok_or_else(|| inv(format!("{l} is not a validator address")))
                        })
                        .collect::<Result<_, _>>()?
                };
                let mut pending = self.unclaimed(rt, at, &eras, &wanted).await?;
                if pending.is_empty() {
                    return Err(inv("no unclaimed era payout for the stash"));
                }
                pending.truncate(self.s.max_payouts_per_tx.max(1));
                let calls: Vec<Call> = pending
                    .into_iter()
                    .map(|(era, v, page)| match rt.shape {
                        Shape::Relay => Call::PayoutStakers {
                            validator: AccountId32(v),
                            era,
                        },
                        Shape::AssetHub => Call::PayoutStakersByPage {
                            validator: AccountId32(v),
                            era,
                            page,
                        },
                    })
                    .collect();
                // Payouts are permissionless: the signer sends them itself.
                Ok(if calls.len() == 1 {
                    calls.into_iter().next().unwrap_or(Call::Chill)
                } else {
                    Call::BatchAll(calls)
                })
            }
            OperationKind::Setup { step } => match step.as_str() {
                "nominate" => {
                    if ledger.is_none() {
                        return Err(inv("the stash is not bonded"));
                    }
                    self.wrap(vec![self.nominate_call()])
                }
                "set_payee" => {
                    if ledger.is_none() {
                        return Err(inv("the stash is not bonded"));
                    }
                    self.wrap(vec![Call::SetPayee {
                        payee: self.s.payee.clone(),
                    }])
                }
                other => Err(inv(format!(
                    "unknown Polkadot set-up step {other:?} (nominate, set_payee)"
                ))),
            },
            OperationKind::Redelegate { .. } => Err(inv(
                "Polkadot stake follows the nomination set: change [[chains.validators]] and \
                 softstake re-nominates; there is no per-validator move",
            )),
        }
    }

    /// Builds and signs `call` as the signer at the finalized head, with
    /// the node's next nonce (which counts its pool).
    ///
    /// Nonces between the finalized head's and the next one belong to
    /// transactions in the pool or in blocks not yet final. If this process
    /// did not sign them (sent before a restart, before the database was
    /// restored from a backup, or by another signer), signing now would
    /// take the next nonce and send a second operation beside them: it
    /// waits (`TryLater`) until they are final, when the books and the
    /// planner see what they did.
    async fn sign_call(
        &self,
        rt: &Runtime,
        head: &Head,
        call: &Call,
    ) -> Result<tx::Signed, AdapterError> {
        let nonce = self
            .rpc
            .call(
                "system_accountNextIndex",
                json!([self.signer().to_string()]),
            )
            .await?
            .as_u64()
            .ok_or_else(|| bad_response("system_accountNextIndex: not a number"))?;
        let signer: [u8; 32] = self.signer().0;
        let at_final = self
            .read(rt, &head.hash, "System", "Account", &[&signer[..]])
            .await?
            .as_ref()
            .and_then(|a| num_at(a, "nonce"))
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let unknown = {
            let mine = lock(&self.signed_nonces)?;
            (at_final..nonce).filter(|n| !mine.contains(n)).count()
        };
        if unknown > 0 {
            return Err(AdapterError::TryLater(format!(
                "{unknown} transaction(s) from the signer wait in the node's pool or in blocks not yet final that this process did not send (before a restart or a restore, or another signer): nothing is signed until they are final"
            )));
        }
        let genesis: [u8; 32] = hex_bytes(&self.s.genesis_hash)?
            .try_into()
            .map_err(|_| AdapterError::Config("genesis_hash is not 32 bytes".into()))?;
        let era_block_hash: [u8; 32] = hex_bytes(&head.hash)?
            .try_into()
            .map_err(|_| bad_response("block hash is not 32 bytes"))?;
        let p = TxParams {
            genesis_hash: genesis,
            spec_version: rt.spec_version,
            transaction_version: rt.transaction_version,
            nonce,
            tip: 0,
            era_block: head.number,
            era_block_hash,
            era_period: self.s.era_period,
        };
        let signed = tx::sign(&rt.meta, call, &p, &self.key).map_err(|e| inv(e.to_string()))?;
        lock(&self.signed_nonces)?.insert(nonce);
        Ok(signed)
    }

    /// Signs `call` as is (tests use it to send what the adapter would refuse).
    pub async fn sign_raw(&self, call: &Call) -> Result<SignedOperation, AdapterError> {
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let s = self.sign_call(&rt, &head, call).await?;
        Ok(SignedOperation {
            bytes: s.bytes,
            tx_id: s.hash,
            valid_until: None,
        })
    }

    async fn events_at(&self, rt: &Runtime, hash: &str) -> Result<Vec<Event>, AdapterError> {
        Ok(self
            .read(rt, hash, "System", "Events", &[])
            .await?
            .as_ref()
            .map(events)
            .unwrap_or_default())
    }

    async fn block_extrinsics(&self, hash: &str) -> Result<Vec<String>, AdapterError> {
        let b = self.rpc.call("chain_getBlock", json!([hash])).await?;
        Ok(b["block"]["extrinsics"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn outcome(rt: &Runtime, evs: &[Event], index: u32) -> Result<(), String> {
        let mut ok = None;
        for e in evs.iter().filter(|e| e.extrinsic == Some(index)) {
            match (e.pallet.as_str(), e.name.as_str()) {
                ("System", "ExtrinsicSuccess") => ok = Some(Ok(())),
                ("System", "ExtrinsicFailed") => {
                    let why = e
                        .fields
                        .at("dispatch_error")
                        .map(|d| state::dispatch_error(&rt.meta, d))
                        .unwrap_or_else(|| "failed".into());
                    return Err(why);
                }
                ("Proxy", "ProxyExecuted") => {
                    if let Some(("Err", c)) = e.fields.at("result").and_then(variant) {
                        let why = c
                            .values()
                            .next()
                            .map(|d| state::dispatch_error(&rt.meta, d))
                            .unwrap_or_else(|| "proxied call failed".into());
                        return Err(format!("proxied call failed: {why}"));
                    }
                }
                _ => {}
            }
        }
        ok.unwrap_or_else(|| Err("no ExtrinsicSuccess event".into()))
    }
}

#[async_trait]
impl ChainAdapter for DotAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Polkadot
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let at = head.hash.as_str();
        let ed = self.constant(&rt, "Balances", "ExistentialDeposit")?;
        let (free, frozen) = self.balances(&rt, at).await?;
        let ledger = self.ledger(&rt, at).await?;
        let eras = self.eras(&rt, at).await?;
        let min_bond = self
            .read(&rt, at, "Staking", "MinNominatorBond", &[])
            .await?
            .as_ref()
            .and_then(num)
            .unwrap_or(0);
        let nominations = self.nominations(&rt, at).await?;
        let stash = self.stash().0;
        let l = ledger.clone().unwrap_or_default();
        let liquid = free
            .saturating_sub(bond_in_free(rt.shape, l.total).max(frozen).max(ed))
            .saturating_sub(self.s.fee_reserve);
        // Per target: what the chain exposed of our stake in the active era.
        let mut targets = self.target_ids();
        for n in &nominations {
            if !targets.contains(n) {
                targets.push(*n);
            }
        }
        let era_key = eras.active.to_le_bytes();
        let mut left = l.active;
        let mut delegations = Vec::new();
        for t in &targets {
            let (elected, ours) = match rt.shape {
                Shape::Relay => {
                    let exp = self
                        .read(&rt, at, "Staking", "ErasStakers", &[&era_key, t])
                        .await?;
                    let ours = stake_in(exp.as_ref(), &stash);
                    (exp.is_some(), ours)
                }
                Shape::AssetHub => {
                    let elected = self
                        .read(&rt, at, "Staking", "ErasStakersOverview", &[&era_key, t])
                        .await?
                        .is_some();
                    let ours = match self.our_page(&rt, at, eras.active, t).await? {
                        Some((_, v)) => v,
                        None => 0,
                    };
                    (elected, ours)
                }
            };
            let ours = ours.min(left);
            left -= ours;
            let prefs = self.read(&rt, at, "Staking", "Validators", &[t]).await?;
            let commission = prefs.as_ref().and_then(|p| num_at(p, "commission"));
            delegations.push(Delegation {
                validator: self.label(t),
                active: amount(ours),
                activating: Amount::ZERO,
                impaired: prefs.is_none() || (!elected && ours == 0 && l.active > 0),
                commission: commission.map(|c| {
                    rust_decimal::Decimal::from_i128_with_scale(i128::try_from(c).unwrap_or(0), 9)
                        .normalize()
                        .to_string()
                }),
            });
        }
        if left > 0 {
            // Bonded but not (yet) in any exposure: waiting for the next
            // election to count.
            if let Some(d) = delegations.first_mut() {
                d.activating = amount(left);
            }
        }
        // Validators nominated on chain but no longer configured show only
        // while they hold stake.
        let configured = self.s.targets.len();
        let mut i = 0;
        delegations.retain(|d| {
            i += 1;
            i <= configured || !d.active.is_zero() || !d.activating.is_zero()
        });
        let fallback_ms = u64::try_from(head.time.unix()).unwrap_or(0) * 1000;
        let mut unbonding = Vec::new();
        let mut withdrawable = 0u128;
        for (v, era) in &l.unlocking {
            if *era <= eras.current {
                withdrawable += v;
            } else {
                let ms = Self::era_start_ms(&eras, *era, fallback_ms);
                unbonding.push(UnbondingEntry {
                    validator: self.label(&targets[0]),
                    amount: amount(*v),
                    completes_at: Timestamp::from_unix(
                        i64::try_from(ms / 1000).unwrap_or(i64::MAX),
                    ),
                });
            }
        }
        let unclaimed = if ledger.is_some() || !nominations.is_empty() {
            self.unclaimed(&rt, at, &eras, &targets).await?
        } else {
            Vec::new()
        };
        let payee_matches = ledger.is_none() || self.payee_matches(&rt, at).await?;
        let mut alerts = Vec::new();
        if ledger.is_some() && nominations.is_empty() {
            alerts.push("the stash is bonded but not nominating: it earns nothing".into());
        } else if ledger.is_some() && !self.nominates_targets(&nominations) {
            alerts.push("on-chain nominations differ from [[chains.validators]]".into());
        }
        if let Some((era, _, _)) = unclaimed.first()
            && *era + eras.history_depth <= eras.active + 2
        {
            alerts.push(format!(
                "era {era}'s payout expires in under two eras (history depth {})",
                eras.history_depth
            ));
        }
        if req.observe {
            *lock(&self.observed_height)? = Some(head.number);
        }
        *lock(&self.observed)? = Observed {
            bonded: ledger.is_some(),
            nominations,
            payee_matches,
            unclaimed,
            history_depth: eras.history_depth,
        };
        let max_chunks = self.constant(&rt, "Staking", "MaxUnlockingChunks")?;
        // What the stash owns beyond liquid and the ledger (bonded,
        // unbonding, withdrawable: its `total`): the existential deposit,
        // the fee reserve, other holds and reserves. The books count it, so
        // holdings are everything the account owns.
        let owned = free.saturating_add(self.reserved_balance(&rt, at).await?);
        let reserved = owned.saturating_sub(liquid.saturating_add(l.total));
        // Handed over (and forgotten) only on the engine's observing read.
        let losses = if req.observe {
            std::mem::take(&mut *lock(&self.losses)?)
        } else {
            Vec::new()
        };
        Ok(PoolStateResponse {
            chain: ChainId::Polkadot,
            as_of: head.time,
            liquid: amount(liquid),
            delegations,
            unbonding,
            withdrawable: amount(withdrawable),
            claimable_rewards: Amount::ZERO,
            reserved: amount(reserved),
            limits: ChainLimits {
                min_delegation: amount(if ledger.is_some() {
                    ed
                } else {
                    min_bond.max(ed)
                }),
                max_unbonding_entries: u32::try_from(max_chunks).ok(),
                unbonding_delay_secs: u64::from(eras.bonding_duration) * (eras.era_ms / 1000),
                delegation_keeps_funds_liquid: false,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses,
            alerts,
        })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        let Ok(o) = self.observed.lock().map(|o| o.clone()) else {
            return Vec::new();
        };
        if let Some((era, _, _)) = o.unclaimed.first() {
            let mut vals: Vec<String> = o.unclaimed.iter().map(|(_, v, _)| self.label(v)).collect();
            vals.sort();
            vals.dedup();
            return vec![Maintenance {
                kind: OperationKind::ClaimRewards { validators: vals },
                reason: format!(
                    "{} era payouts unclaimed, oldest era {era} (the chain pays only the last {} eras)",
                    o.unclaimed.len(),
                    o.history_depth
                ),
            }];
        }
        if o.bonded && !self.nominates_targets(&o.nominations) {
            return vec![Maintenance {
                kind: OperationKind::Setup {
                    step: "nominate".into(),
                },
                reason: "on-chain nominations differ from [[chains.validators]]".into(),
            }];
        }
        if o.bonded && !o.payee_matches {
            return vec![Maintenance {
                kind: OperationKind::Setup {
                    step: "set_payee".into(),
                },
                reason: "the reward destination differs from network.payee".into(),
            }];
        }
        Vec::new()
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Scanned, block by block, up to the block of the last observing
        // pool read (finalized), from the stash's own events (`flows.rs`).
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let target = lock(&self.observed_height)?.map_or(head.number, |h| h.min(head.number));
        let after = req.after_height(target)?;
        if req.cursor.is_none() {
            return Ok(FlowsResponse {
                flows: Vec::new(),
                next_cursor: Some(target.to_string()),
                complete: true,
            });
        }
        let to = target.min(after.saturating_add(self.s.max_scan_blocks.max(1)));
        let stash = self.stash().0;
        let mut flows = Vec::new();
        let mut done = after;
        for n in after.saturating_add(1)..=to {
            let Some(hash) = self.block_hash(n).await? else {
                break;
            };
            let found = crate::flows::block_flows(&self.events_at(&rt, &hash).await?, &stash);
            if !found.is_empty() {
                let exts = self.block_extrinsics(&hash).await?;
                let at_ms = self
                    .read(&rt, &hash, "Timestamp", "Now", &[])
                    .await?
                    .as_ref()
                    .and_then(num)
                    .and_then(|t| i64::try_from(t).ok())
                    .unwrap_or(0);
                for f in found {
                    // The extrinsic's hash (what the exchange declares), or
                    // BLOCK-EVENT for what no extrinsic here carried (an
                    // XCM transfer arriving).
                    let tx_id = f
                        .extrinsic
                        .and_then(|i| exts.get(i as usize))
                        .and_then(|x| hex_bytes(x).ok())
                        .map_or_else(
                            || format!("{n}-{}", f.event),
                            |b| format!("0x{}", hex::encode(sp_crypto_hashing::blake2_256(&b))),
                        );
                    let tag = match f.kind {
                        FlowKind::TransferIn => "in",
                        FlowKind::TransferOut => "out",
                        FlowKind::Fee => "fee",
                    };
                    if let (FlowKind::Fee, Some(i)) = (f.kind, f.extrinsic) {
                        lock(&self.seen_fees)?.insert(tx_id.clone(), (n, i));
                    }
                    flows.push(PoolFlow {
                        key: format!("{tag}:{n}:{}", f.event),
                        kind: f.kind,
                        amount: amount(f.amount),
                        tx_id,
                        counterparty: f.counterparty.map(|c| AccountId32(c).to_string()),
                        at: Timestamp::from_unix(at_ms / 1000),
                    });
                }
            }
            done = n;
        }
        Ok(FlowsResponse {
            flows,
            next_cursor: Some(done.to_string()),
            complete: done >= target,
        })
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let from = match req.cursor.as_deref() {
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| inv(format!("bad Polkadot reward cursor {c:?}")))?,
            None => self.s.rewards_from_block.unwrap_or(head.number),
        };
        let to = head
            .number
            .min(from.saturating_add(self.s.max_scan_blocks.max(1) - 1));
        let stash = self.stash().0;
        let mut rewards = Vec::new();
        let mut n = from;
        while n <= to {
            let Some(hash) = self.block_hash(n).await? else {
                break;
            };
            let evs = self.events_at(&rt, &hash).await?;
            let mut payout: BTreeMap<Option<u32>, (u32, [u8; 32])> = BTreeMap::new();
            let mut mine = Vec::new();
            for e in &evs {
                match (e.pallet.as_str(), e.name.as_str()) {
                    ("Staking", "PayoutStarted") => {
                        let era = e.fields.at("era_index").and_then(num);
                        let v = e.fields.at("validator_stash").and_then(account);
                        if let (Some(era), Some(v)) = (era, v) {
                            payout.insert(e.extrinsic, (u32::try_from(era).unwrap_or(0), v));
                        }
                    }
                    ("Staking", "Rewarded")
                        if e.fields.at("stash").and_then(account) == Some(stash) =>
                    {
                        let amt = e.fields.at("amount").and_then(num).unwrap_or(0);
                        if let (Some(p), true) = (payout.get(&e.extrinsic), amt > 0) {
                            mine.push((e.index, e.extrinsic, *p, amt));
                        }
                    }
                    ("Staking", "Slashed")
                        if e.fields.at("staker").and_then(account) == Some(stash) =>
                    {
                        let amt = e.fields.at("amount").and_then(num).unwrap_or(0);
                        lock(&self.losses)?.push(LossEvent {
                            validator: "stash".into(),
                            amount: amount(amt),
                            reason: format!("Staking.Slashed of the stash in block {n}"),
                        });
                    }
                    _ => {}
                }
            }
            if !mine.is_empty() {
                let exts = self.block_extrinsics(&hash).await?;
                let eras = self.eras(&rt, &hash).await?;
                let at_ms = self
                    .read(&rt, &hash, "Timestamp", "Now", &[])
                    .await?
                    .as_ref()
                    .and_then(num)
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(0);
                for (index, ext, (era, v), amt) in mine {
                    let start = Self::era_start_ms(&eras, era, at_ms) / 1000;
                    let end = Self::era_start_ms(&eras, era + 1, at_ms) / 1000;
                    let (start, end) = (
                        i64::try_from(start).unwrap_or(0),
                        i64::try_from(end).unwrap_or(0),
                    );
                    let period = Period::new(
                        Timestamp::from_unix(start.min(end - 1)),
                        Timestamp::from_unix(end),
                    )
                    .map_err(|e| AdapterError::Rejected(e.to_string()))?;
                    let tx_hash = ext.and_then(|i| exts.get(i as usize)).and_then(|x| {
                        hex_bytes(x).ok().map(|b| {
                            format!("0x{}", hex::encode(sp_crypto_hashing::blake2_256(&b)))
                        })
                    });
                    rewards.push(ObservedReward {
                        key: format!("era:{era}:{}:{n}:{index}", self.label(&v)),
                        period,
                        amount: amount(amt),
                        validator: self.label(&v),
                        kind: RewardKind::Consensus,
                        tx_hash,
                        epoch: Some(u64::from(era)),
                    });
                }
            }
            n += 1;
        }
        Ok(RewardsResponse {
            rewards,
            next_cursor: Some(n.to_string()),
            foreign: Vec::new(),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let call = self.calls_for(&rt, &head, &req.kind).await?;
        let s = self.sign_call(&rt, &head, &call).await?;
        Ok(SignedOperation {
            bytes: s.bytes,
            tx_id: s.hash,
            valid_until: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let hex = format!("0x{}", hex::encode(&req.signed.bytes));
        match self.rpc.call("author_submitExtrinsic", json!([hex])).await {
            Ok(v) => {
                let got = v.as_str().unwrap_or("").to_lowercase();
                if got != req.signed.tx_id.to_lowercase() {
                    return Err(AdapterError::Rejected(format!(
                        "node reported extrinsic hash {got}, journaled {}",
                        req.signed.tx_id
                    )));
                }
                Ok(BroadcastResponse { tx_id: got })
            }
            // Already in the pool, or already included (its nonce is used):
            // lookup tells which.
            Err(AdapterError::Rejected(m))
                if ["already imported", "outdated", "stale"]
                    .iter()
                    .any(|k| m.to_lowercase().contains(k)) =>
            {
                Ok(BroadcastResponse {
                    tx_id: req.signed.tx_id,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let rt = self.runtime().await?;
        let head = self.finalized_head(&rt).await?;
        let bytes = req
            .signed_bytes
            .ok_or_else(|| inv("Polkadot lookup needs the journaled bytes"))?;
        let h = state::signed_header(&bytes).map_err(|e| inv(e.to_string()))?;
        let acct = self
            .read(&rt, &head.hash, "System", "Account", &[&h.signer])
            .await?;
        let used = acct.as_ref().and_then(|a| num_at(a, "nonce")).unwrap_or(0);
        let want = req.tx_id.to_lowercase();
        if used > u128::from(h.nonce) {
            // Our nonce is used at this head: find the block that included
            // the transaction, walking parents from the same head so the
            // search sees exactly the chain the nonce was read from.
            let lowest = head.number.saturating_sub(self.s.max_scan_blocks);
            let mut hash = head.hash.clone();
            loop {
                let b = self.rpc.call("chain_getBlock", json!([hash])).await?;
                let n = block_number(&b["block"]["header"]["number"]).unwrap_or(0);
                let exts: Vec<&str> = b["block"]["extrinsics"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                let found = exts.iter().position(|x| {
                    hex_bytes(x).ok().is_some_and(|b| {
                        format!("0x{}", hex::encode(sp_crypto_hashing::blake2_256(&b))) == want
                    })
                });
                if let Some(i) = found {
                    let evs = self.events_at(&rt, &hash).await?;
                    let status =
                        match Self::outcome(&rt, &evs, u32::try_from(i).unwrap_or(u32::MAX)) {
                            Ok(()) => TxStatus::Confirmed { height: n },
                            Err(reason) => TxStatus::Failed { reason },
                        };
                    return Ok(LookupResponse {
                        status,
                        head_time: head.time,
                    });
                }
                if n == 0 || n <= lowest {
                    break;
                }
                match b["block"]["header"]["parentHash"].as_str() {
                    Some(p) => hash = p.to_owned(),
                    None => break,
                }
            }
            // The nonce went to another transaction: this one can never be
            // included.
            return Ok(LookupResponse {
                status: TxStatus::Expired,
                head_time: head.time,
            });
        }
        let pending = self
            .rpc
            .call("author_pendingExtrinsics", json!([]))
            .await?
            .as_array()
            .is_some_and(|a| {
                let hex = format!("0x{}", hex::encode(&bytes));
                a.iter().any(|x| x.as_str() == Some(hex.as_str()))
            });
        if pending {
            return Ok(LookupResponse {
                status: TxStatus::Pending,
                head_time: head.time,
            });
        }
        let best = self
            .rpc
            .call("chain_getBlockHash", json!([]))
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned();
        let mut arg = vec![2u8]; // TransactionSource::External
        arg.extend(&bytes);
        arg.extend(hex_bytes(&best)?);
        let v = self
            .rpc
            .state_call(
                "TaggedTransactionQueue_validate_transaction",
                &arg,
                Some(&best),
            )
            .await?;
        let status = match state::validity(&v) {
            // Its nonce is used at the best block but not at the finalized
            // head: it (or another transaction with that nonce) sits in a
            // block that is not final yet. Whether it is ours is decided
            // once that block is final (the walk above); calling it expired
            // now would plan it again while it lands.
            Validity::Invalid("Stale") => TxStatus::Pending,
            // Past its mortality, or a signature the chain can never accept.
            Validity::Invalid("BadProof" | "AncientBirthBlock") => TxStatus::Expired,
            _ => TxStatus::NotFound,
        };
        Ok(LookupResponse {
            status,
            head_time: head.time,
        })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        // Asked about fee flows the scan just returned: their block and
        // index are known. The extrinsic is decoded with the runtime's
        // metadata; what it did is read from its own events.
        let Some((n, index)) = lock(&self.seen_fees)?.get(&req.tx_id).copied() else {
            return Ok(IdentifyResponse::unsupported());
        };
        let rt = self.runtime().await?;
        let Some(hash) = self.block_hash(n).await? else {
            return Ok(IdentifyResponse::unsupported());
        };
        let exts = self.block_extrinsics(&hash).await?;
        let Some(bytes) = exts.get(index as usize).and_then(|x| hex_bytes(x).ok()) else {
            return Ok(IdentifyResponse::not_ours());
        };
        let calls = match crate::flows::staking_calls(&rt.meta, &bytes, &self.stash().0) {
            Some(c) if !c.is_empty() => c,
            _ => return Ok(IdentifyResponse::not_ours()),
        };
        let evs = self.events_at(&rt, &hash).await?;
        let stash = self.stash().0;
        let sum = |name: &str| -> u128 {
            evs.iter()
                .filter(|e| e.extrinsic == Some(index) && e.pallet == "Staking" && e.name == name)
                .filter(|e| e.fields.at("stash").and_then(account) == Some(stash))
                .filter_map(|e| e.fields.at("amount").and_then(num))
                .sum()
        };
        let first = self
            .s
            .targets
            .first()
            .map(|(t, _)| t.clone())
            .unwrap_or_default();
        let has = |c: &str| calls.iter().any(|(name, _)| name == c);
        let arg = |c: &str| {
            calls
                .iter()
                .find(|(name, _)| name == c)
                .and_then(|(_, v)| *v)
        };
        let kind = if has("bond") || has("bond_extra") || has("rebond") {
            let bonded = sum("Bonded");
            let asked = arg("bond").or(arg("bond_extra")).unwrap_or(0) + arg("rebond").unwrap_or(0);
            OperationKind::Delegate {
                validator: first,
                amount: amount(if bonded > 0 { bonded } else { asked }),
            }
        } else if has("unbond") {
            let unbonded = sum("Unbonded");
            OperationKind::Undelegate {
                validator: first,
                amount: amount(if unbonded > 0 {
                    unbonded
                } else {
                    arg("unbond").unwrap_or(0)
                }),
            }
        } else if has("withdraw_unbonded") {
            OperationKind::WithdrawUnbonded {
                amount: amount(sum("Withdrawn")),
            }
        } else if has("payout_stakers") || has("payout_stakers_by_page") {
            OperationKind::ClaimRewards { validators: vec![] }
        } else if has("nominate") {
            OperationKind::Setup {
                step: "nominate".into(),
            }
        } else if has("set_payee") {
            OperationKind::Setup {
                step: "set_payee".into(),
            }
        } else {
            return Ok(IdentifyResponse::not_ours());
        };
        let status = match Self::outcome(&rt, &evs, index) {
            Ok(()) => TxStatus::Confirmed { height: n },
            Err(reason) => TxStatus::Failed { reason },
        };
        Ok(IdentifyResponse::operation(kind, status))
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let endpoints = self
            .rpc
            .endpoints()
            .health(|ep| async move {
                let h = ep.json_rpc("chain_getHeader", json!([])).await?;
                let time_ms = ep
                    .json_rpc("state_getStorage", json!([twox_now()]))
                    .await
                    .ok()
                    .and_then(|v| v.as_str().and_then(|s| hex_bytes(s).ok()))
                    .and_then(|b| u64::decode(&mut &b[..]).ok());
                Ok(softstake_rpc::Head {
                    height: block_number(&h["number"]),
                    time_unix: time_ms.and_then(|ms| i64::try_from(ms / 1000).ok()),
                })
            })
            .await;
        Ok(HealthResponse { endpoints })
    }
}

/// A node answer not in the shape the RPC defines.
fn bad_response(message: &str) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "polkadot RPC".into(),
        message: message.to_owned(),
    }
}

/// The storage key of `Timestamp.Now` (0x-hex).
fn twox_now() -> String {
    let mut k = sp_crypto_hashing::twox_128(b"Timestamp").to_vec();
    k.extend(sp_crypto_hashing::twox_128(b"Now"));
    format!("0x{}", hex::encode(k))
}
