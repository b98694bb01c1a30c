//! A [`ChainAdapter`] wrapper that records latency and errors of every call.

use crate::metrics::{Metrics, RpcErrorLabels, RpcLabels};
use async_trait::async_trait;
use softstake_core::ChainId;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, FlowsRequest,
    FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest, IdentifyResponse, LookupRequest,
    LookupResponse, Maintenance, PoolStateRequest, PoolStateResponse, ReplaceRequest,
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
                AdapterError::BadResponse { endpoint, .. } => (endpoint.clone(), "bad_response"),
                AdapterError::TryLater(_) => (String::new(), "try_later"),
                AdapterError::Underpriced(_) => (String::new(), "underpriced"),
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

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        self.call("flows_since", self.inner.flows_since(req)).await
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        self.call("rewards_since", self.inner.rewards_since(req))
            .await
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.call("build_and_sign", self.inner.build_and_sign(req))
            .await
    }

    async fn replace(&self, req: ReplaceRequest) -> Result<SignedOperation, AdapterError> {
        self.call("replace", self.inner.replace(req)).await
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        self.call("broadcast", self.inner.broadcast(req)).await
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        self.call("lookup", self.inner.lookup(req)).await
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        self.call("identify", self.inner.identify(req)).await
    }

    async fn health(&self, req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        self.call("health", self.inner.health(req)).await
    }

    // Every method with a default must be forwarded: a wrapper that kept
    // the default would silently drop the inner adapter's housekeeping.
    fn maintenance(&self, state: &PoolStateResponse) -> Vec<Maintenance> {
        self.inner.maintenance(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use softstake_core::adapter::{ChainLimits, OperationKind};
    use softstake_core::{Amount, Timestamp};

    struct Housekeeper;

    #[async_trait]
    impl ChainAdapter for Housekeeper {
        fn chain(&self) -> ChainId {
            ChainId::Cardano
        }
        async fn pool_state(&self, _: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn flows_since(&self, _: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn rewards_since(&self, _: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn build_and_sign(&self, _: BuildRequest) -> Result<SignedOperation, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn broadcast(&self, _: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn replace(&self, r: ReplaceRequest) -> Result<SignedOperation, AdapterError> {
            Ok(SignedOperation {
                tx_id: format!("{}-v2", r.previous.tx_id),
                ..r.previous
            })
        }
        async fn lookup(&self, _: LookupRequest) -> Result<LookupResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn identify(&self, _: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        async fn health(&self, _: HealthRequest) -> Result<HealthResponse, AdapterError> {
            Err(AdapterError::Config("unused".into()))
        }
        fn maintenance(&self, _: &PoolStateResponse) -> Vec<Maintenance> {
            vec![Maintenance {
                kind: OperationKind::Setup {
                    step: "vote_delegation".into(),
                },
                reason: "no DRep".into(),
            }]
        }
    }

    #[test]
    fn housekeeping_passes_through_the_wrapper() {
        let w = Instrumented::new(Arc::new(Housekeeper), Arc::new(Metrics::new()));
        let state = PoolStateResponse {
            chain: ChainId::Cardano,
            as_of: Timestamp::from_unix(0),
            liquid: Amount::ZERO,
            delegations: vec![],
            unbonding: vec![],
            withdrawable: Amount::ZERO,
            claimable_rewards: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: Amount::ZERO,
                max_unbonding_entries: None,
                unbonding_delay_secs: 0,
                delegation_keeps_funds_liquid: true,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses: vec![],
            alerts: vec![],
        };
        let m = w.maintenance(&state);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].reason, "no DRep");
    }

    #[tokio::test]
    async fn replacement_passes_through_the_wrapper() {
        // A wrapper that fell back on the trait's default would refuse.
        let w = Instrumented::new(Arc::new(Housekeeper), Arc::new(Metrics::new()));
        let r = w
            .replace(ReplaceRequest {
                operation_id: "op".into(),
                kind: OperationKind::ClaimRewards { validators: vec![] },
                previous: SignedOperation {
                    bytes: vec![1],
                    tx_id: "T".into(),
                    valid_until: None,
                },
            })
            .await
            .unwrap();
        assert_eq!(r.tx_id, "T-v2");
    }
}
