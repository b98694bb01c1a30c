//! Reading a Polkadot-SDK chain through its own metadata: storage keys
//! built from each entry's hashers, values and events decoded with
//! `scale-value` against the runtime's type registry, constants, and the
//! few fixed-layout encodings the adapter parses by hand (the signed
//! extrinsic's header, `TransactionValidity`). No type is hard-coded that
//! the metadata can describe, so a runtime upgrade that keeps the names
//! keeps working, and one that drops a name is a clear error.

use std::sync::Arc;
use subxt::ext::codec::{Compact, Decode};
use subxt::ext::scale_value::{self, At, Composite, Value, ValueDef};
use subxt::metadata::{Metadata, StorageHasher};

/// A decoded value (context-free).
pub type V = Value<()>;

/// Why reading or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The runtime lacks something the adapter needs.
    #[error("the runtime has no {0}")]
    Missing(String),
    /// Bytes that do not decode as the metadata says.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Which staking pallet the runtime carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A relay chain's own `Staking` pallet (pallet-staking): unpaged
    /// `ErasStakers` exposures, `payout_stakers`, eras timed by BABE epochs.
    /// Only chains that have not moved staking to their Asset Hub.
    Relay,
    /// An Asset Hub's `Staking` pallet (pallet-staking-async, with
    /// `StakingRcClient`): paged exposures (`ErasStakersOverview`,
    /// `ErasStakersPaged`), claims per page (`ClaimedRewards`),
    /// `payout_stakers_by_page`, eras ended by the relay chain's session
    /// reports.
    AssetHub,
}

/// Calls every shape needs. Checked when the metadata is loaded so a
/// runtime without them fails at start-up.
pub const REQUIRED_CALLS: &[(&str, &str)] = &[
    ("Staking", "bond"),
    ("Staking", "bond_extra"),
    ("Staking", "nominate"),
    ("Staking", "unbond"),
    ("Staking", "withdraw_unbonded"),
    ("Staking", "rebond"),
    ("Staking", "chill"),
    ("Staking", "set_payee"),
    ("Utility", "batch_all"),
];

/// Storage entries every shape's adapter reads.
pub const REQUIRED_STORAGE: &[(&str, &str)] = &[
    ("System", "Account"),
    ("System", "Events"),
    ("Timestamp", "Now"),
    ("Staking", "Bonded"),
    ("Staking", "Ledger"),
    ("Staking", "Payee"),
    ("Staking", "Nominators"),
    ("Staking", "Validators"),
    ("Staking", "CurrentEra"),
    ("Staking", "ActiveEra"),
    ("Staking", "MinNominatorBond"),
    ("Staking", "ErasValidatorReward"),
];

/// Constants every shape's adapter reads.
pub const REQUIRED_CONSTANTS: &[(&str, &str)] = &[
    ("Staking", "BondingDuration"),
    ("Staking", "HistoryDepth"),
    ("Staking", "SessionsPerEra"),
    ("Staking", "MaxUnlockingChunks"),
    ("Balances", "ExistentialDeposit"),
];

/// (pallet, name) pairs.
type Names = &'static [(&'static str, &'static str)];

/// What only a relay chain's staking pallet needs: (calls, storage,
/// constants).
const RELAY_ONLY: (Names, Names, Names) = (
    &[("Staking", "payout_stakers")],
    &[
        ("Staking", "ErasStakers"),
        ("Staking", "ErasStakersClipped"),
        ("Staking", "SlashingSpans"),
    ],
    &[("Babe", "EpochDuration"), ("Babe", "ExpectedBlockTime")],
);

/// What only Asset Hub's staking-async needs. `MaxEraDuration` is the era's
/// nominal length (relay session length x sessions per era), which the
/// runtime caps era payouts by; Asset Hub has no BABE.
const ASSET_HUB_ONLY: (Names, Names, Names) = (
    &[("Staking", "payout_stakers_by_page")],
    &[
        ("Staking", "ErasStakersOverview"),
        ("Staking", "ErasStakersPaged"),
        ("Staking", "ClaimedRewards"),
    ],
    &[("Staking", "MaxEraDuration")],
);

