//! What moved lamports into or out of the pool in one transaction, for the
//! pool's books, from the node's `getTransaction` answer: the balances of
//! every account the transaction touched, before and after, and its fee.
//!
//! The pool's accounts are the custody wallet and its stake accounts.
//! Lamports moving between them (creating, funding, withdrawing a stake
//! account) are not flows. What is left is a transfer with the outside
//! world, plus the fee when the custody wallet paid it. Pure functions; the
//! adapter fetches.

use serde_json::Value;
use softstake_core::adapter::{FlowKind, PoolFlow};
use softstake_core::{Amount, Timestamp};

/// Why a transaction could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {sig}: {what}")]
pub struct BadTransaction {
    /// Its signature.
    pub sig: String,
    /// What was wrong with the answer.
    pub what: String,
}

/// The flows of the transaction `sig` (`tx` is `getTransaction`'s answer
/// with `encoding: json`), where `ours(address)` says whether an account is
/// the pool's. Keys: `fee:SIG`, `in:SIG`, `out:SIG`.
pub fn classify(
    sig: &str,
    tx: &Value,
    custody: &str,
    ours: impl Fn(&str) -> bool,
) -> Result<Vec<PoolFlow>, BadTransaction> {
    let bad = |what: &str| BadTransaction {
        sig: sig.to_owned(),
        what: what.to_owned(),
    };
    let keys: Vec<&str> = tx
        .pointer("/transaction/message/accountKeys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no accountKeys (ask for encoding json)"))?
        .iter()
        .map(|k| {
            k.as_str()
                .or_else(|| k.get("pubkey").and_then(Value::as_str))
        })
        .collect::<Option<Vec<&str>>>()
        .ok_or_else(|| bad("an account key is not a string"))?;
    // Address-table accounts of a v0 transaction follow the static keys.
    let mut keys: Vec<&str> = keys;
    for table in ["writable", "readonly"] {
        for k in tx
            .pointer(&format!("/meta/loadedAddresses/{table}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            keys.push(
                k.as_str()
                    .ok_or_else(|| bad("a loaded address is not a string"))?,
            );
        }
    }
    let list = |name: &str| -> Result<Vec<u64>, BadTransaction> {
        tx.pointer(&format!("/meta/{name}"))
            .and_then(Value::as_array)
            .ok_or_else(|| bad(&format!("no meta.{name}")))?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| bad(&format!("meta.{name} holds a non-integer")))
    };
    let (pre, post) = (list("preBalances")?, list("postBalances")?);
    if pre.len() != keys.len() || post.len() != keys.len() {
        return Err(bad("balances and account keys differ in length"));
    }
    let fee = tx
        .pointer("/meta/fee")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no meta.fee"))?;
    let at = Timestamp::from_unix(
        tx.get("blockTime")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("no blockTime"))?,
    );
    let we_paid = keys.first() == Some(&custody);
    // Net change of the pool's accounts, and the outside account that moved
    // most the other way (the counterparty).
    let mut net: i128 = 0;
    let mut other: Option<(&str, i128)> = None;
    for (i, k) in keys.iter().enumerate() {
        let d = i128::from(post[i]) - i128::from(pre[i]);
        if ours(k) {
            net += d;
        } else if d != 0 && other.is_none_or(|(_, o)| d.abs() > o.abs()) {
            other = Some((k, d));
        }
    }
    let mut out = Vec::new();
    let fee_paid = if we_paid { i128::from(fee) } else { 0 };
    if fee_paid > 0 {
        out.push(PoolFlow {
            key: format!("fee:{sig}"),
            kind: FlowKind::Fee,
            amount: Amount::from_base(fee.into()),
            tx_id: sig.to_owned(),
            counterparty: None,
            at,
        });
    }
    let transfer = net + fee_paid;
    if transfer != 0 {
        let (kind, key) = if transfer > 0 {
            (FlowKind::TransferIn, format!("in:{sig}"))
        } else {
            (FlowKind::TransferOut, format!("out:{sig}"))
        };
        out.push(PoolFlow {
            key,
            kind,
            amount: Amount::from_base(transfer.unsigned_abs()),
            tx_id: sig.to_owned(),
            counterparty: other
                .filter(|(_, d)| (*d < 0) == (transfer > 0))
                .map(|(k, _)| k.to_owned()),
            at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn tx(keys: &[&str], pre: &[u64], post: &[u64], fee: u64) -> Value {
        json!({"blockTime": 1_700_000_000, "slot": 5,
               "transaction": {"message": {"accountKeys": keys}},
               "meta": {"fee": fee, "preBalances": pre, "postBalances": post}})
    }

    fn summary(f: &[PoolFlow]) -> Vec<(String, FlowKind, u128, Option<String>)> {
        f.iter()
            .map(|f| {
                (
                    f.key.clone(),
                    f.kind,
                    f.amount.base(),
                    f.counterparty.clone(),
                )
            })
            .collect()
    }

    const C: &str = "Custody";
    const S: &str = "Stake1";

    fn ours(k: &str) -> bool {
        k == C || k == S
    }

    #[test]
    fn funding_a_stake_account_is_internal_and_costs_only_the_fee() {
        // Custody pays 2,000 into the stake account and a 5,000 fee.
        let t = tx(
            &[C, S, "StakeProgram"],
            &[100_000, 0, 1],
            &[93_000, 2_000, 1],
            5_000,
        );
        assert_eq!(
            summary(&classify("s1", &t, C, ours).unwrap()),
            vec![("fee:s1".into(), FlowKind::Fee, 5_000, None)]
        );
    }

    #[test]
    fn a_top_up_and_a_payout_are_transfers_with_their_counterparty() {
        let t = tx(&[C, "Exchange"], &[10, 500], &[10, 0], 0);
        let t = {
            // The exchange pays the fee and sends 400 to custody.
            let mut t = t;
            t["transaction"]["message"]["accountKeys"] = json!(["Exchange", C]);
            t["meta"]["preBalances"] = json!([500, 10]);
            t["meta"]["postBalances"] = json!([95, 410]);
            t["meta"]["fee"] = json!(5);
            t
        };
        assert_eq!(
            summary(&classify("s2", &t, C, ours).unwrap()),
            vec![(
                "in:s2".into(),
                FlowKind::TransferIn,
                400,
                Some("Exchange".into())
            )]
        );
        let out = tx(&[C, "User"], &[1_000, 0], &[695, 300], 5);
        assert_eq!(
            summary(&classify("s3", &out, C, ours).unwrap()),
            vec![
                ("fee:s3".into(), FlowKind::Fee, 5, None),
                (
                    "out:s3".into(),
                    FlowKind::TransferOut,
                    300,
                    Some("User".into())
                ),
            ]
        );
    }

    #[test]
    fn a_failed_transaction_costs_its_fee_and_moves_nothing_else() {
        let t = tx(&[C, "X"], &[1_000, 7], &[995, 7], 5);
        assert_eq!(
            summary(&classify("s4", &t, C, ours).unwrap()),
            vec![("fee:s4".into(), FlowKind::Fee, 5, None)]
        );
    }

    #[test]
    fn an_unreadable_answer_is_refused() {
        let t = tx(&[C, "X"], &[1_000], &[995, 7], 5);
        assert!(classify("s5", &t, C, ours).is_err());
        assert!(classify("s6", &json!({"meta": null}), C, ours).is_err());
    }
}
