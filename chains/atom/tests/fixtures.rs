//! The CometBFT description the Cosmos test node is held to is the one
//! cometbft/cometbft publishes (tests/fixtures/atom/SOURCES.md); where its
//! schemas do not describe what CometBFT sends, the corrections are checked
//! against answers recorded from real nodes, which the published schemas
//! refuse.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sha2::Digest;
use softstake_chain_atom::testnode::{cometbft_api, cometbft_corrected};
use softstake_testnode::openapi::{Api, Document};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/atom/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The document as published, without the corrections.
fn published() -> Api {
    Api::new(vec![
        Document::from_yaml(
            "published",
            "",
            std::str::from_utf8(&fixture("cometbft-rpc-openapi.yaml")).unwrap(),
        )
        .unwrap(),
    ])
}

#[test]
fn the_pinned_documents_and_recordings_are_the_published_ones() {
    for (name, sum) in [
        (
            "cometbft-rpc-openapi.yaml",
            "8fdc73beaae271141dcdef3a431a9fba3d6bbe7452aac7a07883b5290c166d45",
        ),
        (
            "chain-indexing-block.json",
            "b26a724d5b9436a0f64906bee0fb0036e1b014893774eb3098cd88a310006da2",
        ),
        (
            "chain-indexing-block-evidence.json",
            "01493129d8cddbfed37059bcb8ee2e6a30b707c05ed57f5bf6704db5589d80e2",
        ),
        (
            "unchained-reward.json",
            "77b06445620e7b59c66458ecacac2f694c8dfea6951f1bfb8ac202e0a7d61572",
        ),
        (
            "unchained-delegate.json",
            "138a6816cde6fac9274881dd046220bc2b4dc3fb9c5dc6fd9c460c4074e3c52d",
        ),
        (
            "unchained-redelegate.json",
            "8b814c8cc5f052920465c6f6e9bbe42463b9c79a586a529646a72caf2a95366a",
        ),
        (
            "unchained-undelegate.json",
            "5eace39295628517a2615a2cb826fbaad0e1d469b79b309f687d1e6b78cf8ebb",
        ),
    ] {
        assert_eq!(sha256(&fixture(name)), sum, "{name}");
    }
}

#[test]
fn real_blocks_conform_to_the_corrected_schema_and_not_to_the_published_one() {
    let api = cometbft_api();
    let mut times = Vec::new();
    for name in [
        "chain-indexing-block.json",
        "chain-indexing-block-evidence.json",
    ] {
        let block: Value = serde_json::from_slice(&fixture(name)).unwrap();
        api.check("block", &block)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The published schema wants version.app, which a real header
        // leaves out when it is 0, and describes data as a list.
        let e = published().check("GET", "/block", &block).expect_err(name);
        assert!(e.contains("app") || e.contains("data"), "{name}: {e}");
        // What the adapter reads from a block: its time, to the second.
        let t = block["result"]["block"]["header"]["time"].as_str().unwrap();
        let unix = softstake_chain_atom::adapter::parse_time(t).unwrap().unix();
        times.push(unix);
    }
    // 2020-10-15T09:33:42.195143319Z and 2020-12-30T17:15:53.674194575Z.
    assert_eq!(times, [1_602_754_422, 1_609_348_553]);
}

#[test]
fn the_corrections_still_refuse_what_cometbft_never_sends() {
    let api = cometbft_api();
    // The test node's block answer before it was held to the document: a
    // header with three fields.
    let old = json!({"jsonrpc": "2.0", "id": 1, "result": {"block": {"header": {
        "chain_id": "cosmoshub-4", "height": "5", "time": "2026-01-01T00:00:00Z"}}}});
    let e = api.check("block", &old).unwrap_err();
    assert!(e.contains("required"), "{e}");
    // A transaction result as Tendermint 0.33 wrote it (`tags`), or with
    // a string code, is not what CometBFT 0.38 sends.
    let tx = |tx_result: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "result": {"hash": "AB".repeat(32), "height": "7", "index": 0,
            "tx_result": tx_result, "tx": "CgQ="}})
    };
    let good = json!({"code": 0, "data": "", "log": "", "info": "", "gas_wanted": "200000",
        "gas_used": "91000", "events": [{"type": "tx", "attributes": [{"key": "fee", "value": "250uatom", "index": true}]}],
        "codespace": ""});
    api.check("tx", &tx(good.clone())).unwrap();
    let mut tags = good.clone();
    tags.as_object_mut().unwrap().remove("events");
    tags["tags"] = json!([]);
    assert!(api.check("tx", &tx(tags)).is_err());
    let mut code = good.clone();
    code["code"] = json!("0");
    let e = api.check("tx", &tx(code)).unwrap_err();
    assert!(e.contains("code"), "{e}");
    // The published document insists on an `error` beside a result, which
    // JSON-RPC 2.0 forbids and CometBFT never writes.
    let q = json!({"jsonrpc": "2.0", "id": 1, "result": {"response": {"code": 0, "log": "", "info": "",
        "index": "0", "key": null, "value": "CgA=", "proofOps": null, "height": "9", "codespace": ""}}});
    api.check("abci_query", &q).unwrap();
    assert!(published().check("GET", "/abci_query", &q).is_err());
    // A JSON-RPC error is CometBFT's RPCError object, not a string.
    let err = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error",
        "data": "tx already exists in cache"}});
    api.check("broadcast_tx_sync", &err).unwrap();
    let e = api
        .check(
            "broadcast_tx_sync",
            &json!({"jsonrpc": "2.0", "id": 1, "error": "tx already exists in cache"}),
        )
        .unwrap_err();
    assert!(e.contains("error"), "{e}");
    // The corrections are applied to the pinned document only.
    let _ = cometbft_corrected;
}

