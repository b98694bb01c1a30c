//! The HTTP API (axum), specified in `crates/daemon/openapi.json` (served at
//! `/openapi.json`).
//!
//! Three audiences, three doors:
//! - the **exchange backend** (bearer `api.exchange_token`): balance
//!   updates, withdrawal liquidity requests, the credit outbox and its
//!   acknowledgements, per-user statements;
//! - **operators** (bearer `api.admin_token`): approve operations, pause and
//!   resume a chain, compute a plan;
//! - **dashboards** (no token, rate limited per client address): chains,
//!   validators, operations, rewards, distributions.
//!
//! Tokens are compared in constant time and never logged. Bodies are
//! limited ([`MAX_BATCH_BODY`] for balance batches, [`MAX_BODY`] otherwise),
//! must be `application/json`, and are decoded strictly (unknown fields are
//! refused); every refusal is a 4xx JSON error naming the field when there
//! is one, and a refused request stores nothing (each write is one store
//! transaction).

use crate::Shared;
use crate::metrics::ApiLabels;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use softstake_core::adapter::UnbondingEntry;
use softstake_core::secret::constant_time_eq;
use softstake_core::{Amount, ChainId, Secret, Timestamp};
use softstake_store::{
    BalanceUpdate, Declaration, Direction, Purpose, Resolution, StoreError, WithdrawalRequest,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Largest body of a balance batch (10,000 updates fit comfortably).
pub const MAX_BATCH_BODY: usize = 4 << 20;
/// Largest body of any other request.
pub const MAX_BODY: usize = 64 << 10;
/// Longest accepted id (event, user, request).
pub const MAX_ID_LEN: usize = 200;
/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// A JSON error: `{"error": {"code", "message", "field"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn field(mut self, f: impl Into<String>) -> ApiError {
        self.field = Some(f.into());
        self
    }

    fn bad(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).field(field)
    }

    /// Well-formed (as the OpenAPI document describes) but refused: 422.
    fn refused(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message).field(field)
    }

    fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid(m) => {
                let conflict = m.contains("different content") || m.contains("already used");
                ApiError::new(
                    if conflict {
                        StatusCode::CONFLICT
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    },
                    if conflict { "conflict" } else { "refused" },
                    m,
                )
            }
            e if e.is_retryable() => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the ledger is unavailable; retry",
                )
            }
            e => {
                tracing::error!(error = %e, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (logged)",
                )
            }
        }
    }
}

impl From<softstake_engine::EngineError> for ApiError {
    fn from(e: softstake_engine::EngineError) -> ApiError {
        match e {
            softstake_engine::EngineError::Store(s) => s.into(),
            e if e.is_retryable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unavailable",
                format!("{e}; retry"),
            ),
            e => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string()),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A strictly decoded JSON body. Size limits are applied by the router.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "too_large",
                    "the body is larger than this endpoint accepts",
                )
            } else {
                ApiError::new(status, "bad_body", e.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let v = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = if path == "." { None } else { Some(path) };
            let mut err = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                inner.to_string(),
            );
            err.field = field;
            err
        })?;
        Ok(JsonBody(v))
    }
}

/// A request that must have no body (or an empty one): a stray body is a
/// client bug, refused before anything is done.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_body", "this endpoint takes no body"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(NoBody)
        } else {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "this endpoint takes no body",
            ))
        }
    }
}

/// Which door a request came through.
#[derive(Clone, Copy)]
enum Door {
    Exchange,
    Admin,
}

fn authorize(sh: &Shared, headers: &HeaderMap, door: Door) -> ApiResult<()> {
    let expected: Option<&Secret<String>> = match door {
        Door::Exchange => sh.exchange_token.as_ref(),
        Door::Admin => sh.admin_token.as_ref(),
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (expected, given) {
        (Some(e), Some(g)) if constant_time_eq(e.expose().as_bytes(), g.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )),
    }
}

/// Writes go to the leader: a standby answers 503 `standby` (with
/// Retry-After) so a load balancer or the client retries on the leader.
fn require_leader(sh: &Shared) -> ApiResult<()> {
    if *sh.leader.borrow() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "standby",
            "this instance is a standby (read-only); send writes to the leader",
        ))
    }
}

/// Integer token buckets per client address (milli-tokens).
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: u64,
    buckets: Mutex<HashMap<IpAddr, (u64, Instant)>>,
}

