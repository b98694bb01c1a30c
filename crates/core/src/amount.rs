//! Exact amounts in a chain's base unit, and exact rates.
//!
//! [`Amount`] is a `u128` count of base units (wei, planck, lamports, uatom,
//! lovelace, mutez). All arithmetic is checked and returns `None`/an error on
//! overflow or underflow; there is no `Add`/`Sub` impl on purpose, so an
//! unchecked `a + b` does not compile. Products that could overflow `u128`
//! (amount x weight) go through a 256-bit intermediate.
//!
//! [`Rate`] is a ratio in `[0, 1]` held as a `rust_decimal::Decimal`; applying
//! it to an amount is exact (`floor(amount * mantissa / 10^scale)`).

use ruint::aliases::U256;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A non-negative amount in a chain's base unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

/// Why a string is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing to parse.
    #[error("amount is empty")]
    Empty,
    /// A leading minus sign.
    #[error("amount {0:?} is negative; amounts are never negative")]
    Negative(String),
    /// Anything other than digits and one decimal point.
    #[error("amount {0:?} is not a decimal number (digits with an optional '.' and fraction)")]
    Malformed(String),
    /// More fractional digits than the unit has.
    #[error("amount {input:?} has {got} decimals but the unit has only {max}")]
    TooManyDecimals {
        /// The input as given.
        input: String,
        /// Fractional digits in the input.
        got: usize,
        /// Decimals of the unit.
        max: u32,
    },
    /// Does not fit in 128 bits of base units.
    #[error("amount {0:?} is too large (more than 2^128-1 base units)")]
    Overflow(String),
}

impl Amount {
    /// Zero base units.
    pub const ZERO: Amount = Amount(0);
    /// The largest representable amount.
    pub const MAX: Amount = Amount(u128::MAX);

    /// An amount of `units` base units.
    pub const fn from_base(units: u128) -> Self {
        Amount(units)
    }

    /// The count of base units.
    pub const fn base(self) -> u128 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + rhs`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    #[must_use]
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// `self * factor`, or `None` on overflow.
    #[must_use]
    pub fn checked_mul(self, factor: u128) -> Option<Amount> {
        self.0.checked_mul(factor).map(Amount)
    }

    /// `max(self - rhs, 0)`: for "how much is missing" questions, never for
    /// moving money.
    #[must_use]
    pub fn saturating_sub(self, rhs: Amount) -> Amount {
        Amount(self.0.saturating_sub(rhs.0))
    }

    /// The exact sum of `items`, or `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(items: I) -> Option<Amount> {
        items
            .into_iter()
            .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
    }

    /// `floor(self * num / den)` and the remainder `(self * num) mod den`,
    /// computed with a 256-bit intermediate so it never overflows while the
    /// quotient fits. `None` if `den == 0` or the quotient exceeds `u128`.
    #[must_use]
    pub fn mul_div_floor(self, num: u128, den: u128) -> Option<(Amount, u128)> {
        if den == 0 {
            return None;
        }
        let p = U256::from(self.0) * U256::from(num);
        let d = U256::from(den);
        let q = p / d;
        let r = p % d;
        let q = u128::try_from(q).ok()?;
        let r = u128::try_from(r).ok()?;
        Some((Amount(q), r))
    }

