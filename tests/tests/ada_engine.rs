//! The engine's loop with the real Cardano adapter against the
//! protocol-faithful test node over HTTP, on SQLite and PostgreSQL: the
//! planner delegates the whole balance (stake key registration + pool
//! delegation), housekeeping delegates the vote and withdraws rewards,
//! rewards are distributed per epoch, and a withdrawal is granted at once
//! because delegated ada stays spendable.
#![allow(clippy::unwrap_used)]

use softstake_chain_ada::keys::LocalKey;
use softstake_chain_ada::testnode::{TestNode, TestNodeConfig, pool_bech32};
use softstake_chain_ada::tx;
use softstake_chain_ada::{AdaAdapter, AdaSettings};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::time::Duration;

const ADA: u128 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_delegates_earns_withdraws_rewards_and_distributes_on_the_cardano_test_node() {
    on_both(|store| async move {
        let node = TestNode::new(TestNodeConfig {
            min_fee_a: 44,
            min_fee_b: 155_381,
            key_deposit: 2_000_000,
            epoch_length: 100,
            system_start: 1_700_000_000,
            reward_bps: 20,
            network_id: 0,
        });
        let pool = [0x33; 28];
        node.add_pool(pool);
        let payment = Arc::new(LocalKey::from_seed([0x41; 32]));
        let stake = Arc::new(LocalKey::from_seed([0x42; 32]));
        node.fund(
            &tx::base_address(0, &payment.key_hash(), &stake.key_hash()),
            1_005_000_000,
        );
        let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> = Arc::new(
            AdaAdapter::new(
                AdaSettings {
                    endpoints: vec![format!("http://{bound}")],
                    project_id: None,
                    network_id: 0,
                    network_magic: 42,
                    drep: "always_abstain".into(),
                    min_withdrawal: 1_000_000,
                    ttl_slots: 300,
                    confirmations: 15,
                    min_change: 1_000_000,
                    request_timeout: Duration::from_secs(5),
                },
                payment,
                stake,
            )
            .unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_unix(node.now()));
        let engine = softstake_tests::adapter_engine(
            &store,
            adapter,
            &[(&pool_bech32(&pool), 1)],
            ADA,
            50,
            &clock,
        );
        softstake_tests::opening_balances(
            &store,
            "ADA",
            &[("alice", 600 * ADA), ("bob", 400 * ADA)],
            clock.now(),
        )
        .await;
        let step = || {
            let (engine, node, clock) = (engine.clone(), node.clone(), clock.clone());
            async move {
                let r = engine.cycle().await.unwrap();
                node.advance_slots(50);
                clock.set(Timestamp::from_unix(node.now()));
                r
            }
        };
        for _ in 0..12 {
            step().await;
        }
        let ops = store
            .journal_list(ChainId::Cardano, None, 100)
            .await
            .unwrap();
        for kind in ["delegate", "setup", "claim_rewards"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        softstake_tests::assert_distributions_verify(&store, "ADA", 2).await;
        // The adapter proves every transfer and fee: through the deposit,
        // the vote delegation, the epochs' rewards and their withdrawal,
        // every snapshot's change in holdings is explained to the lovelace.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cardano, 12).await;
        // Delegated ada is spendable: bob's withdrawal is granted at once.
        let liq = engine.liquidity().await.unwrap();
        let d = store
            .request_withdrawal(
                &softstake_store::WithdrawalRequest {
                    request_id: "w1".into(),
                    user_id: "bob".into(),
                    chain: ChainId::Cardano,
                    amount: Amount::from_base(400 * ADA),
                    requested_at: None,
                },
                &liq,
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(d.status, "granted", "{d:?}");
    })
    .await;
}
