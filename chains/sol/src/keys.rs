//! The custody key: a solana-keygen JSON keypair file (64 numbers: secret
//! seed then public key). Debug output shows only the address.

use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer as _};

/// Why a key could not be read. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a JSON array of 64 bytes.
    #[error("not a solana-keygen keypair (expected a JSON array of 64 numbers 0-255)")]
    Format,
    /// The public half does not match the secret half.
    #[error("keypair's public key does not match its secret key")]
    Mismatch,
}

/// A local ed25519 keypair.
pub struct LocalKey {
    kp: Keypair,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("address", &self.kp.pubkey().to_string())
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// Parses a solana-keygen JSON keypair.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes: Vec<u8> = serde_json::from_str(text.trim()).map_err(|_| KeyError::Format)?;
        if bytes.len() != 64 {
            return Err(KeyError::Format);
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let kp = Keypair::new_from_array(seed);
        seed.fill(0);
        if kp.pubkey().to_bytes()[..] != bytes[32..] {
            return Err(KeyError::Mismatch);
        }
        Ok(LocalKey { kp })
    }

    /// A key from a 32-byte seed (tests, vectors).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        LocalKey {
            kp: Keypair::new_from_array(seed),
        }
    }

    /// The solana-keygen JSON for this key (tests write key files with it).
    pub fn to_keygen_json(&self) -> String {
        serde_json::to_string(&self.kp.to_bytes().to_vec()).unwrap_or_default()
    }

    /// Public key.
    pub fn pubkey(&self) -> Pubkey {
        self.kp.pubkey()
    }

    /// Address (base58 public key).
    pub fn address(&self) -> String {
        self.kp.pubkey().to_string()
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.kp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keygen_json_and_rejects_tampered_files() {
        let k = LocalKey::from_seed([7; 32]);
        let json = k.to_keygen_json();
        let back = LocalKey::parse(&json).unwrap();
        assert_eq!(back.address(), k.address());
        // Public half changed.
        let mut v: Vec<u8> = serde_json::from_str(&json).unwrap();
        v[40] ^= 1;
        let bad = serde_json::to_string(&v).unwrap();
        assert_eq!(LocalKey::parse(&bad).unwrap_err(), KeyError::Mismatch);
        assert_eq!(LocalKey::parse("[1,2,3]").unwrap_err(), KeyError::Format);
        // Debug shows the address and nothing secret.
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&k.address()));
        assert!(!dbg.contains("[7, 7"));
        assert!(!json.is_empty() && !dbg.contains(&json));
    }
}