/// The shape of the runtime's staking, and a check that `meta` has
/// everything that shape needs (and `Proxy.proxy` when `proxy`), naming
/// what is missing. A relay chain whose staking moved to its Asset Hub
/// (it carries `StakingAhClient`) is refused: its Staking pallet is
/// call-filtered and holds no state.
pub fn check_metadata(meta: &Metadata, proxy: bool) -> Result<Shape, StateError> {
    if meta.pallet_by_name("StakingAhClient").is_some() {
        return Err(StateError::Missing(
            "staking here: this relay chain has moved staking to its Asset Hub \
             (the runtime carries StakingAhClient); point the Polkadot endpoints at the \
             Asset Hub (Polkadot, Kusama, Westend or Paseo Asset Hub)"
                .into(),
        ));
    }
    let shape = if meta.pallet_by_name("StakingRcClient").is_some() {
        Shape::AssetHub
    } else {
        Shape::Relay
    };
    let (only_calls, only_storage, only_constants) = match shape {
        Shape::Relay => RELAY_ONLY,
        Shape::AssetHub => ASSET_HUB_ONLY,
    };
    let mut missing = Vec::new();
    let mut calls: Vec<(&str, &str)> = REQUIRED_CALLS.to_vec();
    calls.extend_from_slice(only_calls);
    if proxy {
        calls.push(("Proxy", "proxy"));
    }
    for (p, c) in calls {
        if meta
            .pallet_by_name(p)
            .and_then(|p| p.call_variant_by_name(c))
            .is_none()
        {
            missing.push(format!("call {p}.{c}"));
        }
    }
    for (p, e) in REQUIRED_STORAGE.iter().chain(only_storage) {
        if meta
            .pallet_by_name(p)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(e))
            .is_none()
        {
            missing.push(format!("storage {p}.{e}"));
        }
    }
    for (p, c) in REQUIRED_CONSTANTS.iter().chain(only_constants) {
        if meta
            .pallet_by_name(p)
            .and_then(|p| p.constant_by_name(c))
            .is_none()
        {
            missing.push(format!("constant {p}.{c}"));
        }
    }
    if missing.is_empty() {
        Ok(shape)
    } else {
        Err(StateError::Missing(format!(
            "{} (softstake's Polkadot adapter reads {})",
            missing.join(", "),
            match shape {
                Shape::Relay => "a relay chain's Staking pallet with ErasStakers exposures",
                Shape::AssetHub => "Asset Hub's staking-async with paged exposures",
            }
        )))
    }
}

/// The storage key of `pallet.entry` for `keys` (each SCALE-encoded), with
/// the hashers the metadata declares.
pub fn storage_key(
    meta: &Metadata,
    pallet: &str,
    entry: &str,
    keys: &[&[u8]],
) -> Result<Vec<u8>, StateError> {
    let p = meta
        .pallet_by_name(pallet)
        .and_then(|p| p.storage())
        .ok_or_else(|| StateError::Missing(format!("storage in pallet {pallet}")))?;
    let e = p
        .entry_by_name(entry)
        .ok_or_else(|| StateError::Missing(format!("storage {pallet}.{entry}")))?;
    let mut out = Vec::with_capacity(32 + 48 * keys.len());
    out.extend(sp_crypto_hashing::twox_128(p.prefix().as_bytes()));
    out.extend(sp_crypto_hashing::twox_128(entry.as_bytes()));
    let hashers: Vec<StorageHasher> = e.keys().map(|k| k.hasher).collect();
    if hashers.len() != keys.len() {
        return Err(StateError::Missing(format!(
            "storage {pallet}.{entry} with {} keys (it has {})",
            keys.len(),
            hashers.len()
        )));
    }
    for (h, k) in hashers.iter().zip(keys) {
        match h {
            StorageHasher::Blake2_128 => out.extend(sp_crypto_hashing::blake2_128(k)),
            StorageHasher::Blake2_256 => out.extend(sp_crypto_hashing::blake2_256(k)),
            StorageHasher::Blake2_128Concat => {
                out.extend(sp_crypto_hashing::blake2_128(k));
                out.extend(*k);
            }
            StorageHasher::Twox128 => out.extend(sp_crypto_hashing::twox_128(k)),
            StorageHasher::Twox256 => out.extend(sp_crypto_hashing::twox_256(k)),
            StorageHasher::Twox64Concat => {
                out.extend(sp_crypto_hashing::twox_64(k));
                out.extend(*k);
            }
            StorageHasher::Identity => out.extend(*k),
        }
    }
    Ok(out)
}

