//! softstake's Cardano transactions equal cardano-serialization-lib's,
//! body and signed CBOR byte for byte (tests/vectors/ada/vectors.json, made
//! by tests/vectors/ada/generate.mjs), for the same inputs, keys, protocol
//! parameters and TTL; pallas decodes every one as a Conway transaction.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_ada::keys::LocalKey;
use softstake_chain_ada::tx::{self, Action, TxParams, Utxo};

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/ada/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn seed(v: &Value, k: &str) -> [u8; 32] {
    hex::decode(v[k].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn every_staking_transaction_matches_cardano_serialization_lib() {
    let v = vectors();
    let payment = LocalKey::from_seed(seed(&v, "payment_seed_hex"));
    let stake = LocalKey::from_seed(seed(&v, "stake_seed_hex"));
    let network = u8::try_from(v["network_id"].as_u64().unwrap()).unwrap();
    assert_eq!(
        tx::bech32(&tx::base_address(
            network,
            &payment.key_hash(),
            &stake.key_hash()
        )),
        v["address"].as_str().unwrap()
    );
    assert_eq!(
        tx::bech32(&tx::reward_address(network, &stake.key_hash())),
        v["reward_address"].as_str().unwrap()
    );
    let utxos: Vec<Utxo> = serde_json::from_value(v["utxos"].clone()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let op = &c["op"];
        let (action, inputs) = match op["type"].as_str().unwrap() {
            "register_and_delegate" => (
                Action::RegisterAndDelegate {
                    pool: op["pool"].as_str().unwrap().into(),
                    deposit: op["deposit"].as_u64().unwrap(),
                },
                vec![utxos[0].clone()],
            ),
            "vote_delegation" => (
                Action::VoteDelegation {
                    drep: op["drep"].as_str().unwrap().into(),
                },
                vec![utxos[0].clone()],
            ),
            "delegate" => (
                Action::Delegate {
                    pool: op["pool"].as_str().unwrap().into(),
                },
                vec![utxos[0].clone()],
            ),
            "withdraw" => (
                Action::Withdraw {
                    amount: op["amount"].as_u64().unwrap(),
                },
                vec![utxos[1].clone()],
            ),
            "deregister" => (
                Action::Deregister {
                    refund: op["refund"].as_u64().unwrap(),
                    withdraw: op["withdraw"].as_u64().unwrap(),
                },
                vec![utxos[1].clone()],
            ),
            "none" => (Action::None, utxos.clone()),
            other => panic!("unknown case {other}"),
        };
        let p = TxParams {
            network_id: network,
            min_fee_a: v["params"]["min_fee_a"].as_u64().unwrap(),
            min_fee_b: v["params"]["min_fee_b"].as_u64().unwrap(),
            ttl: v["ttl"].as_u64().unwrap(),
            inputs,
            min_change: 1_000_000,
        };
        let s = tx::build(&action, &payment, &stake, &p).unwrap();
        assert_eq!(
            hex::encode(&s.body),
            c["body_cbor"].as_str().unwrap(),
            "{name}: body"
        );
        assert_eq!(
            hex::encode(&s.tx),
            c["tx_cbor"].as_str().unwrap(),
            "{name}: signed tx"
        );
        assert_eq!(s.tx_hash, c["tx_hash"].as_str().unwrap(), "{name}");
        assert_eq!(s.fee, c["fee"].as_u64().unwrap(), "{name}");
        // pallas reads it as a Conway transaction.
        let decoded: pallas_primitives::conway::Tx = pallas_codec::minicbor::decode(&s.tx).unwrap();
        assert_eq!(decoded.transaction_body.fee, s.fee);
    }
}

#[test]
fn too_little_ada_is_refused_before_signing() {
    let payment = LocalKey::from_seed([0x11; 32]);
    let stake = LocalKey::from_seed([0x22; 32]);
    let p = TxParams {
        network_id: 0,
        min_fee_a: 44,
        min_fee_b: 155_381,
        ttl: 1,
        inputs: vec![Utxo {
            tx_hash: "cc".repeat(32),
            output_index: 0,
            lovelace: 2_100_000,
        }],
        min_change: 1_000_000,
    };
    let e = tx::build(
        &Action::RegisterAndDelegate {
            pool: "33".repeat(28),
            deposit: 2_000_000,
        },
        &payment,
        &stake,
        &p,
    )
    .unwrap_err();
    assert!(e.to_string().contains("insufficient UTxOs"), "{e}");
}

#[test]
fn operations_are_recognised_in_cardano_serialization_libs_bytes() {
    // `identify` after a restore: the transactions the reference SDK made
    // decode back to the operations softstake signs, for its stake key only.
    use softstake_chain_ada::flows::operation_of;
    use softstake_core::adapter::OperationKind;
    let v = vectors();
    let payment = LocalKey::from_seed(seed(&v, "payment_seed_hex"));
    let stake = LocalKey::from_seed(seed(&v, "stake_seed_hex"));
    let network = u8::try_from(v["network_id"].as_u64().unwrap()).unwrap();
    let address = tx::base_address(network, &payment.key_hash(), &stake.key_hash());
    let kind = |name: &str| -> Option<OperationKind> {
        let case = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let bytes = hex::decode(case["tx_cbor"].as_str().unwrap()).unwrap();
        assert_eq!(
            operation_of(&bytes, &[0x77; 28], &address),
            None,
            "{name}: not another key's"
        );
        operation_of(&bytes, &stake.key_hash(), &address)
    };
    let pool = |b: u8| tx::pool_bech32(&[b; 28]);
    assert!(matches!(
        kind("register_and_delegate"),
        Some(OperationKind::Delegate { validator, .. }) if validator == pool(0x33)
    ));
    assert!(matches!(
        kind("redelegate"),
        Some(OperationKind::Delegate { validator, .. }) if validator == pool(0x44)
    ));
    assert_eq!(
        kind("vote_always_abstain"),
        Some(OperationKind::Setup {
            step: "vote_delegation:always_abstain".into()
        })
    );
    assert!(matches!(
        kind("vote_drep_key"),
        Some(OperationKind::Setup { step }) if step.starts_with("vote_delegation:key:5555")
    ));
    assert_eq!(
        kind("withdraw_rewards"),
        Some(OperationKind::ClaimRewards { validators: vec![] })
    );
    assert_eq!(
        kind("deregister"),
        Some(OperationKind::Setup {
            step: "deregister".into()
        })
    );
    assert_eq!(
        kind("two_inputs_plain"),
        None,
        "a plain payment is not an operation"
    );
    assert_eq!(operation_of(b"\x84", &stake.key_hash(), &address), None);
}
