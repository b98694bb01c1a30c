//! The custody key: an edsk (ed25519), behind the [`Signer`] interface.

use crate::forge::{self, prefix};
use softstake_core::Secret;

/// Errors reading a key. Never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not an edsk.
    #[error("the Tezos key is not an edsk (ed25519 seed or secret key, base58check)")]
    Format,
}

/// Signs Tezos operations. Local keys implement it; a remote signer can too.
pub trait Signer: Send + Sync {
    /// The tz1 address.
    fn address(&self) -> String;
    /// The edpk public key.
    fn public_key(&self) -> String;
    /// The raw 32-byte public key.
    fn public_key_bytes(&self) -> [u8; 32];
    /// ed25519 signature of `blake2b_256(0x03 || forged)`.
    fn sign_operation(&self, forged: &[u8]) -> [u8; 64];
}

/// An edsk held in memory. `Debug` shows only the address.
pub struct LocalKey {
    key: ed25519_dalek::SigningKey,
    address: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("address", &self.address)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl LocalKey {
    /// From the key file's content: an `edsk...` seed (54 characters) or
    /// secret key (98 characters).
    pub fn parse(content: &Secret<String>) -> Result<LocalKey, KeyError> {
        let s = content.expose().trim();
        let seed = forge::unb58("key", "edsk", s, prefix::EDSK_SEED, 32)
            .or_else(|_| {
                forge::unb58("key", "edsk", s, prefix::EDSK_SECRET, 64).map(|v| v[..32].to_vec())
            })
            .map_err(|_| KeyError::Format)?;
        let seed = Secret::new(seed);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(seed.expose());
        let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
        bytes.fill(0);
        let address = forge::tz1_of(key.verifying_key().as_bytes());
        Ok(LocalKey { key, address })
    }
}

impl Signer for LocalKey {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn public_key(&self) -> String {
        forge::b58(prefix::EDPK, self.key.verifying_key().as_bytes())
    }

    fn public_key_bytes(&self) -> [u8; 32] {
        *self.key.verifying_key().as_bytes()
    }

    fn sign_operation(&self, forged: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        let mut msg = Vec::with_capacity(forged.len() + 1);
        msg.push(0x03);
        msg.extend_from_slice(forged);
        self.key.sign(&forge::blake2b_256(&msg)).to_bytes()
    }
}

/// Verifies an operation signature (the test node's independent check).
pub fn verify_operation(public_key: &[u8; 32], forged: &[u8], sig: &[u8; 64]) -> bool {
    use ed25519_dalek::Verifier as _;
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let mut msg = vec![0x03];
    msg.extend_from_slice(forged);
    vk.verify(
        &forge::blake2b_256(&msg),
        &ed25519_dalek::Signature::from_bytes(sig),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edsk_gives_the_taquito_address_and_debug_hides_the_key() {
        // tests/vectors/xtz/vectors.json: seed 0x01 x 32.
        let k = LocalKey::parse(&Secret::new(
            "edsk2gLvWRYgkCPVKPjXag2uSGDjQh5YGUThMgLXUhzbrJWXdvvYoj".into(),
        ))
        .unwrap();
        assert_eq!(k.address(), "tz1c8PEDNfj6UxoQM2XCyfTHM5KbGGgoqDrH");
        assert_eq!(
            k.public_key(),
            "edpkuhEcwoLysLvodRxQLzuM3AVZvCuT6koVkUahS53mNBdE8LbuGo"
        );
        assert!(!format!("{k:?}").contains("edsk"));
        assert_eq!(
            LocalKey::parse(&Secret::new("edsk123".into())).unwrap_err(),
            KeyError::Format
        );
        let sig = k.sign_operation(b"abc");
        assert!(verify_operation(&k.public_key_bytes(), b"abc", &sig));
        assert!(!verify_operation(&k.public_key_bytes(), b"abd", &sig));
    }
}