/// Decodes the value of `pallet.entry` (raw bytes from the node), or its
/// declared default when the node has none. `None`: absent and no default.
pub fn decode_storage(
    meta: &Metadata,
    pallet: &str,
    entry: &str,
    raw: Option<&[u8]>,
) -> Result<Option<V>, StateError> {
    let e = meta
        .pallet_by_name(pallet)
        .and_then(|p| p.storage())
        .and_then(|s| s.entry_by_name(entry))
        .ok_or_else(|| StateError::Missing(format!("storage {pallet}.{entry}")))?;
    match raw {
        Some(bytes) => decode(meta, e.value_ty(), bytes, &format!("{pallet}.{entry}")).map(Some),
        None => Ok(e
            .default_value()
            .filter(|d| !d.is_empty())
            .and_then(|d| decode(meta, e.value_ty(), d, entry).ok())),
    }
}

/// Decodes `bytes` as type `ty`, requiring every byte to be used.
pub fn decode(meta: &Metadata, ty: u32, bytes: &[u8], what: &str) -> Result<V, StateError> {
    let mut cursor = bytes;
    let v = scale_value::scale::decode_as_type(&mut cursor, ty, meta.types()).map_err(|e| {
        StateError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        }
    })?;
    if !cursor.is_empty() {
        return Err(StateError::Decode {
            what: what.to_owned(),
            reason: format!("{} bytes left over", cursor.len()),
        });
    }
    Ok(simplify(v, meta))
}

/// Drops type context, and unwraps bounded collections (`BoundedVec(Vec)`,
/// `WeakBoundedVec`, `BoundedBTreeMap`) to the collection inside, so
/// callers see a sequence whatever bound the runtime declares.
fn simplify(v: Value<u32>, meta: &Metadata) -> V {
    let bounded = meta
        .types()
        .resolve(v.context)
        .and_then(|t| t.path.segments.last())
        .is_some_and(|s| {
            matches!(
                s.as_str(),
                "BoundedVec" | "WeakBoundedVec" | "BoundedBTreeMap" | "BoundedBTreeSet"
            )
        });
    let map = |c: Composite<u32>| match c {
        Composite::Named(fields) => Composite::Named(
            fields
                .into_iter()
                .map(|(n, x)| (n, simplify(x, meta)))
                .collect(),
        ),
        Composite::Unnamed(vals) => {
            Composite::Unnamed(vals.into_iter().map(|x| simplify(x, meta)).collect())
        }
    };
    match v.value {
        ValueDef::Composite(c) if bounded && c.len() == 1 => match c.into_values().next() {
            Some(inner) => simplify(inner, meta),
            None => Value::without_context(ValueDef::Composite(Composite::Unnamed(vec![]))),
        },
        ValueDef::Composite(c) => Value::without_context(ValueDef::Composite(map(c))),
        ValueDef::Variant(var) => Value::without_context(ValueDef::Variant(scale_value::Variant {
            name: var.name,
            values: map(var.values),
        })),
        other => Value::without_context(other.map_context(|_| ())),
    }
}

/// A pallet constant as a number.
pub fn constant_u128(meta: &Metadata, pallet: &str, name: &str) -> Result<u128, StateError> {
    let c = meta
        .pallet_by_name(pallet)
        .and_then(|p| p.constant_by_name(name))
        .ok_or_else(|| StateError::Missing(format!("constant {pallet}.{name}")))?;
    let v = decode(meta, c.ty(), c.value(), name)?;
    num(&v).ok_or_else(|| StateError::Decode {
        what: format!("{pallet}.{name}"),
        reason: "not a number".into(),
    })
}

