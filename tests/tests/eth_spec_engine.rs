//! Issue 22: the engine's loop with the real Ethereum adapter against the
//! executable consensus spec (chains/eth/testnode/spec_beacon.py, PyPI
//! `eth-consensus-specs`, Electra) over a real anvil mining one block per
//! slot, on SQLite and PostgreSQL. Every cycle runs with a new adapter (a
//! restart before each cycle: nothing the chain is doing for us may live
//! only in memory). The planner stakes two deposits, which wait in the
//! spec's `pending_deposits`, activate and earn the spec's rewards; blocks
//! our validators propose are built directly (priority fees) or by a
//! builder who pays in the block's last transaction (MEV-boost), each
//! booked once as income with its block as evidence; a withdrawal larger
//! than the buffer gets one exit through the spec's exit queue and is
//! granted by its ETA; the books explain every change to the base unit.
#![allow(clippy::unwrap_used)]

use softstake_chain_eth::EthAdapter;
use softstake_chain_eth::testnode::{EthWorld, SpecOptions, SpecWorld};
use softstake_core::adapter::{ChainAdapter, RewardKind};
use softstake_core::config::BooksSettings;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;

const ETH: u128 = 1_000_000_000_000_000_000;
/// What the spec node's builder pays for a block (spec_beacon.py).
const BUILDER_PAYMENT: u128 = 10_000_000_000_000_000;

struct Run {
    w: SpecWorld,
    store: softstake_store::Store,
    clock: ManualClock,
}

impl Run {
    async fn start(store: &softstake_store::Store, dir: &std::path::Path) -> Run {
        let opts = SpecOptions {
            // Few validators beside ours, so ours propose often.
            validators: 16,
            slot_secs: 12,
            mev_every: 2,
            ..SpecOptions::default()
        };
        let w = SpecWorld::start(100 * ETH + ETH / 10, &[0, 2], dir, &opts)
            .await
            .unwrap();
        w.beacon.slots(1).await.unwrap();
        let t = w
            .beacon
            .slot_time(w.beacon.head().await.unwrap())
            .await
            .unwrap();
        let clock = ManualClock::new(Timestamp::from_unix(i64::try_from(t).unwrap()));
        softstake_tests::opening_balances(
            store,
            "ETH",
            &[("alice", 60 * ETH), ("bob", 40 * ETH)],
            clock.now(),
        )
        .await;
        Run {
            w,
            store: store.clone(),
            clock,
        }
    }

    /// An engine over a new adapter (what a restarted daemon has).
    fn engine(&self) -> softstake_engine::Engine {
        let adapter: Arc<dyn ChainAdapter> =
            Arc::new(EthAdapter::new(self.w.settings(3_600), EthWorld::key().unwrap()).unwrap());
        softstake_tests::adapter_engine_with_books(
            &self.store,
            adapter,
            &[("op-a", 1)],
            ETH,
            96,
            &self.clock,
            BooksSettings::default(),
        )
    }

    /// A cycle of a freshly started engine, then one epoch of the chain.
    async fn step(&self) -> softstake_engine::CycleReport {
        let r = self.engine().cycle().await.unwrap();
        let head = self.w.beacon.next_epoch().await.unwrap();
        let t = self.w.beacon.slot_time(head).await.unwrap();
        self.clock
            .set(Timestamp::from_unix(i64::try_from(t).unwrap()));
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_on_the_consensus_spec_stakes_earns_books_mev_once_and_exits_by_its_eta() {
    on_both(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(&store, dir.path()).await;
        let step = || run.step();
        // 80 ETH over the aim: two verified 32 ETH deposits.
        let r = step().await;
        let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
        assert_eq!(sent.len(), 2, "{:?}", r.ops);
        // In the spec's pending_deposits: activating, once, to a new process.
        let r = step().await;
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "confirmed").count(),
            2,
            "{:?}",
            r.ops
        );
        let pool = r.pool.unwrap();
        assert_eq!(pool.delegations[0].activating.base(), 64 * ETH, "{pool:?}");
        // Finality, the activation queue, then the spec's rewards.
        for _ in 0..16 {
            step().await;
        }
        let pool = step().await.pool.unwrap();
        assert!(pool.delegations[0].active.base() >= 64 * ETH, "{pool:?}");
        softstake_tests::assert_distributions_verify(&store, "ETH", 1).await;

        // Bob withdraws everything: one exit through the spec's queue,
        // granted by the ETA promised when it was queued.
        let engine = run.engine();
        softstake_tests::queue_withdrawal_until_granted(
            &store,
            &engine,
            &run.clock,
            "bob",
            Amount::from_base(40 * ETH),
            step,
        )
        .await;
        let ops = store
            .journal_list(ChainId::Ethereum, None, 100)
            .await
            .unwrap();
        let count = |kind: &str| {
            ops.iter()
                .filter(|o| o.kind.name() == kind && o.state == OpState::Confirmed)
                .count()
        };
        // Nothing planned twice across all those restarts.
        assert_eq!((count("delegate"), count("undelegate")), (2, 1), "{ops:?}");
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");

        // Execution income: builder-built blocks pay exactly the builder's
        // payment, direct ones the priority fees; one reward per block.
        let rewards = store
            .list_rewards(Some(ChainId::Ethereum), None, 1_000)
            .await
            .unwrap();
        let el: Vec<_> = rewards
            .iter()
            .filter(|r| r.reward.kind == RewardKind::Execution)
            .collect();
        let mut blocks: Vec<&str> = el
            .iter()
            .filter_map(|r| r.reward.tx_hash.as_deref())
            .collect();
        assert_eq!(blocks.len(), el.len(), "every one has its block: {el:?}");
        blocks.sort_unstable();
        blocks.dedup();
        assert_eq!(blocks.len(), el.len(), "one reward per block: {el:?}");
        assert!(
            el.iter().any(|r| r.reward.amount.base() == BUILDER_PAYMENT),
            "a MEV-boost block's payment: {el:?}"
        );
        assert!(
            el.iter().any(|r| r.reward.amount.base() != BUILDER_PAYMENT),
            "a directly built block's fees: {el:?}"
        );
        assert!(
            rewards
                .iter()
                .any(|r| r.reward.kind == RewardKind::Consensus),
            "{rewards:?}"
        );

        // The books: every change explained, the builder's payments as
        // income (not transfers), gas as fees, the sweep's withdrawals
        // proven by the beacon blocks.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Ethereum, 10).await;
    })
    .await;
}