impl RateLimiter {
    /// `per_sec` requests per second, bursts of twice that.
    pub fn new(per_sec: u32) -> RateLimiter {
        RateLimiter {
            per_sec: u64::from(per_sec.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip` at `now`; false when empty.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let cap = self.per_sec.saturating_mul(2_000);
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() > 100_000 {
            b.retain(|_, (tokens, _)| *tokens < cap);
        }
        let (tokens, last) = b.entry(ip).or_insert((cap, now));
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(*last).as_millis()).unwrap_or(u64::MAX);
        *tokens = tokens
            .saturating_add(elapsed_ms.saturating_mul(self.per_sec))
            .min(cap);
        *last = now;
        if *tokens >= 1_000 {
            *tokens -= 1_000;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct AppState {
    sh: Arc<Shared>,
    limiter: Arc<RateLimiter>,
}

async fn rate_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if !st.limiter.allow(ip, Instant::now()) {
        st.sh.metrics.daemon.api_rate_limited.inc();
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    next.run(req).await
}

async fn count(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let r = next.run(req).await;
    st.sh
        .metrics
        .daemon
        .api_requests
        .get_or_create(&ApiLabels {
            route,
            status: r.status().as_u16().to_string(),
        })
        .inc();
    r
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint (see /openapi.json)")
}

/// Every route and method, for the OpenAPI coverage test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/v1/chains"),
    ("get", "/v1/chains/{chain}"),
    ("get", "/v1/chains/{chain}/validators"),
    ("get", "/v1/chains/{chain}/operations"),
    ("get", "/v1/rewards"),
    ("get", "/v1/distributions"),
    ("get", "/v1/distributions/{id}"),
    ("post", "/v1/balance-updates"),
    ("post", "/v1/withdrawals"),
    ("post", "/v1/withdrawals/{request_id}/complete"),
    ("get", "/v1/outbox"),
    ("post", "/v1/outbox/ack"),
    ("get", "/v1/users/{user}/statement"),
    ("get", "/v1/users/{user}/losses"),
    ("post", "/v1/operations/{id}/approve"),
    ("post", "/v1/chains/{chain}/pause"),
    ("post", "/v1/chains/{chain}/resume"),
    ("post", "/v1/chains/{chain}/plan"),
    ("get", "/v1/chains/{chain}/books"),
    ("get", "/v1/chains/{chain}/losses"),
    ("get", "/v1/chains/{chain}/foreign-rewards"),
    ("post", "/v1/chains/{chain}/transfers"),
    ("get", "/v1/chains/{chain}/flows"),
    ("post", "/v1/chains/{chain}/flows/{id}/resolve"),
    ("post", "/v1/chains/{chain}/books/confirm"),
    ("post", "/v1/chains/{chain}/books/bunker"),
    ("post", "/v1/chains/{chain}/validators/{validator}/unmark"),
    ("get", "/v1/chains/{chain}/advances"),
    ("post", "/v1/chains/{chain}/advances/{id}/repaid"),
];

/// The API router.
pub fn router(sh: Arc<Shared>) -> Router {
    let st = AppState {
        limiter: Arc::new(RateLimiter::new(sh.read_rate_limit)),
        sh,
    };
    let public = Router::new()
        .route("/v1/chains", get(chains))
        .route("/v1/chains/{chain}", get(chain_detail))
        .route("/v1/chains/{chain}/validators", get(validators))
        .route("/v1/chains/{chain}/operations", get(operations))
        .route("/v1/chains/{chain}/books", get(books))
        .route("/v1/chains/{chain}/losses", get(chain_losses))
        .route("/v1/chains/{chain}/foreign-rewards", get(foreign_rewards))
        .route("/v1/rewards", get(rewards))
        .route("/v1/distributions", get(distributions))
        .route("/v1/distributions/{id}", get(distribution))
        .route_layer(middleware::from_fn_with_state(st.clone(), rate_limit));
    let batch = Router::new()
        .route("/v1/balance-updates", post(balance_updates))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY));
    let writes = Router::new()
        .route("/v1/withdrawals", post(withdrawal))
        .route(
            "/v1/withdrawals/{request_id}/complete",
            post(withdrawal_complete),
        )
        .route("/v1/outbox", get(outbox))
        .route("/v1/outbox/ack", post(outbox_ack))
        .route("/v1/users/{user}/statement", get(statement))
        .route("/v1/users/{user}/losses", get(user_losses))
        .route("/v1/operations/{id}/approve", post(approve))
        .route("/v1/chains/{chain}/pause", post(pause))
        .route("/v1/chains/{chain}/resume", post(resume))
        .route("/v1/chains/{chain}/plan", post(plan))
        .route("/v1/chains/{chain}/transfers", post(declare_transfer))
        .route("/v1/chains/{chain}/flows", get(flows))
        .route("/v1/chains/{chain}/flows/{id}/resolve", post(resolve_flow))
        .route("/v1/chains/{chain}/books/confirm", post(confirm_residual))
        .route("/v1/chains/{chain}/books/bunker", post(bunker_action))
        .route(
            "/v1/chains/{chain}/validators/{validator}/unmark",
            post(unmark_validator),
        )
        .route("/v1/chains/{chain}/advances", get(advances))
        .route(
            "/v1/chains/{chain}/advances/{id}/repaid",
            post(advance_repaid),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .merge(public)
        .merge(batch)
        .merge(writes)
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(st.clone(), count))
        .with_state(st)
}

/// The metrics router (`GET /metrics`), which also answers `/healthz` and
/// `/readyz`: on its own listener they keep answering when the API port is
/// flooded.
pub fn metrics_router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(|State(sh): State<Arc<Shared>>| async move { ready(&sh).await }),
        )
        .route(
            "/metrics",
            get(|State(sh): State<Arc<Shared>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    sh.metrics.encode(),
                )
            }),
        )
        .with_state(sh)
}

/// Limits of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections served at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// A connection that does not send a request's headers within this
    /// (a new connection, or a keep-alive one between requests: the idle
    /// timeout) is closed.
    pub header_read_timeout: Duration,
    /// A request not answered within this gets 503 and its handler is
    /// dropped (a database transaction it held rolls back).
    pub request_timeout: Duration,
}

/// Serves until `shutdown` turns true, within `limits`: a flood of idle or
/// half-sent connections is closed by the header timeout, and past the
/// connection cap new connections are closed at once instead of holding
/// file descriptors the other listener needs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let timeout = limits.request_timeout;
    let router = router.layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(r) => r,
                Err(_) => ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "timeout",
                    message: format!("the request took longer than {} s", timeout.as_secs()),
                    field: None,
                }
                .into_response(),
            }
        },
    ));
    let mut make = router.into_make_service_with_connect_info::<SocketAddr>();
    let open = Arc::new(AtomicUsize::new(0));
    let (closing_tx, closing_rx) = watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
                continue;
            }
        };
        if open.load(Ordering::SeqCst) >= limits.max_connections {
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let svc = match tower::Service::call(&mut make, peer).await {
            Ok(s) => s,
            Err(never) => match never {},
        };
        let open = open.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let hyper_svc = hyper_util::service::TowerToHyperService::new(svc);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), hyper_svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    // Graceful: running requests finish (for up to 10 s), idle
    // connections close.
    let _ = closing_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- helpers

fn parse_chain(s: &str) -> ApiResult<ChainId> {
    s.parse()
        .map_err(|_| ApiError::bad("chain", format!("unknown chain {s:?}")))
}

fn runtime(sh: &Shared, chain: ChainId) -> ApiResult<&Arc<crate::ChainRuntime>> {
    sh.chains
        .get(&chain)
        .ok_or_else(|| ApiError::not_found(format!("{chain} is not enabled on this daemon")))
}

/// A path's `{id}`: a positive integer.
fn positive_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .ok()
        .filter(|i: &i64| *i > 0)
        .ok_or_else(|| ApiError::bad("id", "must be a positive integer"))
}

fn check_id(field: &str, v: &str) -> ApiResult<()> {
    check_text(field, v, MAX_ID_LEN)
}

/// Text as the document's `Id` and `Note` say: not only white space, at
/// most `max` characters, no control characters.
fn check_text(field: &str, v: &str, max: usize) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(ApiError::bad(field, "must not be empty"));
    }
    // Characters (code points), as the document's maxLength counts them.
    if v.chars().count() > max {
        return Err(ApiError::bad(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::bad(field, "contains control characters"));
    }
    Ok(())
}

/// An amount: a digit string is well-formed (the document's pattern), so
/// one too large for any balance is refused (422), like one above the
/// asset's bound; anything else is malformed (400).
fn amount(field: &str, v: &str) -> ApiResult<Amount> {
    v.parse().map_err(|e| match e {
        softstake_core::AmountError::Overflow(_) => ApiError::refused(
            field,
            "is above 2^128-1 base units, more than any balance can be",
        ),
        e => ApiError::bad(field, format!("{e} (an integer string of base units)")),
    })
}

/// Most Unix seconds a time may have (11 digits, the year 5138).
const MAX_UNIX_SECS: i64 = 99_999_999_999;

/// A time as the document's `Time` schema says: RFC 3339 (kept to the
/// second) or Unix seconds of at most 11 digits, nothing around it.
fn time(field: &str, v: &str) -> ApiResult<Timestamp> {
    let bad = || {
        ApiError::bad(
            field,
            format!("{v:?} is neither an RFC 3339 time nor Unix seconds (0 to {MAX_UNIX_SECS})"),
        )
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = v.parse().map_err(|_| bad())?;
        return if secs <= MAX_UNIX_SECS {
            Ok(Timestamp::from_unix(secs))
        } else {
            Err(bad())
        };
    }
    if v.trim() != v {
        return Err(bad());
    }
    Timestamp::parse_rfc3339(v).map_err(|_| bad())
}

/// Buffer drag: the liquid balance at the staked coins' realised yield (30
/// days of gross rewards over today's stake, annualised), in base units a
/// year (rounded down), and as a share of liabilities. None without stake.
fn buffer_drag(
    liquid: Amount,
    staked: Amount,
    gross_30d: Amount,
    liabilities: Amount,
) -> (Option<Amount>, Option<String>) {
    let drag = match (decimal(liquid), decimal(staked), decimal(gross_30d)) {
        (Some(l), Some(st), Some(g)) if !st.is_zero() => g
            .checked_mul(l)
            .and_then(|x| x.checked_div(st))
            .and_then(|x| x.checked_mul(Decimal::from(365)))
            .and_then(|x| x.checked_div(Decimal::from(30)))
            .map(|x| x.floor()),
        _ => None,
    };
    let per_year = drag
        .and_then(|d| d.to_string().parse::<u128>().ok())
        .map(Amount::from_base);
    let apy = match (drag, decimal(liabilities)) {
        (Some(d), Some(l)) if !l.is_zero() => d
            .checked_div(l)
            .map(|x| x.round_dp(6).normalize().to_string()),
        _ => None,
    };
    (per_year, apy)
}

fn decimal(a: Amount) -> Option<Decimal> {
    Decimal::from_str_exact(&a.to_string()).ok()
}

// ---- health

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(st): State<AppState>) -> Response {
    ready(&st.sh).await
}

async fn ready(sh: &Shared) -> Response {
    let leader = *sh.leader.borrow();
    let ok = match sh.store.require_current_schema().await {
        Ok(()) => sh.store.check_writable().await,
        Err(e) => Err(e),
    };
    match ok {
        Ok(()) => {
            axum::Json(serde_json::json!({ "status": "ready", "leader": leader })).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "status": "not_ready", "leader": leader, "reason": "ledger unavailable, read-only, or schema not current" })),
            )
                .into_response()
        }
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

// ---- dashboards

#[derive(Serialize)]
struct BufferView {
    ratio: Option<String>,
    target: String,
    band: String,
    /// What keeping the liquid balance unstaked costs the pool a year at
    /// the staked coins' realised 30-day yield (base units, rounded down).
    drag_per_year: Option<Amount>,
    /// The same as a share of liabilities: the users' yield it costs.
    drag_apy: Option<String>,
    floor: Option<Amount>,
    aim: Option<Amount>,
    ceiling: Option<Amount>,
}

#[derive(Serialize)]
struct ChainSummary {
    chain: ChainId,
    asset: &'static str,
    decimals: u32,
    leader: bool,
    paused: bool,
    interval_secs: u64,
    liabilities: Amount,
    staked: Option<Amount>,
    liquid: Option<Amount>,
    withdrawable: Option<Amount>,
    claimable_rewards: Option<Amount>,
    reserved: Option<Amount>,
    unbonding: Vec<UnbondingEntry>,
    withdrawals_owed: Amount,
    withdrawals_queued: Amount,
    buffer: BufferView,
    realised_apy_30d: Option<String>,
    pool_as_of: Option<Timestamp>,
    last_success_at: Option<Timestamp>,
    last_error: Option<String>,
    consecutive_failures: u32,
    plan_skipped: Option<String>,
    blocked: Vec<String>,
    endpoints: Vec<softstake_core::adapter::EndpointHealth>,
    alerts: Vec<String>,
}

const DAY: i64 = 86_400;

async fn summary(sh: &Shared, rt: &crate::ChainRuntime) -> ApiResult<ChainSummary> {
    let chain = rt.config.chain;
    let now = sh.clock.now();
    let view = rt.view();
    // The loop refreshes liabilities once per interval; a request only
    // scans the balances when no refresh has run yet.
    let liabilities = match view.liabilities {
        Some(l) => l,
        None => sh.store.liabilities(chain.asset(), now).await?,
    };
    let owed = sh.store.withdrawals_owed(chain).await?;
    let queued = sh.store.queued_withdrawals(chain).await?;
    let paused = sh.store.is_paused(chain).await?;
    let (gross_30d, _, users_30d) = sh
        .store
        .reward_totals(chain, now.plus_secs(-30 * DAY), now)
        .await?;
    // Users' net rewards over 30 days on today's liabilities, annualised.
    let apy = match (decimal(users_30d), decimal(liabilities)) {
        (Some(r), Some(l)) if !l.is_zero() => r
            .checked_div(l)
            .and_then(|x| x.checked_mul(Decimal::from(365)))
            .and_then(|x| x.checked_div(Decimal::from(30)))
            .map(|x| x.round_dp(6).normalize().to_string()),
        _ => None,
    };
    let pool = view.pool.as_ref();
    let staked = pool.map(|p| {
        Amount::checked_sum(p.delegations.iter().flat_map(|d| [d.active, d.activating]))
            .unwrap_or(Amount::MAX)
    });
    let liquid = pool.map(|p| p.liquid.checked_add(p.withdrawable).unwrap_or(Amount::MAX));
    let (drag_per_year, drag_apy) = match (liquid, staked) {
        (Some(l), Some(st)) => buffer_drag(l, st, gross_30d, liabilities),
        _ => (None, None),
    };
    let ratio = match (liquid.and_then(decimal), decimal(liabilities)) {
        (Some(a), Some(l)) if !l.is_zero() => a
            .checked_div(l)
            .map(|x| x.round_dp(6).normalize().to_string()),
        _ => None,
    };
    Ok(ChainSummary {
        chain,
        asset: chain.asset(),
        decimals: chain.decimals(),
        leader: *sh.leader.borrow(),
        paused,
        interval_secs: rt.config.interval_secs,
        liabilities,
        staked,
        liquid,
        withdrawable: pool.map(|p| p.withdrawable),
        claimable_rewards: pool.map(|p| p.claimable_rewards),
        reserved: pool.map(|p| p.reserved),
        unbonding: pool.map(|p| p.unbonding.clone()).unwrap_or_default(),
        withdrawals_owed: owed,
        withdrawals_queued: queued,
        buffer: BufferView {
            ratio,
            target: rt.config.buffer.target.to_string(),
            band: rt.config.buffer.band.to_string(),
            drag_per_year,
            drag_apy,
            floor: view.plan.as_ref().map(|p| p.floor),
            aim: view.plan.as_ref().map(|p| p.aim),
            ceiling: view.plan.as_ref().map(|p| p.ceiling),
        },
        realised_apy_30d: apy,
        pool_as_of: pool.map(|p| p.as_of),
        last_success_at: view.last_success_at,
        last_error: view.last_error,
        consecutive_failures: view.consecutive_failures,
        plan_skipped: view.plan_skipped,
        blocked: view.blocked,
        endpoints: view.health.map(|h| h.endpoints).unwrap_or_default(),
        alerts: pool.map(|p| p.alerts.clone()).unwrap_or_default(),
    })
}

async fn chains(State(st): State<AppState>) -> ApiResult<axum::Json<Vec<ChainSummary>>> {
    let mut out = Vec::new();
    for rt in st.sh.chains.values() {
        out.push(summary(&st.sh, rt).await?);
    }
    Ok(axum::Json(out))
}

async fn chain_detail(
    State(st): State<AppState>,
    Path(chain): Path<String>,
) -> ApiResult<axum::Json<ChainSummary>> {
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    Ok(axum::Json(summary(&st.sh, rt).await?))
}

#[derive(Serialize)]
struct ValidatorView {
    address: String,
    commission: Option<String>,
    weight: u32,
    cap: String,
    active: Amount,
    activating: Amount,
    impaired: bool,
    configured: bool,
}

async fn validators(
    State(st): State<AppState>,
    Path(chain): Path<String>,
) -> ApiResult<axum::Json<Vec<ValidatorView>>> {
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let view = rt.view();
    let dels = view.pool.map(|p| p.delegations).unwrap_or_default();
    let mut out: Vec<ValidatorView> = rt
        .config
        .validators
        .iter()
        .map(|v| {
            let d = dels.iter().find(|d| d.validator == v.address);
            ValidatorView {
                address: v.address.clone(),
                commission: d.and_then(|d| d.commission.clone()),
                weight: v.weight,
                cap: v.cap.to_string(),
                active: d.map_or(Amount::ZERO, |d| d.active),
                activating: d.map_or(Amount::ZERO, |d| d.activating),
                impaired: d.is_some_and(|d| d.impaired),
                configured: true,
            }
        })
        .collect();
    // Stake still with validators no longer in the config.
    for d in dels.iter().filter(|d| {
        !rt.config
            .validators
            .iter()
            .any(|v| v.address == d.validator)
    }) {
        out.push(ValidatorView {
            address: d.validator.clone(),
            commission: d.commission.clone(),
            weight: 0,
            cap: "0".into(),
            active: d.active,
            activating: d.activating,
            impaired: d.impaired,
            configured: false,
        });
    }
    Ok(axum::Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    limit: Option<u32>,
    before: Option<i64>,
    chain: Option<String>,
    asset: Option<String>,
}

fn list_query(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ListQuery> {
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    if q.limit.is_some_and(|l| l == 0 || l > 1_000) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    Ok(q)
}

async fn operations(
    State(st): State<AppState>,
    Path(chain): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let chain = parse_chain(&chain)?;
    let q = list_query(q)?;
    let ops = if q.all {
        st.sh
            .store
            .journal_list(chain, None, q.limit.unwrap_or(100))
            .await?
    } else {
        st.sh.store.journal_open(chain).await?
    };
    Ok(axum::Json(ops).into_response())
}

async fn rewards(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = list_query(q)?;
    let chain = q.chain.as_deref().map(parse_chain).transpose()?;
    let r = st
        .sh
        .store
        .list_rewards(chain, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(r).into_response())
}

async fn distributions(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = list_query(q)?;
    // Both filters are checked; given both, they must both hold.
    let by_asset = q
        .asset
        .as_deref()
        .map(|a| {
            ChainId::from_asset(a)
                .ok_or_else(|| ApiError::bad("asset", format!("unknown asset {a:?}")))
        })
        .transpose()?;
    let by_chain = q.chain.as_deref().map(parse_chain).transpose()?;
    let asset = match (by_asset, by_chain) {
        (Some(a), Some(c)) if a != c => return Ok(axum::Json(Vec::<()>::new()).into_response()),
        (a, c) => a.or(c).map(ChainId::asset),
    };
    let d = st
        .sh
        .store
        .list_distributions(asset, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(d).into_response())
}

async fn distribution(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("id", "not a distribution id"))?;
    let d = st
        .sh
        .store
        .distribution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no distribution {id}")))?;
    Ok(axum::Json(d).into_response())
}

// ---- exchange

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceBatch {
    updates: Vec<BalanceIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceIn {
    event_id: String,
    user_id: String,
    asset: String,
    balance: String,
    effective_at: String,
}

async fn balance_updates(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonBody<BalanceBatch>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    let JsonBody(b) = body?;
    if b.updates.is_empty() {
        return Err(ApiError::bad("updates", "is empty"));
    }
    if b.updates.len() > softstake_store::MAX_BATCH {
        return Err(ApiError::bad(
            "updates",
            format!(
                "has {} updates; at most {} per call",
                b.updates.len(),
                softstake_store::MAX_BATCH
            ),
        ));
    }
    let mut batch = Vec::with_capacity(b.updates.len());
    for (i, u) in b.updates.into_iter().enumerate() {
        let f = |k: &str| format!("updates[{i}].{k}");
        check_id(&f("event_id"), &u.event_id)?;
        check_id(&f("user_id"), &u.user_id)?;
        let chain = ChainId::from_asset(&u.asset)
            .ok_or_else(|| ApiError::bad(f("asset"), format!("unknown asset {:?}", u.asset)))?;
        let balance = amount(&f("balance"), &u.balance)?;
        let effective_at = time(&f("effective_at"), &u.effective_at)?;
        batch.push(BalanceUpdate {
            event_id: u.event_id,
            user_id: u.user_id,
            asset: chain.asset().to_owned(),
            balance,
            effective_at,
        });
    }
    let r = st
        .sh
        .store
        .ingest_balance_updates(&batch, st.sh.clock.now())
        .await?;
    Ok(axum::Json(r).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawalIn {
    request_id: String,
    user_id: String,
    asset: String,
    amount: String,
    /// When the exchange took the request (sent again after a restore).
    #[serde(default)]
    requested_at: Option<String>,
}

async fn withdrawal(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonBody<WithdrawalIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    let JsonBody(w) = body?;
    check_id("request_id", &w.request_id)?;
    check_id("user_id", &w.user_id)?;
    let chain = ChainId::from_asset(&w.asset)
        .ok_or_else(|| ApiError::bad("asset", format!("unknown asset {:?}", w.asset)))?;
    let amount = amount("amount", &w.amount)?;
    if amount.is_zero() {
        return Err(ApiError::bad(
            "amount",
            "must be greater than 0 (pattern ^[1-9][0-9]*$)",
        ));
    }
    let requested_at = match &w.requested_at {
        Some(t) => Some(time("requested_at", t)?),
        None => None,
    };
    let rt = runtime(&st.sh, chain)?;
    let liq = rt.engine.liquidity().await?;
    let d = st
        .sh
        .store
        .request_withdrawal(
            &WithdrawalRequest {
                request_id: w.request_id,
                user_id: w.user_id,
                chain,
                amount,
                requested_at,
            },
            &liq,
            st.sh.clock.now(),
        )
        .await?;
    let status = if d.replay {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(d)).into_response())
}

async fn withdrawal_complete(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    body: Result<NoBody, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    body?;
    check_id("request_id", &request_id)?;
    st.sh
        .store
        .complete_withdrawal(&request_id, st.sh.clock.now())
        .await?;
    Ok(
        axum::Json(serde_json::json!({ "request_id": request_id, "status": "completed" }))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

async fn outbox(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<OutboxQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    if q.after < 0 {
        return Err(ApiError::bad(
            "after",
            "must be 0 or an outbox position (next_cursor)",
        ));
    }
    let limit = q.limit.unwrap_or(1_000);
    if limit == 0 || limit > softstake_store::OUTBOX_MAX_PAGE {
        return Err(ApiError::bad(
            "limit",
            format!("must be between 1 and {}", softstake_store::OUTBOX_MAX_PAGE),
        ));
    }
    let credits = st.sh.store.outbox(q.after, limit).await?;
    let next = credits.last().map_or(q.after, |c| c.position);
    Ok(axum::Json(serde_json::json!({ "credits": credits, "next_cursor": next })).into_response())
}

/// The document's pattern of a credit key: `CHAIN:N:` then anything
/// without control characters. (Whether the rest splits as N characters of
/// reward key, `:` and a user is for the ledger to say: 422 when not.)
fn credit_key_form(k: &str) -> bool {
    let Some((chain, rest)) = k.split_once(':') else {
        return false;
    };
    let Some((n, _)) = rest.split_once(':') else {
        return false;
    };
    !chain.is_empty()
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'))
        && !k.chars().any(char::is_control)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckIn {
    #[serde(default)]
    ids: Given<Vec<i64>>,
    #[serde(default)]
    keys: Given<Vec<String>>,
}

/// A field that may be left out but, when given, must be a `T` (`null`
/// is refused, as the document's schema says).
#[derive(Debug, Default)]
struct Given<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Given(Some(v)))
    }
}

async fn outbox_ack(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonBody<AckIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    let JsonBody(a) = body?;
    // Either ids or keys (keys survive a database restore; ids may not).
    let n = match (a.ids.0, a.keys.0) {
        (None, None) => return Err(ApiError::bad("ids", "give ids or keys")),
        (Some(_), Some(_)) => return Err(ApiError::bad("keys", "give ids or keys, not both")),
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(ApiError::bad("ids", "is empty"));
            }
            if ids.len() > 10_000 {
                return Err(ApiError::bad("ids", "at most 10000 per call"));
            }
            if let Some(i) = ids.iter().position(|id| *id < 1) {
                return Err(ApiError::bad(
                    format!("ids[{i}]"),
                    "credit ids are 1 or more",
                ));
            }
            st.sh.store.ack_credits(&ids, st.sh.clock.now()).await?
        }
        (None, Some(keys)) => {
            if keys.is_empty() {
                return Err(ApiError::bad("keys", "is empty"));
            }
            if keys.len() > 10_000 {
                return Err(ApiError::bad("keys", "at most 10000 per call"));
            }
            for (i, k) in keys.iter().enumerate() {
                if !credit_key_form(k) {
                    return Err(ApiError::bad(
                        format!("keys[{i}]"),
                        "not a credit key (CHAIN:N:REWARD_KEY:USER)",
                    ));
                }
            }
            st.sh
                .store
                .ack_credit_keys(&keys, st.sh.clock.now())
                .await?
        }
    };
    Ok(axum::Json(serde_json::json!({ "acknowledged": n })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementQuery {
    from: String,
    to: String,
    #[serde(default)]
    format: Option<String>,
}

/// The exchange's door, a user id and a `[from, to)` range: what a
/// per-user read checks before it reads.
fn user_range<Q>(
    st: &AppState,
    headers: &HeaderMap,
    user: &str,
    q: Result<Query<Q>, axum::extract::rejection::QueryRejection>,
    range: impl Fn(&Q) -> (&str, &str),
) -> ApiResult<(Q, Timestamp, Timestamp)> {
    authorize(&st.sh, headers, Door::Exchange)?;
    check_id("user", user)?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let (from, to) = range(&q);
    let (from, to) = (time("from", from)?, time("to", to)?);
    if to <= from {
        return Err(ApiError::refused("to", "must be after from"));
    }
    Ok((q, from, to))
}

async fn statement(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
    q: Result<Query<StatementQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let (q, from, to) = user_range(&st, &headers, &user, q, |q: &StatementQuery| {
        (q.from.as_str(), q.to.as_str())
    })?;
    let lines = st.sh.store.statement(&user, from, to).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(lines).into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            softstake_store::statement_csv(&lines),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad(
            "format",
            format!("{other:?} is neither json nor csv"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LossesQuery {
    from: String,
    to: String,
}

/// A user's shares of losses under the `users` rule whose period ended in
/// `[from, to)`: amount, netted from credits so far, still owed, written off.
async fn user_losses(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
    q: Result<Query<LossesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let (_, from, to) = user_range(&st, &headers, &user, q, |q: &LossesQuery| {
        (q.from.as_str(), q.to.as_str())
    })?;
    let lines = st
        .sh
        .store
        .loss_shares(&user, from, to, st.sh.clock.now())
        .await?;
    Ok(axum::Json(lines).into_response())
}

/// A chain's losses (newest first, at most 1,000), each with the rule it
/// was booked under and, under `users`, how it was split.
async fn chain_losses(
    State(st): State<AppState>,
    Path(chain): Path<String>,
) -> ApiResult<Response> {
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let losses = st.sh.store.losses(rt.config.chain, 1000).await?;
    Ok(axum::Json(losses).into_response())
}

/// What the chain paid the pool in other denominations than its coin, per
/// denomination (crates/store/src/foreign.rs): never distributed as the
/// coin; the treasury disposes of it.
async fn foreign_rewards(
    State(st): State<AppState>,
    Path(chain): Path<String>,
) -> ApiResult<Response> {
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let totals = st.sh.store.foreign_totals(rt.config.chain).await?;
    Ok(
        axum::Json(serde_json::json!({"chain": rt.config.chain, "denominations": totals}))
            .into_response(),
    )
}

// ---- operators

async fn approve(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<NoBody, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    body?;
    check_id("id", &id)?;
    st.sh.store.journal_approve(&id, st.sh.clock.now()).await?;
    tracing::info!(op = %id, "operation approved over the API");
    Ok(axum::Json(serde_json::json!({ "id": id, "state": "planned" })).into_response())
}

/// Pause or resume: the one body behind both routes.
async fn set_paused(
    st: AppState,
    headers: HeaderMap,
    chain: String,
    body: Result<NoBody, ApiError>,
    paused: bool,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    body?;
    let chain = parse_chain(&chain)?;
    st.sh.store.set_paused(chain, paused).await?;
    tracing::info!(chain = %chain, paused, "chain pause changed over the API");
    Ok(axum::Json(serde_json::json!({ "chain": chain, "paused": paused })).into_response())
}

async fn pause(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<NoBody, ApiError>,
) -> ApiResult<Response> {
    set_paused(st, headers, chain, body, true).await
}

async fn resume(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<NoBody, ApiError>,
) -> ApiResult<Response> {
    set_paused(st, headers, chain, body, false).await
}

async fn plan(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<NoBody, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    body?;
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let (state, plan) = rt.engine.plan().await?;
    Ok(axum::Json(serde_json::json!({
        "chain": rt.config.chain,
        "as_of": state.as_of,
        "plan": plan,
        "note": "nothing was journaled, signed or sent",
    }))
    .into_response())
}

async fn books(State(st): State<AppState>, Path(chain): Path<String>) -> ApiResult<Response> {
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let b = st
        .sh
        .store
        .books(rt.config.chain, &rt.config.books, st.sh.clock.now())
        .await?;
    Ok(axum::Json(b).into_response())
}

/// Most bytes of a note.
const MAX_NOTE: usize = 1024;

fn check_note(field: &str, v: &str) -> ApiResult<()> {
    check_text(field, v, MAX_NOTE)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferIn {
    tx_id: String,
    direction: String,
    amount: String,
    #[serde(default)]
    purpose: Given<String>,
    #[serde(default)]
    note: Given<String>,
}

async fn declare_transfer(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<JsonBody<TransferIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    let JsonBody(t) = body?;
    check_id("tx_id", &t.tx_id)?;
    let direction = match t.direction.as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        _ => return Err(ApiError::bad("direction", "must be \"in\" or \"out\"")),
    };
    let purpose = match t.purpose.0.as_deref() {
        None | Some("principal") => Purpose::Principal,
        Some("commission") => Purpose::Commission,
        Some(_) => {
            return Err(ApiError::bad(
                "purpose",
                "must be \"principal\" or \"commission\"",
            ));
        }
    };
    let amount = amount("amount", &t.amount)?;
    if amount.is_zero() {
        return Err(ApiError::bad(
            "amount",
            "must be greater than 0 (pattern ^[1-9][0-9]*$)",
        ));
    }
    if let Some(n) = &t.note.0 {
        check_note("note", n)?;
    }
    runtime(&st.sh, chain)?;
    let d = st
        .sh
        .store
        .declare_transfer(
            &Declaration {
                chain,
                tx_id: t.tx_id,
                direction,
                amount,
                purpose,
                note: t.note.0,
            },
            st.sh.clock.now(),
        )
        .await?;
    let status = if d.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(d)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsQuery {
    #[serde(default)]
    open: bool,
    limit: Option<u32>,
    before: Option<i64>,
}

async fn flows(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    q: Result<Query<FlowsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    let chain = parse_chain(&chain)?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    if q.limit.is_some_and(|l| l == 0 || l > 1_000) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    let f = st
        .sh
        .store
        .flows(chain, q.open, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(f).into_response())
}

/// The treasury's advance line on a chain (crates/store/src/advances.rs):
/// what it fronted and not yet got back, what is set aside to repay, late
/// repayments, and the newest advances.
async fn advances(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    let rt = runtime(&st.sh, parse_chain(&chain)?)?;
    let line = st
        .sh
        .store
        .advance_line(rt.config.chain, 1_000, st.sh.clock.now())
        .await?;
    Ok(axum::Json(serde_json::json!({
        "chain": rt.config.chain,
        "limit": rt.config.buffer.advance_limit,
        "outstanding": line.outstanding,
        "due": line.due,
        "late": line.late,
        "advances": line.advances,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepaidIn {
    tx_id: String,
}

/// The exchange moved a due advance back to the treasury: recorded, and
/// the transfer declared as principal.
async fn advance_repaid(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((chain, id)): Path<(String, String)>,
    body: Result<JsonBody<RepaidIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Exchange)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    let id = positive_id(&id)?;
    let JsonBody(r) = body?;
    check_id("tx_id", &r.tx_id)?;
    let a = st
        .sh
        .store
        .repay_advance(chain, id, &r.tx_id, st.sh.clock.now())
        .await?;
    tracing::info!(chain = %chain, advance = id, "treasury advance repaid over the API");
    Ok(axum::Json(a).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveIn {
    resolution: String,
    note: String,
}

async fn resolve_flow(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((chain, id)): Path<(String, String)>,
    body: Result<JsonBody<ResolveIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    let id = positive_id(&id)?;
    let JsonBody(r) = body?;
    let how = Resolution::parse(&r.resolution).ok_or_else(|| {
        ApiError::bad(
            "resolution",
            "must be principal, income, returned, loss or commission",
        )
    })?;
    check_note("note", &r.note)?;
    let f = st
        .sh
        .store
        .resolve_flow(chain, id, how, &r.note, st.sh.clock.now())
        .await?;
    tracing::info!(chain = %chain, flow = id, resolution = how.as_str(), "flow resolved over the API");
    Ok(axum::Json(f).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmIn {
    note: String,
}

async fn confirm_residual(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<JsonBody<ConfirmIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    let JsonBody(c) = body?;
    check_note("note", &c.note)?;
    let (snapshot, amount) = st
        .sh
        .store
        .confirm_residual(chain, &c.note, st.sh.clock.now())
        .await?;
    tracing::info!(chain = %chain, snapshot, amount = %amount, "held income confirmed over the API");
    Ok(axum::Json(serde_json::json!({
        "chain": chain,
        "snapshot_id": snapshot,
        "amount": amount,
        "note": "the next snapshot recognises it as income",
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BunkerIn {
    action: String,
    note: String,
}

async fn bunker_action(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(chain): Path<String>,
    body: Result<JsonBody<BunkerIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    let JsonBody(b) = body?;
    let action = softstake_store::BunkerAction::parse(&b.action)
        .ok_or_else(|| ApiError::bad("action", "action must be `enter` or `exit`"))?;
    check_note("note", &b.note)?;
    let state = st
        .sh
        .store
        .bunker_action(chain, action, &b.note, st.sh.clock.now())
        .await?;
    tracing::warn!(chain = %chain, action = action.as_str(), active = state.active, "bunker mode changed by an operator over the API");
    Ok(axum::Json(state).into_response())
}

async fn unmark_validator(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((chain, validator)): Path<(String, String)>,
    body: Result<JsonBody<ConfirmIn>, ApiError>,
) -> ApiResult<Response> {
    authorize(&st.sh, &headers, Door::Admin)?;
    require_leader(&st.sh)?;
    let chain = parse_chain(&chain)?;
    check_id("validator", &validator)?;
    let JsonBody(c) = body?;
    check_note("note", &c.note)?;
    let mark = st
        .sh
        .store
        .clear_validator_mark(chain, &validator, &c.note, st.sh.clock.now())
        .await?;
    tracing::info!(chain = %chain, validator = %mark.validator, "validator mark cleared over the API");
    Ok(axum::Json(mark).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_limiter_allows_a_burst_then_refills() {
        let l = RateLimiter::new(2);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t = Instant::now();
        for _ in 0..4 {
            assert!(l.allow(ip, t));
        }
        assert!(!l.allow(ip, t));
        // Another client is not affected.
        assert!(l.allow(IpAddr::from([10, 0, 0, 2]), t));
        // Half a second refills one token at 2/s.
        assert!(l.allow(ip, t + Duration::from_millis(500)));
        assert!(!l.allow(ip, t + Duration::from_millis(500)));
    }

    #[test]
    fn the_openapi_document_names_every_chain_once() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let pattern = |schema: &str| -> String {
            doc["components"]["schemas"][schema]["pattern"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        // The server takes names and tickers in any letter case: the
        // patterns say exactly that, built from ChainId::ALL.
        let any_case = |w: &str| -> String {
            w.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
                .collect()
        };
        let alt = |words: Vec<&str>| -> String {
            format!(
                "^({})$",
                words
                    .into_iter()
                    .map(any_case)
                    .collect::<Vec<_>>()
                    .join("|")
            )
        };
        let names = ChainId::ALL.iter().map(|c| c.as_str());
        let tickers = ChainId::ALL.iter().map(|c| c.asset());
        assert_eq!(
            pattern("Chain"),
            alt(names.chain(tickers.clone()).collect())
        );
        assert_eq!(pattern("Asset"), alt(tickers.collect()));
        for c in ChainId::ALL {
            assert_eq!(parse_chain(&c.asset().to_lowercase()).unwrap(), c);
            assert_eq!(parse_chain(&c.as_str().to_uppercase()).unwrap(), c);
        }
        // Every other place refers to these two schemas.
        let text = OPENAPI.replace(' ', "");
        assert_eq!(
            text.matches("[Ee][Tt][Hh][Ee][Rr][Ee][Uu][Mm]").count(),
            1,
            "list chains only in Chain"
        );
        assert_eq!(
            text.matches("|[Ee][Tt][Hh]|").count() + text.matches("^([Ee][Tt][Hh]|").count(),
            2,
            "list assets only in Chain and Asset"
        );
    }

    #[test]
    fn times_and_amounts_parse_as_the_document_says() {
        assert_eq!(time("t", "0").unwrap(), Timestamp::from_unix(0));
        assert_eq!(
            time("t", "99999999999").unwrap(),
            Timestamp::from_unix(MAX_UNIX_SECS)
        );
        assert_eq!(
            time("t", "2026-01-01T00:00:00.9Z").unwrap(),
            Timestamp::from_unix(1_767_225_600)
        );
        for bad in [
            "",
            "100000000000",
            " 5",
            "2026-01-01T00:00:00Z ",
            "-1",
            "soon",
        ] {
            let e = time("t", bad).unwrap_err();
            assert_eq!(
                (e.status, e.field.as_deref()),
                (StatusCode::BAD_REQUEST, Some("t")),
                "{bad:?}"
            );
        }
        let e = amount("a", &"9".repeat(40)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            amount("a", "1x").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert!(check_id("i", &"é".repeat(200)).is_ok());
        assert!(check_id("i", &"é".repeat(201)).is_err());
    }

    #[test]
    fn buffer_drag_is_the_liquid_balance_at_the_staked_yield() {
        let a = Amount::from_base;
        // 300 earned on 30,000 staked in 30 days: 1% a month, 12.1666% a
        // year; 10,000 liquid forgoes 1,216 a year, 3.04% of 40,000.
        let (per_year, apy) = buffer_drag(a(10_000), a(30_000), a(300), a(40_000));
        assert_eq!(per_year, Some(a(1_216)));
        assert_eq!(apy.as_deref(), Some("0.0304"));
        assert_eq!(
            buffer_drag(a(10_000), Amount::ZERO, a(300), a(40_000)),
            (None, None)
        );
        assert_eq!(
            buffer_drag(a(10_000), a(30_000), a(300), Amount::ZERO),
            (Some(a(1_216)), None)
        );
    }

    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is not in openapi.json"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| {
                p.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .count()
            })
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents routes the router lacks"
        );
    }
}
