//! Issue 23: the real Westend Asset Hub runtime with pallet-staking-async
//! (crates.io `asset-hub-westend-runtime` 0.57.0, westmint spec 1_025_002),
//! built once to wasm by scripts/build-asset-hub-runtime and committed with
//! its sha256, runs under chopsticks: its own GenesisBuilder makes the
//! development genesis, and testnode/asset-hub-node.cjs gives it the signed
//! relay-parent descendants it checks (`RelayParentOffset` 1), so it builds
//! blocks. The adapter bonds, is exposed by page, is paid by page, unbonds
//! and withdraws on it; eras turn on the relay chain's session reports and
//! offences slash, both sent as downward XCM as the relay chain sends them
//! (issues 23, 30, 31, 32).
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use softstake_chain_dot::testnode::{Chopsticks, asset_hub_wasm_path, runtime_chain_spec};
use softstake_chain_dot::tx::{self, Call, Payee, TxParams};
use softstake_chain_dot::{DotAdapter, DotSettings};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, FlowKind, FlowsRequest,
    IdentifyRequest, LookupRequest, OperationKind, PoolStateRequest, PoolStateResponse,
    RewardsRequest, SignedOperation, TxStatus,
};
use std::sync::Arc;
use std::time::Duration;
use subxt::ext::codec::Decode;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;

/// sha256 of chains/dot/runtime/asset-hub-westend-1025002.compact.compressed.wasm.
const WASM_SHA256: &str = "193c2e74da32b9646d1039cd6e26e3d716510b04d7a71a1f19dc7dc4acf55123";

#[test]
fn the_committed_runtime_is_the_pinned_build() {
    let bytes = std::fs::read(asset_hub_wasm_path()).unwrap();
    assert_eq!(
        hex::encode(sp_crypto_hashing::sha2_256(&bytes)),
        WASM_SHA256,
        "rebuilt? run scripts/build-asset-hub-runtime and update chains/dot/runtime/README.md"
    );
    // sp-maybe-compressed-blob's zstd form.
    assert_eq!(
        &bytes[..8],
        &[0x52, 0xbc, 0x53, 0x76, 0x46, 0xdb, 0x8e, 0x05]
    );
}

