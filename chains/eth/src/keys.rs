//! The custody key: the execution-layer account the validators' withdrawal
//! credentials point to. A 64-hex-character secp256k1 key file, or a V3
//! keystore (JSON) decrypted with its password. Debug shows the address.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

/// Why a key could not be read. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a hex key or a keystore.
    #[error("not a secp256k1 key (64 hex characters) or a V3 keystore")]
    Format,
    /// Keystore without a password, or a wrong one.
    #[error("the V3 keystore could not be decrypted: {0}")]
    Keystore(String),
}

/// The custody key.
pub struct LocalKey {
    signer: PrivateKeySigner,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("address", &self.signer.address())
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// A hex private key (with or without 0x), or a V3 keystore JSON with
    /// `password`.
    pub fn parse(text: &str, password: Option<&str>) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.starts_with('{') {
            let password = password
                .ok_or_else(|| KeyError::Keystore("no keystore password configured".into()))?;
            // alloy decrypts from a path: the keystore is encrypted, so a
            // private temporary copy (mode 600, removed at once) is safe.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path = std::env::temp_dir().join(format!(
                "softstake-keystore-{}-{nanos}.json",
                std::process::id()
            ));
            write_private(&path, t.as_bytes())
                .map_err(|e| KeyError::Keystore(format!("temporary copy: {e}")))?;
            let r = PrivateKeySigner::decrypt_keystore(&path, password);
            let _ = std::fs::remove_file(&path);
            let signer = r.map_err(|e| KeyError::Keystore(short(&e.to_string())))?;
            return Ok(LocalKey { signer });
        }
        let bytes = hex::decode(t.trim_start_matches("0x")).map_err(|_| KeyError::Format)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Format)?;
        let signer = PrivateKeySigner::from_bytes(&bytes.into()).map_err(|_| KeyError::Format)?;
        Ok(LocalKey { signer })
    }

    /// The custody address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub(crate) fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_and_v3_keystores_parse_and_nothing_secret_is_shown() {
        let hex_key = "02".repeat(32);
        let k = LocalKey::parse(&hex_key, None).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&format!("{:?}", k.address())));
        assert!(!dbg.contains(&hex_key));
        assert_eq!(LocalKey::parse("0xzz", None).unwrap_err(), KeyError::Format);

        let dir = std::env::temp_dir().join(format!("softstake-ks-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, name) = PrivateKeySigner::encrypt_keystore(
            &dir,
            &mut rand::thread_rng(),
            [2u8; 32],
            "correct horse",
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let from_store = LocalKey::parse(&text, Some("correct horse")).unwrap();
        assert_eq!(from_store.address(), k.address());
        assert!(matches!(
            LocalKey::parse(&text, Some("wrong")),
            Err(KeyError::Keystore(_))
        ));
        let no_password = LocalKey::parse(&text, None).unwrap_err();
        assert!(no_password.to_string().contains("no keystore password"));
    }
}
