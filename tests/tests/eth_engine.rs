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

use serde_json::{Value, json};
use softstake_chain_eth::deposit::DepositEntry;
use softstake_chain_eth::keys::LocalKey;
use softstake_chain_eth::testnode::{Anvil, BeaconServer};
use softstake_chain_eth::{EthAdapter, EthSettings};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::time::Duration;

const ETH: u128 = 1_000_000_000_000_000_000;
const GWEI: u64 = 1_000_000_000;
const REQUESTS: &str = "0x00000961Ef480Eb55e80D19ad83579A64c007002";
const SYSTEM: &str = "0xfffffffffffffffffffffffffffffffffffffffe";

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/vectors/eth/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// The consensus layer's side of one step.
async fn consensus_step(
    anvil: &Anvil,
    beacon: &BeaconServer,
    deposit_contract: &str,
    custody: &str,
) {
    // Deposits in the contract's logs that the beacon chain has not seen.
    let logs = anvil
        .call(
            "eth_getLogs",
            json!([{"address": deposit_contract, "fromBlock": "0x0"}]),
        )
        .await
        .unwrap();
    let known: Vec<String> = beacon
        .validators()
        .iter()
        .map(|v| v.pubkey.clone())
        .collect();
    for l in logs.as_array().unwrap() {
        let data = hex::decode(&l["data"].as_str().unwrap()[2..]).unwrap();
        let word = |i: usize| {
            usize::try_from(u64::from_be_bytes(
                data[i * 32 + 24..i * 32 + 32].try_into().unwrap(),
            ))
            .unwrap()
        };
        let field = |i: usize| {
            let off = word(i);
            let len = usize::try_from(u64::from_be_bytes(
                data[off + 24..off + 32].try_into().unwrap(),
            ))
            .unwrap();
            data[off + 32..off + 32 + len].to_vec()
        };
        let pubkey = format!("0x{}", hex::encode(field(0)));
        if known.contains(&pubkey) {
            continue;
        }
        let wc = format!("0x{}", hex::encode(field(1)));
        let amount = u64::from_le_bytes(field(2).try_into().unwrap());
        beacon.add_deposit(&pubkey, &wc, amount);
    }
    // Exit requests the system call dequeues.
    anvil
        .call("anvil_impersonateAccount", json!([SYSTEM]))
        .await
        .unwrap();
    anvil.set_balance(SYSTEM, ETH).await.unwrap();
    let out = anvil
        .call(
            "eth_call",
            json!([{"from": SYSTEM, "to": REQUESTS, "data": "0x"}, "latest"]),
        )
        .await
        .unwrap();
    let out = hex::decode(&out.as_str().unwrap()[2..]).unwrap();
    if !out.is_empty() {
        let h = anvil
            .call(
                "eth_sendTransaction",
                json!([{"from": SYSTEM, "to": REQUESTS, "data": "0x", "gas": "0x100000"}]),
            )
            .await
            .unwrap();
        anvil.receipt(&h).await.unwrap();
    }
    let exits: Vec<String> = out
        .chunks(76)
        .map(|r| format!("0x{}", hex::encode(&r[20..68])))
        .collect();
    let mut swept: u64 = 0;
    beacon.advance_slots(32);
    let head_epoch = beacon.head() / 32;
    beacon.update(|vs| {
        for v in vs.iter_mut() {
            match v.status.as_str() {
                "pending_queued" => {
                    v.status = "active_ongoing".into();
                    v.activation_epoch = head_epoch;
                }
                "active_ongoing" if exits.contains(&v.pubkey) => {
                    v.status = "active_exiting".into();
                    v.exit_epoch = head_epoch + 1;
                    v.withdrawable_epoch = head_epoch + 2;
                }
                "active_ongoing" => v.balance += 2_000_000,
                "active_exiting" => v.status = "withdrawal_possible".into(),
                _ => {}
            }
        }
    });
    // The sweep: exited balances in full, 0x01 balances above 32 ETH.
    for v in beacon.validators() {
        let amount = match v.status.as_str() {
            "withdrawal_possible" => v.balance,
            "active_ongoing" if v.balance > 32 * GWEI => v.balance - 32 * GWEI,
            _ => 0,
        };
        if amount > 0 {
            beacon.withdraw(v.index, custody, amount);
            swept += amount;
        }
        if v.status == "withdrawal_possible" {
            beacon.update(|vs| {
                if let Some(x) = vs.iter_mut().find(|x| x.index == v.index) {
                    x.status = "withdrawal_done".into();
                }
            });
        }
    }
    if swept > 0 {
        let bal = anvil.balance(custody).await.unwrap();
        anvil
            .set_balance(custody, bal + u128::from(swept) * 1_000_000_000)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_deposits_earns_distributes_and_exits_for_a_queued_withdrawal() {
    on_both(|store| async move {
        let v = vectors();
        let entries: Vec<DepositEntry> = serde_json::from_value(v["deposit_data"].clone()).unwrap();
        let anvil = Anvil::start().await.unwrap();
        let deposit_contract = anvil
            .deploy(v["deposit_contract_bytecode"].as_str().unwrap())
            .await
            .unwrap();
        anvil
            .set_code(REQUESTS, v["withdrawal_request_runtime"].as_str().unwrap())
            .await
            .unwrap();
        let key = Arc::new(LocalKey::parse(v["custody_key_hex"].as_str().unwrap(), None).unwrap());
        let custody = key.address().to_checksum(None);
        // 100 ETH owed to users, plus a little for gas.
        anvil
            .set_balance(&custody, 100 * ETH + ETH / 10)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Two 0x01 validators' deposit data (32 ETH each).
        std::fs::write(
            dir.path().join("deposit_data-1.json"),
            serde_json::to_string(&[entries[0].clone(), entries[2].clone()]).unwrap(),
        )
        .unwrap();
        let beacon = BeaconServer::new(1_700_000_000, 12, 32, "0x10000038");
        let bound = beacon.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> = Arc::new(
            EthAdapter::new(
                EthSettings {
                    endpoints: vec![anvil.url.clone()],
                    beacon_endpoints: vec![format!("http://{bound}")],
                    chain_id: 31337,
                    fork_version: [0x10, 0, 0, 0x38],
                    deposit_contract: deposit_contract.clone(),
                    withdrawal_request_contract: REQUESTS.into(),
                    deposit_data_dir: dir.path().to_path_buf(),
                    operator: "op-a".into(),
                    fee_recipient: None,
                    max_fee_per_gas: 500_000_000_000,
                    max_gas: 1_000_000,
                    deposit_log_from_block: 0,
                    confirmations: 1,
                    sweep_delay_secs: 3_600,
                    max_scan_slots: 1_000,
                    max_scan_blocks: 1_000,
                    request_timeout: Duration::from_secs(10),
                },
                key,
            )
            .unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
        let engine =
            softstake_tests::adapter_engine(&store, adapter, &[("op-a", 1)], ETH, 384, &clock);
        softstake_tests::opening_balances(
            &store,
            "ETH",
            &[("alice", 60 * ETH), ("bob", 40 * ETH)],
            Timestamp::from_unix(1_700_000_000),
        )
        .await;
        let step = || {
            let (engine, anvil, beacon, clock) = (engine.clone(), &anvil, &beacon, clock.clone());
            let (dc, custody) = (deposit_contract.clone(), custody.clone());
            async move {
                let r = engine.cycle().await.unwrap();
                consensus_step(anvil, beacon, &dc, &custody).await;
                clock.set(Timestamp::from_unix(
                    i64::try_from(beacon.slot_time(beacon.head())).unwrap(),
                ));
                r
            }
        };
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
            &engine,
            &clock,
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
    })
    .await;
}
