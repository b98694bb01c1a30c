//! softstake's deposit verification and transactions against the
//! reference SDKs (tests/vectors/eth/vectors.json, made by generate.mjs):
//! deposit roots equal @chainsafe/ssz's, @chainsafe/bls signatures verify
//! with blst, and signed EIP-1559 transactions equal viem's byte for byte.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_eth::deposit::{self, DepositEntry, DepositError};
use softstake_chain_eth::keys::LocalKey;
use softstake_chain_eth::tx::{self, Action, TxParams};

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/eth/vectors.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn custody(v: &Value) -> [u8; 20] {
    hex::decode(&v["custody_address"].as_str().unwrap()[2..])
        .unwrap()
        .try_into()
        .unwrap()
}

fn fork(v: &Value) -> [u8; 4] {
    hex::decode(v["fork_version"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn entries(v: &Value) -> Vec<DepositEntry> {
    serde_json::from_value(v["deposit_data"].clone()).unwrap()
}

#[test]
fn reference_deposit_data_verifies_and_every_tampering_is_refused() {
    let v = vectors();
    let (c, f) = (custody(&v), fork(&v));
    for e in entries(&v) {
        let ok = deposit::verify(&e, &c, f).unwrap();
        assert_eq!(hex::encode(ok.deposit_data_root), e.deposit_data_root);
    }
    let e = entries(&v).remove(0);
    let refuse = |e: &DepositEntry, c: &[u8; 20], f: [u8; 4], want: &str| {
        let err = deposit::verify(e, c, f).unwrap_err().to_string();
        assert!(err.contains(want), "{err} (wanted {want})");
    };
    // Another custody address.
    refuse(&e, &[7u8; 20], f, "not to the custody address");
    // Another network.
    refuse(&e, &c, [0, 0, 0, 0], "fork version");
    // Signature of another message (one bit flipped in the signature).
    let mut t = e.clone();
    let mut sig = hex::decode(&t.signature).unwrap();
    sig[95] ^= 1;
    t.signature = hex::encode(&sig);
    assert!(deposit::verify(&t, &c, f).is_err());
    // Amount changed: the roots no longer match.
    let mut t = e.clone();
    t.amount = 31_000_000_000;
    refuse(&t, &c, f, "amount");
    // BLS key swapped for another valid one: roots recomputed by an
    // attacker still fail the signature.
    let other = entries(&v).remove(2);
    let mut t = e.clone();
    t.signature = other.signature.clone();
    refuse(&t, &c, f, "deposit_data_root does not match");
    // 0x00 (BLS) credentials are refused.
    let mut t = e.clone();
    t.withdrawal_credentials = format!("00{}", &t.withdrawal_credentials[2..]);
    refuse(&t, &c, f, "not 0x01/0x02");
    // Wrong lengths.
    let mut t = e.clone();
    t.pubkey.push_str("00");
    assert!(matches!(
        deposit::verify(&t, &c, f),
        Err(DepositError::Length {
            field: "pubkey",
            ..
        })
    ));
}

#[test]
fn signed_deposit_and_withdrawal_request_transactions_equal_viems() {
    let v = vectors();
    let key = LocalKey::parse(v["custody_key_hex"].as_str().unwrap(), None).unwrap();
    assert_eq!(
        key.address().to_checksum(None),
        v["custody_address"].as_str().unwrap()
    );
    let es = entries(&v);
    let txs = v["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 4);
    for t in txs {
        let e = &es[usize::try_from(t["params"]["entry"].as_u64().unwrap()).unwrap()];
        let action = if t["name"].as_str().unwrap().starts_with("deposit") {
            Action::Deposit {
                pubkey: e.pubkey.clone(),
                withdrawal_credentials: e.withdrawal_credentials.clone(),
                signature: e.signature.clone(),
                deposit_data_root: e.deposit_data_root.clone(),
                amount_gwei: e.amount,
            }
        } else {
            Action::WithdrawalRequest {
                pubkey: e.pubkey.clone(),
                amount_gwei: t["params"]["amount_gwei"].as_u64().unwrap(),
                fee_wei: t["params"]["fee_wei"].as_u64().unwrap(),
            }
        };
        let p = TxParams {
            chain_id: v["chain_id"].as_u64().unwrap(),
            nonce: t["nonce"].as_u64().unwrap(),
            max_fee_per_gas: v["max_fee_per_gas"].as_str().unwrap().parse().unwrap(),
            max_priority_fee_per_gas: v["max_priority_fee_per_gas"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            gas_limit: t["gas"].as_u64().unwrap(),
            deposit_contract: v["deposit_contract"].as_str().unwrap().into(),
            withdrawal_request_contract: v["withdrawal_request_contract"].as_str().unwrap().into(),
        };
        let signed = tx::build(&action, &key, &p).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(&signed.bytes)),
            t["raw"].as_str().unwrap(),
            "{}",
            t["name"]
        );
        assert_eq!(signed.hash, t["hash"].as_str().unwrap());
        assert_eq!(tx::decode_nonce(&signed.bytes).unwrap(), p.nonce);
    }
}
