//! ABCI query paths, protobuf helpers and coin/decimal conventions shared
//! by the RPC client and the test node.

use cosmrs::proto::prost::Message;

/// `/cosmos.auth.v1beta1.Query/Account`.
pub const ACCOUNT: &str = "/cosmos.auth.v1beta1.Query/Account";
/// `/cosmos.bank.v1beta1.Query/Balance`.
pub const BALANCE: &str = "/cosmos.bank.v1beta1.Query/Balance";
/// `/cosmos.staking.v1beta1.Query/DelegatorDelegations`.
pub const DELEGATIONS: &str = "/cosmos.staking.v1beta1.Query/DelegatorDelegations";
/// `/cosmos.staking.v1beta1.Query/DelegatorUnbondingDelegations`.
pub const UNBONDING: &str = "/cosmos.staking.v1beta1.Query/DelegatorUnbondingDelegations";
/// `/cosmos.staking.v1beta1.Query/Redelegations`.
pub const REDELEGATIONS: &str = "/cosmos.staking.v1beta1.Query/Redelegations";
/// `/cosmos.staking.v1beta1.Query/Params`.
pub const STAKING_PARAMS: &str = "/cosmos.staking.v1beta1.Query/Params";
/// `/cosmos.staking.v1beta1.Query/Validator`.
pub const VALIDATOR: &str = "/cosmos.staking.v1beta1.Query/Validator";
/// `/cosmos.distribution.v1beta1.Query/DelegationTotalRewards`.
pub const TOTAL_REWARDS: &str = "/cosmos.distribution.v1beta1.Query/DelegationTotalRewards";
/// `/cosmos.tx.v1beta1.Service/Simulate`.
pub const SIMULATE: &str = "/cosmos.tx.v1beta1.Service/Simulate";

/// SDK error code: account sequence mismatch.
pub const CODE_WRONG_SEQUENCE: u32 = 32;
/// SDK error code: transaction already in the mempool.
pub const CODE_TX_IN_MEMPOOL: u32 = 19;
/// SDK error code: timeout height reached.
pub const CODE_TX_TIMEOUT_HEIGHT: u32 = 30;

/// Protobuf bytes of a message.
pub fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

/// A message from protobuf bytes.
pub fn decode<M: Message + Default>(b: &[u8]) -> Result<M, String> {
    M::decode(b).map_err(|e| format!("protobuf: {e}"))
}

/// 10^18: `LegacyDec` values travel in protobuf as integers scaled by this.
pub const DEC_SCALE: u128 = 1_000_000_000_000_000_000;

/// A protobuf `LegacyDec` string (integer x 10^18) to whole units, floored.
pub fn dec_floor(s: &str) -> Result<u128, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Some((int, _)) = s.split_once('.') {
        // Also accept the JSON form ("12.5000...").
        return int.parse().map_err(|e| format!("decimal {s:?}: {e}"));
    }
    let v: u128 = s.parse().map_err(|e| format!("decimal {s:?}: {e}"))?;
    Ok(v / DEC_SCALE)
}

/// Parses `"123uatom"` into 123 (a coin string of one denomination).
pub fn coin_amount(s: &str, denom: &str) -> Option<u128> {
    s.strip_suffix(denom).and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_decimals_and_coins() {
        assert_eq!(dec_floor("1500000000000000000").unwrap(), 1);
        assert_eq!(dec_floor("999999999999999999").unwrap(), 0);
        assert_eq!(dec_floor("12.75").unwrap(), 12);
        assert_eq!(dec_floor("").unwrap(), 0);
        assert!(dec_floor("x").is_err());
        assert_eq!(coin_amount("123uatom", "uatom"), Some(123));
        assert_eq!(coin_amount("123stake", "uatom"), None);
    }
}
