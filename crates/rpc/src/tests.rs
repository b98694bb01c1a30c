#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns
use super::*;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use std::sync::atomic::{AtomicU32, Ordering};

/// A node on port 0 whose answers the test sets.
#[derive(Clone, Default)]
struct Node {
    status: Arc<AtomicU32>,
    network: Arc<Mutex<String>>,
    identity_probes: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

async fn serve(node: Node) -> String {
    async fn network(State(n): State<Node>) -> String {
        n.identity_probes.fetch_add(1, Ordering::SeqCst);
        n.network.lock().unwrap().clone()
    }
    async fn data(State(n): State<Node>) -> (StatusCode, String) {
        n.calls.fetch_add(1, Ordering::SeqCst);
        let s = n.status.load(Ordering::SeqCst);
        let code = StatusCode::from_u16(u16::try_from(s).unwrap()).unwrap();
        (code, "{\"v\": 1}".into())
    }
    async fn rpc(body: String) -> String {
        if body.contains("fails") {
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nope","data":"InsufficientBond"}}"#.into()
        } else if body.contains("garbage") {
            "not json".into()
        } else {
            r#"{"jsonrpc":"2.0","id":1,"result":7}"#.into()
        }
    }
    node.status.store(200, Ordering::SeqCst);
    let app = Router::new()
        .route("/network", get(network))
        .route("/data", get(data))
        .route("/", post(rpc))
        .with_state(node);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

fn endpoints(urls: &[String], expected: &str) -> Endpoints {
    Endpoints::http("test", urls, Options::default())
        .unwrap()
        .with_identity(expected, |ep| async move {
            Ok(ep.get("/network").await?.text())
        })
}

async fn data(e: &Endpoints) -> Result<Value, AdapterError> {
    e.call(|ep| async move { ep.get("/data").await?.json() })
        .await
}

#[tokio::test]
async fn falls_back_on_server_errors_and_rate_limits_then_prefers_what_answered() {
    let (a, b) = (Node::default(), Node::default());
    let (ua, ub) = (serve(a.clone()).await, serve(b.clone()).await);
    *a.network.lock().unwrap() = "net".into();
    *b.network.lock().unwrap() = "net".into();
    let e = endpoints(&[ua, ub], "net");
    a.status.store(503, Ordering::SeqCst);
    assert_eq!(data(&e).await.unwrap()["v"], 1);
    assert_eq!(b.calls.load(Ordering::SeqCst), 1);
    // The failing endpoint goes to the back: the next call starts at b.
    assert_eq!(e.order(), vec![1, 0]);
    assert_eq!(e.list()[0].state().failures, 1);
    data(&e).await.unwrap();
    assert_eq!(
        a.calls.load(Ordering::SeqCst),
        1,
        "a is not tried again while b answers"
    );
    // Both rate limited: the error says so and is retryable.
    a.status.store(429, Ordering::SeqCst);
    b.status.store(429, Ordering::SeqCst);
    let err = data(&e).await.unwrap_err();
    assert!(matches!(err, AdapterError::RateLimited { .. }), "{err}");
    assert!(err.is_retryable());
    // A 4xx is the node's answer: handed back, no fallback.
    b.status.store(404, Ordering::SeqCst);
    a.status.store(200, Ordering::SeqCst);
    let r = e
        .call(|ep| async move { ep.get("/data").await })
        .await
        .unwrap();
    assert!(r.status == 404 || r.status == 200);
}

#[tokio::test]
async fn identity_is_checked_once_per_connection_and_a_wrong_network_is_fatal() {
    let (a, b) = (Node::default(), Node::default());
    let (ua, ub) = (serve(a.clone()).await, serve(b.clone()).await);
    *a.network.lock().unwrap() = "net".into();
    *b.network.lock().unwrap() = "other".into();
    let e = endpoints(std::slice::from_ref(&ua), "net");
    for _ in 0..3 {
        data(&e).await.unwrap();
    }
    assert_eq!(a.identity_probes.load(Ordering::SeqCst), 1);
    // After a transport failure the endpoint is checked again.
    a.status.store(503, Ordering::SeqCst);
    assert!(data(&e).await.is_err());
    a.status.store(200, Ordering::SeqCst);
    data(&e).await.unwrap();
    assert_eq!(a.identity_probes.load(Ordering::SeqCst), 2);

    let wrong = endpoints(&[ub, ua], "net");
    let err = data(&wrong).await.unwrap_err();
    assert!(
        matches!(err, AdapterError::WrongNetwork { ref found, .. } if found == "other"),
        "{err}"
    );
    assert_eq!(
        b.calls.load(Ordering::SeqCst),
        0,
        "nothing is asked of a wrong network"
    );
}

#[tokio::test]
async fn json_rpc_errors_are_refusals_and_garbage_is_a_bad_response() {
    let n = Node::default();
    let u = serve(n).await;
    let e = Endpoints::http("test", &[u], Options::default()).unwrap();
    let ok = e
        .call(|ep| async move { ep.json_rpc("works", json!([])).await })
        .await
        .unwrap();
    assert_eq!(ok, 7);
    let err = e
        .call(|ep| async move { ep.json_rpc("fails", json!([])).await })
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdapterError::Rejected(ref m) if m == "fails: nope: InsufficientBond"),
        "{err}"
    );
    let err = e
        .call(|ep| async move { ep.json_rpc("garbage", json!([])).await })
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::BadResponse { .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn urls_with_keys_never_appear_in_errors_or_health() {
    let n = Node::default();
    let u = serve(n.clone()).await;
    *n.network.lock().unwrap() = "net".into();
    // A closed port with a key in the path and in the userinfo.
    let dead = "http://user:pw@127.0.0.1:9/v2/SECRETKEY?api-key=SECRETKEY".to_owned();
    let keyed = format!("{u}/?api-key=SECRETKEY");
    let e = Endpoints::http("test", &[dead.clone(), keyed], Options::default()).unwrap();
    let err = e
        .call(|ep| async move { ep.get("/nothing-here").await })
        .await;
    let text = format!("{err:?} {:?}", e);
    assert!(
        !text.contains("SECRETKEY") && !text.contains("pw"),
        "{text}"
    );
    let h = e
        .health(|ep| async move {
            ep.get("/data").await?;
            Ok(Head {
                height: Some(5),
                time_unix: Some(softstake_core::Timestamp::now().unix()),
            })
        })
        .await;
    assert_eq!(h.len(), 2);
    assert!(!h[0].up);
    assert_eq!(h[0].endpoint, "http://127.0.0.1:9/***");
    let all = format!("{h:?} {:?}", e.list()[0].state());
    assert!(!all.contains("SECRETKEY") && !all.contains("pw"), "{all}");
    assert!(e.list()[0].state().last_error.is_some());
}

#[test]
fn reqwest_style_messages_lose_their_urls() {
    let m = strip_urls("error sending request for url (https://rpc.example/v2/KEY): timed out");
    assert_eq!(
        m,
        "error sending request for url (https://rpc.example/***): timed out"
    );
}
