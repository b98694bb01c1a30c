//! The Ethereum adapter against the executable consensus spec
//! (chains/eth/testnode/spec_beacon.py: PyPI `eth-consensus-specs`,
//! Electra, minimal preset) driving a real anvil, one execution block per
//! slot: every queue, churn, reward and sweep below is the spec's own, and
//! every Beacon API answer the adapter reads is checked against the
//! published Beacon API. Each scene is also read by a second adapter that
//! starts cold (a restart): what the chain is doing for us is read from the
//! chain, so both report the same pool and neither plans anything twice.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_eth::EthAdapter;
use softstake_chain_eth::testnode::{EthWorld, SpecOptions, SpecWorld};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind,
    PoolStateRequest, PoolStateResponse, SignedOperation, TxStatus,
};

const ETH: u128 = 1_000_000_000_000_000_000;
const GWEI: u64 = 1_000_000_000;
const SWEEP: u64 = 60;

struct Scene {
    w: SpecWorld,
    adapter: EthAdapter,
    _dir: tempfile::TempDir,
}

async fn scene(entries: &[usize]) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let w = SpecWorld::start(100 * ETH, entries, dir.path(), &SpecOptions::default())
        .await
        .unwrap();
    let adapter = EthAdapter::new(w.settings(SWEEP), EthWorld::key().unwrap()).unwrap();
    // A few slots so the chain has blocks.
    w.beacon.slots(2).await.unwrap();
    Scene {
        w,
        adapter,
        _dir: dir,
    }
}

impl Scene {
    /// A second adapter over the same chain, starting with nothing in
    /// memory: what a restart sees.
    fn restarted(&self) -> EthAdapter {
        EthAdapter::new(self.w.settings(SWEEP), EthWorld::key().unwrap()).unwrap()
    }

    async fn pool(&self, a: &EthAdapter) -> PoolStateResponse {
        a.pool_state(PoolStateRequest::default()).await.unwrap()
    }

    /// The pool as this adapter and a cold one both see it (they must
    /// agree).
    async fn both(&self) -> PoolStateResponse {
        let p = self.pool(&self.adapter).await;
        let q = self.pool(&self.restarted()).await;
        assert_eq!(p.delegations, q.delegations, "a restart sees another pool");
        assert_eq!(p.unbonding, q.unbonding, "a restart sees another pool");
        assert_eq!(p.liquid, q.liquid);
        p
    }

    async fn build(&self, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
        self.adapter
            .build_and_sign(BuildRequest {
                operation_id: "t".into(),
                kind,
            })
            .await
    }

    /// Broadcasts and advances slots until the chain includes it.
    async fn land(&self, s: SignedOperation) {
        self.adapter
            .broadcast(BroadcastRequest { signed: s.clone() })
            .await
            .unwrap();
        for _ in 0..4 {
            self.w.beacon.slots(1).await.unwrap();
            let l = self
                .adapter
                .lookup(LookupRequest {
                    tx_id: s.tx_id.clone(),
                    signed_bytes: Some(s.bytes.clone()),
                })
                .await
                .unwrap();
            if matches!(l.status, TxStatus::Confirmed { .. }) {
                return;
            }
        }
        panic!("never included");
    }

    async fn validator(&self, entry: usize) -> Value {
        let pk = format!("0x{}", entries()[entry]);
        self.w.beacon.validator(&pk).await.unwrap()
    }

    /// The validator's status ("" before it exists).
    async fn status(&self, entry: usize) -> String {
        let pk = format!("0x{}", entries()[entry]);
        match self.w.beacon.validator(&pk).await {
            Ok(v) => v["status"].as_str().unwrap_or("").to_owned(),
            Err(_) => String::new(),
        }
    }

    /// Epochs until validator `entry` reaches `status` (at most `max`).
    async fn until(&self, entry: usize, status: &str, max: u64) {
        for _ in 0..max {
            if self.status(entry).await == status {
                return;
            }
            self.w.beacon.next_epoch().await.unwrap();
        }
        panic!(
            "validator {entry} never became {status}: {}",
            self.validator(entry).await
        );
    }

    async fn epoch(&self) -> u64 {
        self.w.beacon.head().await.unwrap() / 8
    }

    /// Unix time of an epoch's first slot (8 slots of 6 s).
    async fn epoch_time(&self, epoch: u64) -> u64 {
        let g = self.w.beacon.get("/eth/v1/beacon/genesis").await.unwrap();
        let genesis: u64 = g["data"]["genesis_time"].as_str().unwrap().parse().unwrap();
        genesis + epoch * 8 * 6
    }

    /// Unix time the adapter should promise for `withdrawable_epoch`.
    async fn eta(&self, withdrawable_epoch: u64) -> i64 {
        i64::try_from(self.epoch_time(withdrawable_epoch).await + SWEEP).unwrap()
    }
}

