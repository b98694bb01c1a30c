//! What moved value into or out of the stash in one block, read from the
//! block's own events (a pure function, so the rules are unit-tested):
//!
//! - `Balances.Transfer` to the stash from another account: a transfer in;
//!   from the stash to another: a transfer out.
//! - `Balances.Minted` to the stash (an XCM teleport or reserve transfer
//!   arriving) is a transfer in; `Balances.Burned` from it (one leaving) a
//!   transfer out. Such a transfer happens outside any extrinsic of this
//!   chain, so its id is `BLOCK-EVENT` (`TransferIn`'s `tx_id`).
//! - `TransactionPayment.TransactionFeePaid` by the stash: a fee, the
//!   `actual_fee` (the tip included).
//! - A reward is not a flow: `rewards_since` evidences it. So in an
//!   extrinsic that pays the stash (`Staking.Rewarded`), the transfer from
//!   staking-async's era reward pot (or the mint of the relay chain's
//!   legacy payout) carrying exactly that amount is the reward itself, and
//!   is skipped, once per reward.
//!
//! `Balances.Withdraw` / `Deposit` are the fee's own bookkeeping (withdrawn
//! up front, the excess refunded), already in `TransactionFeePaid`;
//! `Reserved`, `Unreserved` and holds move nothing out of the account.
//! Anything else that changes the balance (a slash, dust lost) is not a
//! flow: the books see it as a residual.

use crate::state::{Event, V, account, items, num, variant};
use softstake_core::adapter::FlowKind;
use subxt::ext::scale_value::At;
use subxt::metadata::Metadata;

/// One flow found in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFlow {
    /// Transfer in, transfer out or fee.
    pub kind: FlowKind,
    /// Planck.
    pub amount: u128,
    /// Index of the event in the block.
    pub event: usize,
    /// The extrinsic it came from, if any.
    pub extrinsic: Option<u32>,
    /// The other account, where there is one.
    pub counterparty: Option<[u8; 32]>,
}

/// The flows of `stash` in one block's events.
pub fn block_flows(events: &[Event], stash: &[u8; 32]) -> Vec<BlockFlow> {
    // Rewards paid to the stash, per extrinsic: the transfer or mint that
    // carries each is the reward, not a flow.
    let mut rewards: Vec<(Option<u32>, u128)> = events
        .iter()
        .filter(|e| e.pallet == "Staking" && e.name == "Rewarded")
        .filter(|e| e.fields.at("stash").and_then(account).as_ref() == Some(stash))
        .filter_map(|e| Some((e.extrinsic, e.fields.at("amount").and_then(num)?)))
        .collect();
    let mut is_reward =
        |ext: Option<u32>, amount: u128| match rewards.iter().position(|r| *r == (ext, amount)) {
            Some(i) => {
                rewards.remove(i);
                true
            }
            None => false,
        };
    let mut out = Vec::new();
    for e in events {
        let who = |name: &str| e.fields.at(name).and_then(account);
        let amt = |name: &str| e.fields.at(name).and_then(num).unwrap_or(0);
        let flow = match (e.pallet.as_str(), e.name.as_str()) {
            ("Balances", "Transfer") => {
                let (from, to, a) = (who("from"), who("to"), amt("amount"));
                if from == to || a == 0 {
                    None
                } else if to.as_ref() == Some(stash) {
                    (!is_reward(e.extrinsic, a)).then_some((FlowKind::TransferIn, a, from))
                } else if from.as_ref() == Some(stash) {
                    Some((FlowKind::TransferOut, a, to))
                } else {
                    None
                }
            }
            ("Balances", "Minted") if who("who").as_ref() == Some(stash) => {
                let a = amt("amount");
                (a > 0 && !is_reward(e.extrinsic, a)).then_some((FlowKind::TransferIn, a, None))
            }
            ("Balances", "Burned") if who("who").as_ref() == Some(stash) => {
                let a = amt("amount");
                (a > 0).then_some((FlowKind::TransferOut, a, None))
            }
            ("TransactionPayment", "TransactionFeePaid") if who("who").as_ref() == Some(stash) => {
                let a = amt("actual_fee");
                (a > 0).then_some((FlowKind::Fee, a, None))
            }
            _ => None,
        };
        if let Some((kind, amount, counterparty)) = flow {
            out.push(BlockFlow {
                kind,
                amount,
                event: e.index,
                extrinsic: e.extrinsic,
                counterparty,
            });
        }
    }
    out
}

