//! The engine's loop with the real Ethereum adapter, on SQLite and
//! PostgreSQL: anvil runs the deposit and EIP-7002 contracts, the Beacon
//! API test server plays the consensus layer (it picks up deposits from
//! the contract's logs, activates them, pays rewards, skims balances above
//! 32 ETH, and exits the validators whose requests it dequeues from the
//! request contract, sweeping their balance to the custody address). The
//! planner's stake goes out as one verified deposit per 32 ETH, rewards are
//! distributed, and a withdrawal bigger than the buffer is queued, served
//! by an exit request, and granted once the sweep pays out.
#![allow(clippy::unwrap_used)]

use softstake_chain_eth::EthAdapter;
use softstake_chain_eth::testnode::EthWorld;
use softstake_core::adapter::ChainAdapter;
use softstake_core::config::BooksSettings;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;

const ETH: u128 = 1_000_000_000_000_000_000;

/// One engine on anvil and the Beacon test server: 100 ETH owed to alice
/// (60) and bob (40), plus a little for gas; two 0x01 validators' deposit
/// data (32 ETH each).
struct Run {
    w: EthWorld,
    engine: softstake_engine::Engine,
    clock: ManualClock,
}

impl Run {
    async fn start(
        store: &softstake_store::Store,
        dir: &std::path::Path,
        books: BooksSettings,
    ) -> Run {
        let w = EthWorld::start(100 * ETH + ETH / 10, &[0, 2], dir)
            .await
            .unwrap();
        let adapter: Arc<dyn ChainAdapter> =
            Arc::new(EthAdapter::new(w.settings(3_600), EthWorld::key().unwrap()).unwrap());
        let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
        let engine = softstake_tests::adapter_engine_with_books(
            store,
            adapter,
            &[("op-a", 1)],
            ETH,
            384,
            &clock,
            books,
        );
        softstake_tests::opening_balances(
            store,
            "ETH",
            &[("alice", 60 * ETH), ("bob", 40 * ETH)],
            Timestamp::from_unix(1_700_000_000),
        )
        .await;
        Run { w, engine, clock }
    }

    /// A cycle, then the consensus layer's side of one step.
    async fn step(&self) -> softstake_engine::CycleReport {
        let r = self.engine.cycle().await.unwrap();
        self.w.step().await.unwrap();
        let b = &self.w.beacon;
        self.clock.set(Timestamp::from_unix(
            i64::try_from(b.slot_time(b.head())).unwrap(),
        ));
        r
    }
}

