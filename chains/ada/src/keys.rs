//! Payment and stake keys: cardano-cli `.skey` files (JSON text envelopes
//! whose `cborHex` is a CBOR byte string of the 32-byte ed25519 seed).
//! Debug shows the key hash only.

use pallas_crypto::hash::Hasher;
use pallas_crypto::key::ed25519::SecretKey;

/// Why a key could not be read. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a text envelope with a 32-byte ed25519 key.
    #[error("not a cardano-cli .skey (JSON with cborHex \"5820\" + 64 hex digits)")]
    Format,
}

/// One ed25519 key.
pub struct LocalKey {
    sk: SecretKey,
    seed: [u8; 32],
}

impl Drop for LocalKey {
    fn drop(&mut self) {
        self.seed.fill(0);
    }
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("key_hash", &hex::encode(self.key_hash()))
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// Parses a cardano-cli `.skey` text envelope.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let v: serde_json::Value =
            serde_json::from_str(text.trim()).map_err(|_| KeyError::Format)?;
        let cbor = v
            .get("cborHex")
            .and_then(|c| c.as_str())
            .ok_or(KeyError::Format)?;
        let raw = cbor.strip_prefix("5820").ok_or(KeyError::Format)?;
        let bytes = hex::decode(raw).map_err(|_| KeyError::Format)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Format)?;
        Ok(Self::from_seed(seed))
    }

    /// A key from its 32-byte seed (tests, vectors).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        LocalKey {
            sk: SecretKey::from(seed),
            seed,
        }
    }

    /// The `.skey` text envelope for this key (tests write key files).
    pub fn to_skey(&self, kind: &str) -> String {
        let bytes = self.seed;
        serde_json::json!({
            "type": format!("{kind}SigningKeyShelley_ed25519"),
            "description": "",
            "cborHex": format!("5820{}", hex::encode(bytes)),
        })
        .to_string()
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let pk = self.sk.public_key();
        let mut out = [0u8; 32];
        out.copy_from_slice(pk.as_ref());
        out
    }

    /// blake2b-224 of the public key.
    pub fn key_hash(&self) -> [u8; 28] {
        let h = Hasher::<224>::hash(&self.public_key());
        let mut out = [0u8; 28];
        out.copy_from_slice(h.as_ref());
        out
    }

    /// Signs `msg` (a transaction body hash).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig = self.sk.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }
}
