//! The custody key.

use cosmrs::crypto::secp256k1::SigningKey;
use softstake_core::Secret;

/// Errors reading a key. Never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not 64 hex characters nor a valid mnemonic.
    #[error(
        "the Cosmos key is neither 64 hex characters (a secp256k1 private key) nor a BIP-39 mnemonic"
    )]
    Format,
    /// A valid encoding of an invalid key (zero, above the curve order).
    #[error("the Cosmos key is not a valid secp256k1 private key")]
    Invalid,
    /// The mnemonic's checksum or words are wrong.
    #[error("the BIP-39 mnemonic is invalid (unknown word or bad checksum)")]
    Mnemonic,
}

/// Signs SIGN_MODE_DIRECT sign docs. Local keys implement it; a remote
/// signer or KMS can too.
pub trait Signer: Send + Sync {
    /// The compressed secp256k1 public key (33 bytes).
    fn public_key(&self) -> cosmrs::crypto::PublicKey;
    /// The bech32 account address.
    fn address(&self) -> String;
    /// The 64-byte (r || s, low-s) signature of `sign_doc_bytes`.
    fn sign(&self, sign_doc_bytes: &[u8]) -> Result<Vec<u8>, String>;
}

/// A key held in memory. `Debug` shows only the address.
pub struct LocalKey {
    key: SigningKey,
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

/// The Cosmos Hub derivation path.
pub const HD_PATH: &str = "m/44'/118'/0'/0/0";

impl LocalKey {
    /// From the key file's content: 64 hex characters (optionally `0x`), or
    /// a BIP-39 mnemonic (derived at [`HD_PATH`], empty passphrase).
    pub fn parse(content: &Secret<String>) -> Result<LocalKey, KeyError> {
        let text = content.expose().trim();
        let hex_part = text.strip_prefix("0x").unwrap_or(text);
        let key = if hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bytes = Secret::new(hex::decode(hex_part).map_err(|_| KeyError::Format)?);
            SigningKey::from_slice(bytes.expose()).map_err(|_| KeyError::Invalid)?
        } else if text.split_whitespace().count() >= 12 {
            let phrase = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let m = bip39::Mnemonic::parse_in(bip39::Language::English, phrase.as_str())
                .map_err(|_| KeyError::Mnemonic)?;
            let seed = Secret::new(m.to_seed(""));
            let path = HD_PATH.parse().map_err(|_| KeyError::Invalid)?;
            SigningKey::derive_from_path(seed.expose(), &path).map_err(|_| KeyError::Invalid)?
        } else {
            return Err(KeyError::Format);
        };
        let address = key
            .public_key()
            .account_id(crate::ACCOUNT_PREFIX)
            .map_err(|_| KeyError::Invalid)?
            .to_string();
        Ok(LocalKey { key, address })
    }
}

impl Signer for LocalKey {
    fn public_key(&self) -> cosmrs::crypto::PublicKey {
        self.key.public_key()
    }

    fn address(&self) -> String {
        self.address.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        self.key
            .sign(msg)
            .map(|s| s.to_vec())
            .map_err(|e| format!("signing failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_and_mnemonics_give_addresses_and_debug_hides_the_key() {
        let k = LocalKey::parse(&Secret::new(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n".into(),
        ))
        .unwrap();
        // cosmjs derives the same address (tests/vectors/atom/vectors.json).
        assert_eq!(k.address(), "cosmos1ngw83fg8dz0k749cg7k3emc7v98wy0c7rhpgjq");
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains("e3b0c442") && dbg.contains("redacted"),
            "{dbg}"
        );
        // The BIP-39 test mnemonic ("abandon" x 11 + "about") at m/44'/118'/0'/0/0.
        let m = LocalKey::parse(&Secret::new(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about".into(),
        ))
        .unwrap();
        assert_eq!(m.address(), "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4");
        assert_eq!(
            LocalKey::parse(&Secret::new("nope".into())).unwrap_err(),
            KeyError::Format
        );
        assert_eq!(
            LocalKey::parse(&Secret::new("0".repeat(64))).unwrap_err(),
            KeyError::Invalid
        );
        let bad = "abandon ".repeat(12);
        assert_eq!(
            LocalKey::parse(&Secret::new(bad)).unwrap_err(),
            KeyError::Mnemonic
        );
    }
}