/// Issue 22: deposits waiting in the pool when the base fee overtakes
/// their fee cap. anvil, like reth, drops them from its pool (geth would
/// keep them: the adapter then reports them `Stuck`, and the engine's rule
/// for that is shown on the simulated chain in tests/tests/engine.rs). The
/// next cycle finds them gone, sends the journaled bytes again, is refused
/// for the fee, and signs each deposit again under its nonce at today's
/// price; exactly one version of each lands. Both databases, books exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_priced_out_of_the_pool_by_the_base_fee_are_signed_again_under_their_nonces() {
    on_both(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(&store, dir.path()).await;
        let r = run.engine().cycle().await.unwrap();
        let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
        assert_eq!(sent.len(), 2, "{:?}", r.ops);
        let ops = store.journal_open(ChainId::Ethereum).await.unwrap();
        let max_fee = ops
            .iter()
            .map(|o| {
                softstake_chain_eth::tx::fees_of(o.signed_bytes.as_ref().unwrap())
                    .unwrap()
                    .1
            })
            .max()
            .unwrap();
        // The next block's base fee is three times their cap: the block is
        // made without them, and anvil drops them.
        let anvil = &run.w.anvil;
        anvil
            .call(
                "anvil_setNextBlockBaseFeePerGas",
                serde_json::json!([format!("{:#x}", max_fee * 3)]),
            )
            .await
            .unwrap();
        run.w.beacon.slots(1).await.unwrap();
        for o in &ops {
            let tx = o.tx_id.clone().unwrap();
            let held = anvil
                .call("eth_getTransactionByHash", serde_json::json!([tx]))
                .await
                .unwrap();
            assert!(held.is_null(), "anvil dropped {tx}");
            let receipt = anvil
                .call("eth_getTransactionReceipt", serde_json::json!([tx]))
                .await
                .unwrap();
            assert!(receipt.is_null(), "{tx} was not included");
        }
        // Gone: sent again, refused for the fee, signed again under its
        // nonce.
        let r = run.engine().cycle().await.unwrap();
        let replaced: Vec<_> = r.ops.iter().filter(|o| o.event == "replaced").collect();
        assert_eq!(replaced.len(), 2, "{:?}", r.ops);
        for o in &ops {
            let now = store.journal_get(&o.id).await.unwrap().unwrap();
            let (n1, _, _) =
                softstake_chain_eth::tx::fees_of(o.signed_bytes.as_ref().unwrap()).unwrap();
            let (n2, max2, _) =
                softstake_chain_eth::tx::fees_of(now.signed_bytes.as_ref().unwrap()).unwrap();
            assert_eq!(n1, n2, "same nonce");
            assert!(max2 > max_fee * 3, "{max2}");
            let attempts = store.journal_attempts(&o.id).await.unwrap();
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            assert!(
                attempts[0].reason.contains("less than block base fee"),
                "{}",
                attempts[0].reason
            );
        }
        for _ in 0..3 {
            run.step().await;
        }
        let all = store
            .journal_list(ChainId::Ethereum, None, 100)
            .await
            .unwrap();
        let confirmed: Vec<_> = all
            .iter()
            .filter(|o| o.kind.name() == "delegate" && o.state == OpState::Confirmed)
            .collect();
        assert_eq!(confirmed.len(), 2, "{all:?}");
        for o in &confirmed {
            let was = ops.iter().find(|x| x.id == o.id).unwrap();
            assert_ne!(o.tx_id, was.tx_id, "the replacement landed");
        }
        let pool = run.step().await.pool.unwrap();
        assert_eq!(
            pool.delegations[0].active.base() + pool.delegations[0].activating.base(),
            64 * ETH,
            "both validators funded once: {pool:?}"
        );
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Ethereum, 3).await;
    })
    .await;
}