fn entries() -> Vec<String> {
    softstake_chain_eth::testnode::vectors()["deposit_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pubkey"].as_str().unwrap().to_lowercase())
        .collect()
}

fn epoch_of(v: &Value, field: &str) -> u64 {
    v["validator"][field].as_str().unwrap().parse().unwrap()
}

fn delegate(amount: u128) -> OperationKind {
    OperationKind::Delegate {
        validator: "op-a".into(),
        amount: Amount::from_base(amount),
    }
}

fn undelegate(amount: u128) -> OperationKind {
    OperationKind::Undelegate {
        validator: "op-a".into(),
        amount: Amount::from_base(amount),
    }
}

/// A deposit enters the state's `pending_deposits` in the block that
/// carries it, waits there until that slot is finalized (the spec's
/// `process_pending_deposits`), becomes a validator once its signature is
/// checked, and activates after the activation queue; at every point it is
/// counted once, and a cold adapter counts it the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_waits_in_pending_deposits_then_activates() {
    let s = scene(&[0]).await;
    let before = s.both().await;
    assert_eq!(before.liquid.base(), 100 * ETH);
    s.land(s.build(delegate(32 * ETH)).await.unwrap()).await;
    // In the queue: no validator yet.
    let q =
        s.w.beacon
            .get("/eth/v1/beacon/states/head/pending_deposits")
            .await
            .unwrap();
    assert_eq!(q["data"].as_array().unwrap().len(), 1, "{q}");
    assert!(
        s.w.beacon
            .validator(&format!("0x{}", entries()[0]))
            .await
            .is_err()
    );
    let p = s.both().await;
    assert_eq!(p.delegations[0].activating.base(), 32 * ETH, "{p:?}");
    assert_eq!(p.delegations[0].active, Amount::ZERO);
    let fee = 100 * ETH - 32 * ETH - p.liquid.base();
    assert!(fee > 0 && fee < ETH / 100, "the deposit's fee: {fee}");
    // A second deposit for the same amount finds no unused entry, in
    // either process.
    for a in [&s.adapter, &s.restarted()] {
        let e = a
            .build_and_sign(BuildRequest {
                operation_id: "again".into(),
                kind: delegate(32 * ETH),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, AdapterError::InvalidRequest(_)), "{e:?}");
    }
    // Finality moves the queue: a pending validator, counted once.
    s.until(0, "pending_queued", 10).await;
    let q =
        s.w.beacon
            .get("/eth/v1/beacon/states/head/pending_deposits")
            .await
            .unwrap();
    assert!(q["data"].as_array().unwrap().is_empty());
    let p = s.both().await;
    assert_eq!(p.delegations[0].activating.base(), 32 * ETH, "{p:?}");
    // Active at the epoch the spec chose; earning from then on.
    s.until(0, "active_ongoing", 16).await;
    let p = s.both().await;
    assert_eq!(p.delegations[0].activating, Amount::ZERO);
    assert!(p.delegations[0].active.base() >= 32 * ETH, "{p:?}");
    s.w.beacon.next_epoch().await.unwrap();
    s.w.beacon.next_epoch().await.unwrap();
    let later = s.both().await;
    assert!(
        later.delegations[0].active > p.delegations[0].active,
        "the spec pays attestation rewards: {later:?}"
    );
}

