//! The six supported chains as a closed, typed id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A chain softstake can stake on. The set is closed: adding a chain is a code
/// change (a new adapter crate), never configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainId {
    /// Ethereum (ETH, wei).
    Ethereum,
    /// Polkadot (DOT, planck).
    Polkadot,
    /// Solana (SOL, lamports).
    Solana,
    /// Cosmos Hub (ATOM, uatom).
    Cosmos,
    /// Cardano (ADA, lovelace).
    Cardano,
    /// Tezos (XTZ, mutez).
    Tezos,
}

/// Returned when a string names no supported chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain {0:?}: expected one of ethereum, polkadot, solana, cosmos, cardano, tezos")]
pub struct UnknownChain(pub String);

impl ChainId {
    /// All chains, in a stable order.
    pub const ALL: [ChainId; 6] = [
        ChainId::Ethereum,
        ChainId::Polkadot,
        ChainId::Solana,
        ChainId::Cosmos,
        ChainId::Cardano,
        ChainId::Tezos,
    ];

    /// The stable lowercase name used in config, the database and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChainId::Ethereum => "ethereum",
            ChainId::Polkadot => "polkadot",
            ChainId::Solana => "solana",
            ChainId::Cosmos => "cosmos",
            ChainId::Cardano => "cardano",
            ChainId::Tezos => "tezos",
        }
    }

    /// The native asset's ticker (the asset users hold on the exchange).
    pub const fn asset(self) -> &'static str {
        match self {
            ChainId::Ethereum => "ETH",
            ChainId::Polkadot => "DOT",
            ChainId::Solana => "SOL",
            ChainId::Cosmos => "ATOM",
            ChainId::Cardano => "ADA",
            ChainId::Tezos => "XTZ",
        }
    }

    /// Name of the base unit every amount of this chain is counted in.
    pub const fn base_unit(self) -> &'static str {
        match self {
            ChainId::Ethereum => "wei",
            ChainId::Polkadot => "planck",
            ChainId::Solana => "lamport",
            ChainId::Cosmos => "uatom",
            ChainId::Cardano => "lovelace",
            ChainId::Tezos => "mutez",
        }
    }

    /// Number of decimals between the display unit and the base unit.
    pub const fn decimals(self) -> u32 {
        match self {
            ChainId::Ethereum => 18,
            ChainId::Polkadot => 10,
            ChainId::Solana => 9,
            ChainId::Cosmos | ChainId::Cardano | ChainId::Tezos => 6,
        }
    }

    /// The most one user's balance of this chain's asset may be, in base
    /// units: an order of magnitude above the asset's total supply (ETH
    /// 10^9, DOT, SOL, ATOM and XTZ 10^10, ADA 10^11 coins). A balance above
    /// it is an exchange bug, and refusing it keeps every sum over users
    /// (liabilities, weights) far inside 128 bits: even 10^9 users at the
    /// maximum sum to less than 2^127.
    pub const fn max_balance(self) -> u128 {
        match self {
            ChainId::Ethereum => 1_000_000_000 * 10u128.pow(18),
            ChainId::Polkadot => 10_000_000_000 * 10u128.pow(10),
            ChainId::Solana => 10_000_000_000 * 10u128.pow(9),
            ChainId::Cosmos | ChainId::Tezos => 10_000_000_000 * 10u128.pow(6),
            ChainId::Cardano => 100_000_000_000 * 10u128.pow(6),
        }
    }

    /// Finds a chain by its name (`ethereum`) or its asset ticker (`ETH`),
    /// case-insensitively.
    pub fn from_asset(asset: &str) -> Option<ChainId> {
        ChainId::ALL
            .into_iter()
            .find(|c| c.asset().eq_ignore_ascii_case(asset))
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChainId {
    type Err = UnknownChain;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainId::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s) || c.asset().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownChain(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_decimals_match_the_chain_specs() {
        for c in ChainId::ALL {
            assert_eq!(c.as_str().parse::<ChainId>().unwrap(), c);
            assert_eq!(c.asset().parse::<ChainId>().unwrap(), c);
            assert_eq!(ChainId::from_asset(&c.asset().to_lowercase()), Some(c));
        }
        let d: Vec<u32> = ChainId::ALL.iter().map(|c| c.decimals()).collect();
        assert_eq!(d, [18, 10, 9, 6, 6, 6]);
        assert!("bitcoin".parse::<ChainId>().is_err());
        for c in ChainId::ALL {
            // 10^9 users at the maximum still fit comfortably.
            assert!(c.max_balance().checked_mul(1_000_000_000).is_some(), "{c}");
        }
    }
}
