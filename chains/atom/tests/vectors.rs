//! softstake's transactions equal cosmjs's byte for byte
//! (tests/vectors/atom/vectors.json, made by tests/vectors/atom/generate.mjs).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_atom::keys::{LocalKey, Signer};
use softstake_chain_atom::tx::{CosmosMsg, TxParams, msgs_for, sign_tx};
use softstake_core::adapter::OperationKind;
use softstake_core::{Amount, Secret};

fn vectors() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/atom/vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn msgs_of(case: &Value, v: &Value) -> Vec<CosmosMsg> {
    if case["operation"].is_null() {
        // The multi-message case: claim from both validators and delegate.
        let ops: Vec<Value> = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "claim_all")
            .map(|c| c["operation"].clone())
            .collect();
        let mut m = msgs_for(&serde_json::from_value(ops[0].clone()).unwrap(), &[]).unwrap();
        m.push(CosmosMsg::Delegate {
            validator: "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0".into(),
            amount: Amount::from_base(7),
        });
        return m;
    }
    let op: OperationKind = serde_json::from_value(case["operation"].clone()).unwrap();
    msgs_for(&op, &[]).unwrap()
}

#[test]
fn every_message_kind_matches_cosmjs_byte_for_byte() {
    let v = vectors();
    let key = LocalKey::parse(&Secret::new(v["key_hex"].as_str().unwrap().to_owned())).unwrap();
    assert_eq!(key.address(), v["address"].as_str().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let p = TxParams {
            chain_id: v["chain_id"].as_str().unwrap().into(),
            account_number: v["account_number"].as_u64().unwrap(),
            sequence: v["sequence"].as_u64().unwrap(),
            fee_amount: v["fee_amount"].as_str().unwrap().parse().unwrap(),
            gas_limit: v["gas_limit"].as_u64().unwrap(),
            memo: v["memo"].as_str().unwrap().into(),
            timeout_height: case["timeout_height"].as_u64().unwrap(),
        };
        let signed = sign_tx(&key, &p, &msgs_of(case, &v)).unwrap();
        assert_eq!(
            hex::encode(&signed.bytes),
            case["tx_hex"].as_str().unwrap(),
            "case {}",
            case["name"]
        );
        assert_eq!(
            signed.hash,
            case["tx_hash"].as_str().unwrap(),
            "case {}",
            case["name"]
        );
    }
}

#[test]
fn operations_are_recognised_in_cosmjs_bytes_and_nothing_else_is() {
    // `identify` after a restore: the bytes cosmjs made for each operation
    // decode back to that operation, for the custody address only.
    use softstake_chain_atom::tx::operation_of;
    let v = vectors();
    let me = v["address"].as_str().unwrap();
    for case in v["cases"].as_array().unwrap() {
        let bytes = hex::decode(case["tx_hex"].as_str().unwrap()).unwrap();
        let want: Option<OperationKind> = serde_json::from_value(case["operation"].clone()).ok();
        // Claims plus a delegation is not one operation softstake sends.
        assert_eq!(operation_of(&bytes, me), want, "case {}", case["name"]);
        assert_eq!(
            operation_of(&bytes, "cosmos1a0qwuze2h85zw7nqpsj3ga0z9geyrgwphl8j6w"),
            None,
            "another delegator's {}",
            case["name"]
        );
    }
    assert_eq!(operation_of(b"not a tx", me), None);
}
