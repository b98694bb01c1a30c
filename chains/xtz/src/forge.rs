//! The Tezos binary encoding of manager operations, written here (never the
//! node's forge helper for what gets signed), and the base58check forms of
//! keys, addresses, block and operation hashes. Pure: no I/O.

use blake2::digest::consts::{U20, U32};
use blake2::{Blake2b, Digest};

/// Errors decoding or encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// Not valid base58check with the expected prefix and length.
    #[error("{what}: {value:?} is not a valid {expected}")]
    B58 {
        /// Which field.
        what: &'static str,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Something the encoder cannot express.
    #[error("{0}")]
    Unsupported(String),
}

/// base58check prefixes.
pub mod prefix {
    /// tz1 (ed25519 public key hash, 20 bytes).
    pub const TZ1: &[u8] = &[6, 161, 159];
    /// edpk (ed25519 public key, 32 bytes).
    pub const EDPK: &[u8] = &[13, 15, 37, 217];
    /// edsk (ed25519 seed, 32 bytes).
    pub const EDSK_SEED: &[u8] = &[13, 15, 58, 7];
    /// edsk (ed25519 secret key, 64 bytes: seed || public key).
    pub const EDSK_SECRET: &[u8] = &[43, 246, 78, 7];
    /// edsig (ed25519 signature, 64 bytes).
    pub const EDSIG: &[u8] = &[9, 245, 205, 134, 18];
    /// B (block hash, 32 bytes).
    pub const BLOCK: &[u8] = &[1, 52];
    /// o (operation hash, 32 bytes).
    pub const OPERATION: &[u8] = &[5, 116];
    /// Net (chain id, 4 bytes).
    pub const CHAIN_ID: &[u8] = &[87, 82, 0];
}

/// base58check of `prefix || payload`.
pub fn b58(prefix: &[u8], payload: &[u8]) -> String {
    let mut v = prefix.to_vec();
    v.extend_from_slice(payload);
    bs58::encode(v).with_check().into_string()
}

/// Decodes base58check, checks the prefix and payload length.
pub fn unb58(
    what: &'static str,
    expected: &'static str,
    s: &str,
    prefix: &[u8],
    len: usize,
) -> Result<Vec<u8>, ForgeError> {
    let bad = || ForgeError::B58 {
        what,
        value: s.to_owned(),
        expected,
    };
    let v = bs58::decode(s)
        .with_check(None)
        .into_vec()
        .map_err(|_| bad())?;
    if v.len() != prefix.len() + len || !v.starts_with(prefix) {
        return Err(bad());
    }
    Ok(v[prefix.len()..].to_vec())
}

/// blake2b-256.
pub fn blake2b_256(data: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(data).into()
}

/// The tz1 address of an ed25519 public key.
pub fn tz1_of(public_key: &[u8; 32]) -> String {
    let h: [u8; 20] = Blake2b::<U20>::digest(public_key).into();
    b58(prefix::TZ1, &h)
}

/// Zarith (natural numbers): little-endian base 128, high bit = more.
pub fn zarith(mut n: u128, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn pkh_bytes(what: &'static str, tz1: &str) -> Result<[u8; 21], ForgeError> {
    let h = unb58(what, "tz1 address", tz1, prefix::TZ1, 20)?;
    let mut out = [0u8; 21];
    out[1..].copy_from_slice(&h);
    Ok(out)
}

/// Checks a tz1 address.
pub fn check_tz1(what: &'static str, s: &str) -> Result<(), ForgeError> {
    pkh_bytes(what, s).map(|_| ())
}

/// Staking entrypoints of transactions to self.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entrypoint {
    /// Freeze `amount` as stake with the delegate.
    Stake,
    /// Request `amount` back from stake.
    Unstake,
    /// Move finalizable unstaked funds back to the spendable balance.
    FinalizeUnstake,
}

impl Entrypoint {
    fn tag(self) -> u8 {
        match self {
            Entrypoint::Stake => 0x06,
            Entrypoint::Unstake => 0x07,
            Entrypoint::FinalizeUnstake => 0x08,
        }
    }

