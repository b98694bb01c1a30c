//! The custody address's transfers and fees, from Blockfrost's view of
//! each transaction (pure: no I/O).
//!
//! A transaction moves lovelace into or out of the custody address through
//! its inputs and outputs; besides, the custody account can withdraw from
//! its reward account (rewards, booked with their own evidence) and lock or
//! get back the stake key deposit (both stay the custody's: the pool state
//! counts the reward balance and the deposit as holdings). So, with the
//! custody address's inputs `ins`, outputs `outs`, reward withdrawals `w`:
//!
//! - when it spent an input, the fee is its own, and so is the deposit
//!   (Blockfrost's `deposit`: positive when locked, negative when
//!   refunded): what left for others is `ins + w - outs - fee - deposit`;
//! - otherwise what arrived is `outs` (less any withdrawal of its rewards).
//!
//! A positive remainder is a transfer out, a negative one a transfer in.
//! Reference inputs move nothing; collateral moves only when the scripts
//! failed (`valid_contract: false`), and then what the chain kept of it
//! is the fee and nothing else moved.

use serde_json::Value;
use softstake_core::adapter::FlowKind;

/// One movement of lovelace a transaction made for the custody address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFlow {
    /// Transfer in, out, or the fee.
    pub kind: FlowKind,
    /// Lovelace.
    pub amount: u128,
    /// The other side, where one address stands out.
    pub counterparty: Option<String>,
}

fn lovelace(o: &Value) -> Result<u128, String> {
    let mut total = 0u128;
    for a in o["amount"].as_array().ok_or("amount is missing")? {
        if a["unit"].as_str() == Some("lovelace") {
            let q = a["quantity"]
                .as_str()
                .and_then(|q| q.parse::<u128>().ok())
                .ok_or_else(|| format!("quantity {:?} is not a number", a["quantity"]))?;
            total = total.checked_add(q).ok_or("overflow")?;
        }
    }
    Ok(total)
}

fn signed(v: &Value, what: &str) -> Result<i128, String> {
    match v {
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("{what} {s:?} is not a number")),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .ok_or_else(|| format!("{what} {n} is not an integer")),
        Value::Null => Ok(0),
        other => Err(format!("{what} {other} is not a number")),
    }
}

/// The flows of one transaction for `addr` (bech32), given Blockfrost's
/// `/txs/{hash}` (`tx`), `/txs/{hash}/utxos` (`utxos`) and
/// `/txs/{hash}/withdrawals` (`withdrawals`, `[]` when it has none), with
/// the custody's reward address `reward`.
pub fn tx_flows(
    tx: &Value,
    utxos: &Value,
    withdrawals: &Value,
    addr: &str,
    reward: &str,
) -> Result<Vec<TxFlow>, String> {
    let valid = tx["valid_contract"].as_bool().unwrap_or(true);
    // What moved: collateral only when the scripts failed.
    let moved = |o: &Value| o["collateral"].as_bool().unwrap_or(false) != valid;
    let mut ins = 0i128;
    let mut from_other = None;
    for i in utxos["inputs"].as_array().ok_or("inputs are missing")? {
        if i["reference"].as_bool().unwrap_or(false) || !moved(i) {
            continue;
        }
        let a = i["address"].as_str().unwrap_or("");
        if a == addr {
            ins += i128::try_from(lovelace(i)?).map_err(|_| "overflow")?;
        } else if from_other.is_none() {
            from_other = Some(a.to_owned());
        }
    }
    let mut outs = 0i128;
    let mut to_other = None;
    for o in utxos["outputs"].as_array().ok_or("outputs are missing")? {
        if !moved(o) {
            continue;
        }
        let a = o["address"].as_str().unwrap_or("");
        if a == addr {
            outs += i128::try_from(lovelace(o)?).map_err(|_| "overflow")?;
        } else if to_other.is_none() {
            to_other = Some(a.to_owned());
        }
    }
    let mut w = 0i128;
    for x in withdrawals.as_array().ok_or("withdrawals are not a list")? {
        if x["address"].as_str() == Some(reward) {
            w += signed(&x["amount"], "withdrawal amount")?;
        }
    }
    let mut out = Vec::new();
    if !valid {
        // The scripts failed: the chain kept our collateral (less its
        // return) as the fee, and nothing else happened.
        let kept = ins - outs;
        if kept > 0 {
            out.push(TxFlow {
                kind: FlowKind::Fee,
                amount: kept.unsigned_abs(),
                counterparty: None,
            });
        }
        return Ok(out);
    }
    let mut left = ins + w - outs;
    if ins > 0 {
        let fee = signed(&tx["fees"], "fees")?;
        let deposit = signed(&tx["deposit"], "deposit")?;
        left -= fee + deposit;
        if fee > 0 {
            out.push(TxFlow {
                kind: FlowKind::Fee,
                amount: u128::try_from(fee).map_err(|_| "overflow")?,
                counterparty: None,
            });
        }
    }
    if left > 0 {
        out.push(TxFlow {
            kind: FlowKind::TransferOut,
            amount: left.unsigned_abs(),
            counterparty: to_other,
        });
    } else if left < 0 {
        out.push(TxFlow {
            kind: FlowKind::TransferIn,
            amount: left.unsigned_abs(),
            counterparty: from_other,
        });
    }
    Ok(out)
}