/// Slashes the first active validator (Electra's initial penalty, 1/4096
/// of 32 ETH, taken from its balance); returns the penalty in gwei.
fn slash_an_active_validator(beacon: &softstake_chain_eth::testnode::BeaconServer) -> u64 {
    let penalty_gwei = 32_000_000_000u64 / 4096;
    beacon.update(|vs| {
        let v = vs
            .iter_mut()
            .find(|v| v.status == "active_ongoing")
            .unwrap();
        v.slashed = true;
        v.status = "active_slashed".into();
        v.balance -= penalty_gwei;
    });
    penalty_gwei
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_deposits_earns_distributes_and_exits_for_a_queued_withdrawal() {
    on_both(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(&store, dir.path(), BooksSettings::default()).await;
        let (w, engine, clock) = (&run.w, &run.engine, &run.clock);
        let (anvil, beacon, custody) = (&w.anvil, &w.beacon, w.custody.clone());
        let step = || run.step();
        // 80 ETH over the aim, staked as two 32 ETH deposits.
        let r = step().await;
        let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
        assert_eq!(sent.len(), 2, "{:?}", r.ops);
        let r = step().await;
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "confirmed").count(),
            2,
            "{:?}",
            r.ops
        );
        let pool = r.pool.unwrap();
        assert_eq!(
            pool.delegations[0].active.base() + pool.delegations[0].activating.base(),
            64 * ETH
        );

        // Rewards accrue and are distributed.
        for _ in 0..4 {
            step().await;
        }
        softstake_tests::assert_distributions_verify(&store, "ETH", 1).await;

        // Bob withdraws everything: more than the buffer; one validator
        // exits for it, the sweep pays, the withdrawal is granted.
        softstake_tests::queue_withdrawal_until_granted(
            &store,
            engine,
            clock,
            "bob",
            Amount::from_base(40 * ETH),
            step,
        )
        .await;
        let ops = store
            .journal_list(ChainId::Ethereum, None, 100)
            .await
            .unwrap();
        assert!(
            ops.iter()
                .any(|o| o.kind.name() == "undelegate" && o.state == OpState::Confirmed),
            "{ops:?}"
        );
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");

        // The books: every flow proven on the node's traces, the journal's
        // own transactions' gas booked as fees, nothing open.
        let b = store
            .books(ChainId::Ethereum, &Default::default(), clock.now())
            .await
            .unwrap();
        assert!(b.snapshot.as_ref().unwrap().complete);
        assert!(!b.owed.fees.is_zero(), "{b:?}");
        assert_eq!((b.incidents_open, b.suspense_open), (0, 0), "{b:?}");

        // The custody key signs a transaction outside softstake (used
        // elsewhere, or the ledger was restored from an older backup): the
        // chain may be ahead of the journal, so nothing is planned until an
        // operator has looked, and its fee is only ever a loss.
        anvil
            .call("anvil_impersonateAccount", serde_json::json!([custody]))
            .await
            .unwrap();
        let h = anvil
            .call(
                "eth_sendTransaction",
                serde_json::json!([{"from": custody, "to": custody, "value": "0x0"}]),
            )
            .await
            .unwrap();
        anvil.receipt(&h).await.unwrap();
        let r = step().await;
        assert_eq!(r.incidents_open, 1, "{:?}", r.books);
        assert!(r.plan_skipped.unwrap().contains("incident"));
        let open = store
            .flows(ChainId::Ethereum, true, None, 10)
            .await
            .unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].flow.tx_id, h.as_str().unwrap());
        assert_eq!(open[0].flow.kind, softstake_core::adapter::FlowKind::Fee);
        let e = store
            .resolve_flow(
                ChainId::Ethereum,
                open[0].id,
                softstake_store::Resolution::Principal,
                "ours",
                clock.now(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("only be booked as a loss"), "{e}");
        store
            .resolve_flow(
                ChainId::Ethereum,
                open[0].id,
                softstake_store::Resolution::Loss,
                "checked: a manual self-transfer by the treasury, nothing moved",
                clock.now(),
            )
            .await
            .unwrap();
        let r = step().await;
        assert_eq!(r.incidents_open, 0);
        assert!(
            r.plan_skipped
                .as_deref()
                .is_none_or(|w| !w.contains("incident")),
            "{:?}",
            r.plan_skipped
        );
        let b = store
            .books(ChainId::Ethereum, &Default::default(), clock.now())
            .await
            .unwrap();
        assert_eq!(b.owed.losses, open[0].flow.amount, "the platform bears it");

        // The remaining validator is slashed (Electra's initial penalty,
        // 1/4096 of 32 ETH). No event says so on the execution layer: the
        // books see the holdings fall with every flow proven, and once the
        // fall persists they book it as a loss the platform bears.
        let penalty_gwei = slash_an_active_validator(beacon);
        let r = step().await;
        assert!(r.pool.as_ref().unwrap().delegations[0].impaired);
        assert!(
            r.pool
                .as_ref()
                .unwrap()
                .alerts
                .iter()
                .any(|a| a.contains("slashed")),
            "{:?}",
            r.pool
        );
        step().await;
        step().await;
        let after = store
            .books(ChainId::Ethereum, &Default::default(), clock.now())
            .await
            .unwrap();
        // The validator's last skim (one step's 2,000,000 gwei of reward)
        // reached the custody account but was never recorded as a reward:
        // the high-water mark nets it against the penalty. So the books'
        // loss is the penalty less that reward: the pool's value fell by
        // exactly that much, and it is booked once.
        assert_eq!(
            after.owed.losses.base() - b.owed.losses.base(),
            u128::from(penalty_gwei - 2_000_000) * 1_000_000_000,
            "the net fall, recognised once"
        );
        assert_eq!(after.snapshot.unwrap().unrecognized, 0);
    })
    .await;
}

/// Issue 31 on Ethereum: under `losses = "users"`, a slashing (no event
/// says so: the books see the holdings fall with every flow proven) is
/// recognised once it persists, allocated over the users who held when the
/// fall began by their time-weighted balances (60:40 here, rounded down
/// per user, the rest the platform's), and netted from their next credits;
/// the books balance throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slashing_under_the_users_rule_is_borne_by_who_held_and_netted_from_their_rewards() {
    use softstake_core::config::LossBearer;
    on_both(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let policy = BooksSettings {
            losses: LossBearer::Users,
            ..BooksSettings::default()
        };
        let run = Run::start(&store, dir.path(), policy).await;
        let (beacon, clock) = (&run.w.beacon, &run.clock);
        let step = || run.step();
        // Two deposits, confirmed; rewards accrue and are distributed.
        for _ in 0..6 {
            step().await;
        }
        softstake_tests::assert_distributions_verify(&store, "ETH", 1).await;
        assert!(
            store
                .losses(ChainId::Ethereum, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // One validator is slashed (Electra's initial penalty).
        slash_an_active_validator(beacon);
        for _ in 0..3 {
            step().await;
        }
        let losses = store.losses(ChainId::Ethereum, 10).await.unwrap();
        assert_eq!(losses.len(), 1, "booked once: {losses:?}");
        let l = &losses[0];
        assert_eq!((l.kind.as_str(), l.rule.as_str()), ("recognized", "users"));
        assert!(l.allocated_at.is_some(), "{l:?}");
        let (users, platform) = (l.users_part.unwrap(), l.platform_part.unwrap());
        assert_eq!(users.base() + platform.base(), l.amount.base());
        // Alice and Bob held 60:40 throughout the fall's interval: their
        // shares are that split of the loss, rounded down each.
        let share = |u: &'static str| {
            let store = store.clone();
            async move {
                store
                    .loss_shares(
                        u,
                        Timestamp::from_unix(0),
                        Timestamp::from_unix(i64::MAX / 2),
                        Timestamp::from_unix(1_900_000_000),
                    )
                    .await
                    .unwrap()
            }
        };
        let (a, b) = (share("alice").await, share("bob").await);
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_eq!(a[0].amount.base(), l.amount.base() * 6 / 10);
        assert_eq!(b[0].amount.base(), l.amount.base() * 4 / 10);
        assert!(
            platform.base() < 2,
            "only rounding is the platform's: {platform:?}"
        );
        // Later rewards net the shares from the credits, never below zero,
        // and the books stay exact.
        for _ in 0..6 {
            step().await;
        }
        let owed = store
            .books(ChainId::Ethereum, &policy, clock.now())
            .await
            .unwrap();
        let ul = owed.owed.users_losses;
        assert!(!ul.netted.is_zero(), "{ul:?}");
        assert_eq!(
            ul.netted.base() + ul.receivable.base(),
            users.base(),
            "{ul:?}"
        );
        assert_eq!(owed.snapshot.unwrap().unrecognized, 0);
        let a = share("alice").await;
        assert_eq!(
            a[0].netted.base() + a[0].remaining.base(),
            a[0].amount.base()
        );
    })
    .await;
}

