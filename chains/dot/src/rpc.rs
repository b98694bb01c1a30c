//! JSON-RPC over HTTP to Polkadot-SDK nodes, with fallback across endpoints
//! (Lighthouse-style) and a genesis-hash check per endpoint before its first
//! use, so a node on another network is refused before anything is signed.

use serde_json::{Value, json};
use softstake_core::adapter::AdapterError;
use softstake_core::secret::redact_url;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// The client.
#[derive(Debug)]
pub struct Rpc {
    endpoints: Vec<String>,
    genesis_hash: String,
    http: reqwest::Client,
    checked: Mutex<HashSet<String>>,
}

fn transport(endpoint: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Transport {
        endpoint: redact_url(endpoint),
        message: e.to_string(),
    }
}

impl Rpc {
    /// A client for `endpoints` that must report `genesis_hash` (0x-hex).
    pub fn new(
        endpoints: Vec<String>,
        genesis_hash: String,
        timeout: Duration,
    ) -> Result<Rpc, AdapterError> {
        if endpoints.is_empty() {
            return Err(AdapterError::Config(
                "no Polkadot RPC endpoint configured".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AdapterError::Config(format!("HTTP client: {e}")))?;
        Ok(Rpc {
            endpoints,
            genesis_hash: genesis_hash.to_lowercase(),
            http,
            checked: Mutex::new(HashSet::new()),
        })
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// One call to one endpoint, without the genesis check.
    pub async fn call_at(
        &self,
        endpoint: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, AdapterError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = self
            .http
            .post(endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(endpoint, e))?;
        let status = resp.status().as_u16();
        if status == 429 {
            return Err(AdapterError::RateLimited {
                endpoint: redact_url(endpoint),
            });
        }
        if status >= 500 {
            return Err(transport(endpoint, format!("HTTP {status}")));
        }
        let v: Value = resp.json().await.map_err(|e| transport(endpoint, e))?;
        if let Some(err) = v.get("error") {
            let msg = err["message"].as_str().unwrap_or("error");
            let data = match &err["data"] {
                Value::Null => String::new(),
                Value::String(s) => format!(": {s}"),
                other => format!(": {other}"),
            };
            return Err(AdapterError::Rejected(format!("{method}: {msg}{data}")));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    async fn check_genesis(&self, endpoint: &str) -> Result<(), AdapterError> {
        if self
            .checked
            .lock()
            .map_err(|_| AdapterError::Config("poisoned lock".into()))?
            .contains(endpoint)
        {
            return Ok(());
        }
        let found = self
            .call_at(endpoint, "chain_getBlockHash", json!([0]))
            .await?
            .as_str()
            .unwrap_or("")
            .to_lowercase();
        if found != self.genesis_hash {
            return Err(AdapterError::WrongNetwork {
                endpoint: redact_url(endpoint),
                expected: self.genesis_hash.clone(),
                found,
            });
        }
        self.checked
            .lock()
            .map_err(|_| AdapterError::Config("poisoned lock".into()))?
            .insert(endpoint.to_owned());
        Ok(())
    }

    /// A call with fallback: a transport error tries the next endpoint; a
    /// node error or a wrong network is returned at once.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, AdapterError> {
        let mut last = None;
        for ep in &self.endpoints {
            let r = match self.check_genesis(ep).await {
                Ok(()) => self.call_at(ep, method, params.clone()).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| AdapterError::Config("no endpoints".into())))
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
    hex::decode(h.trim_start_matches("0x"))
        .map_err(|e| AdapterError::Rejected(format!("node sent bad hex: {e}")))
}

/// A 0x-hex block number (`"0x1a"`) or a JSON number.
pub fn block_number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
        other => other.as_u64(),
    }
}
