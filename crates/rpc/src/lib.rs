//! The one endpoint layer every chain adapter talks to its nodes through,
//! after Lighthouse's `beacon_node_fallback` and Hyperlane's
//! `FallbackProvider`:
//!
//! - [`Endpoints`]: the configured endpoints of one API, each with its
//!   health kept as shared state ([`EndpointState`]: up, failures in a row,
//!   last error, head, lag, latency, whether its network identity was
//!   checked). Calls ([`Endpoints::call`]) try endpoints in health order
//!   (those that answered last first, then by fewest failures, then config
//!   order) and fall back on retryable errors; the health report
//!   ([`Endpoints::health`]) probes each endpoint and updates the same state.
//! - Network identity (chain id, genesis hash, network magic) is checked
//!   once per endpoint before its first use, and again after it failed at
//!   the transport level (a reconnect may land on another node). A wrong
//!   network is fatal: nothing is signed against it.
//! - One mapping of HTTP statuses: 429 is [`AdapterError::RateLimited`],
//!   5xx and timeouts [`AdapterError::Transport`] (both retryable), an
//!   answer that does not decode [`AdapterError::BadResponse`]; everything
//!   else is handed to the chain's code with its status ([`Reply`]).
//! - URLs are shown only through [`redact_endpoint`] (scheme, host, port),
//!   in every error, log line, metric label and health report, since
//!   providers put API keys in the path or query.
//! - [`Endpoint::json_rpc`]: one JSON-RPC 2.0 client.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use softstake_core::Secret;
use softstake_core::adapter::{AdapterError, EndpointHealth};
pub use softstake_core::secret::redact_endpoint;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is known about one endpoint, shared by calls and health reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointState {
    /// Whether its last call or probe succeeded (`None`: never used).
    pub up: Option<bool>,
    /// Retryable failures in a row.
    pub failures: u32,
    /// The last failure (already redacted).
    pub last_error: Option<String>,
    /// Whether its network identity was checked since it last failed.
    pub identity_checked: bool,
    /// Head height, slot or level at the last health probe.
    pub head_height: Option<u64>,
    /// Seconds its head was behind wall-clock time at the last probe.
    pub lag_secs: Option<u64>,
    /// Milliseconds the last probe took.
    pub latency_ms: Option<u64>,
}

/// One configured endpoint.
pub struct Endpoint<C = ()> {
    url: Secret<String>,
    shown: String,
    http: reqwest::Client,
    headers: Arc<Vec<(String, Secret<String>)>>,
    client: C,
    state: Mutex<EndpointState>,
}

impl<C> std::fmt::Debug for Endpoint<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer after the common status mapping: what the chain's code
/// interprets (2xx, 4xx, and 5xx when asked for with [`ServerErrors::Return`]).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    endpoint: String,
}

