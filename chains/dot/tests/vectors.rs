//! softstake's Polkadot staking calls against @polkadot/types for the Paseo
//! runtime (tests/vectors/dot/vectors.json, made by generate.mjs from the
//! same checked-in metadata): call data and signer payloads are equal byte
//! for byte. sr25519 signatures are randomised (two signatures of the same
//! payload differ), so instead of comparing signed bytes the test signs the
//! payload with the same secret URI and verifies the signature.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_dot::tx::{self, Call, Payee, TxParams};
use subxt::utils::AccountId32;
use subxt_signer::SecretUri;
use subxt_signer::sr25519::{self, Keypair};

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

fn acct(s: &str) -> AccountId32 {
    s.parse().unwrap()
}

fn call_of(name: &str, a: &Value) -> Call {
    let v = |k: &str| a[k].as_str().unwrap().parse::<u128>().unwrap();
    match name {
        "bond" => Call::Bond {
            value: v("value"),
            payee: match a["payee"].as_str().unwrap() {
                "Staked" => Payee::Staked,
                "Stash" => Payee::Stash,
                other => Payee::Account(acct(other)),
            },
        },
        "set_payee" => Call::SetPayee {
            payee: Payee::Account(acct(a["payee"].as_str().unwrap())),
        },
        "proxy" => Call::Proxy {
            real: acct(a["real"].as_str().unwrap()),
            call: Box::new(call_of(a["inner"][0].as_str().unwrap(), &a["inner"][1])),
        },
        "bond_extra" => Call::BondExtra { value: v("value") },
        "nominate" => Call::Nominate {
            targets: a["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| acct(t.as_str().unwrap()))
                .collect(),
        },
        "unbond" => Call::Unbond { value: v("value") },
        "withdraw_unbonded" => Call::WithdrawUnbonded {
            num_slashing_spans: u32::try_from(a["num_slashing_spans"].as_u64().unwrap()).unwrap(),
        },
        "rebond" => Call::Rebond { value: v("value") },
        "chill" => Call::Chill,
        "payout_stakers" => Call::PayoutStakers {
            validator: acct(a["validator_stash"].as_str().unwrap()),
            era: u32::try_from(a["era"].as_u64().unwrap()).unwrap(),
        },
        "payout_stakers_by_page" => Call::PayoutStakersByPage {
            validator: acct(a["validator_stash"].as_str().unwrap()),
            era: u32::try_from(a["era"].as_u64().unwrap()).unwrap(),
            page: u32::try_from(a["page"].as_u64().unwrap()).unwrap(),
        },
        "transfer_keep_alive" => Call::TransferKeepAlive {
            dest: acct(a["dest"].as_str().unwrap()),
            value: v("value"),
        },
        "batch_all" => Call::BatchAll(
            a["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| call_of(c[0].as_str().unwrap(), &c[1]))
                .collect(),
        ),
        other => panic!("unknown call {other}"),
    }
}

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/dot/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Every case of `cases` (with `spec_version`/`transaction_version` from
/// `versions`): call data and signer payload equal, and our signature
/// verifies.
fn check_cases(
    v: &Value,
    versions: &Value,
    meta: &std::sync::Arc<subxt::metadata::Metadata>,
    cases: &[Value],
) {
    let p = TxParams {
        genesis_hash: hex32(v["genesis_hash"].as_str().unwrap()),
        spec_version: u32::try_from(versions["spec_version"].as_u64().unwrap()).unwrap(),
        transaction_version: u32::try_from(versions["transaction_version"].as_u64().unwrap())
            .unwrap(),
        nonce: v["nonce"].as_u64().unwrap(),
        tip: 0,
        era_block: v["block_number"].as_u64().unwrap(),
        era_block_hash: hex32(v["block_hash"].as_str().unwrap()),
        era_period: v["period"].as_u64().unwrap(),
    };
    let uri: SecretUri = v["stash_uri"].as_str().unwrap().parse().unwrap();
    let key = Keypair::from_uri(&uri).unwrap();
    assert_eq!(
        format!("0x{}", hex::encode(key.public_key().0)),
        v["stash_public_key"].as_str().unwrap(),
        "the same secret URI gives the same sr25519 key"
    );
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let call = call_of(name, &c["args"]);
        let data = tx::call_data(meta, &call, &p).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(&data)),
            c["call_data"].as_str().unwrap(),
            "{name}: call data"
        );
        let payload = tx::signer_payload(meta, &call, &p).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(&payload)),
            c["signer_payload"].as_str().unwrap(),
            "{name}: signer payload"
        );
        let sig = key.sign(&payload);
        assert!(sr25519::verify(&sig, &payload, &key.public_key()), "{name}");
        let mut other = payload.clone();
        other[0] ^= 1;
        assert!(!sr25519::verify(&sig, &other, &key.public_key()));
    }
}