    /// Parses a decimal string in display units ("1.5") into base units for a
    /// unit with `decimals` decimals (`1.5` ETH -> 1500000000000000000 wei).
    /// Exact: too many decimals, a sign, or overflow is an error, never a
    /// rounding.
    pub fn parse_units(input: &str, decimals: u32) -> Result<Amount, AmountError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if s.starts_with('-') {
            return Err(AmountError::Negative(input.to_owned()));
        }
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits_ok(int)
            || !digits_ok(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(AmountError::Malformed(input.to_owned()));
        }
        if frac.len() > decimals as usize {
            return Err(AmountError::TooManyDecimals {
                input: input.to_owned(),
                got: frac.len(),
                max: decimals,
            });
        }
        let overflow = || AmountError::Overflow(input.to_owned());
        let scale = 10u128.checked_pow(decimals).ok_or_else(overflow)?;
        let int_v = parse_u128_digits(int).ok_or_else(overflow)?;
        let frac_v = if frac.is_empty() {
            0
        } else {
            // frac.len() <= decimals (checked above), so this fits in u32.
            let missing = u32::try_from(frac.len())
                .ok()
                .and_then(|l| decimals.checked_sub(l))
                .ok_or_else(overflow)?;
            let pad = 10u128.checked_pow(missing).ok_or_else(overflow)?;
            parse_u128_digits(frac)
                .and_then(|f| f.checked_mul(pad))
                .ok_or_else(overflow)?
        };
        int_v
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_v))
            .map(Amount)
            .ok_or_else(overflow)
    }

    /// [`Amount::format_units`] for a signed count of base units (a
    /// residual, a surplus): `-` before the digits when negative.
    pub fn format_signed_units(v: i128, decimals: u32) -> String {
        let a = Amount(v.unsigned_abs()).format_units(decimals);
        if v < 0 { format!("-{a}") } else { a }
    }

    /// Formats base units as a decimal string in display units with no
    /// trailing fractional zeros (`1500000000000000000` wei -> `"1.5"`).
    pub fn format_units(self, decimals: u32) -> String {
        let digits = self.0.to_string();
        let d = decimals as usize;
        if d == 0 {
            return digits;
        }
        let padded = if digits.len() <= d {
            format!("{}{}", "0".repeat(d + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - d);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    }
}

fn parse_u128_digits(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

/// Base units as a plain integer string: the canonical form in the database
/// and the API.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses a plain integer string of base units ("1500").
impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if s.starts_with('-') {
            return Err(AmountError::Negative(s.to_owned()));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed(s.to_owned()));
        }
        parse_u128_digits(s)
            .map(Amount)
            .ok_or_else(|| AmountError::Overflow(s.to_owned()))
    }
}

/// Serialized as a string of base units: JSON numbers lose precision above
/// 2^53 in most clients.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A ratio in `[0, 1]` (commission, buffer share), exact decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Rate(Decimal);

/// A rate outside `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate {0} is outside 0..=1")]
pub struct RateError(pub Decimal);

impl Rate {
    /// 0.
    pub const ZERO: Rate = Rate(Decimal::ZERO);
    /// 1.
    pub const ONE: Rate = Rate(Decimal::ONE);

