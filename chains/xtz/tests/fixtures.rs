//! The adapter's readings of Octez answers, checked on outputs recorded
//! from the real software (tests/fixtures/xtz, sources and commits in its
//! SOURCES.md): octez's own RPC regression outputs and Taquito's recorded
//! responses and receipts from test networks. And the test node's answers
//! checked against the same recordings, shape for shape, so that the test
//! node cannot drift into a Tezos of its own.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_chain_xtz::ops::Mode;
use softstake_chain_xtz::rpc;
use softstake_chain_xtz::testnode::{TestNode, TestNodeConfig};
use softstake_chain_xtz::{XtzAdapter, XtzSettings};
use softstake_core::adapter::OperationKind;
use softstake_core::{Amount, Secret};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/xtz/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The JSON octez-client printed for `rpc get <path>` in a tezt regression
/// output.
fn octez_output(file: &str, path: &str) -> Value {
    softstake_chain_xtz::testnode::octez_recorded(&fixture(file), path)
        .unwrap_or_else(|| panic!("no `rpc get {path}` in {file}"))
}

/// octez's published OpenAPI documents, pinned by sha256 (SOURCES.md).
const OPENAPI: [(&str, &str); 2] = [
    (
        "octez/ushuaia-openapi.json",
        "7e9d983c06472ffe802c604e1a4b93267a5d40d5f1ea688b8ec4504441ed517c",
    ),
    (
        "octez/rpc-openapi.json",
        "85df5ce1d21e4cf7c402b08a40290e2e7814a472402155bc13d4cbd8f6df1f25",
    ),
];

