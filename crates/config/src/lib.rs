//! softstake's configuration.
//!
//! One TOML file ([`ConfigFile`], every struct `deny_unknown_fields`), layered
//! with environment variables `SOFTSTAKE_<SECTION>_<KEY>` for the scalar
//! sections (`database`, `api`, `metrics`, `log`), then command-line flags
//! (applied by the binary). [`ConfigFile::validate`] is the separate semantic
//! step: it checks what serde cannot (commission within 0..=1, duplicate
//! validators, band inside 0..=1, amounts that parse in the chain's unit) and
//! returns the typed [`Config`], or every problem at once, each naming its key.
//!
//! Secrets are never inline: a [`SecretRef`] points to a file or an
//! environment variable, and is resolved into a [`Secret`] on demand.

mod file;
mod validate;

pub use file::*;
pub use softstake_core::config::{
    BooksSettings, BufferPolicy, ChainConfig, ConfigIssue, FeeBearer, LossBearer, NetworkTable,
    SafetyLimits, ValidatorConfig,
};
pub use softstake_core::{SecretRef, SecretRefError};
pub use validate::*;

use softstake_core::Secret;
use std::path::Path;

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "SOFTSTAKE_";

/// Sections that environment variables may override.
pub const ENV_SECTIONS: [&str; 4] = ["database", "api", "metrics", "log"];

/// Errors loading a config file (before validation).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (the cause is the error's source, so a
    /// report that prints the chain says it once).
    #[error("cannot read config file {path}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key, or wrong type.
    #[error("config {origin}: {message}")]
    Parse {
        /// File path or "environment".
        origin: String,
        /// Parser message (names the key and line).
        message: String,
    },
    /// An environment override names a key the section does not have.
    #[error(
        "environment variable {var} names no config key: section [{section}] has no key {key:?}"
    )]
    UnknownEnvKey {
        /// Variable name.
        var: String,
        /// Section.
        section: String,
        /// Key.
        key: String,
    },
}

/// Reads `path` (or starts from defaults if `None`), applies environment
/// overrides from `env`, and parses the result. Does not validate.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ConfigFile, LoadError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| LoadError::Read {
                path: p.display().to_string(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (String::new(), "defaults".to_owned()),
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LoadError::Parse {
            origin: origin.clone(),
            message: toml_error(&text, &e),
        })?;
    if apply_env(&mut table, env)? {
        let regenerated = toml::to_string(&table).unwrap_or_default();
        toml::from_str(&regenerated).map_err(|e| LoadError::Parse {
            origin: format!("{origin} with environment overrides"),
            message: toml_error(&regenerated, &e),
        })
    } else {
        // Parse the original text so errors point at the file's own lines.
        toml::from_str(&text).map_err(|e| LoadError::Parse {
            origin: origin.clone(),
            message: toml_error(&text, &e),
        })
    }
}

/// A TOML error as "line L, column C: message", without the snippet of the
/// offending line toml prints (it can hold an inline token or a URL
/// password) and with quoted values in the message elided; keys (which
/// serde names in backticks) stay.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let raw = e.message().trim();
    // serde's "invalid type: string \"VALUE\", expected ..." quotes the value.
    let msg = if raw.starts_with("invalid") {
        let mut m = String::new();
        let mut quoted = false;
        for ch in raw.chars() {
            if ch == '"' {
                quoted = !quoted;
                m.push_str(if quoted { "\"…" } else { "\"" });
            } else if !quoted {
                m.push(ch);
            }
        }
        m
    } else {
        raw.to_owned()
    };
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            // The key of that line (keys are never secrets; values may be).
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.starts_with('#'))
                .map(|k| format!(" (key `{k}`)"))
                .unwrap_or_default();
            format!("line {line}, column {column}{key}: {msg}")
        }
        None => msg,
    }
}

/// Applies `SOFTSTAKE_<SECTION>_<KEY>` overrides; true if any applied.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<bool, LoadError> {
    let mut applied = false;
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    vars.sort();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !ENV_SECTIONS.contains(&section) {
            continue;
        }
        if !ConfigFile::section_keys(section).contains(&key) {
            return Err(LoadError::UnknownEnvKey {
                var,
                section: section.to_owned(),
                key: key.to_owned(),
            });
        }
        let parsed = value
            .parse::<toml::Value>()
            .ok()
            .filter(|v| !v.is_str() || value.starts_with('"'))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let v = match parsed {
            // A secret key set from the environment holds the secret itself:
            // the config records only the variable's name, never its value.
            _ if ConfigFile::is_secret_key(section, key) => toml::Value::try_from(SecretRef::Env {
                env: var.clone(),
            })
            .map_err(|e| LoadError::Parse {
                origin: var.clone(),
                message: e.to_string(),
            })?,
            other => other,
        };
        let sec = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = sec {
            t.insert(key.to_owned(), v);
            applied = true;
        }
    }
    Ok(applied)
}

/// Resolves a secret reference, if set.
pub fn resolve_optional(r: Option<&SecretRef>) -> Result<Option<Secret<String>>, SecretRefError> {
    r.map(SecretRef::resolve).transpose()
}

#[cfg(test)]
mod tests;
