//! The custody account's transfers and fees, read from the events the
//! Cosmos SDK emits for every coin movement (pure: no I/O).
//!
//! Every bank send emits `transfer {recipient, sender, amount}`; the ante
//! handler emits `tx {fee, fee_payer}` for the fee (kept even when the
//! transaction fails). Coins moving between the custody account and the
//! SDK's own module accounts are staking, not flows: delegating (to
//! `bonded_tokens_pool`), unbonding (from `not_bonded_tokens_pool`),
//! rewards (from `distribution`: booked as rewards, with their own
//! evidence) and the fee itself (to `fee_collector`, booked from the `tx`
//! event). Everything else that moves uatom in or out is a flow. Other
//! denominations are not holdings (the pool is uatom), so they are neither.

use cosmrs::AccountId;
use serde_json::Value;
use sha2::{Digest, Sha256};
use softstake_core::adapter::FlowKind;

/// The module accounts whose transfers with the custody account are
/// staking, not flows.
pub const INTERNAL_MODULES: [&str; 4] = [
    "bonded_tokens_pool",
    "not_bonded_tokens_pool",
    "distribution",
    "fee_collector",
];

/// A module account's address: the first 20 bytes of SHA-256 of its name
/// (the SDK's `authtypes.NewModuleAddress`), in bech32 with `prefix`.
pub fn module_address(name: &str, prefix: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    AccountId::new(prefix, &h[..20]).map_or_else(|_| String::new(), |a| a.to_string())
}

/// The addresses of [`INTERNAL_MODULES`] on the Hub.
pub fn internal_addresses() -> Vec<String> {
    INTERNAL_MODULES
        .iter()
        .map(|m| module_address(m, crate::ACCOUNT_PREFIX))
        .collect()
}

/// A coin list as the SDK prints it (`sdk.Coins.String()`: `"5ibc/AB…,7uatom"`,
/// and a zero reward as `"0uatom"`), as (denomination, amount) in order;
/// `None` when it is malformed (an amount without a denomination, or one
/// that overflows u128).
pub fn coins(s: &str) -> Option<Vec<(String, u128)>> {
    let mut out = Vec::new();
    for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let digits = c.chars().take_while(char::is_ascii_digit).count();
        let (n, d) = c.split_at(digits);
        if digits == 0 || d.is_empty() {
            return None;
        }
        out.push((d.to_owned(), n.parse().ok()?));
    }
    Some(out)
}

/// The amount of `denom` in a coin list (`"5uatom,7ibc/AB…"`); `None` when
/// the list is malformed.
pub fn coins_amount(s: &str, denom: &str) -> Option<u128> {
    let mut total = 0u128;
    for (d, n) in coins(s)? {
        if d == denom {
            total = total.checked_add(n)?;
        }
    }
    Some(total)
}

/// One movement of uatom a transaction made for the custody account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFlow {
    /// Transfer in, out, or the fee.
    pub kind: FlowKind,
    /// uatom.
    pub amount: u128,
    /// The other side (none for a fee).
    pub counterparty: Option<String>,
    /// Which of the transaction's events (for the flow's key).
    pub event: usize,
}

/// An event attribute's value (CometBFT 0.37+: plain strings).
pub(crate) fn attr<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"].as_str() == Some(key))
        .and_then(|a| a["value"].as_str())
}

/// One delegation's rewards paid out in a transaction: a `withdraw_rewards`
/// event naming the delegator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The validator's operator address.
    pub validator: String,
    /// Every denomination paid (an empty list or `0<denom>` for nothing).
    pub coins: Vec<(String, u128)>,
    /// Which of the transaction's events.
    pub event: usize,
}

/// The rewards paid to `delegator`'s delegations in one `tx_search` result:
/// its `withdraw_rewards` events that name `delegator` (the Cosmos SDK
/// names it since cosmos/cosmos-sdk#15462, in the v0.47 line; an event of
/// an older SDK names no delegator and is not taken, never guessed). A
/// failed transaction paid nothing.
pub fn withdrawals(tx: &Value, delegator: &str) -> Result<Vec<Withdrawal>, String> {
    let events = tx["tx_result"]["events"]
        .as_array()
        .ok_or("tx_result.events is missing")?;
    if tx["tx_result"]["code"].as_u64().unwrap_or(0) != 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e["type"].as_str() != Some("withdraw_rewards") || attr(e, "delegator") != Some(delegator)
        {
            continue;
        }
        // An SDK that paid nothing wrote no value (v0.45) or `0<denom>`.
        let raw = attr(e, "amount").unwrap_or("");
        let coins = coins(raw).ok_or_else(|| {
            format!("event {i}: withdraw_rewards amount {raw:?} is not a coin list")
        })?;
        out.push(Withdrawal {
            validator: attr(e, "validator").unwrap_or("").to_owned(),
            coins,
            event: i,
        });
    }
    Ok(out)
}