#[test]
fn the_pinned_openapi_documents_are_octezs_and_its_own_outputs_conform() {
    use sha2::Digest;
    for (f, sha) in OPENAPI {
        assert_eq!(hex::encode(sha2::Sha256::digest(fixture(f))), sha, "{f}");
    }
    // The test node's own checker, on what octez itself printed (protocol
    // U025, Ushuaia): the checker reads the documents as octez writes data.
    let api = softstake_chain_xtz::testnode::octez_api();
    for (file, path) in [
        (
            "octez/misc_protocol.out",
            "/chains/main/blocks/head/context/constants",
        ),
        (
            "octez/misc_protocol.out",
            "/chains/main/blocks/head/helpers/levels_in_current_cycle",
        ),
        (
            "octez/delegates.out",
            "/chains/main/blocks/head/context/delegates/[PUBLIC_KEY_HASH]",
        ),
    ] {
        let v = octez_output(file, path);
        api.check("GET", path, &v)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let v = octez_output(
        "octez/misc_protocol.out",
        "/chains/main/blocks/head/helpers/current_level?offset=0",
    );
    api.check("GET", "/chains/main/blocks/head/helpers/current_level", &v)
        .unwrap();
    // And it refuses what octez would never send.
    let mut bad = octez_output(
        "octez/misc_protocol.out",
        "/chains/main/blocks/head/helpers/levels_in_current_cycle",
    );
    bad["first"] = json!("1");
    let e = api
        .check(
            "GET",
            "/chains/main/blocks/head/helpers/levels_in_current_cycle",
            &bad,
        )
        .unwrap_err();
    assert!(e.contains("expected integer"), "{e}");
}

#[test]
fn octez_constants_levels_and_cycles() {
    let f = "octez/misc_protocol.out";
    let c = rpc::constants(&octez_output(
        f,
        "/chains/main/blocks/head/context/constants",
    ))
    .unwrap();
    assert_eq!(
        c,
        rpc::Constants {
            blocks_per_cycle: 8,
            block_secs: 1,
            unstake_delay: 3,
            ttl: 8
        }
    );
    let l = rpc::level_info(&octez_output(
        f,
        "/chains/main/blocks/head/helpers/current_level?offset=0",
    ))
    .unwrap();
    assert_eq!((l.level, l.cycle, l.cycle_position), (1, 0, 0));
    let levels = rpc::cycle_levels(&octez_output(
        f,
        "/chains/main/blocks/head/helpers/levels_in_current_cycle",
    ))
    .unwrap();
    assert_eq!(levels, (1, 8));
    // A missing constant is named, never taken as 0.
    let e = rpc::constants(&json!({"blocks_per_cycle": 8})).unwrap_err();
    assert!(e.contains("minimal_block_delay"), "{e}");
}

#[test]
fn octez_and_rionet_delegates_read_as_bakers_taking_no_stakers() {
    let d = octez_output(
        "octez/delegates.out",
        "/chains/main/blocks/head/context/delegates/[PUBLIC_KEY_HASH]",
    );
    let b = rpc::baker(&d).unwrap();
    assert_eq!(
        b,
        rpc::BakerInfo {
            limit_millionth: 0,
            edge_billionth: 1_000_000_000,
            own_staked: 200_000_000_000,
            external_staked: 0,
            deactivated: false
        }
    );
    assert_eq!(b.room(), 0);
    let r = rpc::baker(&json_fixture("taquito-delegate-rionet.json")).unwrap();
    assert_eq!(
        (r.limit_millionth, r.own_staked, r.external_staked),
        (0, 57_551_308_701_145, 0)
    );
    // Staking parameters of a baker that takes stakers (1x its own stake).
    let params = json_fixture("taquito-active-staking-parameters.json");
    let b = rpc::baker(&json!({"active_staking_parameters": params,
        "own_staked": "300", "external_staked": "120"}))
    .unwrap();
    assert_eq!(
        (b.limit_millionth, b.edge_billionth),
        (1_000_000, 500_000_000)
    );
    assert_eq!(b.room(), 180);
}

#[test]
fn a_paris_block_credits_the_stakers_pool_never_a_staker() {
    let block = json_fixture("taquito-block-paris.json");
    let baker = "tz1fLH7NNTTshW2zycQ3rFJ8ZPjcxp9mXboX";
    let p = rpc::pool_credits(&block["metadata"], baker);
    assert_eq!(
        p,
        rpc::PoolCredits {
            stakers: 156_420_503 + 156_325_272,
            own: 156_420_503 + 156_325_272,
            edge: 0,
            slashed: 0
        }
    );
    assert_eq!(
        rpc::pool_credits(&block["metadata"], "tz1other"),
        rpc::PoolCredits::default()
    );
    // No balance update names a staker by contract: the per-staker form the
    // adapter used to look for is not in block metadata.
    let updates = block["metadata"]["balance_updates"].as_array().unwrap();
    assert!(
        updates
            .iter()
            .all(|u| u["staker"].get("contract").is_none())
    );
    let l = rpc::level_info(&block["metadata"]["level_info"]).unwrap();
    assert_eq!((l.level, l.cycle, l.cycle_position), (989_795, 7732, 98));
    // Its manager operations pay nobody of ours.
    let ops = block["operations"][3].as_array().unwrap();
    assert!(rpc::payouts(ops, baker, &[baker.to_owned()]).is_empty());
    let payer = "tz1NxvcLNywVH5jkZgqKnFbGyn9rjp5Rkkgi";
    assert!(rpc::is_source(&ops[0], payer));
    assert_eq!(rpc::own_deposit_change(&ops[0], payer), 0);
}

#[test]
fn unstake_requests_as_octez_sends_them() {
    let r = rpc::unstake_requests(&json_fixture("taquito-unstake-requests.json"));
    assert_eq!(
        r,
        rpc::UnstakeRequests {
            delegate: Some("tz1PZY3tEWmXGasYeehXYqwXuw2Z3iZ6QDnA".into()),
            finalizable: 500_000_000,
            unfinalizable: vec![(11, 200_000_000)],
        }
    );
    assert_eq!(
        rpc::unstake_requests(&Value::Null),
        rpc::UnstakeRequests::default()
    );
}

#[test]
fn receipts_of_stake_unstake_and_finalize_move_the_stakers_own_deposits() {
    // An external staker's unstake: its own deposits fall by the amount.
    let unstake = json_fixture("taquito-receipt-unstakeNoReveal.json");
    let staker = "tz1eDDguimfor6kkt96Ri4pBeEZXEzvuyjQX";
    assert!(rpc::is_source(&unstake, staker));
    assert_eq!(rpc::own_deposit_change(&unstake, staker), -1_000_000_000);
    assert_eq!(
        rpc::own_deposit_change(&unstake, "tz1X1TKpLiZuPEo2YVvDiqQ47Zp9a797ejkp"),
        0,
        "the baker's pool is not the staker"
    );
    // A baker staking its own funds (`{"staker":{"baker":..}}`): not an
    // external staker's deposits.
    let stake = json_fixture("taquito-receipt-stakeNoReveal.json");
    assert_eq!(
        rpc::own_deposit_change(&stake, "tz1X1TKpLiZuPEo2YVvDiqQ47Zp9a797ejkp"),
        0
    );
    // Finalizing moves unstaked deposits only, and anyone may finalize
    // another account's requests: it is not that account's operation and
    // does not touch its staked deposits.
    let fin = json_fixture("taquito-receipt-finalizeUnstakeNoRevealDiffSourceDestination.json");
    let owner = "tz1NFvwejbSCLBBuzCrZQgod3GkaMQJ9HoMf";
    assert!(!rpc::is_source(&fin, owner));
    assert_eq!(rpc::own_deposit_change(&fin, owner), 0);
    let fin = json_fixture("taquito-receipt-finalizeUnstakeNoReveal.json");
    assert_eq!(rpc::own_deposit_change(&fin, staker), 0);
}

#[test]
fn flows_from_recorded_receipts_fees_only_staking_moves_nothing() {
    use softstake_core::adapter::FlowKind;
    let with_hash = |f: &str| {
        let mut v = json_fixture(f);
        v["hash"] = json!("opRecorded");
        v
    };
    // An unstake: the staker paid its fee; tez moved only between its own
    // staked and unstaked balances.
    let unstake = with_hash("taquito-receipt-unstakeNoReveal.json");
    let staker = "tz1eDDguimfor6kkt96Ri4pBeEZXEzvuyjQX";
    let f = rpc::block_flows(std::slice::from_ref(&unstake), staker, &[]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].kind, f[0].amount, f[0].key.as_str()),
        (FlowKind::Fee, 689, "fee:opRecorded:0")
    );
    // A finalize sent by another account: a staking move of the owner (no
    // flow), the sender's fee.
    let fin = with_hash("taquito-receipt-finalizeUnstakeNoRevealDiffSourceDestination.json");
    let owner = "tz1NFvwejbSCLBBuzCrZQgod3GkaMQJ9HoMf";
    assert!(rpc::block_flows(std::slice::from_ref(&fin), owner, &[]).is_empty());
    let sender = "tz2RqxsYQyFuP9amsmrr25x9bUcBMWXGvjuD";
    let f = rpc::block_flows(std::slice::from_ref(&fin), sender, &[]);
    assert_eq!(
        f.iter().map(|x| (x.kind, x.amount)).collect::<Vec<_>>(),
        [(FlowKind::Fee, 429)]
    );
    // The recorded unstake is an operation softstake signs: found as one.
    let (kind, failed) = rpc::found_operation(
        &unstake,
        staker,
        Some("tz1X1TKpLiZuPEo2YVvDiqQ47Zp9a797ejkp"),
    )
    .unwrap();
    assert_eq!(failed, None);
    assert_eq!(
        kind,
        softstake_core::adapter::OperationKind::Undelegate {
            validator: "tz1X1TKpLiZuPEo2YVvDiqQ47Zp9a797ejkp".into(),
            amount: Amount::from_base(99_999_999_999_000_000),
        }
    );
    assert!(
        rpc::found_operation(&fin, owner, None).is_err(),
        "not the owner's operation"
    );
}