/// Issue 22: a deposit journaled before a crash whose max fee the base fee
/// overtook before the restart. Sent again, anvil refuses it ("max fee per
/// gas less than block base fee"); the engine signs the same deposit again
/// under its nonce at today's fees, journals both versions, and the new
/// one lands: one deposit, both validators funded once, the books exact
/// with the new version's gas as the operation's fee. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_priced_out_before_it_was_sent_is_signed_again_under_its_nonce() {
    on_both(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(&store, dir.path(), BooksSettings::default()).await;
        let crashing = run
            .engine
            .clone()
            .with_faults(Arc::new(softstake_tests::CrashAfterStore::default()));
        assert!(matches!(
            crashing.cycle().await,
            Err(softstake_engine::EngineError::Crash(_))
        ));
        let op = store
            .journal_open(ChainId::Ethereum)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.state == OpState::Signed)
            .unwrap();
        let old_tx = op.tx_id.clone().unwrap();
        let (nonce, max_fee, _) =
            softstake_chain_eth::tx::fees_of(op.signed_bytes.as_ref().unwrap()).unwrap();
        // A block whose base fee is three times the journaled max fee.
        let anvil = &run.w.anvil;
        anvil
            .call(
                "anvil_setNextBlockBaseFeePerGas",
                serde_json::json!([format!("{:#x}", max_fee * 3)]),
            )
            .await
            .unwrap();
        anvil.call("evm_mine", serde_json::json!([])).await.unwrap();
        let r = run.step().await;
        let e = r.ops.iter().find(|o| o.id == op.id).unwrap();
        assert_eq!(e.event, "replaced", "{:?}", r.ops);
        let now = store.journal_get(&op.id).await.unwrap().unwrap();
        let new_tx = now.tx_id.clone().unwrap();
        assert_ne!(new_tx, old_tx);
        let (n2, max2, _) =
            softstake_chain_eth::tx::fees_of(now.signed_bytes.as_ref().unwrap()).unwrap();
        assert_eq!(n2, nonce);
        assert!(max2 > max_fee * 3, "{max2}");
        let attempts = store.journal_attempts(&op.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].tx_id, old_tx);
        assert!(
            attempts[0].reason.contains("less than block base fee"),
            "{}",
            attempts[0].reason
        );
        for _ in 0..3 {
            run.step().await;
        }
        let done = store.journal_get(&op.id).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.tx_id.as_deref()),
            (OpState::Confirmed, Some(new_tx.as_str()))
        );
        let ops = store
            .journal_list(ChainId::Ethereum, None, 100)
            .await
            .unwrap();
        let deposits = ops
            .iter()
            .filter(|o| o.kind.name() == "delegate" && o.state == OpState::Confirmed)
            .count();
        assert_eq!(deposits, 2, "{ops:?}");
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        let r = run.step().await;
        let pool = r.pool.unwrap();
        assert_eq!(
            pool.delegations[0].active.base() + pool.delegations[0].activating.base(),
            64 * ETH,
            "both validators funded once"
        );
        let b = store
            .books(ChainId::Ethereum, &Default::default(), run.clock.now())
            .await
            .unwrap();
        assert!(b.snapshot.as_ref().unwrap().complete);
        assert!(!b.owed.fees.is_zero(), "{b:?}");
        assert_eq!((b.incidents_open, b.suspense_open), (0, 0), "{b:?}");
        assert_eq!(b.snapshot.as_ref().unwrap().unrecognized, 0, "{b:?}");
    })
    .await;
}
