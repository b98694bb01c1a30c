//! The engine's loop with the real Polkadot adapter against chopsticks
//! running the real Westend Asset Hub runtime (pallet-staking-async), on
//! SQLite and PostgreSQL: the planner bonds and nominates the excess over
//! the buffer; each era ends as on Asset Hub, on the relay chain's session
//! report (a downward XCM message), the runtime paying it from the general
//! reward pot funded as the DAP's budget would (only the election's paged
//! exposure is written by hand); housekeeping pays the era out with the
//! runtime's own `payout_stakers_by_page`, rewards are distributed, and a withdrawal
//! larger than the buffer queues, unbonds, waits the runtime's 2-era
//! bonding duration, is withdrawn and granted by its ETA; an offence the
//! relay chain reports slashes the stash, and the loss is booked once;
//! every snapshot of the pool's books is explained by proven fees,
//! evidenced rewards and the reported loss.
#![allow(clippy::unwrap_used)]

use softstake_chain_dot::testnode::{CHOPSTICKS_GENESIS, Chopsticks};
use softstake_chain_dot::tx::Payee;
use softstake_chain_dot::{DotAdapter, DotSettings};
use softstake_core::adapter::{ChainAdapter, PoolStateRequest};
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;

const DOT: u128 = 10_000_000_000;
const ERA_SECS: i64 = 6 * 3600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_bonds_is_paid_out_distributes_and_unbonds_for_a_queued_withdrawal() {
    on_both(|store| async move {
        let node = Arc::new(Chopsticks::asset_hub("Instant").await.unwrap());
        let vals = node.staking_validators().await.unwrap();
        let key = Arc::new(Keypair::from_uri(&"//SoftstakeEngine".parse().unwrap()).unwrap());
        let stash = AccountId32(key.public_key().0).to_string();
        // 10,000 DOT owed to users, plus a little for fees.
        node.fund(&stash, 10_000 * DOT + 5 * DOT).await.unwrap();
        let adapter = Arc::new(
            DotAdapter::new(
                DotSettings {
                    endpoints: vec![node.url.clone()],
                    genesis_hash: CHOPSTICKS_GENESIS.into(),
                    targets: vec![(vals[0].clone(), vals[0].parse().unwrap())],
                    stash: None,
                    payee: Payee::Staked,
                    fee_reserve: DOT,
                    era_period: 64,
                    rewards_from_block: None,
                    max_scan_blocks: 2_000,
                    max_payouts_per_tx: 8,
                    request_timeout: Duration::from_secs(60),
                },
                key,
            )
            .unwrap(),
        );
        let t0 = i64::try_from(node.now_ms().await.unwrap() / 1000).unwrap();
        node.set_era(1, u64::try_from(t0).unwrap() * 1000)
            .await
            .unwrap();
        let clock = ManualClock::new(Timestamp::from_unix(t0));
        let dyn_adapter: Arc<dyn ChainAdapter> = adapter.clone();
        let engine = softstake_tests::adapter_engine(
            &store,
            dyn_adapter,
            &[(&vals[0], 1)],
            DOT,
            u64::try_from(ERA_SECS).unwrap(),
            &clock,
        );
        softstake_tests::opening_balances(
            &store,
            "DOT",
            &[("alice", 6_000 * DOT), ("bob", 4_000 * DOT)],
            clock.now(),
        )
        .await;
        let era = Arc::new(AtomicU32::new(1));
        // One step: an engine cycle, then the next era: the era that ends
        // pays 50 DOT for the validator's points, the new era exposes what
        // the stash has bonded.
        let step = || {
            let (engine, node, clock, era, adapter, stash, v0) = (
                engine.clone(),
                node.clone(),
                clock.clone(),
                era.clone(),
                adapter.clone(),
                stash.clone(),
                vals[0].clone(),
            );
            async move {
                let head = node.head_number().await.unwrap();
                let r = engine.cycle().await.unwrap();
                if r.ops
                    .iter()
                    .any(|o| o.event.as_str().ends_with("broadcast"))
                {
                    node.settle(head).await.unwrap();
                }
                let e = era.fetch_add(1, Ordering::SeqCst);
                let pool = adapter
                    .pool_state(PoolStateRequest::default())
                    .await
                    .unwrap();
                let bonded: u128 = pool
                    .delegations
                    .iter()
                    .map(|d| d.active.base() + d.activating.base())
                    .sum();
                let start = t0 + i64::from(e) * ERA_SECS;
                node.next_era(
                    e,
                    u64::try_from(start).unwrap() * 1000,
                    &v0,
                    &stash,
                    bonded,
                    50 * DOT,
                )
                .await
                .unwrap();
                clock.set(Timestamp::from_unix(start));
                r
            }
        };
        // The first cycle bonds and nominates the excess over the buffer.
        let r = step().await;
        assert!(r.ops.iter().any(|o| o.event == "broadcast"), "{:?}", r.ops);
        for _ in 0..4 {
            step().await;
        }
        let ops = store
            .journal_list(ChainId::Polkadot, None, 100)
            .await
            .unwrap();
        for kind in ["delegate", "claim_rewards"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        softstake_tests::assert_distributions_verify(&store, "DOT", 2).await;

        // Bob withdraws everything: more than the buffer. The engine
        // unbonds, waits the bonding duration, withdraws, and grants it.
        let steps = softstake_tests::queue_withdrawal_until_granted(
            &store,
            &engine,
            &clock,
            "bob",
            Amount::from_base(4_000 * DOT),
            step,
        )
        .await;
        assert!(steps >= 2, "the bonding duration is 2 eras, took {steps}");
        let ops = store
            .journal_list(ChainId::Polkadot, None, 200)
            .await
            .unwrap();
        for kind in ["undelegate", "withdraw_unbonded"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");

        // Issue 31: the relay chain reports an offence of the validator (1%);
        // staking-async slashes its nominators one era later; the adapter
        // reports the stash's loss once, and the books book it.
        let before = store
            .books(ChainId::Polkadot, &Default::default(), clock.now())
            .await
            .unwrap();
        assert!(before.owed.losses.is_zero());
        node.relay_offence(&vals[0], 10_000_000).await.unwrap();
        let mut lost = 0u128;
        for _ in 0..4 {
            let r = step().await;
            lost += r
                .pool
                .as_ref()
                .map(|p| p.losses.iter().map(|l| l.amount.base()).sum::<u128>())
                .unwrap_or(0);
            if lost > 0 {
                assert_eq!(r.books.as_ref().unwrap().booked.losses.base(), lost);
                break;
            }
        }
        assert!(lost > 0, "no loss reported");
        step().await;
        let after = store
            .books(ChainId::Polkadot, &Default::default(), clock.now())
            .await
            .unwrap();
        assert_eq!(after.owed.losses.base(), lost, "booked once");
        // Issue 30: every change in what the stash holds is explained to the
        // planck by the flows the adapter proves (fees), the rewards it
        // evidences and the loss it reports; no incident, no residual.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Polkadot, 8).await;
    })
    .await;
}