/// How a balance update names its account: kind, category and the keys of
/// `staker` (values are addresses and amounts, not shape).
fn shape(u: &Value) -> String {
    let mut keys: Vec<&str> = u
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "delayed_operation_hash")
        .collect();
    keys.sort_unstable();
    let staker: Vec<&str> = u["staker"]
        .as_object()
        .map(|o| {
            let mut k: Vec<&str> = o.keys().map(String::as_str).collect();
            k.sort_unstable();
            k
        })
        .unwrap_or_default();
    format!(
        "{}/{}/{}/{keys:?}/{staker:?}",
        u["kind"].as_str().unwrap_or(""),
        u["category"].as_str().unwrap_or(""),
        u["origin"].as_str().unwrap_or("")
    )
}

fn shapes<'a>(updates: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    updates.into_iter().map(shape).collect()
}

fn receipt_updates(op: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for c in op["contents"].as_array().unwrap() {
        for u in c["metadata"]["balance_updates"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                c["metadata"]["operation_result"]["balance_updates"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
        {
            out.push(u.clone());
        }
    }
    out
}

#[tokio::test]
async fn the_test_node_answers_in_the_recorded_shapes() {
    const EDSK: &str = "edsk2gLvWRYgkCPVKPjXag2uSGDjQh5YGUThMgLXUhzbrJWXdvvYoj";
    const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";
    let key = LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
    let me = key.address();
    let node = TestNode::new(TestNodeConfig::small(
        vec![(BAKER.into(), true, 10_000_000_000)],
        vec![(me.clone(), 1_000_000_000)],
    ));
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = XtzAdapter::new(
        XtzSettings {
            endpoints: vec![format!("http://{bound}")],
            chain_id: "NetXsoftstake1".into(),
            mode: Mode::Staking,
            payout_addresses: vec![],
            payout_delay_cycles: 1,
            max_scan: 100,
            expected_payout_cycles: None,
            request_timeout: Duration::from_secs(5),
            start_level: Some(1),
        },
        Arc::new(key),
    )
    .unwrap();
    let get = |path: String| async move {
        reqwest::get(format!("http://{bound}{path}"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    for kind in [
        OperationKind::Delegate {
            validator: BAKER.into(),
            amount: Amount::from_base(500_000_000),
        },
        OperationKind::Undelegate {
            validator: BAKER.into(),
            amount: Amount::from_base(100_000_000),
        },
    ] {
        softstake_testnode::send_and_confirm(&a, kind, || async { node.bake(1) })
            .await
            .unwrap();
    }
    node.bake_to_cycle_end();
    let (end, _) = node.head();

    // Every update in the test node's receipts (reveal, delegation, stake,
    // unstake) has a shape octez wrote in a recorded receipt.
    let mut ours = BTreeSet::new();
    let mut lvl = 2;
    while lvl <= end {
        let ops = get(format!("/chains/main/blocks/{lvl}/operations/3")).await;
        for op in ops.as_array().unwrap() {
            ours.extend(shapes(&receipt_updates(op)));
        }
        lvl += 1;
    }
    let mut recorded = BTreeSet::new();
    for f in [
        "taquito-receipt-unstakeNoReveal.json",
        "taquito-receipt-finalizeUnstakeNoRevealDiffSourceDestination.json",
        "taquito-receipt-stakeNoReveal.json",
    ] {
        recorded.extend(shapes(&receipt_updates(&json_fixture(f))));
    }
    // A stake by an external staker is recorded nowhere; its updates are
    // the unstake's, negated (same shapes).
    let missing: Vec<_> = ours.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "shapes octez does not write: {missing:?}\nrecorded: {recorded:?}"
    );

    // The cycle-end block: the pool's credits in the recorded block's shapes.
    let md = get(format!("/chains/main/blocks/{end}/metadata")).await;
    let block = json_fixture("taquito-block-paris.json");
    let mut recorded = shapes(block["metadata"]["balance_updates"].as_array().unwrap());
    // The edge's account is documented (token_management.rst) but absent
    // from the recorded block (its baker takes no stakers).
    recorded.insert(shape(&json!({"kind": "freezer", "category": "deposits",
        "staker": {"baker_edge": "tz1"}, "change": "1", "origin": "block"})));
    let ours = shapes(md["balance_updates"].as_array().unwrap());
    let credits: Vec<_> = ours.iter().filter(|s| s.starts_with("freezer/")).collect();
    assert!(!credits.is_empty());
    for s in &credits {
        assert!(recorded.contains(*s), "{s} not in {recorded:?}");
    }
    let li = rpc::level_info(&md["level_info"]).unwrap();
    assert_eq!((li.level, li.cycle_position), (end, 7));
    let p = rpc::pool_credits(&md, BAKER);
    assert!(p.stakers > 0 && p.own > 0 && p.edge > 0, "{p:?}");

    // The context answers parse with the same readers as octez's.
    let d = get(format!(
        "/chains/main/blocks/head/context/delegates/{BAKER}"
    ))
    .await;
    let b = rpc::baker(&d).unwrap();
    assert_eq!(b.external_staked, node.staked(&me));
    let recorded: BTreeSet<String> = octez_output(
        "octez/delegates.out",
        "/chains/main/blocks/head/context/delegates/[PUBLIC_KEY_HASH]",
    )
    .as_object()
    .unwrap()
    .keys()
    .cloned()
    .collect();
    let ours: BTreeSet<String> = d.as_object().unwrap().keys().cloned().collect();
    assert!(
        ours.is_subset(&recorded),
        "{:?}",
        ours.difference(&recorded).collect::<Vec<_>>()
    );
    let c = get("/chains/main/blocks/head/context/constants".into()).await;
    rpc::constants(&c).unwrap();
    let r = get(format!(
        "/chains/main/blocks/head/context/contracts/{me}/unstake_requests"
    ))
    .await;
    let r = rpc::unstake_requests(&r);
    assert_eq!(r.unfinalizable.len(), 1, "{r:?}");
    let lc = get("/chains/main/blocks/head/helpers/levels_in_current_cycle".into()).await;
    assert_eq!(rpc::cycle_levels(&lc).unwrap(), (1, 8));
}

#[test]
fn amounts_wider_than_the_protocols_64_bits_are_refused() {
    assert_eq!(
        rpc::mutez(&json!("18446744073709551615")),
        Some(u128::from(u64::MAX))
    );
    assert_eq!(rpc::mutez(&json!("18446744073709551616")), None);
    assert_eq!(
        rpc::change(&json!("-9223372036854775808")),
        Some(i128::from(i64::MIN))
    );
    assert_eq!(rpc::change(&json!("99999999999999999999")), None);
}