    /// A rate, if `value` is within `[0, 1]`.
    pub fn new(value: Decimal) -> Result<Rate, RateError> {
        if value < Decimal::ZERO || value > Decimal::ONE {
            Err(RateError(value))
        } else {
            Ok(Rate(value.normalize()))
        }
    }

    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// `floor(amount * rate)`, exact. Never more than `amount`.
    pub fn apply_floor(self, amount: Amount) -> Amount {
        let m = self.0.mantissa();
        // A Rate is within [0, 1] so its mantissa is non-negative and its
        // scale at most 28; 10^28 fits in u128.
        let num = u128::try_from(m).unwrap_or(0);
        let den = 10u128.pow(self.0.scale());
        amount
            .mul_div_floor(num, den)
            .map(|(q, _)| q)
            .unwrap_or(Amount::ZERO)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Decimal as Deserialize>::deserialize(d)?;
        Rate::new(v).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signed_amounts_format_with_a_sign_only_when_negative() {
        assert_eq!(Amount::format_signed_units(-1_500_000, 6), "-1.5");
        assert_eq!(Amount::format_signed_units(1_500_000, 6), "1.5");
        assert_eq!(Amount::format_signed_units(0, 6), "0");
        assert_eq!(
            Amount::format_signed_units(i128::MIN, 0),
            "-170141183460469231731687303715884105728"
        );
    }

    #[test]
    fn parses_display_units_exactly() {
        assert_eq!(
            Amount::parse_units("1.5", 18).unwrap().base(),
            1_500_000_000_000_000_000
        );
        assert_eq!(Amount::parse_units("0.000001", 6).unwrap().base(), 1);
        assert_eq!(Amount::parse_units("42", 6).unwrap().base(), 42_000_000);
        assert_eq!(
            Amount::parse_units(" 7.10 ", 10).unwrap().base(),
            71_000_000_000
        );
    }

    #[test]
    fn rejects_bad_amounts_with_the_reason() {
        assert_eq!(Amount::parse_units("", 6), Err(AmountError::Empty));
        assert!(matches!(
            Amount::parse_units("-1", 6),
            Err(AmountError::Negative(_))
        ));
        assert!(matches!(
            Amount::parse_units("0.0000001", 6),
            Err(AmountError::TooManyDecimals { got: 7, max: 6, .. })
        ));
        for bad in ["1.2.3", "1e5", "abc", ".5", "5.", "+1", "1,5", "0x10"] {
            assert!(
                matches!(Amount::parse_units(bad, 6), Err(AmountError::Malformed(_))),
                "{bad}"
            );
        }
        // 2^128 wei does not fit; 340282366920938463463.374607431768211455 ETH is the max.
        assert!(matches!(
            Amount::parse_units("340282366920938463464", 18),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!(
            Amount::parse_units("340282366920938463463.374607431768211455", 18).unwrap(),
            Amount::MAX
        );
        assert!(matches!(
            "340282366920938463463374607431768211456".parse::<Amount>(),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            "-3".parse::<Amount>(),
            Err(AmountError::Negative(_))
        ));
        assert!(matches!(
            "1.0".parse::<Amount>(),
            Err(AmountError::Malformed(_))
        ));
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(
            Amount::from_base(1_500_000_000_000_000_000).format_units(18),
            "1.5"
        );
        assert_eq!(Amount::from_base(1).format_units(6), "0.000001");
        assert_eq!(Amount::from_base(0).format_units(9), "0");
        assert_eq!(Amount::from_base(5_000_000).format_units(6), "5");
        assert_eq!(Amount::from_base(123).format_units(0), "123");
    }

    #[test]
    fn checked_arithmetic_refuses_overflow_and_underflow() {
        assert_eq!(Amount::MAX.checked_add(Amount::from_base(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::from_base(1)), None);
        assert_eq!(
            Amount::checked_sum([Amount::MAX, Amount::from_base(1)]),
            None
        );
        assert_eq!(
            Amount::MAX.mul_div_floor(u128::MAX, u128::MAX),
            Some((Amount::MAX, 0))
        );
        assert_eq!(Amount::from_base(10).mul_div_floor(1, 0), None);
        assert_eq!(
            Amount::from_base(10).mul_div_floor(1, 3),
            Some((Amount::from_base(3), 1))
        );
    }

    #[test]
    fn json_is_a_string_of_base_units() {
        let a = Amount::from_base(u128::MAX);
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, "\"340282366920938463463374607431768211455\"");
        assert_eq!(serde_json::from_str::<Amount>(&j).unwrap(), a);
        assert!(serde_json::from_str::<Amount>("12").is_err());
    }

    #[test]
    fn rates_are_bounded_and_apply_exactly() {
        let r = Rate::new(Decimal::new(10, 2)).unwrap();
        assert_eq!(r.apply_floor(Amount::from_base(999)), Amount::from_base(99));
        assert_eq!(Rate::ONE.apply_floor(Amount::MAX), Amount::MAX);
        assert!(Rate::new(Decimal::new(12, 1)).is_err());
        assert!(Rate::new(Decimal::new(-1, 2)).is_err());
        assert!(serde_json::from_str::<Rate>("\"1.2\"").is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(v in any::<u128>(), d in 0u32..=18) {
            let a = Amount::from_base(v);
            prop_assert_eq!(Amount::parse_units(&a.format_units(d), d).unwrap(), a);
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }

        #[test]
        fn mul_div_matches_wide_arithmetic(a in any::<u64>(), n in any::<u64>(), d in 1u64..) {
            let (q, r) = Amount::from_base(a.into()).mul_div_floor(n.into(), d.into()).unwrap();
            let p = u128::from(a) * u128::from(n);
            prop_assert_eq!(q.base(), p / u128::from(d));
            prop_assert_eq!(r, p % u128::from(d));
        }

        #[test]
        fn rate_never_exceeds_the_amount(v in any::<u128>(), m in 0u32..=10_000) {
            let r = Rate::new(Decimal::new(i64::from(m), 4)).unwrap();
            prop_assert!(r.apply_floor(Amount::from_base(v)) <= Amount::from_base(v));
        }
    }
}