/// A recorded Cosmos Hub transaction (shapeshift/unchained's mock data, see
/// tests/fixtures/atom/SOURCES.md) as a `tx_search` result: its
/// per-message logs' events in message order, as CometBFT's
/// `ExecTxResult.events` lists a message's events (the recording has no
/// transaction-level events: no `tx` fee event).
fn recorded(name: &str) -> (Value, String) {
    let v: Value = serde_json::from_slice(&fixture(name)).unwrap();
    let tx = &v["tx"];
    let groups = tx["events"].as_object().unwrap();
    let mut keys: Vec<usize> = groups.keys().map(|k| k.parse().unwrap()).collect();
    keys.sort_unstable();
    let events: Vec<Value> = keys
        .iter()
        .flat_map(|k| groups[&k.to_string()].as_array().unwrap().clone())
        .collect();
    // The signer: the `message` event's sender that is no module account.
    let internal = softstake_chain_atom::flows::internal_addresses();
    let sender = events
        .iter()
        .filter(|e| e["type"] == "message")
        .flat_map(|e| e["attributes"].as_array().unwrap().iter())
        .filter(|a| a["key"] == "sender")
        .filter_map(|a| a["value"].as_str())
        .find(|a| !internal.iter().any(|m| m == a))
        .unwrap()
        .to_owned();
    (
        json!({"hash": tx["txid"], "height": tx["blockHeight"].to_string(),
               "tx_result": {"code": 0, "events": events}}),
        sender,
    )
}

#[test]
fn recorded_hub_transactions_parse_and_nothing_is_attributed_without_a_delegator() {
    use softstake_chain_atom::flows::{
        Withdrawal, coins, internal_addresses, tx_flows, withdrawals,
    };
    let internal = internal_addresses();
    // Every amount the Hub wrote parses as a coin list.
    for name in [
        "unchained-reward.json",
        "unchained-delegate.json",
        "unchained-redelegate.json",
        "unchained-undelegate.json",
    ] {
        let (tx, _) = recorded(name);
        for e in tx["tx_result"]["events"].as_array().unwrap() {
            for a in e["attributes"].as_array().unwrap() {
                if a["key"] == "amount" {
                    let raw = a["value"].as_str().unwrap();
                    assert!(coins(raw).is_some(), "{name}: {raw}");
                }
            }
        }
    }

    // A reward withdrawal from two validators, Hub height 9,636,957
    // (cosmos-sdk v0.45): the `withdraw_rewards` events name no delegator,
    // so nothing is taken from them for anyone.
    let (tx, delegator) = recorded("unchained-reward.json");
    assert_eq!(delegator, "cosmos179k2lz70rxvjrvvr65cynw9x5c8v3kftg46v05");
    assert!(withdrawals(&tx, &delegator).unwrap().is_empty());
    // The rewards came from the distribution module: not a principal flow.
    assert!(tx_flows(&tx, &delegator, &internal).unwrap().is_empty());
    // The same events with the attribute the SDK adds since
    // cosmos/cosmos-sdk#15462 are the two delegations' rewards, to the unit.
    let mut today = tx.clone();
    for e in today["tx_result"]["events"].as_array_mut().unwrap() {
        if e["type"] == "withdraw_rewards" {
            e["attributes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": "delegator", "value": delegator, "index": true}));
        }
    }
    assert_eq!(
        withdrawals(&today, &delegator).unwrap(),
        [
            Withdrawal {
                validator: "cosmosvaloper1hdrlqvyjfy5sdrseecjrutyws9khtxxaux62l7".into(),
                coins: vec![("uatom".into(), 39_447)],
                event: 4
            },
            Withdrawal {
                validator: "cosmosvaloper1lzhlnpahvznwfv4jmay2tgaha5kmz5qxerarrl".into(),
                coins: vec![("uatom".into(), 7)],
                event: 9
            }
        ]
    );
    assert!(
        withdrawals(&today, "cosmos1someoneelse")
            .unwrap()
            .is_empty()
    );
    let mut failed = today.clone();
    failed["tx_result"]["code"] = json!(5);
    assert!(withdrawals(&failed, &delegator).unwrap().is_empty());

    // A delegation at height 9,636,923: the SDK withdrew the delegation's
    // 78,085 uatom of rewards with a transfer from the distribution module
    // and no `withdraw_rewards` event (cosmos/cosmos-sdk#13295, fixed by
    // #13323): history of that age shows neither a reward nor a flow here,
    // and the books take the difference as a residual.
    let (tx, delegator) = recorded("unchained-delegate.json");
    assert!(
        tx["tx_result"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "withdraw_rewards")
    );
    assert!(withdrawals(&tx, &delegator).unwrap().is_empty());
    assert!(tx_flows(&tx, &delegator, &internal).unwrap().is_empty());
    // Undelegation and redelegation move stake between the module's pools:
    // no flow for the delegator.
    for name in ["unchained-undelegate.json", "unchained-redelegate.json"] {
        let (tx, delegator) = recorded(name);
        assert_eq!(
            delegator, "cosmos1fx4jwv3aalxqwmrpymn34l582lnehr3eqwuz9e",
            "{name}"
        );
        assert!(
            tx_flows(&tx, &delegator, &internal).unwrap().is_empty(),
            "{name}"
        );
        assert!(withdrawals(&tx, &delegator).unwrap().is_empty(), "{name}");
    }
}
