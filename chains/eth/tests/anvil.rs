//! The Ethereum adapter on a real execution node (anvil from npm, Prague
//! rules) running the deposit contract written from the consensus spec and
//! an EIP-7002 request contract at the EIP's address, with the Beacon API
//! test server for the consensus layer: verified deposits land with the
//! right DepositEvent and deposit root, a pubkey is never deposited twice,
//! bad entries are refused before signing, exits and partial withdrawals
//! are queued in the request contract with its fee, consensus and
//! execution rewards are computed from balances, skims and blocks, and a
//! transaction whose nonce was taken is expired by the chain.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use softstake_chain_eth::deposit::DepositEntry;
use softstake_chain_eth::keys::LocalKey;
use softstake_chain_eth::ssz::hash2;
use softstake_chain_eth::testnode::{Anvil, BeaconServer, FAR_FUTURE, REQUESTS, vectors};
use softstake_chain_eth::tx::{self, Action, TxParams};
use softstake_chain_eth::{EthAdapter, EthSettings};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, FlowKind, FlowsRequest,
    LookupRequest, OperationKind, PoolStateRequest, RewardKind, RewardsRequest, SignedOperation,
    TxStatus,
};
use std::sync::Arc;
use std::time::Duration;

const ETH: u128 = 1_000_000_000_000_000_000;
const GWEI: u64 = 1_000_000_000;

/// The deposit tree root after `leaves` (consensus spec: depth 32, count
/// mixed in).
fn deposit_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut zero = vec![[0u8; 32]];
    for h in 0..32 {
        zero.push(hash2(&zero[h], &zero[h]));
    }
    let mut layer: Vec<[u8; 32]> = leaves.to_vec();
    for z in zero.iter().take(32) {
        if layer.len() % 2 == 1 {
            layer.push(*z);
        }
        layer = layer.chunks(2).map(|p| hash2(&p[0], &p[1])).collect();
    }
    let mut count = [0u8; 32];
    count[..8].copy_from_slice(&(leaves.len() as u64).to_le_bytes());
    hash2(&layer[0], &count)
}

struct World {
    settings: EthSettings,
    anvil: Anvil,
    beacon: BeaconServer,
    adapter: EthAdapter,
    entries: Vec<DepositEntry>,
    deposit_contract: String,
    custody: String,
    _dir: tempfile::TempDir,
}

async fn world(entries: Vec<DepositEntry>) -> World {
    let v = vectors();
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
    anvil.set_balance(&custody, 200 * ETH).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deposit_data-1700000000.json"),
        serde_json::to_string(&entries).unwrap(),
    )
    .unwrap();
    let beacon = BeaconServer::new(1_700_000_000, 12, 32, "0x10000038");
    beacon.follow_execution(&anvil.url);
    let bound = beacon.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // A dead endpoint first: the adapter falls back to anvil.
    let settings = softstake_chain_eth::testnode::settings(
        vec!["http://127.0.0.1:9".into(), anvil.url.clone()],
        bound,
        &deposit_contract,
        dir.path().to_path_buf(),
        86_400,
    );
    let adapter = EthAdapter::new(settings.clone(), key).unwrap();
    World {
        settings,
        anvil,
        beacon,
        adapter,
        entries,
        deposit_contract,
        custody,
        _dir: dir,
    }
}