impl Reply {
    /// The body as JSON; an undecodable body is a [`AdapterError::BadResponse`].
    pub fn json(&self) -> Result<Value, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| AdapterError::BadResponse {
            endpoint: self.endpoint.clone(),
            message: format!("HTTP {}: not JSON: {e}", self.status),
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a 5xx answer means for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerErrors {
    /// A node failure: retryable, try the next endpoint (queries).
    Retry,
    /// The API's own way of refusing (Octez answers a refused injection
    /// with 500 and an error list): returned to the caller.
    Return,
}

/// A transport failure at `ep`, for errors.
pub fn transport(endpoint: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Transport {
        endpoint: endpoint.to_owned(),
        message: strip_urls(&e.to_string()),
    }
}

/// An SDK client's failure (alloy, solana-rpc-client) that is not a node's
/// answer: "429" / "Too Many Requests" in its text is a rate limit, the rest
/// a transport failure; both retryable, URLs redacted.
pub fn sdk_error(endpoint: &str, message: &str) -> AdapterError {
    if message.contains("429") || message.contains("Too Many Requests") {
        AdapterError::RateLimited {
            endpoint: endpoint.to_owned(),
        }
    } else {
        transport(endpoint, message)
    }
}

/// reqwest puts the URL in its messages ("error sending request for url
/// (https://host/v2/KEY)"): every URL in `msg` is shown redacted.
fn strip_urls(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'')
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_endpoint(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl<C> Endpoint<C> {
    /// The URL to send to. Never log or format it: use [`Endpoint::shown`].
    pub fn url(&self) -> &str {
        self.url.expose()
    }

    /// The URL as it may be shown.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The per-endpoint client (an SDK's, or `()` for plain HTTP).
    pub fn client(&self) -> &C {
        &self.client
    }

    /// A copy of its shared state.
    pub fn state(&self) -> EndpointState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A transport error at this endpoint.
    pub fn transport(&self, e: impl std::fmt::Display) -> AdapterError {
        transport(&self.shown, e)
    }

    /// An answer of the wrong shape from this endpoint.
    pub fn bad_response(&self, what: &str, v: &impl std::fmt::Display) -> AdapterError {
        let mut text = v.to_string();
        if text.len() > 300 {
            let mut cut = 300;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        AdapterError::BadResponse {
            endpoint: self.shown.clone(),
            message: format!("unexpected {what} answer: {text}"),
        }
    }

    fn update(&self, f: impl FnOnce(&mut EndpointState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    fn record(&self, r: &Result<impl Sized, AdapterError>) {
        match r {
            Ok(_) | Err(AdapterError::TryLater(_) | AdapterError::Underpriced(_)) => {
                self.update(|s| {
                    s.up = Some(true);
                    s.failures = 0;
                })
            }
            Err(e) if e.is_retryable() => {
                let transport = matches!(e, AdapterError::Transport { .. });
                let msg = e.to_string();
                self.update(|s| {
                    s.up = Some(false);
                    s.failures = s.failures.saturating_add(1);
                    s.last_error = Some(msg);
                    if transport {
                        // A reconnect may reach another node.
                        s.identity_checked = false;
                    }
                });
            }
            // The node answered (a refusal, a wrong network): it is up.
            Err(_) => self.update(|s| s.up = Some(true)),
        }
    }

    fn url_at(&self, path: &str) -> String {
        if path.is_empty() {
            self.url.expose().clone()
        } else {
            format!("{}{path}", self.url.expose().trim_end_matches('/'))
        }
    }

    /// Sends `req`, mapping 429 and (with [`ServerErrors::Retry`]) 5xx.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        server: ServerErrors,
    ) -> Result<Reply, AdapterError> {
        let mut req = req;
        for (name, value) in self.headers.iter() {
            req = req.header(name.as_str(), value.expose().as_str());
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        if status == 429 {
            return Err(AdapterError::RateLimited {
                endpoint: self.shown.clone(),
            });
        }
        if status >= 500 && server == ServerErrors::Retry {
            return Err(self.transport(format!("HTTP {status}")));
        }
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        Ok(Reply {
            status,
            body: body.to_vec(),
            endpoint: self.shown.clone(),
        })
    }

    /// GET `path` (appended to the endpoint's URL).
    pub async fn get(&self, path: &str) -> Result<Reply, AdapterError> {
        self.send(self.http.get(self.url_at(path)), ServerErrors::Retry)
            .await
    }

    /// POST JSON to `path`.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        server: ServerErrors,
    ) -> Result<Reply, AdapterError> {
        self.send(self.http.post(self.url_at(path)).json(body), server)
            .await
    }

    /// POST raw bytes to `path`.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        server: ServerErrors,
    ) -> Result<Reply, AdapterError> {
        let req = self
            .http
            .post(self.url_at(path))
            .header("Content-Type", content_type)
            .body(body);
        self.send(req, server).await
    }

    /// One JSON-RPC 2.0 call. A JSON-RPC error object is the node refusing
    /// (`Rejected`, "method: message: data"); anything but an object with
    /// `result` or `error` is a bad response.
    pub async fn json_rpc(&self, method: &str, params: Value) -> Result<Value, AdapterError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let v = self
            .post_json("", &body, ServerErrors::Retry)
            .await?
            .json()?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let data = match err.get("data") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => format!(": {s}"),
                Some(other) => format!(": {other}"),
            };
            return Err(AdapterError::Rejected(format!("{method}: {msg}{data}")));
        }
        match v.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(self.bad_response(method, &v)),
        }
    }
}

/// How an endpoint proves which network it serves: returns what it reports.
pub type IdentityProbe<C> =
    Box<dyn Fn(Arc<Endpoint<C>>) -> BoxFuture<'static, Result<String, AdapterError>> + Send + Sync>;

struct Identity<C> {
    expected: String,
    probe: IdentityProbe<C>,
}

/// What a health probe read from an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Head height, slot or level.
    pub height: Option<u64>,
    /// The head's time (unix seconds), for the lag.
    pub time_unix: Option<i64>,
}

/// Options for [`Endpoints::new`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Headers sent with every request (a provider's project id): secrets,
    /// never shown.
    pub headers: Vec<(String, Secret<String>)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(20),
            headers: Vec::new(),
        }
    }
}

/// The endpoints of one API of one chain.
pub struct Endpoints<C = ()> {
    what: String,
    list: Vec<Arc<Endpoint<C>>>,
    identity: Option<Identity<C>>,
}

impl<C> std::fmt::Debug for Endpoints<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("what", &self.what)
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

impl Endpoints<()> {
    /// Plain HTTP endpoints.
    pub fn http(what: &str, urls: &[String], opts: Options) -> Result<Self, AdapterError> {
        Self::with_clients(what, urls, opts, |_| Ok(()))
    }
}