/// A full exit takes its place in the spec's exit queue: the ETA the
/// adapter promised before asking (from the queue it reads) is the epoch
/// the spec then gives the validator, the validator shows as unbonding
/// from the block that carried the request (to a cold adapter too, so a
/// restart never asks for a second exit), and the sweep pays it on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_exit_follows_the_specs_queue_and_its_eta() {
    let s = scene(&[0]).await;
    s.land(s.build(delegate(32 * ETH)).await.unwrap()).await;
    s.until(0, "active_ongoing", 20).await;
    // The spec lets a validator exit only after SHARD_COMMITTEE_PERIOD and
    // ignores (fee paid, no error) a request before: none is signed, and
    // the ETA promised meanwhile waits for it.
    let e = s.build(undelegate(32 * ETH)).await.unwrap_err();
    assert!(
        matches!(&e, AdapterError::TryLater(m) if m.contains("SHARD_COMMITTEE_PERIOD")),
        "{e:?}"
    );
    let young = s.both().await.limits.unbonding_delay_secs;
    let activation = epoch_of(&s.validator(0).await, "activation_epoch");
    while s.epoch().await < activation + 4 {
        s.w.beacon.next_epoch().await.unwrap();
    }
    let p = s.both().await;
    let promised = p.limits.unbonding_delay_secs;
    assert!(
        young > promised,
        "a young validator's exit waits: {young} vs {promised}"
    );
    let asked_at = s.w.beacon.head().await.unwrap();
    let queue = s.w.beacon.queue().await.unwrap();
    s.land(s.build(undelegate(32 * ETH)).await.unwrap()).await;
    // Included in a block whose slot is in the same epoch (the scene asks
    // at an epoch's start), so the promise was made for this epoch.
    let v = s.validator(0).await;
    assert_eq!(v["status"], "active_exiting", "{v} (queue before: {queue})");
    let withdrawable = epoch_of(&v, "withdrawable_epoch");
    assert_eq!(
        s.epoch_time(withdrawable).await + SWEEP,
        s.epoch_time(asked_at / 8).await + promised,
        "promised {promised} s from epoch {}; the spec gave exit epoch {} and withdrawable epoch {withdrawable}",
        asked_at / 8,
        epoch_of(&v, "exit_epoch"),
    );
    // Unbonding, to both processes, until exactly the spec's epoch.
    let p = s.both().await;
    assert_eq!(p.delegations[0].active, Amount::ZERO, "{p:?}");
    assert_eq!(p.unbonding.len(), 1, "{p:?}");
    assert_eq!(
        p.unbonding[0].completes_at.unix(),
        s.eta(withdrawable).await
    );
    // Nothing left to exit: a cold adapter does not ask again.
    let e = s
        .restarted()
        .build_and_sign(BuildRequest {
            operation_id: "again".into(),
            kind: undelegate(32 * ETH),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, AdapterError::InvalidRequest(_)), "{e:?}");
    // The sweep pays the whole balance once withdrawable.
    let liquid = p.liquid.base();
    let owed =
        u128::from(v["balance"].as_str().unwrap().parse::<u64>().unwrap()) * u128::from(GWEI);
    s.until(0, "withdrawal_done", 12).await;
    let p = s.both().await;
    assert!(p.unbonding.is_empty(), "{p:?}");
    assert!(
        p.liquid.base() >= liquid + owed,
        "{} < {} + {owed}",
        p.liquid.base(),
        liquid
    );
}

/// A partial withdrawal from a compounding (0x02) validator is queued by
/// the spec (`pending_partial_withdrawals`): the validator stays active and
/// earning, and the amount shows as unbonding (to a cold adapter too, so
/// no planner asks for it again) until the sweep pays it at the epoch the
/// spec gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_withdrawal_leaves_the_validator_active_and_is_not_repeated() {
    let s = scene(&[1]).await;
    s.land(s.build(delegate(64 * ETH)).await.unwrap()).await;
    s.until(1, "active_ongoing", 20).await;
    let activation = epoch_of(&s.validator(1).await, "activation_epoch");
    while s.epoch().await < activation + 4 {
        s.w.beacon.next_epoch().await.unwrap();
    }
    let before = s.both().await;
    s.land(s.build(undelegate(10 * ETH)).await.unwrap()).await;
    let q =
        s.w.beacon
            .get("/eth/v1/beacon/states/head/pending_partial_withdrawals")
            .await
            .unwrap();
    let queued = q["data"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{q}");
    assert_eq!(queued[0]["amount"], (10 * GWEI).to_string());
    assert_eq!(s.status(1).await, "active_ongoing");
    let p = s.both().await;
    assert_eq!(p.unbonding.len(), 1, "{p:?}");
    assert_eq!(p.unbonding[0].amount.base(), 10 * ETH);
    let withdrawable: u64 = queued[0]["withdrawable_epoch"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        p.unbonding[0].completes_at.unix(),
        s.eta(withdrawable).await
    );
    assert!(
        p.delegations[0].active.base() + 10 * ETH >= before.delegations[0].active.base(),
        "{p:?}"
    );
    // The pool's total did not move: nothing is counted twice or lost.
    let total = |p: &PoolStateResponse| {
        p.delegations[0].active.base() + p.unbonding.iter().map(|u| u.amount.base()).sum::<u128>()
    };
    assert!(total(&p) >= total(&before));
    // Paid by the sweep at its epoch; the validator is still active.
    let liquid = p.liquid.base();
    for _ in 0..16 {
        let q =
            s.w.beacon
                .get("/eth/v1/beacon/states/head/pending_partial_withdrawals")
                .await
                .unwrap();
        if q["data"].as_array().unwrap().is_empty() {
            break;
        }
        s.w.beacon.next_epoch().await.unwrap();
    }
    let p = s.both().await;
    assert!(p.unbonding.is_empty(), "{p:?}");
    assert!(p.liquid.base() >= liquid + 10 * ETH, "{p:?}");
    assert_eq!(s.status(1).await, "active_ongoing");
    assert!(p.delegations[0].active.base() >= 54 * ETH, "{p:?}");
}