#[test]
fn staking_calls_and_signer_payloads_equal_polkadot_types_and_signatures_verify() {
    let v = vectors();
    let meta = tx::metadata(include_bytes!("../metadata/paseo.scale")).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    check_cases(&v, &v, &meta, cases);
}

/// Today's shape: the live Westend Asset Hub metadata (spec 1_022_000,
/// staking-async, from npm @polkadot-api/sdk-staking 0.5.0), with its
/// transaction extensions (ChargeAssetTxPayment, CheckMetadataHash, and the
/// empty AuthorizeCall / EthSetOrigin / StorageWeightReclaim): every
/// staking call softstake signs there, `payout_stakers_by_page` included.
#[test]
fn asset_hub_staking_calls_and_signer_payloads_equal_polkadot_types() {
    let v = vectors();
    let ah = &v["asset_hub"];
    let meta = tx::metadata(include_bytes!(
        "../metadata/westend-asset-hub-1022000.scale"
    ))
    .unwrap();
    let cases = ah["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    assert!(cases.iter().any(|c| c["name"] == "payout_stakers_by_page"));
    check_cases(&v, ah, &meta, cases);
}

#[test]
fn the_offline_request_signs_a_verifiable_extrinsic_carrying_the_reference_call() {
    use std::os::unix::fs::PermissionsExt;
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/dot/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("softstake-dot-req-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("stash.uri");
    std::fs::write(&key_file, v["stash_uri"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bond = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bond")
        .unwrap();
    let req: softstake_chain_dot::request::SignRequest = serde_json::from_value(serde_json::json!({
        "key_file": key_file,
        "metadata_file": concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/paseo.scale"),
        "genesis_hash": v["genesis_hash"], "spec_version": v["spec_version"],
        "transaction_version": v["transaction_version"], "nonce": v["nonce"],
        "era_block": v["block_number"], "era_block_hash": v["block_hash"], "era_period": v["period"],
        "call": {"call": "bond", "value": bond["args"]["value"]},
    }))
    .unwrap();
    let out = softstake_chain_dot::request::sign(&req).unwrap();
    assert_eq!(
        out.address,
        v["stash_address"]
            .as_str()
            .unwrap()
            .parse::<AccountId32>()
            .unwrap()
            .to_string()
    );
    let x = hex::decode(out.extrinsic.trim_start_matches("0x")).unwrap();
    // compact length (2 bytes here), 0x84 (signed v4), MultiAddress::Id,
    // MultiSignature::Sr25519, extensions, then the call.
    assert_eq!(x[2], 0x84);
    assert_eq!(x[3], 0x00);
    let pk: [u8; 32] = x[4..36].try_into().unwrap();
    assert_eq!(
        format!("0x{}", hex::encode(pk)),
        v["stash_public_key"].as_str().unwrap()
    );
    assert_eq!(x[36], 0x01, "sr25519 signature");
    let sig = sr25519::Signature(x[37..101].try_into().unwrap());
    let payload = hex::decode(
        bond["signer_payload"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    assert!(
        sr25519::verify(&sig, &payload, &sr25519::PublicKey(pk)),
        "signed the reference payload"
    );
    assert!(
        out.extrinsic
            .ends_with(bond["call_data"].as_str().unwrap().trim_start_matches("0x"))
    );
    // An era period that is not a power of two is refused.
    let mut bad = req.clone();
    bad.era_period = 100;
    assert!(
        softstake_chain_dot::request::sign(&bad)
            .unwrap_err()
            .to_string()
            .contains("power of two")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