/// A JSON-RPC call whose answer is a 0x-hex number.
async fn hex_number(anvil: &Anvil, method: &str, params: Value) -> u64 {
    let v = anvil.call(method, params).await.unwrap();
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

async fn flows(w: &World, cursor: Option<String>) -> softstake_core::adapter::FlowsResponse {
    w.adapter
        .flows_since(FlowsRequest { cursor })
        .await
        .unwrap()
}

async fn rewards(w: &World, cursor: Option<String>) -> softstake_core::adapter::RewardsResponse {
    w.adapter
        .rewards_since(RewardsRequest { cursor })
        .await
        .unwrap()
}

async fn pool(w: &World) -> softstake_core::adapter::PoolStateResponse {
    w.adapter
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap()
}

fn all_entries() -> Vec<DepositEntry> {
    serde_json::from_value(vectors()["deposit_data"].clone()).unwrap()
}

async fn build(w: &World, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
    w.adapter
        .build_and_sign(BuildRequest {
            operation_id: "t".into(),
            kind,
        })
        .await
}

async fn send_op(w: &World, s: SignedOperation) {
    let r = w
        .adapter
        .broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    assert_eq!(r.tx_id, s.tx_id);
    let mut last = None;
    for _ in 0..100 {
        let l = w
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
        last = Some(l);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never confirmed: {last:?}");
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

fn root_of(e: &DepositEntry) -> [u8; 32] {
    hex::decode(&e.deposit_data_root)
        .unwrap()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_exits_and_rewards_on_anvil_and_the_beacon_api() {
    let entries = all_entries();
    let w = world(vec![entries[0].clone(), entries[1].clone()]).await;
    let p = pool(&w).await;
    assert_eq!(p.liquid.base(), 200 * ETH);
    assert_eq!(p.limits.stake_chunk, Some(Amount::from_base(32 * ETH)));

    // A verified 32 ETH deposit: the contract's event and root agree.
    send_op(&w, build(&w, delegate(32 * ETH)).await.unwrap()).await;
    let logs = w
        .anvil
        .call(
            "eth_getLogs",
            json!([{"address": w.deposit_contract, "fromBlock": "0x0"}]),
        )
        .await
        .unwrap();
    assert_eq!(logs.as_array().unwrap().len(), 1);
    let data = logs[0]["data"].as_str().unwrap();
    assert!(
        data.contains(&w.entries[0].pubkey),
        "the event carries the pubkey"
    );
    let root = w
        .anvil
        .call(
            "eth_call",
            json!([{"to": w.deposit_contract, "data": "0xc5f2892f"}, "latest"]),
        )
        .await
        .unwrap();
    assert_eq!(
        root.as_str().unwrap(),
        format!("0x{}", hex::encode(deposit_root(&[root_of(&w.entries[0])])))
    );
    // The same pubkey is never deposited twice: no unused 32 ETH entry.
    let e = build(&w, delegate(32 * ETH)).await.unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("no unused deposit data")),
        "{e:?}"
    );
    // The 64 ETH 0x02 entry.
    send_op(&w, build(&w, delegate(64 * ETH)).await.unwrap()).await;
    let root = w
        .anvil
        .call(
            "eth_call",
            json!([{"to": w.deposit_contract, "data": "0xc5f2892f"}, "latest"]),
        )
        .await
        .unwrap();
    assert_eq!(
        root.as_str().unwrap(),
        format!(
            "0x{}",
            hex::encode(deposit_root(&[
                root_of(&w.entries[0]),
                root_of(&w.entries[1])
            ]))
        )
    );
    let p = pool(&w).await;
    assert_eq!(
        p.delegations[0].activating.base(),
        96 * ETH,
        "sent, not yet seen by the beacon chain"
    );
    let spent = 200 * ETH - p.liquid.base();
    assert!(spent > 96 * ETH && spent < 96 * ETH + ETH / 100, "{spent}");

    // The consensus layer processes and activates them.
    let v0 = w.beacon.add_deposit(
        &format!("0x{}", w.entries[0].pubkey),
        &format!("0x{}", w.entries[0].withdrawal_credentials),
        32 * GWEI,
    );
    let v1 = w.beacon.add_deposit(
        &format!("0x{}", w.entries[1].pubkey),
        &format!("0x{}", w.entries[1].withdrawal_credentials),
        64 * GWEI,
    );
    w.beacon.advance_slots(32);
    w.beacon.update(|vs| {
        for v in vs.iter_mut() {
            v.status = "active_ongoing".into();
            v.activation_epoch = 1;
        }
    });
    let p = pool(&w).await;
    assert_eq!(p.delegations[0].active.base(), 96 * ETH);
    assert!(p.delegations[0].activating.is_zero());

    // Rewards: the first call sets the baseline.
    let r = rewards(&w, None).await;
    assert!(r.rewards.is_empty(), "{:?}", r.rewards);
    // An epoch of attestation rewards; v0 (0x01) is skimmed by the sweep.
    w.beacon.advance_slots(16);
    w.beacon.update(|vs| {
        vs[0].balance += 10_000_000;
        vs[1].balance += 20_000_000;
    });
    w.beacon.advance_slots(8);
    w.beacon.withdraw(v0, &w.custody, 6_000_000);
    w.beacon.advance_slots(8);
    // Execution rewards: a priority fee in a block with our fee recipient
    // and a builder's payment (MEV-boost: the builder is the block's fee
    // recipient and pays ours in its last transaction). A stranger's
    // transfer into custody in a block we received is not income.
    w.anvil.set_coinbase(&w.custody).await.unwrap();
    let dev = w.anvil.dev_account().await.unwrap();
    // Ten minutes pass between the proposals (anvil's clock).
    w.anvil
        .call("evm_increaseTime", json!([600]))
        .await
        .unwrap();
    let tip_tx = w
        .anvil
        .call(
            "eth_sendTransaction",
            json!([{"from": dev, "to": dev, "value": "0x1", "maxPriorityFeePerGas": "0x77359400", "maxFeePerGas": "0x174876e800"}]),
        )
        .await
        .unwrap();
    let stranger = w
        .anvil
        .call(
            "eth_sendTransaction",
            json!([{"from": dev, "to": w.custody, "value": format!("0x{:x}", ETH / 100), "maxPriorityFeePerGas": "0x0", "maxFeePerGas": "0x174876e800"}]),
        )
        .await
        .unwrap();
    // Anvil mines in the background: both land with our fee recipient
    // before the builder takes over.
    w.anvil.receipt(&tip_tx).await.unwrap();
    w.anvil.receipt(&stranger).await.unwrap();
    let mev = ETH / 20;
    w.anvil.set_coinbase(&dev).await.unwrap();
    w.anvil
        .call("evm_increaseTime", json!([600]))
        .await
        .unwrap();
    w.anvil
        .call(
            "eth_sendTransaction",
            json!([{"from": dev, "to": w.custody, "value": format!("0x{mev:x}"), "maxPriorityFeePerGas": "0x0", "maxFeePerGas": "0x174876e800"}]),
        )
        .await
        .unwrap();
    let receipt = w.anvil.receipt(&tip_tx).await.unwrap();
    let gas_used = u128::from_str_radix(
        receipt["gasUsed"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let r = rewards(&w, r.next_cursor.clone()).await;
    let cl: Vec<_> = r
        .rewards
        .iter()
        .filter(|x| x.kind == RewardKind::Consensus)
        .collect();
    let el: Vec<_> = r
        .rewards
        .iter()
        .filter(|x| x.kind == RewardKind::Execution)
        .collect();
    assert_eq!(cl.len(), 2, "{:?}", r.rewards);
    let by = |idx: u64| {
        cl.iter()
            .find(|x| x.key.starts_with(&format!("cl:{idx}:")))
            .unwrap()
            .amount
            .base()
    };
    // Balance growth plus the skim, not growth minus the skim.
    assert_eq!(by(v0), u128::from(10_000_000u64) * 1_000_000_000);
    assert_eq!(by(v1), u128::from(20_000_000u64) * 1_000_000_000);
    let el_total: u128 = el.iter().map(|x| x.amount.base()).sum();
    assert_eq!(el_total, gas_used * 2_000_000_000 + mev, "{el:?}");
    // Each execution reward is shared over the time since the previous one
    // (not its 12-second slot): the periods follow one another.
    assert_eq!(el.len(), 2, "{el:?}");
    assert_eq!(el[1].period.start(), el[0].period.end());
    for x in &el {
        assert!(
            x.period.end().unix() - x.period.start().unix() >= 600,
            "{x:?}"
        );
    }
    // A penalty, then a partial recovery: nothing until the high-water
    // mark is passed, then only the excess.
    w.beacon.update(|vs| vs[0].balance -= 1_000_000);
    w.beacon.advance_slots(32);
    let r2 = rewards(&w, r.next_cursor.clone()).await;
    assert!(r2.rewards.is_empty(), "{:?}", r2.rewards);
    w.beacon.update(|vs| vs[0].balance += 3_000_000);
    w.beacon.advance_slots(32);
    let r3 = rewards(&w, r2.next_cursor.clone()).await;
    assert_eq!(r3.rewards.len(), 1);
    assert_eq!(r3.rewards[0].amount.base(), 2_000_000u128 * 1_000_000_000);

    // Undelegate 32 ETH: a partial withdrawal from the 0x02 validator
    // (it keeps 32 ETH), paying the contract's fee.
    let before = w.anvil.balance(REQUESTS).await.unwrap();
    send_op(&w, build(&w, undelegate(32 * ETH)).await.unwrap()).await;
    assert_eq!(
        w.anvil.balance(REQUESTS).await.unwrap(),
        before + 1,
        "fee paid (1 wei with no excess)"
    );
    // Another 32 ETH: the 0x01 validator exits in full.
    send_op(&w, build(&w, undelegate(32 * ETH)).await.unwrap()).await;
    // The queue holds both, as the system call dequeues them:
    // source (20) ++ pubkey (48) ++ amount (8, big endian).
    let out = w
        .anvil
        .call(
            "eth_call",
            json!([{"from": "0xfffffffffffffffffffffffffffffffffffffffe", "to": REQUESTS, "data": "0x"}, "latest"]),
        )
        .await
        .unwrap();
    let out = hex::decode(out.as_str().unwrap().trim_start_matches("0x")).unwrap();
    // The fallback returns the raw records (like the EIP's contract): 2 x 76 bytes.
    assert_eq!(out.len(), 152);
    let body = &out[..];
    let custody = w.custody.to_lowercase();
    assert_eq!(hex::encode(&body[..20]), custody[2..]);
    assert_eq!(hex::encode(&body[20..68]), w.entries[1].pubkey);
    assert_eq!(
        u64::from_be_bytes(body[68..76].try_into().unwrap()),
        32 * GWEI
    );
    assert_eq!(hex::encode(&body[96..144]), w.entries[0].pubkey);
    assert_eq!(
        u64::from_be_bytes(body[144..152].try_into().unwrap()),
        0,
        "full exit"
    );
    // Before the beacon chain shows the exit, the requested full exit
    // already counts as unbonding (not active), so the planner does not
    // ask for the same liquidity again; the partial request's validator
    // stays active.
    let p = pool(&w).await;
    assert_eq!(p.unbonding.len(), 1, "{p:?}");
    assert!(
        !p.delegations[0].active.is_zero(),
        "the 0x02 validator still earns"
    );
    // The beacon chain starts the exit: the pool shows it unbonding.
    w.beacon.update(|vs| {
        let v = vs.iter_mut().find(|v| v.index == v0).unwrap();
        v.status = "active_exiting".into();
        v.exit_epoch = 10;
        v.withdrawable_epoch = 266;
    });
    let p = pool(&w).await;
    assert_eq!(p.unbonding.len(), 1);
    assert_eq!(
        p.unbonding[0].completes_at.unix(),
        1_700_000_000 + 266 * 32 * 12 + 86_400
    );
    let _ = (v1, FAR_FUTURE);

    // Nothing to withdraw or claim on Ethereum: refused with the reason.
    for k in [
        OperationKind::WithdrawUnbonded {
            amount: Amount::from_base(1),
        },
        OperationKind::ClaimRewards { validators: vec![] },
    ] {
        assert!(matches!(
            build(&w, k).await,
            Err(AdapterError::InvalidRequest(_))
        ));
    }

    // Expiry: bytes signed for a nonce another transaction then used.
    let nonce = hex_number(
        &w.anvil,
        "eth_getTransactionCount",
        json!([w.custody, "latest"]),
    )
    .await;
    let key = LocalKey::parse(vectors()["custody_key_hex"].as_str().unwrap(), None).unwrap();
    let params = || TxParams {
        chain_id: 31337,
        nonce,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        gas_limit: 200_000,
        deposit_contract: w.deposit_contract.clone(),
        withdrawal_request_contract: REQUESTS.into(),
    };
    let action = |fee: u64| Action::WithdrawalRequest {
        pubkey: format!("0x{}", w.entries[1].pubkey),
        amount_gwei: GWEI,
        fee_wei: fee,
    };
    let lost = tx::build(&action(5), &key, &params()).unwrap();
    let other = tx::build(&action(6), &key, &params()).unwrap();
    let look = |s: &tx::Signed| {
        w.adapter.lookup(LookupRequest {
            tx_id: s.hash.clone(),
            signed_bytes: Some(s.bytes.clone()),
        })
    };
    assert_eq!(look(&lost).await.unwrap().status, TxStatus::NotFound);
    w.adapter
        .broadcast(BroadcastRequest {
            signed: SignedOperation {
                bytes: other.bytes.clone(),
                tx_id: other.hash.clone(),
                valid_until: None,
            },
        })
        .await
        .unwrap();
    // anvil mines the other one in the background, right after it answers
    // the send: until then the lost bytes are still NotFound, never
    // anything else; once it is mined they are Expired.
    let mut status = look(&lost).await.unwrap().status;
    for _ in 0..100 {
        if status != TxStatus::NotFound {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = look(&lost).await.unwrap().status;
    }
    assert_eq!(status, TxStatus::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deposit_entry_is_refused_with_its_reason_and_nothing_is_sent() {
    let mut e = all_entries().remove(0);
    let mut sig = hex::decode(&e.signature).unwrap();
    sig[10] ^= 0x40;
    e.signature = hex::encode(&sig);
    let w = world(vec![e]).await;
    let nonce = || async {
        w.anvil
            .call("eth_getTransactionCount", json!([w.custody, "latest"]))
            .await
            .unwrap()
    };
    let n0 = nonce().await;
    let err = build(&w, delegate(32 * ETH)).await.unwrap_err();
    let AdapterError::InvalidRequest(m) = &err else {
        panic!("{err:?}")
    };
    assert!(
        m.contains("deposit") && (m.contains("root") || m.contains("signature")),
        "{m}"
    );
    assert_eq!(nonce().await, n0);
    assert_eq!(w.anvil.balance(&w.custody).await.unwrap(), 200 * ETH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_on_another_chain_is_refused() {
    let w = world(all_entries()).await;
    let v = vectors();
    let a = EthAdapter::new(
        EthSettings {
            endpoints: vec![w.anvil.url.clone()],
            beacon_endpoints: vec!["http://127.0.0.1:9".into()],
            chain_id: 1,
            fork_version: [0, 0, 0, 0],
            deposit_contract: w.deposit_contract.clone(),
            withdrawal_request_contract: REQUESTS.into(),
            deposit_data_dir: std::env::temp_dir(),
            operator: "op-a".into(),
            fee_recipient: None,
            max_fee_per_gas: 1,
            max_gas: 1,
            deposit_log_from_block: 0,
            confirmations: 1,
            sweep_delay_secs: 0,
            max_scan_slots: 1,
            max_scan_blocks: 1,
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(LocalKey::parse(v["custody_key_hex"].as_str().unwrap(), None).unwrap()),
    )
    .unwrap();
    // anvil serves chain 31337, not 1: fatal, not retried.
    let e = a.request_fee().await.unwrap_err();
    assert!(matches!(e, AdapterError::WrongNetwork { .. }), "{e:?}");
    assert!(!e.is_retryable());
}

/// Sends `tx` from an unlocked account; its hash, once mined.
async fn send_tx(anvil: &Anvil, tx: Value) -> String {
    let h = anvil
        .call("eth_sendTransaction", json!([tx]))
        .await
        .unwrap();
    anvil.receipt(&h).await.unwrap();
    h.as_str().unwrap().to_lowercase()
}

fn sum(flows: &[softstake_core::adapter::PoolFlow], kind: FlowKind) -> u128 {
    flows
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.amount.base())
        .sum()
}

/// The pool's books on a real node: every wei that moved between two
/// observing pool reads is a flow (a top-up, a contract wallet's internal
/// transfer, a payout, gas of our own and of a reverted transaction) or
/// evidenced income (a builder's payment), and a deposit only moves ether
/// from liquid to activating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wei_between_two_pool_reads_is_a_flow_or_evidenced_income() {
    let entries = all_entries();
    let w = world(vec![entries[0].clone()]).await;
    let dev = w.anvil.dev_account().await.unwrap();
    let custody = w.custody.to_lowercase();
    let opening = w
        .adapter
        .pool_state(PoolStateRequest::observing())
        .await
        .unwrap()
        .holdings()
        .unwrap();
    let first = flows(&w, None).await;
    assert!(first.flows.is_empty() && first.complete, "{first:?}");
    let baseline = rewards(&w, None).await;

    // A top-up from the exchange's wallet.
    let top_up = send_tx(
        &w.anvil,
        json!({"from": dev, "to": w.custody, "value": format!("0x{:x}", 5 * ETH)}),
    )
    .await;
    // A contract wallet that forwards what it receives to custody (an
    // internal transfer: only the call trace shows it).
    // PUSH1 0 x4, CALLVALUE, PUSH20 custody, GAS, CALL, STOP.
    let wallet = "0x000000000000000000000000000000000000abcd";
    w.anvil
        .set_code(
            wallet,
            &format!("600060006000600034 73{}5af100", &custody[2..]).replace(' ', ""),
        )
        .await
        .unwrap();
    let forwarded = send_tx(
        &w.anvil,
        json!({"from": dev, "to": wallet, "value": format!("0x{:x}", 3 * ETH), "gas": "0x30000"}),
    )
    .await;
    // A stake deposit by the adapter: gas is a fee, the 32 ETH stays ours.
    let s = build(&w, delegate(32 * ETH)).await.unwrap();
    let deposit = s.tx_id.to_lowercase();
    send_op(&w, s).await;
    // A payout signed with the custody key, and one that reverts (gas only).
    w.anvil
        .call("anvil_impersonateAccount", json!([w.custody]))
        .await
        .unwrap();
    let payout = send_tx(
        &w.anvil,
        json!({"from": w.custody, "to": dev, "value": format!("0x{:x}", 2 * ETH)}),
    )
    .await;
    w.anvil
        .set_code("0x000000000000000000000000000000000000dead", "fe")
        .await
        .unwrap();
    let reverted = send_tx(&w.anvil, json!({"from": w.custody, "to": "0x000000000000000000000000000000000000dead", "value": format!("0x{:x}", ETH), "gas": "0x10000"})).await;
    // A builder's payment: income, evidenced by the rewards, not a flow.
    let builder = "0x00000000000000000000000000000000000b1d00";
    w.anvil.set_balance(builder, ETH).await.unwrap();
    w.anvil
        .call("anvil_impersonateAccount", json!([builder]))
        .await
        .unwrap();
    w.anvil.set_coinbase(builder).await.unwrap();
    let mev = ETH / 50;
    send_tx(&w.anvil, json!({"from": builder, "to": w.custody, "value": format!("0x{mev:x}"), "maxPriorityFeePerGas": "0x0"})).await;

    let state = w
        .adapter
        .pool_state(PoolStateRequest::observing())
        .await
        .unwrap();
    assert_eq!(
        state.delegations[0].activating.base(),
        32 * ETH,
        "the deposit is in flight, still ours"
    );
    let closing = state.holdings().unwrap();
    let f = flows(&w, first.next_cursor.clone()).await;
    assert!(f.complete, "anvil traces every block");
    let by_key = |k: &str| {
        f.flows
            .iter()
            .find(|x| x.key == k)
            .unwrap_or_else(|| panic!("no {k} in {:?}", f.flows))
    };
    assert_eq!(by_key(&format!("in:{top_up}:")).amount.base(), 5 * ETH);
    assert_eq!(
        by_key(&format!("in:{top_up}:")).counterparty.as_deref(),
        Some(dev.to_lowercase().as_str())
    );
    let fwd = by_key(&format!("in:{forwarded}:0"));
    assert_eq!(
        (fwd.amount.base(), fwd.counterparty.as_deref()),
        (3 * ETH, Some(wallet))
    );
    assert_eq!(by_key(&format!("out:{payout}:")).amount.base(), 2 * ETH);
    for h in [&deposit, &payout, &reverted] {
        assert!(by_key(&format!("fee:{h}")).amount.base() > 0);
    }
    assert_eq!(f.flows.len(), 6, "{:?}", f.flows);
    let earned = rewards(&w, baseline.next_cursor).await;
    let income: u128 = earned
        .rewards
        .iter()
        .filter(|r| r.kind == RewardKind::Execution)
        .map(|r| r.amount.base())
        .sum();
    assert_eq!(income, mev, "{:?}", earned.rewards);
    // The books balance to the wei on the node's own numbers.
    let explained = opening.booked().unwrap().base() + sum(&f.flows, FlowKind::TransferIn) + income
        - sum(&f.flows, FlowKind::TransferOut)
        - sum(&f.flows, FlowKind::Fee);
    assert_eq!(closing.booked().unwrap().base(), explained);
    // A replay from the same cursor reports the same flows (the books key
    // them, so they are booked once); the next call has nothing new.
    let again = flows(&w, first.next_cursor.clone()).await;
    assert_eq!(again.flows, f.flows);
    let next = flows(&w, f.next_cursor.clone()).await;
    assert!(next.flows.is_empty(), "{:?}", next.flows);
}

/// A deposit in flight is read from the chain, not remembered: after a
/// restart (a new adapter) the consensus layer's `pending_deposits` queue
/// still shows it as activating, and once it becomes a validator it is
/// counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_deposit_survives_a_restart_and_counts_once() {
    let entries = all_entries();
    let w = world(vec![entries[0].clone()]).await;
    send_op(&w, build(&w, delegate(32 * ETH)).await.unwrap()).await;
    let before = pool(&w).await;
    assert_eq!(before.delegations[0].activating.base(), 32 * ETH);
    // The consensus layer takes it into its queue; the adapter restarts.
    let pk = format!("0x{}", w.entries[0].pubkey);
    w.beacon.add_pending_deposit(
        &pk,
        &format!("0x{}", w.entries[0].withdrawal_credentials),
        32 * GWEI,
    );
    let v = vectors();
    let key = Arc::new(LocalKey::parse(v["custody_key_hex"].as_str().unwrap(), None).unwrap());
    let restarted = EthAdapter::new(w.settings.clone(), key).unwrap();
    let after = restarted
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap();
    assert_eq!(
        after.delegations[0].activating.base(),
        32 * ETH,
        "{after:?}"
    );
    assert_eq!(after.holdings(), before.holdings(), "nothing vanished");
    // The original process sees it once too (memory and queue agree).
    let again = pool(&w).await;
    assert_eq!(again.delegations[0].activating.base(), 32 * ETH);
    // Processed into a pending validator: still once.
    w.beacon.process_pending_deposits();
    for a in [&w.adapter, &restarted] {
        let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(p.delegations[0].activating.base(), 32 * ETH, "{p:?}");
    }
}

/// The custody balance is read at the execution block the beacon head's
/// payload carries, so validator balances and the custody balance describe
/// one moment even when the execution node is a block ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_is_read_at_the_beacon_heads_execution_block() {
    let w = world(vec![all_entries()[0].clone()]).await;
    let n0 = hex_number(&w.anvil, "eth_blockNumber", json!([])).await;
    let dev = w.anvil.dev_account().await.unwrap();
    send_tx(
        &w.anvil,
        json!({"from": dev, "to": w.custody, "value": format!("0x{ETH:x}")}),
    )
    .await;
    w.beacon.set_head_payload_block(n0);
    let p = w
        .adapter
        .pool_state(PoolStateRequest::observing())
        .await
        .unwrap();
    assert_eq!(
        p.liquid.base(),
        200 * ETH,
        "as of the head's block, before the transfer"
    );
    // The books' flows stop there too.
    let first = flows(&w, None).await;
    assert_eq!(
        first.next_cursor.as_deref(),
        Some(format!("el:{n0}").as_str())
    );
    w.beacon.set_head_payload_block(n0 + 1);
    let p = w
        .adapter
        .pool_state(PoolStateRequest::observing())
        .await
        .unwrap();
    assert_eq!(p.liquid.base(), 201 * ETH);
    let f = flows(&w, first.next_cursor).await;
    assert_eq!(f.flows.len(), 1, "{:?}", f.flows);
    assert_eq!(f.flows[0].amount.base(), ETH);
}

/// A partial withdrawal from a compounding (0x02) validator, through the
/// EIP-7002 contract and the consensus layer's queue: once queued it is
/// unbonding, not active, read from the chain (a restarted adapter sees
/// it too), so no plan asks for the same ether again; the sweep pays it
/// and never takes the validator below 32 ETH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_withdrawal_is_unbonding_from_the_chains_queue_until_swept() {
    let w = world(vec![all_entries()[1].clone()]).await;
    let step = || {
        softstake_chain_eth::testnode::consensus_step(
            &w.anvil,
            &w.beacon,
            &w.deposit_contract,
            &w.custody,
            REQUESTS,
        )
    };
    send_op(&w, build(&w, delegate(64 * ETH)).await.unwrap()).await;
    step().await.unwrap(); // deposit seen: pending
    step().await.unwrap(); // active
    let p = pool(&w).await;
    let active = p.delegations[0].active.base();
    assert!(active >= 64 * ETH, "{p:?}");
    send_op(&w, build(&w, undelegate(32 * ETH)).await.unwrap()).await;
    step().await.unwrap(); // the request is dequeued into the state's queue
    assert_eq!(w.beacon.pending_partials().len(), 1);
    let v = vectors();
    let key = Arc::new(LocalKey::parse(v["custody_key_hex"].as_str().unwrap(), None).unwrap());
    let restarted = EthAdapter::new(w.settings.clone(), key).unwrap();
    for a in [&w.adapter, &restarted] {
        let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(p.unbonding.len(), 1, "{p:?}");
        assert_eq!(p.unbonding[0].amount.base(), 32 * ETH);
        let balance = p.delegations[0].active.base() + 32 * ETH;
        assert!(balance >= 64 * ETH, "the validator still holds it: {p:?}");
    }
    // The sweep pays it: liquid up by exactly 32 ETH, nothing unbonding.
    let before = pool(&w).await;
    step().await.unwrap();
    assert!(w.beacon.pending_partials().is_empty());
    let after = restarted
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap();
    assert!(after.unbonding.is_empty(), "{after:?}");
    assert_eq!(after.liquid.base() - before.liquid.base(), 32 * ETH);
    assert!(after.delegations[0].active.base() >= 32 * ETH);
}

/// Issue 22: a deposit priced out of the mempool. The base fee rose above
/// its max fee before it was included: anvil drops it from its pool and
/// refuses it when it is sent again ("max fee per gas less than block base
/// fee", geth's words), which the adapter reports as `Underpriced`. It
/// signs the same call under the same nonce with fees at today's market
/// and at least 10% higher on both (what execution clients require of a
/// replacement); the new one is included, the old one can never be (its
/// nonce is used), and the deposit is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_priced_out_is_signed_again_under_its_nonce_and_lands_once() {
    let w = world(vec![all_entries()[0].clone()]).await;
    let look = |s: &SignedOperation| {
        let s = s.clone();
        let a = &w.adapter;
        async move {
            a.lookup(LookupRequest {
                tx_id: s.tx_id.clone(),
                signed_bytes: Some(s.bytes.clone()),
            })
            .await
            .unwrap()
            .status
        }
    };
    let mine = || async {
        w.anvil
            .call("evm_mine", serde_json::json!([]))
            .await
            .unwrap();
    };
    w.anvil
        .call("evm_setAutomine", serde_json::json!([false]))
        .await
        .unwrap();
    let old = build(&w, delegate(32 * ETH)).await.unwrap();
    let (nonce, max_fee, tip) = softstake_chain_eth::tx::fees_of(&old.bytes).unwrap();
    w.adapter
        .broadcast(BroadcastRequest {
            signed: old.clone(),
        })
        .await
        .unwrap();
    assert_eq!(look(&old).await, TxStatus::Pending);
    // The base fee jumps to three times its max fee: a block without it.
    let high = max_fee * 3;
    w.anvil
        .call(
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!([format!("{high:#x}")]),
        )
        .await
        .unwrap();
    mine().await;
    assert_eq!(look(&old).await, TxStatus::NotFound);
    let err = w
        .adapter
        .broadcast(BroadcastRequest {
            signed: old.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Underpriced(m) if m.contains("less than block base fee")),
        "{err}"
    );
    let replace = |previous: &SignedOperation| {
        w.adapter.replace(softstake_core::adapter::ReplaceRequest {
            operation_id: "t".into(),
            kind: delegate(32 * ETH),
            previous: previous.clone(),
        })
    };
    let next = replace(&old).await.unwrap();
    let (n2, max2, tip2) = softstake_chain_eth::tx::fees_of(&next.bytes).unwrap();
    assert_eq!(n2, nonce, "the same nonce");
    assert!(
        max2 >= max_fee + max_fee / 10 && max2 > high,
        "{max2} vs {max_fee}, base {high}"
    );
    assert!(tip2 >= tip + tip / 10, "{tip2} vs {tip}");
    w.adapter
        .broadcast(BroadcastRequest {
            signed: next.clone(),
        })
        .await
        .unwrap();
    mine().await;
    w.anvil
        .call("evm_setAutomine", serde_json::json!([true]))
        .await
        .unwrap();
    let st = look(&next).await;
    assert!(matches!(st, TxStatus::Confirmed { .. }), "{st:?}");
    assert_eq!(look(&old).await, TxStatus::Expired, "its nonce is used");
    // A used nonce is not signed again.
    let err = replace(&old).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::TryLater(m) if m.contains("used already")),
        "{err}"
    );
    // One deposit: 32 ETH activating, followed through its new transaction.
    let p = pool(&w).await;
    assert_eq!(p.delegations[0].activating.base(), 32 * ETH, "{p:?}");
}
