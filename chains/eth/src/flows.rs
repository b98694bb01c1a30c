//! What moved ether into or out of the custody account in one execution
//! block, for the pool's books: value transfers from the block's call
//! traces (`trace_block`, so a contract wallet's internal transfer is seen
//! like a plain one), the fees of the custody account's own transactions
//! from their receipts, and the builder's payment, which is income the
//! rewards evidence and therefore not a flow.
//!
//! Pure functions over the node's JSON answers; the adapter fetches.

use serde_json::Value;
use softstake_core::adapter::{FlowKind, PoolFlow};
use softstake_core::{Amount, Timestamp};

/// One value-moving step of a transaction: a call trace (or, where the
/// node has no trace API, the transaction itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMove {
    /// Transaction hash.
    pub tx: String,
    /// Position of the transaction in the block.
    pub position: u64,
    /// The trace's address in the call tree (`[]` for the top call).
    pub trace_address: Vec<u64>,
    /// Sender and recipient, lower case.
    pub from: String,
    /// Recipient, lower case.
    pub to: String,
    /// Wei moved.
    pub value: u128,
}

fn hex_u128(v: &Value) -> Option<u128> {
    match v {
        Value::String(s) => u128::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
        Value::Number(n) => n.as_u64().map(u128::from),
        _ => None,
    }
}

fn lower(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_lowercase()
}