fn storage_key(pallet: &str, item: &str) -> String {
    let mut k = sp_crypto_hashing::twox_128(pallet.as_bytes()).to_vec();
    k.extend(sp_crypto_hashing::twox_128(item.as_bytes()));
    format!("0x{}", hex::encode(k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_hub_runtime_makes_its_genesis_and_serves_staking_async_under_chopsticks() {
    let dir = tempfile_dir();
    let spec = dir.join("westmint-development.json");
    let said = runtime_chain_spec(&asset_hub_wasm_path(), "development", &spec)
        .await
        .unwrap();
    assert_eq!(said, "spec westmint 1025002");
    let node = Chopsticks::start_spec(&spec, "Manual").await.unwrap();
    let v = node
        .call("state_getRuntimeVersion", json!([]))
        .await
        .unwrap();
    assert_eq!(v["specName"], "westmint");
    assert_eq!(v["specVersion"], 1_025_002);

    // The staking pallet is staking-async: exposures by page, payouts by
    // page, claims per page, no unpaged ErasStakers; the relay chain's
    // session reports arrive through its client pallet.
    let m = node.call("state_getMetadata", json!([])).await.unwrap();
    let bytes = hex::decode(m.as_str().unwrap().trim_start_matches("0x")).unwrap();
    let meta = softstake_chain_dot::tx::metadata(&bytes).unwrap();
    let staking = meta.pallet_by_name("Staking").unwrap();
    let calls: Vec<&str> = staking
        .call_variants()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    for c in [
        "bond",
        "bond_extra",
        "nominate",
        "unbond",
        "withdraw_unbonded",
        "rebond",
        "chill",
        "set_payee",
        "payout_stakers_by_page",
    ] {
        assert!(calls.contains(&c), "Staking.{c} missing: {calls:?}");
    }
    let entries: Vec<&str> = staking
        .storage()
        .unwrap()
        .entries()
        .iter()
        .map(|e| e.name())
        .collect();
    for e in [
        "ErasStakersOverview",
        "ErasStakersPaged",
        "ClaimedRewards",
        "ActiveEra",
        "Ledger",
        "Bonded",
        "MinNominatorBond",
    ] {
        assert!(entries.contains(&e), "Staking.{e} missing: {entries:?}");
    }
    assert!(!entries.contains(&"ErasStakers"), "{entries:?}");
    assert!(staking.constant_by_name("BondingDuration").is_some());
    assert!(meta.pallet_by_name("StakingRcClient").is_some());

    // The genesis the runtime built: era 0 active, the preset's two
    // validators.
    let active = node
        .call(
            "state_getStorage",
            json!([storage_key("Staking", "ActiveEra")]),
        )
        .await
        .unwrap();
    assert!(active.is_string(), "{active}");
    let count = node
        .call(
            "state_getStorage",
            json!([storage_key("Staking", "CounterForValidators")]),
        )
        .await
        .unwrap();
    assert_eq!(count, "0x02000000");
}

/// The development genesis of the committed runtime, written once per test.
async fn development_spec(name: &str) -> std::path::PathBuf {
    let spec = tempfile_dir().join(format!("westmint-{name}.json"));
    runtime_chain_spec(&asset_hub_wasm_path(), "development", &spec)
        .await
        .unwrap();
    spec
}

async fn storage(node: &Chopsticks, key: &str) -> Value {
    node.call("state_getStorage", json!([key])).await.unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// `ParachainSystem.LastRelayChainBlockNumber`: moves only when the runtime
/// accepted a block's validation data.
async fn last_relay_number(node: &Chopsticks) -> u32 {
    let v = storage(
        node,
        &storage_key("ParachainSystem", "LastRelayChainBlockNumber"),
    )
    .await;
    u32::from_le_bytes(bytes(&v).try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_hub_runtime_builds_blocks_once_its_relay_parent_descendants_are_given() {
    let spec = development_spec("blocks").await;

    // chopsticks alone: no descendants, and the runtime refuses every block
    // (cumulus-pallet-parachain-system: InvalidNumberOfDescendants).
    let plain = Chopsticks::start_spec(&spec, "Manual").await.unwrap();
    let _ = plain.new_blocks(1).await;
    assert_eq!(plain.head_number().await.unwrap(), 0);
    drop(plain);

    // The launcher with no header after the relay parent: still refused, so
    // the runtime counts them (RelayParentOffset is 1).
    let none = Chopsticks::start_asset_hub(&spec, "Manual", &[("SOFTSTAKE_AH_RELAY_OFFSET", "0")])
        .await
        .unwrap();
    let _ = none.new_blocks(1).await;
    assert_eq!(none.head_number().await.unwrap(), 0);
    drop(none);

    // With one signed descendant each block is accepted, and the relay
    // parent the runtime records moves on with it.
    let node = Chopsticks::start_asset_hub(&spec, "Manual", &[])
        .await
        .unwrap();
    let head = node.head_number().await.unwrap();
    node.new_blocks(3).await.unwrap();
    assert_eq!(node.head_number().await.unwrap(), head + 3);
    let first = last_relay_number(&node).await;
    node.new_blocks(1).await.unwrap();
    assert!(last_relay_number(&node).await > first);
}

/// Signing parameters at the head, as the adapter takes them.
async fn params(node: &Chopsticks, who: &str) -> TxParams {
    let genesis = node.call("chain_getBlockHash", json!([0])).await.unwrap();
    let v = node
        .call("state_getRuntimeVersion", json!([]))
        .await
        .unwrap();
    let head = node.call("chain_getHeader", json!([])).await.unwrap();
    let head_hash = node.call("chain_getBlockHash", json!([])).await.unwrap();
    let nonce = node
        .call("system_accountNextIndex", json!([who]))
        .await
        .unwrap();
    TxParams {
        genesis_hash: bytes(&genesis).try_into().unwrap(),
        spec_version: u32::try_from(v["specVersion"].as_u64().unwrap()).unwrap(),
        transaction_version: u32::try_from(v["transactionVersion"].as_u64().unwrap()).unwrap(),
        nonce: nonce.as_u64().unwrap(),
        tip: 0,
        era_block: u64::from_str_radix(
            head["number"].as_str().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap(),
        era_block_hash: bytes(&head_hash).try_into().unwrap(),
        era_period: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bond_and_nomination_signed_by_the_adapter_executes_on_staking_async() {
    let spec = development_spec("bond").await;
    let node = Chopsticks::start_asset_hub(&spec, "Manual", &[])
        .await
        .unwrap();
    node.new_blocks(1).await.unwrap();
    let m = node.call("state_getMetadata", json!([])).await.unwrap();
    let meta = tx::metadata(&bytes(&m)).unwrap();

    // A validator of the genesis: the first key of Staking.Validators.
    let prefix = storage_key("Staking", "Validators");
    let keys = node
        .call("state_getKeysPaged", json!([prefix, 10, prefix]))
        .await
        .unwrap();
    let key = bytes(&keys[0]);
    // twox128 ++ twox128 ++ twox64(account) ++ account
    let validator = AccountId32(key[key.len() - 32..].try_into().unwrap());

    let stash = Keypair::from_uri(&"//Dave".parse().unwrap()).unwrap();
    let stash_id = AccountId32(stash.public_key().0);
    let unit: u128 = 1_000_000_000_000; // WND has 12 decimals
    node.fund(&stash_id.to_string(), 10_000 * unit)
        .await
        .unwrap();
    node.new_blocks(1).await.unwrap();

    let call = Call::BatchAll(vec![
        Call::Bond {
            value: 1_000 * unit,
            payee: Payee::Staked,
        },
        Call::Nominate {
            targets: vec![validator],
        },
    ]);
    let p = params(&node, &stash_id.to_string()).await;

    // The runtime checks our signature: one flipped bit and it is refused.
    let signed = tx::sign(&meta, &call, &p, &stash).unwrap();
    let mut tampered = signed.bytes.clone();
    // length prefix, version 0x84, MultiAddress::Id (1 + 32), MultiSignature::Sr25519 tag
    let mut rest = &tampered[..];
    subxt::ext::codec::Compact::<u32>::decode(&mut rest).unwrap();
    let at = tampered.len() - rest.len() + 1 + 33 + 1;
    assert_eq!(tampered[at - 1], 1, "an sr25519 signature");
    tampered[at] ^= 1;
    let refused = node
        .call(
            "author_submitExtrinsic",
            json!([format!("0x{}", hex::encode(&tampered))]),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");

    node.call(
        "author_submitExtrinsic",
        json!([format!("0x{}", hex::encode(&signed.bytes))]),
    )
    .await
    .unwrap();
    node.new_blocks(1).await.unwrap();

    // Staking.Bonded(stash) = stash (no controller any more); the ledger's
    // active stake is what we bonded; the nomination targets our validator.
    let mut bonded = storage_key("Staking", "Bonded");
    bonded.push_str(&hex::encode(sp_crypto_hashing::twox_64(&stash_id.0)));
    bonded.push_str(&hex::encode(stash_id.0));
    assert_eq!(bytes(&storage(&node, &bonded).await), stash_id.0.to_vec());
    let mut ledger = storage_key("Staking", "Ledger");
    ledger.push_str(&hex::encode(sp_crypto_hashing::blake2_128(&stash_id.0)));
    ledger.push_str(&hex::encode(stash_id.0));
    let l = bytes(&storage(&node, &ledger).await);
    // StakingLedger { stash, total: Compact, active: Compact, .. }
    assert_eq!(&l[..32], &stash_id.0);
    use subxt::ext::codec::Compact;
    let mut rest = &l[32..];
    let total = Compact::<u128>::decode(&mut rest).unwrap().0;
    let active = Compact::<u128>::decode(&mut rest).unwrap().0;
    assert_eq!((total, active), (1_000 * unit, 1_000 * unit));
    let mut noms = storage_key("Staking", "Nominators");
    noms.push_str(&hex::encode(sp_crypto_hashing::twox_64(&stash_id.0)));
    noms.push_str(&hex::encode(stash_id.0));
    let n = bytes(&storage(&node, &noms).await);
    // Nominations { targets: BoundedVec<AccountId>, .. }: one target.
    assert_eq!(n[0], 1 << 2);
    assert_eq!(&n[1..33], &validator.0);
}

/// The genesis validators' stashes (keys of `Staking.Validators`), SS58.
async fn validators(node: &Chopsticks) -> Vec<String> {
    let prefix = storage_key("Staking", "Validators");
    let keys = node
        .call("state_getKeysPaged", json!([prefix, 10, prefix]))
        .await
        .unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let k = bytes(k);
            AccountId32(k[k.len() - 32..].try_into().unwrap()).to_string()
        })
        .collect()
}

const WND: u128 = 1_000_000_000_000;

async fn ah_state(a: &DotAdapter) -> PoolStateResponse {
    a.pool_state(PoolStateRequest::default()).await.unwrap()
}

async fn ah_build(a: &DotAdapter, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
    a.build_and_sign(BuildRequest {
        operation_id: "t".into(),
        kind,
    })
    .await
}

/// Broadcasts and waits for the Instant-mode block.
async fn ah_send(a: &DotAdapter, s: &SignedOperation) -> TxStatus {
    a.broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    let mut st = TxStatus::NotFound;
    for _ in 0..100 {
        st = a
            .lookup(LookupRequest {
                tx_id: s.tx_id.clone(),
                signed_bytes: Some(s.bytes.clone()),
            })
            .await
            .unwrap()
            .status;
        if !matches!(st, TxStatus::Pending | TxStatus::NotFound) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_bonds_is_exposed_claims_its_page_and_unbonds_on_asset_hub() {
    let spec = development_spec("adapter").await;
    let node = Chopsticks::start_asset_hub(&spec, "Instant", &[])
        .await
        .unwrap();
    let vals = validators(&node).await;
    assert_eq!(vals.len(), 2, "the development preset's validators");
    let genesis = node.call("chain_getBlockHash", json!([0])).await.unwrap();
    assert_eq!(genesis, softstake_chain_dot::testnode::CHOPSTICKS_GENESIS);
    let key = Arc::new(Keypair::from_uri(&"//SoftstakeAssetHub".parse().unwrap()).unwrap());
    let stash = AccountId32(key.public_key().0).to_string();
    node.fund(&stash, 10_000 * WND).await.unwrap();
    let reserve = WND;
    let a = ah_adapter(&node, key.clone(), &vals, reserve, 16);
    // The chain's minimum nominator bond, as governance sets it (the
    // development genesis leaves it at 0).
    node.set_storage(json!({"Staking": {"MinNominatorBond": (100 * WND).to_string()}}))
        .await
        .unwrap();

    // The runtime is read as staking-async: eras of MaxEraDuration (6 h on
    // Westend's Asset Hub), unbonding in BondingDuration (2) eras.
    let s0 = ah_state(&a).await;
    assert_eq!(s0.limits.unbonding_delay_secs, 2 * 6 * 3600);
    // Liquid: free less the existential deposit (0.001 WND) and the reserve.
    let ed = 1_000_000_000;
    assert_eq!(s0.liquid.base(), 10_000 * WND - ed - reserve);
    assert_eq!(bonded_of(&s0), 0);
    let rewards0 = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let cursor = rewards0.next_cursor.clone();
    assert_eq!(
        s0.limits.min_delegation.base(),
        100 * WND,
        "MinNominatorBond"
    );

    // Refused before signing: below the minimum bond; more targets than the
    // runtime's nomination quota (StakingApi_nominations_quota: 16).
    refused(
        ah_build(
            &a,
            OperationKind::Delegate {
                validator: vals[0].clone(),
                amount: Amount::from_base(50 * WND),
            },
        )
        .await,
        "minimum nominator bond",
    );
    let many: Vec<String> = (0..17)
        .map(|i| {
            let k = Keypair::from_uri(&format!("//Target{i}").parse().unwrap()).unwrap();
            AccountId32(k.public_key().0).to_string()
        })
        .collect();
    refused(
        ah_build(
            &ah_adapter(&node, key.clone(), &many, reserve, 16),
            OperationKind::Delegate {
                validator: many[0].clone(),
                amount: Amount::from_base(200 * WND),
            },
        )
        .await,
        "at most 16",
    );
    // The runtime refuses the same bond itself: batch_all(bond, nominate)
    // below the minimum fails (InsufficientBond) and reverts the bond.
    let low = a
        .sign_raw(&Call::BatchAll(vec![
            Call::Bond {
                value: 50 * WND,
                payee: Payee::Staked,
            },
            Call::Nominate {
                targets: vec![vals[0].parse().unwrap()],
            },
        ]))
        .await
        .unwrap();
    match ah_send(&a, &low).await {
        TxStatus::Failed { reason } => assert!(reason.contains("InsufficientBond"), "{reason}"),
        other => panic!("expected the runtime to refuse, got {other:?}"),
    }
    assert_eq!(bonded_of(&ah_state(&a).await), 0);

    // Bond 1,000 and nominate both validators, signed by the adapter.
    let op = ah_build(
        &a,
        OperationKind::Delegate {
            validator: vals[0].clone(),
            amount: Amount::from_base(1_000 * WND),
        },
    )
    .await
    .unwrap();
    let st = ah_send(&a, &op).await;
    assert!(matches!(st, TxStatus::Confirmed { .. }), "{st:?}");
    let s1 = ah_state(&a).await;
    assert_eq!(bonded_of(&s1), 1_000 * WND);
    assert_eq!(s1.delegations[0].activating.base(), 1_000 * WND);
    assert!(s1.alerts.is_empty(), "{:?}", s1.alerts);
    // staking-async holds the bond: it left `free`, and liquid fell by the
    // bond and the fee only (under a lock, counting the bond out of `free`
    // again read liquid as 0).
    let fee = s0.liquid.base() - 1_000 * WND - s1.liquid.base();
    assert!(fee > 0 && fee < WND / 10, "fee {fee}");

    // Era 1: the election exposed our stake to validator 0, in a page.
    let era_ms: u64 = 6 * 3600 * 1000;
    let t1 = node.now_ms().await.unwrap();
    node.set_paged_exposure(
        1,
        &vals[0],
        1_000_000 * WND,
        &[(stash.clone(), 1_000 * WND)],
    )
    .await
    .unwrap();
    node.set_era(1, t1).await.unwrap();
    let s2 = ah_state(&a).await;
    assert_eq!(s2.delegations[0].active.base(), 1_000 * WND);
    assert_eq!(s2.delegations[0].activating.base(), 0);

    // Era 1 pays validator 0's points 100 WND; era 2 starts. The adapter
    // asks for the payout, by page, and the runtime pays it.
    node.set_era_reward(1, &vals[0], 100 * WND).await.unwrap();
    node.set_era(2, t1 + era_ms).await.unwrap();
    let s3 = ah_state(&a).await;
    let m = a.maintenance(&s3);
    assert_eq!(m.len(), 1, "{m:?}");
    let payout = ah_build(&a, m[0].kind.clone()).await.unwrap();
    let st = ah_send(&a, &payout).await;
    assert!(matches!(st, TxStatus::Confirmed { .. }), "{st:?}");
    let s4 = ah_state(&a).await;
    let grown = bonded_of(&s4) - bonded_of(&s3);
    // staking-async's DefaultStakerRewardCalculator, no commission: the
    // validator keeps Perbill(1,000,000 / 1,001,000) = 999,000,999
    // (nearest) of 100 WND, floored; we are the page's only nominator and
    // take the rest.
    let validator_part = 100 * WND * 999_000_999 / 1_000_000_000;
    assert_eq!(grown, 100 * WND - validator_part);
    assert_eq!(grown, 99_900_100_000);
    // ClaimedRewards(1, validator 0) now lists page 0; nothing is left.
    assert!(a.maintenance(&s4).is_empty());
    match ah_build(&a, OperationKind::ClaimRewards { validators: vec![] }).await {
        Err(AdapterError::InvalidRequest(m)) => assert!(m.contains("no unclaimed"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The reward, from the Rewarded event.
    let r = a.rewards_since(RewardsRequest { cursor }).await.unwrap();
    assert_eq!(r.rewards.len(), 1, "{:?}", r.rewards);
    assert_eq!(r.rewards[0].amount.base(), grown);
    assert_eq!(r.rewards[0].validator, vals[0]);
    assert_eq!(r.rewards[0].epoch, Some(1));
    assert_eq!(r.rewards[0].period.secs(), 6 * 3600);

    // Unbond 300: one chunk, withdrawable two eras after era 2.
    let unbond = ah_build(
        &a,
        OperationKind::Undelegate {
            validator: vals[0].clone(),
            amount: Amount::from_base(300 * WND),
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        ah_send(&a, &unbond).await,
        TxStatus::Confirmed { .. }
    ));
    let s5 = ah_state(&a).await;
    assert_eq!(s5.unbonding.len(), 1);
    assert_eq!(s5.unbonding[0].amount.base(), 300 * WND);
    assert_eq!(
        s5.unbonding[0].completes_at.unix(),
        i64::try_from((t1 + era_ms + 2 * era_ms) / 1000).unwrap()
    );
    // Two eras on, withdraw_unbonded (no slashing spans on staking-async).
    node.set_era(4, t1 + 3 * era_ms).await.unwrap();
    let s6 = ah_state(&a).await;
    assert_eq!(s6.withdrawable.base(), 300 * WND);
    let w = ah_build(
        &a,
        OperationKind::WithdrawUnbonded {
            amount: Amount::from_base(300 * WND),
        },
    )
    .await
    .unwrap();
    assert!(matches!(ah_send(&a, &w).await, TxStatus::Confirmed { .. }));
    let s7 = ah_state(&a).await;
    assert_eq!(s7.withdrawable.base(), 0);
    let gained = s7.liquid.base() - s6.liquid.base();
    assert!(gained > 299 * WND && gained < 300 * WND, "{gained}");

    // Expiry proven by the runtime: signed, never sent, NotFound while its
    // mortal era (4 blocks here) lasts, Expired after it.
    let a = ah_adapter(&node, key.clone(), &vals, reserve, 4);
    let late = ah_build(
        &a,
        OperationKind::Setup {
            step: "nominate".into(),
        },
    )
    .await
    .unwrap();
    let look = |s: SignedOperation| {
        let a = &a;
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
    assert_eq!(look(late.clone()).await, TxStatus::NotFound);
    node.new_blocks(6).await.unwrap();
    assert_eq!(look(late).await, TxStatus::Expired);
}

/// Issue 30 on Asset Hub: every change in what the stash holds is a flow
/// the adapter proves from the block's events (a transfer in, a transfer
/// out, a fee) or a reward it evidences, to the planck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_in_the_stash_is_a_proven_flow_or_an_evidenced_reward() {
    let node = Chopsticks::asset_hub("Instant").await.unwrap();
    let vals = validators(&node).await;
    let key = Arc::new(Keypair::from_uri(&"//SoftstakeBooks".parse().unwrap()).unwrap());
    let stash = AccountId32(key.public_key().0);
    let exchange = Keypair::from_uri(&"//ExchangeHotWallet".parse().unwrap()).unwrap();
    let exchange_id = AccountId32(exchange.public_key().0);
    node.fund(&stash.to_string(), 10_000 * WND).await.unwrap();
    node.fund(&exchange_id.to_string(), 10_000 * WND)
        .await
        .unwrap();
    let a = ah_adapter(&node, key.clone(), &vals[..1], WND, 16);

    // The books open at the engine's observing read.
    let s0 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let opened = a.flows_since(FlowsRequest::default()).await.unwrap();
    assert!(opened.flows.is_empty());
    let rewards0 = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();

    // Bond 1,000 (a fee); the exchange tops the stash up by 500 (a
    // transfer in, its transaction the exchange's); the stash pays 200 out
    // (a transfer out and a fee); an era's payout by page (a fee, and a
    // reward that is not a flow).
    let op = ah_build(
        &a,
        OperationKind::Delegate {
            validator: vals[0].clone(),
            amount: Amount::from_base(1_000 * WND),
        },
    )
    .await
    .unwrap();
    assert!(matches!(ah_send(&a, &op).await, TxStatus::Confirmed { .. }));
    let head = node.head_number().await.unwrap();
    let topup = node
        .submit(
            &Call::TransferKeepAlive {
                dest: stash,
                value: 500 * WND,
            },
            &exchange,
        )
        .await
        .unwrap();
    node.settle(head).await.unwrap();
    let payout_out = a
        .sign_raw(&Call::TransferKeepAlive {
            dest: exchange_id,
            value: 200 * WND,
        })
        .await
        .unwrap();
    assert!(matches!(
        ah_send(&a, &payout_out).await,
        TxStatus::Confirmed { .. }
    ));
    let t1 = node.now_ms().await.unwrap();
    let era_ms: u64 = 6 * 3600 * 1000;
    node.set_paged_exposure(
        1,
        &vals[0],
        1_000_000 * WND,
        &[(stash.to_string(), 1_000 * WND)],
    )
    .await
    .unwrap();
    node.set_era(1, t1).await.unwrap();
    node.set_era_reward(1, &vals[0], 100 * WND).await.unwrap();
    node.set_era(2, t1 + era_ms).await.unwrap();
    let st = a.pool_state(PoolStateRequest::default()).await.unwrap();
    let claim = ah_build(&a, a.maintenance(&st)[0].kind.clone())
        .await
        .unwrap();
    assert!(matches!(
        ah_send(&a, &claim).await,
        TxStatus::Confirmed { .. }
    ));

    let s1 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let f = a
        .flows_since(FlowsRequest {
            cursor: opened.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(f.complete, "scanned to the observing read");
    let kinds: Vec<(FlowKind, Option<String>)> = f
        .flows
        .iter()
        .map(|x| (x.kind, x.counterparty.clone()))
        .collect();
    let ex = Some(exchange_id.to_string());
    assert_eq!(
        kinds,
        vec![
            (FlowKind::Fee, None),
            (FlowKind::TransferIn, ex.clone()),
            // The fee is settled after the call: its event follows.
            (FlowKind::TransferOut, ex),
            (FlowKind::Fee, None),
            (FlowKind::Fee, None),
        ],
        "{:?}",
        f.flows
    );
    assert_eq!(f.flows[1].amount.base(), 500 * WND);
    assert_eq!(f.flows[1].tx_id, topup, "the exchange's own transaction");
    assert_eq!(f.flows[2].amount.base(), 200 * WND);
    assert_eq!(f.flows[2].tx_id, payout_out.tx_id);
    assert_eq!(f.flows[3].tx_id, payout_out.tx_id);
    assert_eq!(f.flows[0].tx_id, op.tx_id);
    assert_eq!(f.flows[4].tx_id, claim.tx_id);
    let r = a
        .rewards_since(RewardsRequest {
            cursor: rewards0.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(r.rewards.len(), 1);

    // The books balance to the planck: what the stash holds now is what it
    // held, plus what came in and the reward, less what went out and fees.
    let held = |s: &PoolStateResponse| s.holdings().unwrap().booked().unwrap().base();
    let sum = |k: FlowKind| -> u128 {
        f.flows
            .iter()
            .filter(|x| x.kind == k)
            .map(|x| x.amount.base())
            .sum()
    };
    assert_eq!(
        held(&s1) + sum(FlowKind::TransferOut) + sum(FlowKind::Fee),
        held(&s0) + sum(FlowKind::TransferIn) + r.rewards[0].amount.base(),
    );
    // Issue 32: a fee the journal does not know (a restored database) is
    // identified from the extrinsic and its events: our bond, our payout;
    // the transfer out is no staking operation.
    let id = |tx: &str| {
        let a = &a;
        let tx = tx.to_owned();
        async move { a.identify(IdentifyRequest { tx_id: tx }).await.unwrap() }
    };
    let found = id(&op.tx_id).await.found.unwrap();
    assert_eq!(
        found.kind,
        OperationKind::Delegate {
            validator: vals[0].clone(),
            amount: Amount::from_base(1_000 * WND),
        }
    );
    assert!(
        matches!(found.status, TxStatus::Confirmed { .. }),
        "{found:?}"
    );
    let found = id(&claim.tx_id).await.found.unwrap();
    assert_eq!(
        found.kind,
        OperationKind::ClaimRewards { validators: vec![] }
    );
    let transfer = id(&payout_out.tx_id).await;
    assert!(
        transfer.supported && transfer.found.is_none(),
        "{transfer:?}"
    );
    assert!(!id("0x00").await.supported, "not met by the scan");
    // Nothing new after the cursor.
    let again = a
        .flows_since(FlowsRequest {
            cursor: f.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.flows.is_empty());
}

/// Eras moved the way the relay chain moves them on Asset Hub: a session
/// report arriving as a downward XCM message, carrying the era's points
/// and the activation of the next era. The runtime itself ends the era
/// (Westend's `DisableMinting` path: the general reward pot, funded here as
/// the DAP's budget would fund it, is moved into the ending era's pot,
/// `EraPaid`) and starts the next; the payout by page is then a transfer
/// from that era's pot, which the adapter evidences as the reward and does
/// not count as a transfer in. Only the exposures are written by hand (no
/// election runs here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_turn_on_the_relay_chains_session_reports_and_pay_from_the_era_pot() {
    let (node, vals, stash, a) = bonded_on_asset_hub("//SoftstakeEras").await;

    // Era 1 starts when the relay chain says so; our stake is in its
    // exposure (what its election would have written).
    let era_ms: u64 = 6 * 3600 * 1000;
    let t1 = node.now_ms().await.unwrap();
    node.set_paged_exposure(
        1,
        &vals[0],
        1_000_000 * WND,
        &[(stash.to_string(), 1_000 * WND)],
    )
    .await
    .unwrap();
    node.relay_starts_era(1, t1, &[]).await.unwrap();
    let active = storage(&node, &storage_key("Staking", "ActiveEra")).await;
    let b = bytes(&active);
    assert_eq!(
        u32::from_le_bytes(b[..4].try_into().unwrap()),
        1,
        "the runtime started era 1"
    );
    assert_eq!(
        u64::from_le_bytes(b[5..13].try_into().unwrap()),
        t1,
        "at the activation time"
    );
    let s1 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(s1.delegations[0].active.base(), 1_000 * WND);
    let opened = a.flows_since(FlowsRequest::default()).await.unwrap();
    let r0 = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();

    // The DAP's budget for stakers: 100 WND in the general pot. Era 1 ends
    // with validator 0's points; era 2 starts.
    node.fund_staker_reward_pot(100 * WND + 1_000_000_000)
        .await
        .unwrap();
    node.relay_starts_era(2, t1 + era_ms, &[(vals[0].clone(), 20)])
        .await
        .unwrap();
    let mut reward_key = storage_key("Staking", "ErasValidatorReward");
    reward_key.push_str(&hex::encode(sp_crypto_hashing::twox_64(
        &1u32.to_le_bytes(),
    )));
    reward_key.push_str(&hex::encode(1u32.to_le_bytes()));
    let paid = u128::from_le_bytes(
        bytes(&storage(&node, &reward_key).await)
            .try_into()
            .unwrap(),
    );
    assert_eq!(paid, 100 * WND, "the pot less its existential deposit");

    // The adapter claims era 1's page; the runtime pays from the era pot.
    let st = a.pool_state(PoolStateRequest::default()).await.unwrap();
    let m = a.maintenance(&st);
    assert_eq!(m.len(), 1, "{m:?}");
    let claim = ah_build(&a, m[0].kind.clone()).await.unwrap();
    assert!(matches!(
        ah_send(&a, &claim).await,
        TxStatus::Confirmed { .. }
    ));
    let s2 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let r = a
        .rewards_since(RewardsRequest {
            cursor: r0.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(r.rewards.len(), 1, "{:?}", r.rewards);
    // Our page's share: staking-async's calculator, no commission (see the
    // storage-written test above for the arithmetic).
    assert_eq!(
        r.rewards[0].amount.base(),
        100 * WND - 100 * WND * 999_000_999 / 1_000_000_000
    );
    assert_eq!(r.rewards[0].epoch, Some(1));
    assert_eq!(
        r.rewards[0].period.start().unix(),
        i64::try_from(t1 / 1000).unwrap()
    );
    let f = a
        .flows_since(FlowsRequest {
            cursor: opened.next_cursor,
        })
        .await
        .unwrap();
    let kinds: Vec<FlowKind> = f.flows.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        vec![FlowKind::Fee],
        "the pot's transfer is the reward: {:?}",
        f.flows
    );
    let held = |s: &PoolStateResponse| s.holdings().unwrap().booked().unwrap().base();
    assert_eq!(
        held(&s2) + f.flows[0].amount.base(),
        held(&s1) + r.rewards[0].amount.base()
    );
}

/// Issue 31 on Asset Hub: the relay chain reports an offence of the
/// validator we nominate (downward XCM, as the relay chain sends it);
/// staking-async computes the slash from the era's paged exposure and
/// applies it `SlashDeferDuration` (1) era later. The adapter reports the
/// stash's `Staking.Slashed` as a loss, once, and the bond shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reported_offence_slashes_the_stash_and_the_adapter_reports_the_loss() {
    let (node, vals, stash, a) = bonded_on_asset_hub("//SoftstakeSlashed").await;
    let t1 = node.now_ms().await.unwrap();
    let era_ms: u64 = 6 * 3600 * 1000;
    node.set_paged_exposure(
        1,
        &vals[0],
        1_000_000 * WND,
        &[(stash.to_string(), 1_000 * WND)],
    )
    .await
    .unwrap();
    node.relay_starts_era(1, t1, &[]).await.unwrap();
    let s0 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert!(s0.losses.is_empty());
    let r0 = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();

    // 10% of what validator 0 had at stake in era 1.
    node.relay_offence(&vals[0], 100_000_000).await.unwrap();
    node.new_blocks(1).await.unwrap();
    // Deferred one era: applied once era 2 is active.
    node.set_paged_exposure(
        2,
        &vals[0],
        1_000_000 * WND,
        &[(stash.to_string(), 1_000 * WND)],
    )
    .await
    .unwrap();
    node.relay_starts_era(2, t1 + era_ms, &[]).await.unwrap();
    node.new_blocks(2).await.unwrap();

    a.rewards_since(RewardsRequest {
        cursor: r0.next_cursor,
    })
    .await
    .unwrap();
    let s1 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(s1.losses.len(), 1, "{:?}", s1.losses);
    assert_eq!(s1.losses[0].amount.base(), 100 * WND);
    assert_eq!(bonded_of(&s1), 900 * WND, "the bond lost the slash");
    // Reported once.
    let s2 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert!(s2.losses.is_empty());
}

/// An Asset Hub node, and the adapter for the stash of `uri` (funded with
/// 10,000 WND) having bonded 1,000 WND nominating validator 0.
async fn bonded_on_asset_hub(uri: &str) -> (Chopsticks, Vec<String>, AccountId32, DotAdapter) {
    let node = Chopsticks::asset_hub("Instant").await.unwrap();
    let vals = validators(&node).await;
    let key = Arc::new(Keypair::from_uri(&uri.parse().unwrap()).unwrap());
    let stash = AccountId32(key.public_key().0);
    node.fund(&stash.to_string(), 10_000 * WND).await.unwrap();
    let a = ah_adapter(&node, key, &vals[..1], WND, 16);
    let op = ah_build(
        &a,
        OperationKind::Delegate {
            validator: vals[0].clone(),
            amount: Amount::from_base(1_000 * WND),
        },
    )
    .await
    .unwrap();
    assert!(matches!(ah_send(&a, &op).await, TxStatus::Confirmed { .. }));
    (node, vals, stash, a)
}

fn ah_adapter(
    node: &Chopsticks,
    key: Arc<Keypair>,
    targets: &[String],
    reserve: u128,
    era_period: u64,
) -> DotAdapter {
    DotAdapter::new(
        DotSettings {
            endpoints: vec![node.url.clone()],
            genesis_hash: softstake_chain_dot::testnode::CHOPSTICKS_GENESIS.into(),
            targets: targets
                .iter()
                .map(|t| (t.clone(), t.parse().unwrap()))
                .collect(),
            stash: None,
            payee: Payee::Staked,
            fee_reserve: reserve,
            era_period,
            rewards_from_block: None,
            max_scan_blocks: 500,
            max_payouts_per_tx: 8,
            request_timeout: Duration::from_secs(60),
        },
        key,
    )
    .unwrap()
}

fn refused(r: Result<SignedOperation, AdapterError>, needle: &str) {
    match r {
        Err(AdapterError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
}

fn bonded_of(s: &PoolStateResponse) -> u128 {
    s.delegations
        .iter()
        .map(|d| d.active.base() + d.activating.base())
        .sum()
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("softstake-ah-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