/// The operation a signed transaction performs, when it is one softstake
/// signs for the stake key `stake` (the inverse of the adapter's
/// builders): delegate (registration + delegation, or re-delegation),
/// `setup` `vote_delegation:<drep>` or `deregister`, or claim_rewards (a
/// withdrawal alone). A delegation's amount is what the transaction left at
/// `address` (the delegated balance). `None` for anything else.
pub fn operation_of(
    cbor: &[u8],
    stake: &[u8; 28],
    address: &[u8],
) -> Option<softstake_core::adapter::OperationKind> {
    use pallas_codec::minicbor;
    use pallas_primitives::StakeCredential;
    use pallas_primitives::conway::{Certificate, DRep, Tx};
    use softstake_core::Amount;
    use softstake_core::adapter::OperationKind;
    let tx: Tx = minicbor::decode(cbor).ok()?;
    let body = &tx.transaction_body;
    let ours =
        |c: &StakeCredential| matches!(c, StakeCredential::AddrKeyhash(h) if h.as_ref() == stake);
    let to_us: u64 = body
        .outputs
        .iter()
        .map(|o| match o {
            pallas_primitives::babbage::GenTransactionOutput::Legacy(x) => {
                if x.address.as_slice() == address {
                    match &x.amount {
                        pallas_primitives::alonzo::Value::Coin(c)
                        | pallas_primitives::alonzo::Value::Multiasset(c, _) => *c,
                    }
                } else {
                    0
                }
            }
            pallas_primitives::babbage::GenTransactionOutput::PostAlonzo(x) => {
                if x.address.as_slice() == address {
                    match &x.value {
                        pallas_primitives::conway::Value::Coin(c)
                        | pallas_primitives::conway::Value::Multiasset(c, _) => *c,
                    }
                } else {
                    0
                }
            }
        })
        .sum();
    let certs: Vec<&Certificate> = body.certificates.iter().flat_map(|s| s.iter()).collect();
    let withdraws_ours = body
        .withdrawals
        .iter()
        .flat_map(|w| w.iter())
        .any(|(acct, _)| acct.get(1..29) == Some(&stake[..]));
    match certs.as_slice() {
        [] if withdraws_ours => Some(OperationKind::ClaimRewards {
            validators: Vec::new(),
        }),
        [Certificate::StakeRegDeleg(c, pool, _)] | [Certificate::StakeDelegation(c, pool)]
            if ours(c) =>
        {
            Some(OperationKind::Delegate {
                validator: crate::tx::pool_bech32(pool.as_ref().try_into().ok()?),
                amount: Amount::from_base(u128::from(to_us)),
            })
        }
        [Certificate::VoteDeleg(c, d)] if ours(c) => Some(OperationKind::Setup {
            step: format!(
                "vote_delegation:{}",
                match d {
                    DRep::Key(h) => format!("key:{}", hex::encode(h)),
                    DRep::Script(h) => format!("script:{}", hex::encode(h)),
                    DRep::Abstain => "always_abstain".into(),
                    DRep::NoConfidence => "always_no_confidence".into(),
                }
            ),
        }),
        [Certificate::UnReg(c, _)] if ours(c) => Some(OperationKind::Setup {
            step: "deregister".into(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn io(addr: &str, lovelace: u64) -> Value {
        json!({"address": addr, "amount": [{"unit": "lovelace", "quantity": lovelace.to_string()}, {"unit": "abc", "quantity": "5"}], "collateral": false, "reference": false})
    }

    #[test]
    fn fees_deposits_withdrawals_and_transfers() {
        let (me, rw) = ("addr_me", "stake_me");
        let none = json!([]);
        let tx = |fee: i64, deposit: &str| json!({"fees": fee.to_string(), "deposit": deposit, "valid_contract": true});
        // Our delegation: 2 ADA deposit and a fee; change back to us.
        let u = json!({"inputs": [io(me, 10_000_000)], "outputs": [io(me, 7_800_000)]});
        let f = tx_flows(&tx(200_000, "2000000"), &u, &none, me, rw).unwrap();
        assert_eq!(
            f,
            [TxFlow {
                kind: FlowKind::Fee,
                amount: 200_000,
                counterparty: None
            }]
        );
        // A reward withdrawal into our change: only the fee.
        let u = json!({"inputs": [io(me, 5_000_000)], "outputs": [io(me, 5_830_000)]});
        let w = json!([{"address": rw, "amount": "1000000"}]);
        let f = tx_flows(&tx(170_000, "0"), &u, &w, me, rw).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FlowKind::Fee);
        // A payout: 3 ADA to someone, change back.
        let u = json!({"inputs": [io(me, 10_000_000)], "outputs": [io("addr_user", 3_000_000), io(me, 6_830_000)]});
        let f = tx_flows(&tx(170_000, "0"), &u, &none, me, rw).unwrap();
        assert_eq!(
            f[1],
            TxFlow {
                kind: FlowKind::TransferOut,
                amount: 3_000_000,
                counterparty: Some("addr_user".into())
            }
        );
        // A top-up from the exchange: their fee, not ours.
        let u = json!({"inputs": [io("addr_ex", 50_000_000)], "outputs": [io(me, 20_000_000), io("addr_ex", 29_800_000)]});
        let f = tx_flows(&tx(200_000, "0"), &u, &none, me, rw).unwrap();
        assert_eq!(
            f,
            [TxFlow {
                kind: FlowKind::TransferIn,
                amount: 20_000_000,
                counterparty: Some("addr_ex".into())
            }]
        );
        // Deregistration refunds the deposit to us: not a transfer.
        let u = json!({"inputs": [io(me, 1_000_000)], "outputs": [io(me, 2_830_000)]});
        let f = tx_flows(&tx(170_000, "-2000000"), &u, &none, me, rw).unwrap();
        assert_eq!(f.len(), 1);
        // Reference inputs move nothing; failed scripts move only collateral.
        let mut r = io(me, 9_000_000);
        r["reference"] = json!(true);
        let u = json!({"inputs": [r, io("addr_ex", 5_000_000)], "outputs": [io(me, 4_800_000)]});
        let f = tx_flows(&tx(200_000, "0"), &u, &none, me, rw).unwrap();
        assert_eq!(f[0].kind, FlowKind::TransferIn);
        let mut c = io(me, 5_000_000);
        c["collateral"] = json!(true);
        let mut back = io(me, 4_700_000);
        back["collateral"] = json!(true);
        let u =
            json!({"inputs": [io(me, 9_000_000), c], "outputs": [io("addr_x", 8_000_000), back]});
        let bad = json!({"fees": "300000", "deposit": "0", "valid_contract": false});
        let f = tx_flows(&bad, &u, &none, me, rw).unwrap();
        assert_eq!(
            f,
            [TxFlow {
                kind: FlowKind::Fee,
                amount: 300_000,
                counterparty: None
            }]
        );
        assert!(
            tx_flows(
                &tx(1, "x"),
                &json!({"inputs": [io(me, 1)], "outputs": []}),
                &none,
                me,
                rw
            )
            .is_err()
        );
    }
}