/// The value moves of a Parity-style `trace_block` answer that really
/// happened: calls (not delegate or static calls, which move nothing),
/// contract creations and self-destruct refunds with a value, none of them
/// inside a reverted call. `None` when the answer is not a trace list.
pub fn moves_from_traces(traces: &Value) -> Option<Vec<ValueMove>> {
    let list = traces.as_array()?;
    // Reverted calls, by transaction and trace address: everything under
    // one of them was undone.
    let mut reverted: Vec<(String, Vec<u64>)> = Vec::new();
    let addr_of = |t: &Value| -> Vec<u64> {
        t.get("traceAddress")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    for t in list {
        if t.get("error").is_some_and(|e| !e.is_null()) {
            reverted.push((lower(t.get("transactionHash")), addr_of(t)));
        }
    }
    let mut out = Vec::new();
    for t in list {
        let tx = lower(t.get("transactionHash"));
        if tx.is_empty() {
            continue; // a block reward (before the merge): not a transfer
        }
        let at = addr_of(t);
        if reverted
            .iter()
            .any(|(h, a)| *h == tx && at.starts_with(a.as_slice()))
        {
            continue;
        }
        let action = t.get("action")?;
        let (from, to, value) = match t.get("type").and_then(Value::as_str) {
            Some("call") => {
                let kind = action
                    .get("callType")
                    .and_then(Value::as_str)
                    .unwrap_or("call");
                if kind != "call" && kind != "callcode" {
                    continue;
                }
                (
                    lower(action.get("from")),
                    lower(action.get("to")),
                    action.get("value").and_then(hex_u128)?,
                )
            }
            Some("create") => (
                lower(action.get("from")),
                lower(t.pointer("/result/address")),
                action.get("value").and_then(hex_u128)?,
            ),
            Some("suicide" | "selfdestruct") => (
                lower(action.get("address")),
                lower(action.get("refundAddress")),
                action.get("balance").and_then(hex_u128)?,
            ),
            _ => continue,
        };
        if value == 0 {
            continue;
        }
        out.push(ValueMove {
            tx,
            position: t.get("transactionPosition").and_then(Value::as_u64)?,
            trace_address: at,
            from,
            to,
            value,
        });
    }
    Some(out)
}

/// Where the node has no trace API: each successful transaction's own
/// value (`statuses[i]` is whether transaction `i` succeeded). Contract
/// wallets' internal transfers are not seen this way.
pub fn moves_from_transactions(block: &Value, statuses: &[bool]) -> Vec<ValueMove> {
    let mut out = Vec::new();
    for (i, t) in block
        .get("transactions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let value = t.get("value").and_then(hex_u128).unwrap_or(0);
        if value == 0 || !statuses.get(i).copied().unwrap_or(false) {
            continue;
        }
        out.push(ValueMove {
            tx: lower(t.get("hash")),
            position: u64::try_from(i).unwrap_or(u64::MAX),
            trace_address: Vec::new(),
            from: lower(t.get("from")),
            to: lower(t.get("to")),
            value,
        });
    }
    out
}

/// The addresses the classification needs, lower case.
#[derive(Debug, Clone)]
pub struct Parties {
    /// The custody account.
    pub custody: String,
    /// The deposit contract (value sent there is stake, not a flow).
    pub deposit_contract: String,
    /// The EIP-7002 request contract (value sent there is a fee).
    pub request_contract: String,
}

/// A transaction the custody account sent, with its receipt.
#[derive(Debug, Clone)]
pub struct OwnTx {
    /// Hash, lower case.
    pub hash: String,
    /// Wei paid for gas (and blob gas), net of any tip that came back
    /// because the custody account was the block's fee recipient.
    pub fee: u128,
}

/// A builder's payment to the proposer: the block's last transaction, a
/// plain transfer from the block's fee recipient (the builder) to ours.
pub fn builder_payment(block: &Value, recipient: &str) -> Option<(String, u128)> {
    let miner = lower(block.get("miner"));
    if miner.is_empty() || miner == recipient {
        return None;
    }
    let last = block.get("transactions")?.as_array()?.last()?;
    if lower(last.get("from")) != miner || lower(last.get("to")) != recipient {
        return None;
    }
    let value = last.get("value").and_then(hex_u128)?;
    (value > 0).then(|| (lower(last.get("hash")), value))
}

/// The flows of one block. `builder_tx` is the builder payment's hash
/// (evidenced as execution income by the rewards, so not a flow).
pub fn classify(
    p: &Parties,
    moves: &[ValueMove],
    own: &[OwnTx],
    builder_tx: Option<&str>,
    at: Timestamp,
) -> Vec<PoolFlow> {
    let mut out = Vec::new();
    for t in own {
        if t.fee > 0 {
            out.push(PoolFlow {
                key: format!("fee:{}", t.hash),
                kind: FlowKind::Fee,
                amount: Amount::from_base(t.fee),
                tx_id: t.hash.clone(),
                counterparty: None,
                at,
            });
        }
    }
    for m in moves {
        let path = m
            .trace_address
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let key = |what: &str| format!("{what}:{}:{}", m.tx, path);
        let outgoing = m.from == p.custody;
        let incoming = m.to == p.custody;
        let flow = match (outgoing, incoming) {
            (true, true) | (false, false) => continue,
            // Stake: the validator's balance (or the pending deposit)
            // holds it now.
            (true, false) if m.to == p.deposit_contract => continue,
            (true, false) if m.to == p.request_contract => {
                (key("request_fee"), FlowKind::Fee, None)
            }
            (true, false) => (key("out"), FlowKind::TransferOut, Some(m.to.clone())),
            (false, true) if m.trace_address.is_empty() && builder_tx == Some(m.tx.as_str()) => {
                continue;
            }
            (false, true) => (key("in"), FlowKind::TransferIn, Some(m.from.clone())),
        };
        out.push(PoolFlow {
            key: flow.0,
            kind: flow.1,
            amount: Amount::from_base(m.value),
            tx_id: m.tx.clone(),
            counterparty: flow.2,
            at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const C: &str = "0x00000000000000000000000000000000000000cc";

    fn parties() -> Parties {
        Parties {
            custody: C.into(),
            deposit_contract: "0x00000000219ab540356cbb839cbe05303d7705fa".into(),
            request_contract: "0x00000961ef480eb55e80d19ad83579a64c007002".into(),
        }
    }

    fn summary(f: &[PoolFlow]) -> Vec<(String, FlowKind, u128)> {
        f.iter()
            .map(|f| (f.key.clone(), f.kind, f.amount.base()))
            .collect()
    }

    fn call(tx: &str, pos: u64, at: &[u64], from: &str, to: &str, value: u128) -> Value {
        json!({"action": {"from": from, "to": to, "callType": "call", "value": format!("0x{value:x}"), "input": "0x", "gas": "0x0"},
               "transactionHash": tx, "transactionPosition": pos, "traceAddress": at, "type": "call", "subtraces": 0})
    }

    #[test]
    fn internal_transfers_count_and_reverted_ones_do_not() {
        let safe = "0x00000000000000000000000000000000000000aa";
        let mut reverted = call("0x02", 1, &[], "0xee", safe, 0);
        reverted["error"] = json!("Reverted");
        let traces = json!([
            // A contract wallet's payment to custody (inside its call).
            call("0x01", 0, &[], "0xee", safe, 0),
            call("0x01", 0, &[0], safe, C, 7),
            // Reverted: its inner transfer to custody never happened.
            reverted,
            call("0x02", 1, &[0], safe, C, 9),
            // A delegate call moves nothing.
            json!({"action": {"from": safe, "to": "0xdd", "callType": "delegatecall", "value": "0x5"},
                   "transactionHash": "0x03", "transactionPosition": 2, "traceAddress": [], "type": "call"}),
            // A self-destruct refund to custody.
            json!({"action": {"address": "0xde", "refundAddress": C, "balance": "0x3"},
                   "transactionHash": "0x04", "transactionPosition": 3, "traceAddress": [0], "type": "suicide"}),
        ]);
        let m = moves_from_traces(&traces).unwrap();
        let f = classify(&parties(), &m, &[], None, Timestamp::from_unix(1));
        assert_eq!(
            summary(&f),
            vec![
                ("in:0x01:0".into(), FlowKind::TransferIn, 7),
                ("in:0x04:0".into(), FlowKind::TransferIn, 3),
            ]
        );
        assert_eq!(f[0].counterparty.as_deref(), Some(safe));
    }

    #[test]
    fn own_transactions_pay_fees_stake_is_internal_and_payouts_are_outflows() {
        let p = parties();
        let traces = json!([
            call("0x10", 0, &[], C, &p.deposit_contract, 32),
            call("0x11", 1, &[], C, &p.request_contract, 1),
            call("0x12", 2, &[], C, "0xbb", 5),
            call("0x13", 3, &[], "0xbb", C, 4),
        ]);
        let m = moves_from_traces(&traces).unwrap();
        let own = [
            OwnTx {
                hash: "0x10".into(),
                fee: 100,
            },
            OwnTx {
                hash: "0x11".into(),
                fee: 0,
            },
        ];
        // 0x13 is the builder's payment: income the rewards evidence.
        let f = classify(&p, &m, &own, Some("0x13"), Timestamp::from_unix(1));
        assert_eq!(
            summary(&f),
            vec![
                ("fee:0x10".into(), FlowKind::Fee, 100),
                ("request_fee:0x11:".into(), FlowKind::Fee, 1),
                ("out:0x12:".into(), FlowKind::TransferOut, 5),
            ]
        );
    }

    #[test]
    fn a_builder_payment_is_the_last_transaction_from_the_blocks_fee_recipient() {
        let b = |miner: &str, txs: Value| json!({"miner": miner, "transactions": txs});
        let tx = |from: &str, to: &str, v: u64| json!({"hash": format!("0x{v:x}"), "from": from, "to": to, "value": format!("0x{v:x}")});
        let builder = "0x00000000000000000000000000000000000000b1";
        assert_eq!(
            builder_payment(&b(builder, json!([tx("0xaa", C, 1), tx(builder, C, 9)])), C),
            Some(("0x9".into(), 9))
        );
        // Not last, not from the builder, or our own block: not a payment.
        assert_eq!(
            builder_payment(
                &b(builder, json!([tx(builder, C, 9), tx("0xaa", "0xab", 1)])),
                C
            ),
            None
        );
        assert_eq!(
            builder_payment(&b(builder, json!([tx("0xaa", C, 9)])), C),
            None
        );
        assert_eq!(builder_payment(&b(C, json!([tx(C, C, 9)])), C), None);
    }

    #[test]
    fn without_traces_the_transactions_own_values_count_when_they_succeeded() {
        let block = json!({"transactions": [
            {"hash": "0xA1", "from": "0xBB", "to": C, "value": "0x5"},
            {"hash": "0xa2", "from": "0xbb", "to": C, "value": "0x6"},
        ]});
        let m = moves_from_transactions(&block, &[true, false]);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].tx.as_str(), m[0].from.as_str(), m[0].value),
            ("0xa1", "0xbb", 5)
        );
    }
}
