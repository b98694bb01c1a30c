//! What a chain crate gives the rest of softstake: the [`ChainPlugin`].
//!
//! Each `chains/<x>` crate exports one value implementing this trait, and
//! `softstake-adapters` lists them (one line per chain). Everything the
//! daemon, `config validate` and `softstake tx sign` need from a chain goes
//! through it, so no other crate reaches into a chain crate's modules.

use crate::adapter::{AdapterError, ChainAdapter};
use crate::config::{ChainConfig, ConfigIssue};
use crate::secret::KeyFileError;
use crate::{ChainId, SecretRef};
use std::sync::Arc;

/// Why an offline signing request (`softstake tx sign`) was refused. Never
/// contains key material.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The request does not parse: bad JSON, an unknown or missing field
    /// (named, with its path), a value of the wrong type.
    #[error("request: {0}")]
    Request(String),
    /// The key file could not be read.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The key file's content is not a key of the kind this chain uses.
    #[error("key: {0}")]
    Key(String),
    /// The transaction cannot be built as asked.
    #[error("{0}")]
    Build(String),
}

impl SignError {
    /// A parse failure of `T` from JSON, naming the path of the field.
    pub fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, SignError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path.is_empty() || path == "." {
                SignError::Request(e.into_inner().to_string())
            } else {
                SignError::Request(format!("{path}: {}", e.into_inner()))
            }
        })
    }
}

impl SignError {
    /// [`SignError::parse`] for a request whose top level flattens a params
    /// struct: serde cannot refuse unknown fields through `flatten`, so the
    /// top-level keys are checked against `fields` first.
    pub fn parse_flat<T: serde::de::DeserializeOwned>(
        json: &str,
        fields: &[&str],
    ) -> Result<T, SignError> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| SignError::Request(e.to_string()))?;
        if let Some(k) = v
            .as_object()
            .and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
        {
            return Err(SignError::Request(format!(
                "unknown field `{k}`, expected one of {}",
                fields.join(", ")
            )));
        }
        SignError::parse(json)
    }
}

/// A chain's `sign_request` in one call: parses the request (`flat`: the
/// top-level fields when the request flattens a params struct, see
/// [`SignError::parse_flat`]), signs it with `sign` and returns the answer
/// as JSON.
pub fn sign_json<Req, Resp>(
    request_json: &str,
    flat: Option<&[&str]>,
    sign: impl FnOnce(&Req) -> Result<Resp, SignError>,
) -> Result<serde_json::Value, SignError>
where
    Req: serde::de::DeserializeOwned,
    Resp: serde::Serialize,
{
    let req: Req = match flat {
        Some(fields) => SignError::parse_flat(request_json, fields)?,
        None => SignError::parse(request_json)?,
    };
    serde_json::to_value(sign(&req)?).map_err(|e| SignError::Build(e.to_string()))
}

/// One chain, as the registry sees it.
pub trait ChainPlugin: Send + Sync {
    /// The chain.
    fn chain(&self) -> ChainId;

    /// Checks what this chain needs of its section: `[chains.network]`
    /// (parsed with [`crate::config::NetworkTable::parse`] into the chain's
    /// typed settings) and the chain's rules on the common part (how many
    /// validators, their address format). Keys are relative to the section
    /// (`network.gas_price`, `validators`).
    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue>;

    /// The adapter for `cfg`, keys resolved and endpoints set up. Runs the
    /// same checks as [`ChainPlugin::validate`] first.
    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError>;

    /// Signs an offline request (docs/tx-requests.md) and returns the
    /// answer as JSON. Unknown fields are refused at every level.
    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError>;
}

/// Resolves a key reference for a build, naming the config key on failure.
pub fn resolve_key(what: &str, r: &SecretRef) -> Result<crate::Secret<String>, AdapterError> {
    r.resolve()
        .map_err(|e| AdapterError::Config(format!("{what}: {e}")))
}

/// The issues of a `validate`, as one configuration error for `build`.
pub fn issues_to_error(chain: ChainId, issues: Vec<ConfigIssue>) -> AdapterError {
    let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
    AdapterError::Config(format!("{chain}: {}", lines.join("; ")))
}
