//! Which manager operations a softstake operation becomes.

use crate::forge::{Entrypoint, ForgeError, Kind, check_tz1};
use serde::Deserialize;
use softstake_core::adapter::OperationKind;

/// How the pool earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Delegation only: funds stay spendable; the baker pays off-protocol.
    Delegation,
    /// Staking: funds are frozen with the baker and earn on-chain.
    Staking,
}

/// The account as the chain shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountView {
    /// Whether its public key is revealed.
    pub revealed: bool,
    /// Its delegate.
    pub delegate: Option<String>,
}

/// The manager operations (in order) for `op`, a reveal first if needed.
pub fn kinds_for(
    op: &OperationKind,
    mode: Mode,
    account: &AccountView,
    public_key: &str,
) -> Result<Vec<Kind>, ForgeError> {
    let unsupported = |m: &str| Err(ForgeError::Unsupported(m.to_owned()));
    let mut out = Vec::new();
    match op {
        OperationKind::Setup { step } if step == "reveal" => {
            if account.revealed {
                return unsupported("the account is already revealed");
            }
        }
        OperationKind::Setup { step } if step == "remove_delegate" => {
            out.push(Kind::Delegation { delegate: None });
        }
        OperationKind::Setup { step } => {
            return Err(ForgeError::Unsupported(format!(
                "unknown Tezos setup step {step:?} (known: reveal, remove_delegate)"
            )));
        }
        OperationKind::Delegate { validator, amount } => {
            check_tz1("validator", validator)?;
            if account.delegate.as_deref() != Some(validator.as_str()) {
                out.push(Kind::Delegation {
                    delegate: Some(validator.clone()),
                });
            }
            if mode == Mode::Staking && !amount.is_zero() {
                out.push(Kind::StakingCall {
                    amount: amount.base(),
                    entrypoint: Entrypoint::Stake,
                });
            }
            if out.is_empty() {
                return unsupported("already delegated to that baker; nothing to do");
            }
        }
        OperationKind::Redelegate { to, .. } => {
            // Changing the delegate unstakes everything staked (protocol rule).
            check_tz1("validator", to)?;
            out.push(Kind::Delegation {
                delegate: Some(to.clone()),
            });
        }
        OperationKind::Undelegate { amount, .. } => match mode {
            Mode::Staking if !amount.is_zero() => out.push(Kind::StakingCall {
                amount: amount.base(),
                entrypoint: Entrypoint::Unstake,
            }),
            Mode::Staking => return unsupported("amount must be greater than 0"),
            Mode::Delegation => out.push(Kind::Delegation { delegate: None }),
        },
        OperationKind::WithdrawUnbonded { .. } => {
            if mode == Mode::Delegation {
                return unsupported("delegation-only pools have nothing to finalize");
            }
            out.push(Kind::StakingCall {
                amount: 0,
                entrypoint: Entrypoint::FinalizeUnstake,
            });
        }
        OperationKind::ClaimRewards { .. } => {
            return unsupported(
                "Tezos pays staking rewards automatically and delegation rewards by the baker; there is nothing to claim",
            );
        }
    }
    if !account.revealed {
        out.insert(
            0,
            Kind::Reveal {
                public_key: public_key.to_owned(),
            },
        );
    }
    Ok(out)
}
