//! References to secrets: a file or an environment variable, never inline.

use crate::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a secret lives. In TOML: `{ file = "/etc/softstake/admin.token" }`
/// or `{ env = "SOFTSTAKE_ADMIN_TOKEN" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    /// A file; refused if group or others can read it.
    File {
        /// Path to the file.
        file: PathBuf,
    },
    /// An environment variable.
    Env {
        /// Variable name.
        env: String,
    },
}

/// A secret that could not be resolved. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    /// The file is missing, unreadable, or readable by group or others.
    #[error(transparent)]
    File(#[from] crate::secret::KeyFileError),
    /// Variable not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// Empty secret.
    #[error("secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Where it points, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretRef::File { file } => format!("file {}", file.display()),
            SecretRef::Env { env } => format!("environment variable {env}"),
        }
    }

    /// Reads the secret, trimming surrounding whitespace.
    pub fn resolve(&self) -> Result<Secret<String>, SecretRefError> {
        let raw = match self {
            SecretRef::File { file } => crate::secret::read_key_file(file)?,
            SecretRef::Env { env } => Secret::new(
                std::env::var(env).map_err(|_| SecretRefError::MissingEnv(env.clone()))?,
            ),
        };
        let v = raw.expose().trim().to_owned();
        if v.is_empty() {
            return Err(SecretRefError::Empty(self.describe()));
        }
        Ok(Secret::new(v))
    }
}