/// The `Staking` calls a signed extrinsic makes as `stash` (the signer, or
/// the `real` of a `Proxy.proxy`), through `Utility` batches: each with its
/// `value` argument where it has one. `None` when the bytes do not decode
/// as a signed extrinsic of this runtime. For `identify`: a fee the stash
/// paid for a transaction the journal does not know.
pub fn staking_calls(
    meta: &Metadata,
    bytes: &[u8],
    stash: &[u8; 32],
) -> Option<Vec<(String, Option<u128>)>> {
    use subxt::ext::frame_decode::extrinsics::decode_extrinsic;
    let ext = decode_extrinsic(&mut &bytes[..], meta, meta.types()).ok()?;
    let sig = ext.signature_payload()?;
    // MultiAddress::Id(AccountId32)
    let addr = bytes.get(sig.address_range())?;
    let signer: [u8; 32] = match addr {
        [0, rest @ ..] if rest.len() == 32 => rest.try_into().ok()?,
        _ => return None,
    };
    let call = bytes.get(ext.call_data_range())?;
    let v = subxt::ext::scale_value::scale::decode_as_type(
        &mut &call[..],
        meta.outer_enums().call_enum_ty(),
        meta.types(),
    )
    .ok()?
    .remove_context();
    let mut out = Vec::new();
    walk(&v, &signer == stash, stash, &mut out);
    Some(out)
}