    /// The entrypoint's name.
    pub fn name(self) -> &'static str {
        match self {
            Entrypoint::Stake => "stake",
            Entrypoint::Unstake => "unstake",
            Entrypoint::FinalizeUnstake => "finalize_unstake",
        }
    }

    /// From its name.
    pub fn from_name(s: &str) -> Option<Entrypoint> {
        match s {
            "stake" => Some(Entrypoint::Stake),
            "unstake" => Some(Entrypoint::Unstake),
            "finalize_unstake" => Some(Entrypoint::FinalizeUnstake),
            _ => None,
        }
    }
}

/// What a manager operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Reveal the public key (edpk).
    Reveal {
        /// edpk.
        public_key: String,
    },
    /// Set (Some) or remove (None) the delegate.
    Delegation {
        /// Baker's tz1.
        delegate: Option<String>,
    },
    /// A transaction to the source itself calling a staking entrypoint.
    StakingCall {
        /// Mutez.
        amount: u128,
        /// Entrypoint.
        entrypoint: Entrypoint,
    },
}

/// One manager operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Source tz1.
    pub source: String,
    /// Fee in mutez.
    pub fee: u128,
    /// Counter.
    pub counter: u128,
    /// Gas limit.
    pub gas_limit: u128,
    /// Storage limit.
    pub storage_limit: u128,
    /// What it does.
    pub kind: Kind,
}

/// Forges `branch` and `contents` into the bytes that get signed.
pub fn forge(branch: &str, contents: &[Content]) -> Result<Vec<u8>, ForgeError> {
    if contents.is_empty() {
        return Err(ForgeError::Unsupported(
            "an operation needs contents".into(),
        ));
    }
    let mut out = unb58("branch", "block hash", branch, prefix::BLOCK, 32)?;
    for c in contents {
        let tag = match c.kind {
            Kind::Reveal { .. } => 0x6b,
            Kind::StakingCall { .. } => 0x6c,
            Kind::Delegation { .. } => 0x6e,
        };
        out.push(tag);
        out.extend_from_slice(&pkh_bytes("source", &c.source)?);
        for n in [c.fee, c.counter, c.gas_limit, c.storage_limit] {
            zarith(n, &mut out);
        }
        match &c.kind {
            Kind::Reveal { public_key } => {
                out.push(0x00);
                out.extend(unb58(
                    "public_key",
                    "edpk public key",
                    public_key,
                    prefix::EDPK,
                    32,
                )?);
                // No proof (only BLS keys carry one).
                out.push(0x00);
            }
            Kind::Delegation { delegate } => match delegate {
                Some(d) => {
                    out.push(0xff);
                    out.extend_from_slice(&pkh_bytes("delegate", d)?);
                }
                None => out.push(0x00),
            },
            Kind::StakingCall { amount, entrypoint } => {
                zarith(*amount, &mut out);
                // Destination: the implicit account itself.
                out.push(0x00);
                out.extend_from_slice(&pkh_bytes("destination", &c.source)?);
                out.push(0xff);
                out.push(entrypoint.tag());
                // Micheline `Unit`: prim without arguments (0x03), Unit (0x0b).
                out.extend_from_slice(&2u32.to_be_bytes());
                out.extend_from_slice(&[0x03, 0x0b]);
            }
        }
    }
    Ok(out)
}

/// The operation hash of signed bytes (forged || signature).
pub fn operation_hash(signed: &[u8]) -> String {
    b58(prefix::OPERATION, &blake2b_256(signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zarith_matches_the_protocol_examples() {
        let z = |n| {
            let mut v = Vec::new();
            zarith(n, &mut v);
            hex::encode(v)
        };
        assert_eq!(z(0), "00");
        assert_eq!(z(127), "7f");
        assert_eq!(z(128), "8001");
        assert_eq!(z(1300), "940a");
        assert_eq!(z(1_000_000), "c0843d");
    }

    #[test]
    fn base58_prefixes_round_trip_and_refuse_the_wrong_kind() {
        let b = b58(prefix::TZ1, &[7; 20]);
        assert!(b.starts_with("tz1"));
        assert_eq!(unb58("x", "tz1", &b, prefix::TZ1, 20).unwrap(), vec![7; 20]);
        assert!(unb58("x", "edpk", &b, prefix::EDPK, 32).is_err());
        assert!(check_tz1("d", "tz1notanaddress").is_err());
    }
}