impl<C: Send + Sync + 'static> Endpoints<C> {
    /// Endpoints with a per-endpoint client built by `make` (an SDK's RPC
    /// client). `what` names the API in errors ("cosmos RPC").
    pub fn with_clients(
        what: &str,
        urls: &[String],
        opts: Options,
        make: impl Fn(&str) -> Result<C, AdapterError>,
    ) -> Result<Self, AdapterError> {
        if urls.is_empty() {
            return Err(AdapterError::Config(format!(
                "{what}: no endpoint configured"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .build()
            .map_err(|e| AdapterError::Config(format!("HTTP client: {e}")))?;
        let headers = Arc::new(opts.headers);
        let mut list = Vec::with_capacity(urls.len());
        for u in urls {
            let shown = redact_endpoint(u);
            if !u.contains("://") {
                return Err(AdapterError::Config(format!(
                    "{what}: endpoint {shown} is not a URL"
                )));
            }
            list.push(Arc::new(Endpoint {
                client: make(u)?,
                url: Secret::new(u.clone()),
                shown,
                http: http.clone(),
                headers: headers.clone(),
                state: Mutex::new(EndpointState::default()),
            }));
        }
        Ok(Endpoints {
            what: what.to_owned(),
            list,
            identity: None,
        })
    }

    /// Requires every endpoint to report `expected` through `probe` before
    /// its first use.
    pub fn with_identity<F, Fut>(mut self, expected: impl Into<String>, probe: F) -> Self
    where
        F: Fn(Arc<Endpoint<C>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, AdapterError>> + Send + 'static,
    {
        self.identity = Some(Identity {
            expected: expected.into(),
            probe: Box::new(move |ep| Box::pin(probe(ep))),
        });
        self
    }

    /// The endpoints, in config order.
    pub fn list(&self) -> &[Arc<Endpoint<C>>] {
        &self.list
    }

    /// The first endpoint as shown, for messages about the API as a whole.
    pub fn first_shown(&self) -> &str {
        self.list.first().map_or("", |e| e.shown())
    }

    /// Indexes in the order calls try them: up (or never used) first, then
    /// fewest failures in a row, then config order.
    pub fn order(&self) -> Vec<usize> {
        let mut idx: Vec<(bool, u32, usize)> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let s = e.state();
                (s.up == Some(false), s.failures, i)
            })
            .collect();
        idx.sort_unstable();
        idx.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Checks `ep`'s network identity unless already checked.
    pub async fn ensure_identity(&self, ep: &Arc<Endpoint<C>>) -> Result<(), AdapterError> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        if ep.state().identity_checked {
            return Ok(());
        }
        let found = (id.probe)(ep.clone()).await;
        ep.record(&found);
        let found = found?;
        if found != id.expected {
            return Err(AdapterError::WrongNetwork {
                endpoint: ep.shown.clone(),
                expected: id.expected.clone(),
                found,
            });
        }
        ep.update(|s| s.identity_checked = true);
        Ok(())
    }

    /// Runs `op` on the endpoints in health order, each checked for its
    /// network first, moving on while the error is retryable. A node's
    /// refusal or a wrong network is returned at once.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, AdapterError>
    where
        F: Fn(Arc<Endpoint<C>>) -> Fut,
        Fut: Future<Output = Result<T, AdapterError>>,
    {
        let mut last = None;
        for i in self.order() {
            let ep = &self.list[i];
            if let Err(e) = self.ensure_identity(ep).await {
                if !e.is_retryable() {
                    return Err(e);
                }
                tracing::debug!(endpoint = %ep.shown, error = %e, "{}: endpoint failed; trying the next", self.what);
                last = Some(e);
                continue;
            }
            let r = op(ep.clone()).await;
            ep.record(&r);
            match r {
                Ok(v) => return Ok(v),
                // The chain's own "not now": another node says the same.
                Err(e @ (AdapterError::TryLater(_) | AdapterError::Underpriced(_))) => {
                    return Err(e);
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(endpoint = %ep.shown, error = %e, "{}: endpoint failed; trying the next", self.what);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| AdapterError::Config(format!("{}: no endpoints", self.what))))
    }

    /// Probes every endpoint (identity included) and reports, in config
    /// order; the shared state is updated, so calls prefer what answered.
    pub async fn health<F, Fut>(&self, probe: F) -> Vec<EndpointHealth>
    where
        F: Fn(Arc<Endpoint<C>>) -> Fut,
        Fut: Future<Output = Result<Head, AdapterError>>,
    {
        let now = softstake_core::Timestamp::now().unix();
        let mut out = Vec::with_capacity(self.list.len());
        for ep in &self.list {
            let started = Instant::now();
            let r = match self.ensure_identity(ep).await {
                Ok(()) => probe(ep.clone()).await,
                Err(e) => Err(e),
            };
            let latency = u64::try_from(started.elapsed().as_millis()).ok();
            ep.record(&r);
            let (up, head) = match r {
                Ok(h) => (true, h),
                Err(_) => (false, Head::default()),
            };
            let lag = head
                .time_unix
                .map(|t| u64::try_from(now.saturating_sub(t)).unwrap_or(0));
            ep.update(|s| {
                s.head_height = head.height;
                s.lag_secs = lag;
                s.latency_ms = latency;
                if !up {
                    s.up = Some(false);
                }
            });
            out.push(EndpointHealth {
                endpoint: ep.shown.clone(),
                up,
                head_height: head.height,
                lag_secs: lag,
                latency_ms: latency,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
