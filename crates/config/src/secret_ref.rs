//! References to secrets: a file or an environment variable, never inline.

use serde::{Deserialize, Serialize};
use softstake_core::Secret;
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
    /// File missing or unreadable.
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable {
        /// Path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// File readable by group or others.
    #[error("secret file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    TooOpen {
        /// Path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
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
            SecretRef::File { file } => {
                let path = file.display().to_string();
                check_permissions(file, &path)?;
                std::fs::read_to_string(file).map_err(|e| SecretRefError::Unreadable {
                    path,
                    reason: e.kind().to_string(),
                })?
            }
            SecretRef::Env { env } => {
                std::env::var(env).map_err(|_| SecretRefError::MissingEnv(env.clone()))?
            }
        };
        let v = raw.trim().to_owned();
        if v.is_empty() {
            return Err(SecretRefError::Empty(self.describe()));
        }
        Ok(Secret::new(v))
    }
}

#[cfg(unix)]
fn check_permissions(file: &std::path::Path, path: &str) -> Result<(), SecretRefError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).map_err(|e| SecretRefError::Unreadable {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretRefError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_file: &std::path::Path, _path: &str) -> Result<(), SecretRefError> {
    Ok(())
}