/// A number, looking through single-field wrappers (`Perbill(u32)`).
pub fn num(v: &V) -> Option<u128> {
    match &v.value {
        ValueDef::Primitive(p) => p.as_u128(),
        ValueDef::Composite(c) if c.len() == 1 => c.values().next().and_then(num),
        _ => None,
    }
}

/// `v.name` as a number.
pub fn num_at(v: &V, name: &str) -> Option<u128> {
    v.at(name).and_then(num)
}

/// The bytes of a byte-array value (`AccountId32`, `[u8; N]`, `H256`).
pub fn bytes(v: &V) -> Vec<u8> {
    fn walk(v: &V, out: &mut Vec<u8>) {
        match &v.value {
            ValueDef::Primitive(p) => {
                if let Some(b) = p.as_u128().and_then(|n| u8::try_from(n).ok()) {
                    out.push(b);
                }
            }
            ValueDef::Composite(c) => c.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// An `AccountId32` value.
pub fn account(v: &V) -> Option<[u8; 32]> {
    bytes(v).try_into().ok()
}

/// The variant's name and fields, if `v` is an enum value.
pub fn variant(v: &V) -> Option<(&str, &Composite<()>)> {
    match &v.value {
        ValueDef::Variant(var) => Some((var.name.as_str(), &var.values)),
        _ => None,
    }
}

/// The items of a sequence or composite.
pub fn items(v: &V) -> Vec<&V> {
    match &v.value {
        ValueDef::Composite(c) => c.values().collect(),
        _ => Vec::new(),
    }
}

/// `Some(inner)` of an `Option` value; `None` for `None` or a non-option.
pub fn some(v: &V) -> Option<&V> {
    match variant(v) {
        Some(("Some", c)) => c.values().next(),
        _ => None,
    }
}

/// One event of `System.Events`, flattened.
#[derive(Debug, Clone)]
pub struct Event {
    /// Index of the event in the block.
    pub index: usize,
    /// `Some(i)`: emitted while applying extrinsic `i`.
    pub extrinsic: Option<u32>,
    /// Pallet name.
    pub pallet: String,
    /// Event name.
    pub name: String,
    /// The event's fields.
    pub fields: V,
}

/// Flattens a decoded `System.Events` value.
pub fn events(v: &V) -> Vec<Event> {
    let mut out = Vec::new();
    for (index, rec) in items(v).into_iter().enumerate() {
        let extrinsic = rec.at("phase").and_then(|p| match variant(p) {
            Some(("ApplyExtrinsic", c)) => c
                .values()
                .next()
                .and_then(num)
                .and_then(|n| u32::try_from(n).ok()),
            _ => None,
        });
        let Some((pallet, inner)) = rec.at("event").and_then(variant) else {
            continue;
        };
        let Some((name, fields)) = inner.values().next().and_then(variant) else {
            continue;
        };
        out.push(Event {
            index,
            extrinsic,
            pallet: pallet.to_owned(),
            name: name.to_owned(),
            fields: Value::without_context(ValueDef::Composite(fields.clone())),
        });
    }
    out
}

/// The readable name of a `DispatchError` value (`Staking.InsufficientBond`).
pub fn dispatch_error(meta: &Metadata, v: &V) -> String {
    match variant(v) {
        Some(("Module", c)) => {
            let m = c.values().next();
            let index = m.and_then(|m| num_at(m, "index"));
            let err = m.and_then(|m| m.at("error")).map(bytes);
            if let (Some(i), Some(e)) = (index, err) {
                let pallet = u8::try_from(i)
                    .ok()
                    .and_then(|i| meta.pallet_by_error_index(i));
                if let (Some(p), Some(first)) = (pallet, e.first())
                    && let Some(var) = p.error_variant_by_index(*first)
                {
                    return format!("{}.{}", p.name(), var.name);
                }
            }
            "Module error".into()
        }
        Some((name, c)) => match c.values().next().and_then(variant) {
            Some((inner, _)) => format!("{name}.{inner}"),
            None => name.to_owned(),
        },
        None => "unknown dispatch error".into(),
    }
}

/// The fields of a signed v4/v5 extrinsic the adapter needs to reconcile it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// Signer (MultiAddress::Id).
    pub signer: [u8; 32],
    /// Mortal era as (period, phase); `None` if immortal.
    pub era: Option<(u64, u64)>,
    /// Account nonce.
    pub nonce: u64,
}

/// Parses the signer, era and nonce of an encoded signed extrinsic (with
/// its compact length prefix), assuming `CheckMortality` and `CheckNonce`
/// are the first extensions with data, as in every Polkadot-SDK relay
/// runtime.
pub fn signed_header(x: &[u8]) -> Result<SignedHeader, StateError> {
    let bad = |r: &str| StateError::Decode {
        what: "signed extrinsic".into(),
        reason: r.into(),
    };
    let mut c = x;
    let Compact(len) = Compact::<u32>::decode(&mut c).map_err(|e| bad(&e.to_string()))?;
    if c.len() != len as usize {
        return Err(bad("length prefix does not match"));
    }
    let (&version, rest) = c.split_first().ok_or_else(|| bad("empty"))?;
    if version & 0x80 == 0 {
        return Err(bad("not a signed extrinsic"));
    }
    let (&addr_kind, rest) = rest.split_first().ok_or_else(|| bad("no address"))?;
    if addr_kind != 0 || rest.len() < 32 {
        return Err(bad("signer is not a MultiAddress::Id"));
    }
    let signer: [u8; 32] = rest[..32].try_into().map_err(|_| bad("signer"))?;
    let rest = &rest[32..];
    let (&sig_kind, rest) = rest.split_first().ok_or_else(|| bad("no signature"))?;
    let sig_len = match sig_kind {
        0 | 1 => 64,
        2 => 65,
        _ => return Err(bad("unknown signature kind")),
    };
    let rest = rest.get(sig_len..).ok_or_else(|| bad("short signature"))?;
    let (&e0, rest) = rest.split_first().ok_or_else(|| bad("no era"))?;
    let (era, mut rest) = if e0 == 0 {
        (None, rest)
    } else {
        let (&e1, rest) = rest.split_first().ok_or_else(|| bad("short era"))?;
        let enc = u64::from(e0) | (u64::from(e1) << 8);
        let period = 2u64 << (enc % 16);
        let quantize = (period >> 12).max(1);
        let phase = (enc >> 4) * quantize;
        (Some((period, phase)), rest)
    };
    let Compact(nonce) = Compact::<u64>::decode(&mut rest).map_err(|e| bad(&e.to_string()))?;
    Ok(SignedHeader { signer, era, nonce })
}

/// What `TaggedTransactionQueue_validate_transaction` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// Valid now.
    Valid,
    /// `InvalidTransaction::<name>` (Stale, BadProof, AncientBirthBlock, Future, Payment, ...).
    Invalid(&'static str),
    /// `UnknownTransaction` (cannot tell).
    Unknown,
}

/// Decodes a `TransactionValidity` (`Result<ValidTransaction,
/// TransactionValidityError>`, fixed by sp-runtime).
pub fn validity(bytes: &[u8]) -> Validity {
    const INVALID: [&str; 13] = [
        "Call",
        "Payment",
        "Future",
        "Stale",
        "BadProof",
        "AncientBirthBlock",
        "ExhaustsResources",
        "Custom",
        "BadMandatory",
        "MandatoryValidation",
        "BadSigner",
        "IndeterminateImplicit",
        "UnknownOrigin",
    ];
    match bytes {
        [0, ..] => Validity::Valid,
        [1, 0, k, ..] => INVALID
            .get(usize::from(*k))
            .map_or(Validity::Unknown, |n| Validity::Invalid(n)),
        _ => Validity::Unknown,
    }
}

/// A runtime's metadata with its versions.
#[derive(Debug)]
pub struct Runtime {
    /// `specVersion`.
    pub spec_version: u32,
    /// `transactionVersion`.
    pub transaction_version: u32,
    /// Metadata.
    pub meta: Arc<Metadata>,
    /// Which staking pallet it carries.
    pub shape: Shape,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Arc<Metadata> {
        crate::tx::metadata(include_bytes!("../metadata/paseo.scale")).unwrap()
    }

    #[test]
    fn storage_keys_follow_the_metadata_hashers() {
        let m = meta();
        // Well-known keys: twox128("Staking") ++ twox128("CurrentEra").
        assert_eq!(
            hex::encode(storage_key(&m, "Staking", "CurrentEra", &[]).unwrap()),
            "5f3e4907f716ac89b6347d15ececedca0b6a45321efae92aea15e0740ec7afe7"
        );
        let who = [7u8; 32];
        let k = storage_key(&m, "System", "Account", &[&who]).unwrap();
        assert_eq!(
            hex::encode(&k[..32]),
            "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
        );
        assert_eq!(&k[32..48], &sp_crypto_hashing::blake2_128(&who));
        assert_eq!(&k[48..], &who, "Blake2_128Concat keeps the key");
        let era = 5u32.to_le_bytes();
        let k = storage_key(&m, "Staking", "ErasStakers", &[&era, &who]).unwrap();
        assert_eq!(k.len(), 32 + 8 + 4 + 8 + 32, "two Twox64Concat keys");
        assert!(storage_key(&m, "Staking", "ErasStakers", &[&era]).is_err());
        assert!(storage_key(&m, "Staking", "NoSuchEntry", &[]).is_err());
    }

    #[test]
    fn the_paseo_metadata_has_what_the_adapter_needs_and_a_gap_is_named() {
        let m = meta();
        assert_eq!(check_metadata(&m, true).unwrap(), Shape::Relay);
        assert_eq!(constant_u128(&m, "Staking", "BondingDuration").unwrap(), 28);
        assert_eq!(
            constant_u128(&m, "Babe", "ExpectedBlockTime").unwrap(),
            6000
        );
        assert!(constant_u128(&m, "Staking", "Nope").is_err());
        // Default of a ValueQuery entry decodes; a wrong-length value does not.
        let acct = decode_storage(&m, "System", "Account", None)
            .unwrap()
            .unwrap();
        assert_eq!(acct.at("data").and_then(|d| num_at(d, "free")), Some(0));
        assert!(decode_storage(&m, "Staking", "CurrentEra", Some(&[1, 0])).is_err());
        assert_eq!(
            decode_storage(&m, "Staking", "CurrentEra", Some(&[9, 0, 0, 0]))
                .unwrap()
                .as_ref()
                .and_then(num),
            Some(9)
        );
    }

    /// Live metadata of today's networks (chains/dot/metadata/README.md):
    /// Westend's Asset Hub is read as staking-async with all the adapter
    /// needs; Polkadot's relay chain, whose staking moved to its Asset Hub,
    /// is refused with an error that says where to point.
    #[test]
    fn a_live_asset_hub_is_staking_async_and_a_migrated_relay_chain_is_refused() {
        let ah = crate::tx::metadata(include_bytes!(
            "../metadata/westend-asset-hub-1022000.scale"
        ))
        .unwrap();
        assert_eq!(check_metadata(&ah, true).unwrap(), Shape::AssetHub);
        assert_eq!(constant_u128(&ah, "Staking", "BondingDuration").unwrap(), 2);
        assert_eq!(
            constant_u128(&ah, "Staking", "MaxEraDuration").unwrap(),
            6 * 3600 * 1000,
            "6 relay sessions of an hour"
        );
        let relay = crate::tx::metadata(include_bytes!("../metadata/polkadot-relay-2000007.scale"))
            .unwrap();
        // The relay chain still names a Staking pallet; the refusal is not
        // "something is missing" but "staking moved".
        assert!(relay.pallet_by_name("Staking").is_some());
        let e = check_metadata(&relay, false).unwrap_err().to_string();
        assert!(e.contains("moved staking to its Asset Hub"), "{e}");
        assert!(e.contains("StakingAhClient"), "{e}");
    }

    #[test]
    fn validity_and_signed_header_decode() {
        assert_eq!(validity(&[0, 1, 2]), Validity::Valid);
        assert_eq!(validity(&[1, 0, 3]), Validity::Invalid("Stale"));
        assert_eq!(validity(&[1, 0, 5]), Validity::Invalid("AncientBirthBlock"));
        assert_eq!(validity(&[1, 1, 0]), Validity::Unknown);
        assert!(signed_header(&[4, 4, 0, 0, 0]).is_err());
    }
}
