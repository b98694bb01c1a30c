//! JSON-RPC over HTTP to Polkadot-SDK nodes, with fallback across endpoints
//! (Lighthouse-style) and a genesis-hash check per endpoint before its first
//! use, so a node on another network is refused before anything is signed.

use serde_json::{Value, json};
use softstake_core::adapter::AdapterError;
use softstake_rpc::{Endpoints, Options};
use std::time::Duration;

/// The client: the endpoint layer with the genesis hash as the network
/// identity.
#[derive(Debug)]
pub struct Rpc {
    api: Endpoints,
}

impl Rpc {
    /// A client for `endpoints` that must report `genesis_hash` (0x-hex).
    pub fn new(
        endpoints: Vec<String>,
        genesis_hash: String,
        timeout: Duration,
    ) -> Result<Rpc, AdapterError> {
        let api = Endpoints::http(
            "polkadot RPC",
            &endpoints,
            Options {
                timeout,
                ..Options::default()
            },
        )?
        .with_identity(genesis_hash.to_lowercase(), |ep| async move {
            let v = ep.json_rpc("chain_getBlockHash", json!([0])).await?;
            v.as_str()
                .map(str::to_lowercase)
                .ok_or_else(|| ep.bad_response("chain_getBlockHash", &v))
        });
        Ok(Rpc { api })
    }

    /// The endpoints, with their shared health.
    pub fn endpoints(&self) -> &Endpoints {
        &self.api
    }

    /// A call with fallback: a transport error tries the next endpoint; a
    /// node error or a wrong network is returned at once.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, AdapterError> {
        self.api
            .call(|ep| {
                let params = params.clone();
                async move { ep.json_rpc(method, params).await }
            })
            .await
    }

    /// `state_getStorage(key, at)` as bytes.
    pub async fn storage(
        &self,
        key: &[u8],
        at: Option<&str>,
    ) -> Result<Option<Vec<u8>>, AdapterError> {
        let v = self
            .call(
                "state_getStorage",
                json!([format!("0x{}", hex::encode(key)), at]),
            )
            .await?;
        match v.as_str() {
            None => Ok(None),
            Some(h) => hex_bytes(h).map(Some),
        }
    }

    /// `state_call(method, data, at)` as bytes.
    pub async fn state_call(
        &self,
        method: &str,
        data: &[u8],
        at: Option<&str>,
    ) -> Result<Vec<u8>, AdapterError> {
        let v = self
            .call(
                "state_call",
                json!([method, format!("0x{}", hex::encode(data)), at]),
            )
            .await?;
        hex_bytes(v.as_str().unwrap_or(""))
    }
}

/// 0x-hex to bytes.
pub fn hex_bytes(h: &str) -> Result<Vec<u8>, AdapterError> {
    hex::decode(h.trim_start_matches("0x")).map_err(|e| AdapterError::BadResponse {
        endpoint: "polkadot RPC".into(),
        message: format!("not hex: {e}"),
    })
}

/// A 0x-hex block number (`"0x1a"`) or a JSON number.
pub fn block_number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
        other => other.as_u64(),
    }
}