fn walk(call: &V, as_stash: bool, stash: &[u8; 32], out: &mut Vec<(String, Option<u128>)>) {
    let Some((pallet, c)) = variant(call) else {
        return;
    };
    let Some((name, fields)) = c.values().next().and_then(variant) else {
        return;
    };
    let field = |n: &str| match fields {
        subxt::ext::scale_value::Composite::Named(f) => {
            f.iter().find(|(k, _)| k == n).map(|(_, v)| v)
        }
        subxt::ext::scale_value::Composite::Unnamed(_) => None,
    };
    match (pallet, name) {
        ("Utility", "batch" | "batch_all" | "force_batch") => {
            for inner in field("calls").map(items).unwrap_or_default() {
                walk(inner, as_stash, stash, out);
            }
        }
        ("Proxy", "proxy") => {
            let real = field("real")
                .and_then(variant)
                .and_then(|(_, a)| a.values().next())
                .and_then(account);
            if let Some(inner) = field("call") {
                walk(inner, real.as_ref() == Some(stash), stash, out);
            }
        }
        ("Staking", name) if as_stash => {
            out.push((name.to_owned(), field("value").and_then(num)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subxt::ext::scale_value::Value;

    const S: [u8; 32] = [7; 32];
    const X: [u8; 32] = [9; 32];
    const POT: [u8; 32] = [3; 32];

    fn ev(
        index: usize,
        ext: Option<u32>,
        pallet: &str,
        name: &str,
        f: Vec<(&str, Value)>,
    ) -> Event {
        Event {
            index,
            extrinsic: ext,
            pallet: pallet.into(),
            name: name.into(),
            fields: Value::named_composite(f.into_iter().map(|(k, v)| (k.to_owned(), v))),
        }
    }

    fn acc(a: [u8; 32]) -> Value {
        Value::unnamed_composite([Value::from_bytes(a)])
    }

    fn transfer(i: usize, ext: u32, from: [u8; 32], to: [u8; 32], a: u128) -> Event {
        ev(
            i,
            Some(ext),
            "Balances",
            "Transfer",
            vec![
                ("from", acc(from)),
                ("to", acc(to)),
                ("amount", Value::u128(a)),
            ],
        )
    }

    #[test]
    fn transfers_fees_and_teleports_are_flows_and_rewards_are_not() {
        let evs = vec![
            // Extrinsic 1: the exchange tops the stash up.
            ev(
                0,
                Some(1),
                "Balances",
                "Withdraw",
                vec![("who", acc(X)), ("amount", Value::u128(5))],
            ),
            transfer(1, 1, X, S, 1_000),
            // Extrinsic 2: the stash pays out, and its fee.
            ev(
                2,
                Some(2),
                "Balances",
                "Withdraw",
                vec![("who", acc(S)), ("amount", Value::u128(9))],
            ),
            transfer(3, 2, S, X, 400),
            ev(
                4,
                Some(2),
                "Balances",
                "Deposit",
                vec![("who", acc(S)), ("amount", Value::u128(2))],
            ),
            ev(
                5,
                Some(2),
                "TransactionPayment",
                "TransactionFeePaid",
                vec![
                    ("who", acc(S)),
                    ("actual_fee", Value::u128(7)),
                    ("tip", Value::u128(0)),
                ],
            ),
            // Extrinsic 3: a payout by page from the era's reward pot: the
            // pot's transfer is the reward; a second, equal transfer in the
            // same extrinsic is not.
            ev(6, Some(3), "Staking", "PayoutStarted", vec![]),
            transfer(7, 3, POT, S, 50),
            ev(
                8,
                Some(3),
                "Staking",
                "Rewarded",
                vec![("stash", acc(S)), ("amount", Value::u128(50))],
            ),
            transfer(9, 3, POT, S, 50),
            // A teleport arriving in the block's initialisation, one leaving.
            ev(
                10,
                None,
                "Balances",
                "Minted",
                vec![("who", acc(S)), ("amount", Value::u128(300))],
            ),
            ev(
                11,
                Some(4),
                "Balances",
                "Burned",
                vec![("who", acc(S)), ("amount", Value::u128(20))],
            ),
            // Someone else's business.
            transfer(12, 5, X, POT, 99),
            ev(
                13,
                Some(5),
                "TransactionPayment",
                "TransactionFeePaid",
                vec![
                    ("who", acc(X)),
                    ("actual_fee", Value::u128(3)),
                    ("tip", Value::u128(0)),
                ],
            ),
        ];
        let f = block_flows(&evs, &S);
        let got: Vec<(FlowKind, u128, usize, Option<[u8; 32]>)> = f
            .iter()
            .map(|x| (x.kind, x.amount, x.event, x.counterparty))
            .collect();
        assert_eq!(
            got,
            vec![
                (FlowKind::TransferIn, 1_000, 1, Some(X)),
                (FlowKind::TransferOut, 400, 3, Some(X)),
                (FlowKind::Fee, 7, 5, None),
                (FlowKind::TransferIn, 50, 9, Some(POT)),
                (FlowKind::TransferIn, 300, 10, None),
                (FlowKind::TransferOut, 20, 11, None),
            ]
        );
        assert_eq!(f[3].extrinsic, Some(3));
        assert_eq!(f[4].extrinsic, None);
    }

    #[test]
    fn a_minted_reward_is_skipped_and_a_self_transfer_is_nothing() {
        let evs = vec![
            ev(
                0,
                Some(1),
                "Balances",
                "Minted",
                vec![("who", acc(S)), ("amount", Value::u128(50))],
            ),
            ev(
                1,
                Some(1),
                "Staking",
                "Rewarded",
                vec![("stash", acc(S)), ("amount", Value::u128(50))],
            ),
            transfer(2, 2, S, S, 10),
        ];
        assert!(block_flows(&evs, &S).is_empty());
    }

    /// Our own extrinsics, signed offline over the live Westend Asset Hub
    /// metadata, decode back to the staking calls they make as the stash.
    #[test]
    fn a_signed_extrinsic_decodes_to_the_staking_calls_it_makes_as_the_stash() {
        use crate::tx::{self, Call, Payee, TxParams};
        use subxt::utils::AccountId32;
        use subxt_signer::sr25519::Keypair;
        let meta = tx::metadata(include_bytes!(
            "../metadata/westend-asset-hub-1022000.scale"
        ))
        .unwrap();
        let p = TxParams {
            genesis_hash: [0x45; 32],
            spec_version: 1_022_000,
            transaction_version: 16,
            nonce: 3,
            tip: 0,
            era_block: 1000,
            era_block_hash: [0x11; 32],
            era_period: 64,
        };
        let key = |u: &str| Keypair::from_uri(&u.parse().unwrap()).unwrap();
        let (stash, proxy) = (key("//Stash"), key("//Proxy"));
        let me = stash.public_key().0;
        let v = AccountId32([9; 32]);
        let calls = |call: &Call, signer: &Keypair| {
            let x = tx::sign(&meta, call, &p, signer).unwrap();
            staking_calls(&meta, &x.bytes, &me).unwrap()
        };
        let bond = Call::BatchAll(vec![
            Call::Bond {
                value: 500,
                payee: Payee::Staked,
            },
            Call::Nominate { targets: vec![v] },
        ]);
        assert_eq!(
            calls(&bond, &stash),
            vec![
                ("bond".to_owned(), Some(500)),
                ("nominate".to_owned(), None)
            ]
        );
        // Signed by someone else: not the stash's.
        assert!(calls(&bond, &proxy).is_empty());
        // Through a staking proxy for the stash: the stash's; for another
        // account: not.
        let unbond = |real: [u8; 32]| Call::Proxy {
            real: AccountId32(real),
            call: Box::new(Call::Unbond { value: 7 }),
        };
        assert_eq!(
            calls(&unbond(me), &proxy),
            vec![("unbond".to_owned(), Some(7))]
        );
        assert!(calls(&unbond([1; 32]), &proxy).is_empty());
        // A transfer is no staking call.
        let t = Call::TransferKeepAlive { dest: v, value: 1 };
        assert!(calls(&t, &stash).is_empty());
        // Bytes that are not an extrinsic.
        assert!(staking_calls(&meta, &[1, 2, 3], &me).is_none());
    }
}
