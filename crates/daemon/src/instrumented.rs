//! A [`ChainAdapter`] wrapper that records latency and errors of every call.

use crate::metrics::{Metrics, RpcErrorLabels, RpcLabels};
use async_trait::async_trait;
use softstake_core::ChainId;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, HealthRequest,
    HealthResponse, LookupRequest, LookupResponse, PoolStateRequest, PoolStateResponse,
    RewardsRequest, RewardsResponse, SignedOperation,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Measures an inner adapter.
pub struct Instrumented {
    inner: Arc<dyn ChainAdapter>,
    metrics: Arc<Metrics>,
    chain: ChainId,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ChainAdapter>, metrics: Arc<Metrics>) -> Instrumented {
        let chain = inner.chain();
        Instrumented {
            inner,
            metrics,
            chain,
        }
    }

    async fn call<T, F>(&self, method: &str, f: F) -> Result<T, AdapterError>
    where
        F: Future<Output = Result<T, AdapterError>>,
    {
        let start = Instant::now();
        let r = f.await;
        self.metrics
            .chain
            .rpc_duration_seconds
            .get_or_create(&RpcLabels {
                chain: self.chain.as_str().to_owned(),
                method: method.to_owned(),
            })
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &r {
            let (endpoint, kind) = match e {
                AdapterError::Transport { endpoint, .. } => (endpoint.clone(), "transport"),
                AdapterError::RateLimited { endpoint } => (endpoint.clone(), "rate_limited"),
                AdapterError::WrongNetwork { endpoint, .. } => (endpoint.clone(), "wrong_network"),
                AdapterError::InvalidRequest(_) => (String::new(), "invalid_request"),
                AdapterError::Rejected(_) => (String::new(), "rejected"),
                AdapterError::Config(_) => (String::new(), "config"),
            };
            self.metrics
                .chain
                .rpc_errors
                .get_or_create(&RpcErrorLabels {
                    chain: self.chain.as_str().to_owned(),
                    method: method.to_owned(),
                    endpoint,
                    kind: kind.to_owned(),
                })
                .inc();
        }
        r
    }
}

#[async_trait]
impl ChainAdapter for Instrumented {
    fn chain(&self) -> ChainId {
        self.chain
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        self.call("pool_state", self.inner.pool_state(req)).await
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        self.call("rewards_since", self.inner.rewards_since(req))
            .await
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.call("build_and_sign", self.inner.build_and_sign(req))
            .await
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        self.call("broadcast", self.inner.broadcast(req)).await
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        self.call("lookup", self.inner.lookup(req)).await
    }

    async fn health(&self, req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        self.call("health", self.inner.health(req)).await
    }
}