/// The flows of one `tx_search` result (`{hash, height, tx_result: {code,
/// events}}`) for `addr`, given the module accounts to leave out.
pub fn tx_flows(tx: &Value, addr: &str, internal: &[String]) -> Result<Vec<TxFlow>, String> {
    let events = tx["tx_result"]["events"]
        .as_array()
        .ok_or("tx_result.events is missing")?;
    let ok = tx["tx_result"]["code"].as_u64().unwrap_or(0) == 0;
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e["type"].as_str() {
            Some("tx") if attr(e, "fee_payer") == Some(addr) => {
                let fee = attr(e, "fee").unwrap_or("");
                let amount = coins_amount(fee, crate::DENOM)
                    .ok_or_else(|| format!("event {i}: fee {fee:?} is not a coin list"))?;
                if amount > 0 {
                    out.push(TxFlow {
                        kind: FlowKind::Fee,
                        amount,
                        counterparty: None,
                        event: i,
                    });
                }
            }
            // A failed transaction moved nothing but its fee.
            Some("transfer") if ok => {
                let (Some(to), Some(from)) = (attr(e, "recipient"), attr(e, "sender")) else {
                    return Err(format!("event {i}: transfer without recipient or sender"));
                };
                let (kind, other) = match (to == addr, from == addr) {
                    (true, false) => (FlowKind::TransferIn, from),
                    (false, true) => (FlowKind::TransferOut, to),
                    _ => continue,
                };
                if internal.iter().any(|m| m == other) {
                    continue;
                }
                let coins = attr(e, "amount").unwrap_or("");
                let amount = coins_amount(coins, crate::DENOM)
                    .ok_or_else(|| format!("event {i}: amount {coins:?} is not a coin list"))?;
                if amount > 0 {
                    out.push(TxFlow {
                        kind,
                        amount,
                        counterparty: Some(other.to_owned()),
                        event: i,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn module_addresses_are_the_sdks() {
        // The Hub's bonded pool, distribution and fee collector accounts,
        // as every explorer shows them.
        assert_eq!(
            module_address("bonded_tokens_pool", "cosmos"),
            "cosmos1fl48vsnmsdzcv85q5d2q4z5ajdha8yu34mf0eh"
        );
        assert_eq!(
            module_address("not_bonded_tokens_pool", "cosmos"),
            "cosmos1tygms3xhhs3yv487phx3dw4a95jn7t7lpm470r"
        );
        assert_eq!(
            module_address("distribution", "cosmos"),
            "cosmos1jv65s3grqf6v6jl3dp4t6c9t9rk99cd88lyufl"
        );
        assert_eq!(
            module_address("fee_collector", "cosmos"),
            "cosmos17xpfvakm2amg962yls6f84z3kell8c5lserqta"
        );
    }

    #[test]
    fn coin_lists() {
        assert_eq!(coins_amount("5uatom", "uatom"), Some(5));
        assert_eq!(coins_amount("7ibc/27394FB0,5uatom", "uatom"), Some(5));
        assert_eq!(coins_amount("7ibc/ABuatom", "uatom"), Some(0));
        assert_eq!(coins_amount("", "uatom"), Some(0));
        assert_eq!(coins_amount("uatom", "uatom"), None);
        assert_eq!(coins_amount("5", "uatom"), None);
        assert_eq!(
            coins("12ibc/27394FB0,0uatom").unwrap(),
            [("ibc/27394FB0".to_owned(), 12), ("uatom".to_owned(), 0)]
        );
        assert_eq!(
            coins_amount(
                "340282366920938463463374607431768211455uatom,1uatom",
                "uatom"
            ),
            None
        );
    }

    fn ev(t: &str, attrs: &[(&str, &str)]) -> Value {
        json!({"type": t, "attributes": attrs.iter().map(|(k, v)| json!({"key": k, "value": v, "index": true})).collect::<Vec<_>>()})
    }

    #[test]
    fn staking_moves_are_not_flows_and_a_failed_tx_pays_only_its_fee() {
        let me = "cosmos1me";
        let internal = internal_addresses();
        let dist = module_address("distribution", "cosmos");
        let fees = module_address("fee_collector", "cosmos");
        let tx = |code: u64, events: Vec<Value>| json!({"hash": "AB", "height": "9", "tx_result": {"code": code, "events": events}});
        let events = vec![
            ev(
                "transfer",
                &[("recipient", &fees), ("sender", me), ("amount", "250uatom")],
            ),
            ev("tx", &[("fee", "250uatom"), ("fee_payer", me)]),
            ev(
                "transfer",
                &[("recipient", me), ("sender", &dist), ("amount", "42uatom")],
            ),
            ev(
                "transfer",
                &[
                    ("recipient", me),
                    ("sender", "cosmos1ex"),
                    ("amount", "1000uatom,3ibc/X"),
                ],
            ),
            ev(
                "transfer",
                &[
                    ("recipient", "cosmos1user"),
                    ("sender", me),
                    ("amount", "600uatom"),
                ],
            ),
            ev(
                "transfer",
                &[
                    ("recipient", "cosmos1a"),
                    ("sender", "cosmos1b"),
                    ("amount", "9uatom"),
                ],
            ),
        ];
        let f = tx_flows(&tx(0, events.clone()), me, &internal).unwrap();
        assert_eq!(
            f.iter()
                .map(|f| (f.kind, f.amount, f.event))
                .collect::<Vec<_>>(),
            [
                (FlowKind::Fee, 250, 1),
                (FlowKind::TransferIn, 1000, 3),
                (FlowKind::TransferOut, 600, 4)
            ]
        );
        assert_eq!(f[1].counterparty.as_deref(), Some("cosmos1ex"));
        let f = tx_flows(&tx(5, events), me, &internal).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FlowKind::Fee);
        // Someone else paid the fee: not ours.
        let other = vec![ev("tx", &[("fee", "250uatom"), ("fee_payer", "cosmos1x")])];
        assert!(tx_flows(&tx(0, other), me, &internal).unwrap().is_empty());
        let bad = vec![ev("tx", &[("fee", "lots"), ("fee_payer", me)])];
        assert!(tx_flows(&tx(0, bad), me, &internal).is_err());
    }
}
