//! ABCI query paths, protobuf helpers and coin/decimal conventions shared
//! by the RPC client and the test node.

use prost::Message;

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

/// `/feemarket.feemarket.v1.Query/GasPrice` (skip-mev/feemarket, run by the
/// Hub since Gaia v20): the fee market's current price for a denomination.
pub const FEEMARKET_GAS_PRICE: &str = "/feemarket.feemarket.v1.Query/GasPrice";

/// `feemarket.feemarket.v1.GasPriceRequest` (field 1: `denom`).
#[derive(Clone, PartialEq, Message)]
pub struct GasPriceRequest {
    /// The fee denomination (`uatom`).
    #[prost(string, tag = "1")]
    pub denom: String,
}

/// `feemarket.feemarket.v1.GasPriceResponse` (field 1: `price`, a
/// `cosmos.base.v1beta1.DecCoin`).
#[derive(Clone, PartialEq, Message)]
pub struct GasPriceResponse {
    /// The price per unit of gas.
    #[prost(message, optional, tag = "1")]
    pub price: Option<cosmrs::proto::cosmos::base::v1beta1::DecCoin>,
}

/// SDK error code: insufficient fee (the fee market's ante handler, and the
/// node's own minimum gas prices).
pub const CODE_INSUFFICIENT_FEE: u32 = 13;

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

/// A `LegacyDec` exactly as a decimal: the protobuf form (an integer
/// scaled by 10^18, `"5000000000000000"` = 0.005) or the JSON form
/// (`"0.005000000000000000"`). Refused when it does not fit exactly.
pub fn dec_exact(s: &str) -> Result<rust_decimal::Decimal, String> {
    use rust_decimal::Decimal;
    let s = s.trim();
    let bad = |why: &str| format!("decimal {s:?}: {why}");
    if s.is_empty() || s.starts_with(['-', '+']) {
        return Err(bad("not a non-negative decimal"));
    }
    if s.contains('.') {
        return Decimal::from_str_exact(s).map_err(|e| bad(&e.to_string()));
    }
    let v: u128 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| bad(&e.to_string()))?;
    let v = i128::try_from(v).map_err(|_| bad("too large"))?;
    Decimal::try_from_i128_with_scale(v, 18)
        .map(|d| d.normalize())
        .map_err(|e| bad(&e.to_string()))
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

    #[test]
    fn a_fee_market_price_reads_exactly_in_both_forms() {
        use rust_decimal::Decimal;
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        // Gaia's MinBaseGasPrice, 0.005 uatom per gas.
        assert_eq!(dec_exact("5000000000000000").unwrap(), d("0.005"));
        assert_eq!(dec_exact("0.005000000000000000").unwrap(), d("0.005"));
        assert_eq!(dec_exact("1").unwrap(), d("0.000000000000000001"));
        assert_eq!(dec_exact("25000000000000000000").unwrap(), d("25"));
        for bad in [
            "",
            "-1",
            "x",
            "1e5",
            "340282366920938463463374607431768211456",
        ] {
            assert!(dec_exact(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fee_market_messages_have_the_modules_field_numbers() {
        // skip-mev/feemarket @ e8c942d, proto/feemarket/feemarket/v1/query.proto:
        // GasPriceRequest { string denom = 1 }, GasPriceResponse {
        // cosmos.base.v1beta1.DecCoin price = 1 } (DecCoin: denom = 1,
        // amount = 2, a LegacyDec as an integer x 10^18).
        let req = encode(&GasPriceRequest {
            denom: "uatom".into(),
        });
        assert_eq!(req, b"\x0a\x05uatom");
        let resp = encode(&GasPriceResponse {
            price: Some(cosmrs::proto::cosmos::base::v1beta1::DecCoin {
                denom: "uatom".into(),
                amount: "5000000000000000".into(),
            }),
        });
        assert_eq!(resp, b"\x0a\x19\x0a\x05uatom\x12\x105000000000000000");
        let back: GasPriceResponse = decode(&resp).unwrap();
        assert_eq!(
            dec_exact(&back.price.unwrap().amount).unwrap().to_string(),
            "0.005"
        );
    }
}
