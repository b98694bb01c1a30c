//! Recognising this adapter's own transactions on chain: after a database
//! restore the journal has lost operations the custody key signed, and the
//! books find their fees. Decoded from the transaction's wire bytes with
//! the stake program's own instruction type, back into the
//! [`OperationKind`] the planner would have asked for. Pure; the adapter
//! fetches.

use crate::tx::STAKE_PROGRAM;
use softstake_core::Amount;
use softstake_core::adapter::OperationKind;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::transaction::VersionedTransaction;
use solana_stake_interface::instruction::StakeInstruction;

/// What [`operation_of`] needs besides the bytes.
pub struct Context<'a> {
    /// The custody key (the fee payer of every transaction softstake signs).
    pub custody: &'a Pubkey,
    /// Lamports of each account key after the transaction (`meta.postBalances`).
    pub post_balances: &'a [u64],
    /// Rent-exempt reserve of a stake account.
    pub rent_exempt_reserve: u64,
    /// The vote account a stake account is delegated to, as the chain shows
    /// it now.
    pub vote_of: &'a dyn Fn(&str) -> Option<String>,
}

/// The operation the transaction `bytes` carried out, if it is one the
/// adapter signs: create-and-delegate or re-delegate (`Delegate`), split
/// and deactivate or deactivate (`Undelegate`), withdraw
/// (`WithdrawUnbonded`), merge (`Setup` "merge"). `None` for anything else,
/// or when the custody key did not pay for it.
pub fn operation_of(bytes: &[u8], cx: &Context<'_>) -> Option<OperationKind> {
    let tx: VersionedTransaction = bincode::deserialize(bytes).ok()?;
    let keys = tx.message.static_account_keys();
    if keys.first() != Some(cx.custody) {
        return None;
    }
    let key = |i: u8| keys.get(usize::from(i));
    let after = |k: &Pubkey| {
        keys.iter()
            .position(|x| x == k)
            .and_then(|i| cx.post_balances.get(i).copied())
            .unwrap_or(0)
    };
    let mut delegated: Option<(Pubkey, Pubkey)> = None;
    let mut splits: Vec<(Pubkey, u64)> = Vec::new();
    let mut deactivated: Vec<Pubkey> = Vec::new();
    let mut withdrawn = 0u64;
    let mut merged = false;
    for ix in tx.message.instructions() {
        if key(ix.program_id_index) != Some(&STAKE_PROGRAM) {
            continue;
        }
        let acct = |n: usize| ix.accounts.get(n).and_then(|i| key(*i)).copied();
        match bincode::deserialize::<StakeInstruction>(&ix.data).ok()? {
            StakeInstruction::DelegateStake => {
                delegated = Some((acct(0)?, acct(1)?));
            }
            StakeInstruction::Split(lamports) => splits.push((acct(1)?, lamports)),
            StakeInstruction::Deactivate => deactivated.push(acct(0)?),
            StakeInstruction::Withdraw(lamports) => {
                withdrawn = withdrawn.checked_add(lamports)?;
            }
            StakeInstruction::Merge => merged = true,
            _ => {}
        }
    }
    let lamports = |v: u64| Amount::from_base(u128::from(v));
    if let Some((stake, vote)) = delegated {
        return Some(OperationKind::Delegate {
            validator: vote.to_string(),
            amount: lamports(after(&stake).saturating_sub(cx.rent_exempt_reserve)),
        });
    }
    if let Some(account) = deactivated.first() {
        let amount = splits.iter().find(|(to, _)| to == account).map_or_else(
            || after(account).saturating_sub(cx.rent_exempt_reserve),
            |(_, l)| *l,
        );
        return Some(OperationKind::Undelegate {
            validator: (cx.vote_of)(&account.to_string())?,
            amount: lamports(amount),
        });
    }
    if withdrawn > 0 {
        return Some(OperationKind::WithdrawUnbonded {
            amount: lamports(withdrawn),
        });
    }
    merged.then(|| OperationKind::Setup {
        step: "merge".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LocalKey;
    use crate::tx::{Action, TxParams, WithdrawEntry, build, stake_address};

    const RENT: u64 = 2_282_880;

    fn signed(action: &Action, key: &LocalKey) -> Vec<u8> {
        let p = TxParams {
            blockhash: "11111111111111111111111111111111".into(),
            rent_exempt_reserve: RENT,
            compute_unit_price: 1_000,
            compute_unit_limit: 200_000,
            withdrawer: None,
        };
        build(action, key, &p).unwrap().bytes
    }

    /// Post balances: `lamports` on `account`, nothing elsewhere.
    fn decode(
        bytes: &[u8],
        key: &LocalKey,
        account: &Pubkey,
        lamports: u64,
    ) -> Option<OperationKind> {
        let tx: VersionedTransaction = bincode::deserialize(bytes).unwrap();
        let post: Vec<u64> = tx
            .message
            .static_account_keys()
            .iter()
            .map(|k| if k == account { lamports } else { 0 })
            .collect();
        let custody = key.pubkey();
        let vote_of = |_: &str| Some("Vote111111111111111111111111111111111111111".to_owned());
        operation_of(
            bytes,
            &Context {
                custody: &custody,
                post_balances: &post,
                rent_exempt_reserve: RENT,
                vote_of: &vote_of,
            },
        )
    }

    #[test]
    fn every_action_the_adapter_signs_is_recognised_as_its_operation() {
        let key = LocalKey::from_seed([7; 32]);
        let custody = key.pubkey();
        let vote = "Vote111111111111111111111111111111111111111";
        let s0 = stake_address(&custody, 0);
        let s1 = stake_address(&custody, 1);
        let create = Action::CreateAndDelegate {
            seed_index: 0,
            vote: vote.into(),
            stake_lamports: 5_000_000_000,
        };
        assert_eq!(
            decode(&signed(&create, &key), &key, &s0, 5_000_000_000 + RENT),
            Some(OperationKind::Delegate {
                validator: vote.into(),
                amount: Amount::from_base(5_000_000_000)
            })
        );
        let split = Action::SplitAndDeactivate {
            source: s0.to_string(),
            seed_index: 1,
            lamports: 1_000_000_000,
        };
        assert_eq!(
            decode(&signed(&split, &key), &key, &s1, 1_000_000_000 + RENT),
            Some(OperationKind::Undelegate {
                validator: vote.into(),
                amount: Amount::from_base(1_000_000_000)
            })
        );
        let deactivate = Action::Deactivate {
            account: s0.to_string(),
        };
        assert_eq!(
            decode(&signed(&deactivate, &key), &key, &s0, 3_000_000_000 + RENT),
            Some(OperationKind::Undelegate {
                validator: vote.into(),
                amount: Amount::from_base(3_000_000_000)
            })
        );
        let withdraw = Action::Withdraw {
            accounts: vec![
                WithdrawEntry {
                    account: s0.to_string(),
                    lamports: 7,
                },
                WithdrawEntry {
                    account: s1.to_string(),
                    lamports: 8,
                },
            ],
        };
        assert_eq!(
            decode(&signed(&withdraw, &key), &key, &s0, 0),
            Some(OperationKind::WithdrawUnbonded {
                amount: Amount::from_base(15)
            })
        );
        let merge = Action::Merge {
            destination: s0.to_string(),
            source: s1.to_string(),
        };
        assert_eq!(
            decode(&signed(&merge, &key), &key, &s0, 0),
            Some(OperationKind::Setup {
                step: "merge".into()
            })
        );
        // Another fee payer: not ours, whatever it does.
        let other = LocalKey::from_seed([8; 32]);
        assert_eq!(decode(&signed(&create, &other), &key, &s0, 1), None);
        // Not a transaction.
        let vote_of = |_: &str| None;
        let cx = Context {
            custody: &custody,
            post_balances: &[],
            rent_exempt_reserve: RENT,
            vote_of: &vote_of,
        };
        assert_eq!(operation_of(&signed(&create, &key)[..10], &cx), None);
    }
}
