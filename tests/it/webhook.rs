//! Webhook ingress (issue #5): the receiver against a real nats-server over real sockets, hook registration
//! against a local HTTP server speaking GitHub's documented hooks API, and the binary end to end.

use crate::common::{self, Instance, TestServer};
use ghboot::secret::Secret;
use ghboot::topology::subjects;
use ghboot::webhook::register::{Desired, GitHub, Target};
use ghboot::webhook::{receive, send, verify};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "test-secret-0123456789";
const ORG: &str = "acme";

/// The org's events stream as the topology issue defines it (created here until topology lands on main).
async fn create_stream(client: &async_nats::Client, org: &str) {
    let js = async_nats::jetstream::new(client.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: subjects::events_stream(org),
        subjects: vec![subjects::events_filter(org)],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create events stream");
}

async fn stored(client: &async_nats::Client, org: &str) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let mut s = js
        .get_stream(subjects::events_stream(org))
        .await
        .expect("stream");
    s.info().await.expect("info").state.messages
}

async fn message(
    client: &async_nats::Client,
    org: &str,
    seq: u64,
) -> async_nats::jetstream::message::StreamMessage {
    let js = async_nats::jetstream::new(client.clone());
    let s = js
        .get_stream(subjects::events_stream(org))
        .await
        .expect("stream");
    s.get_raw_message(seq).await.expect("message")
}

struct Rx {
    running: receive::Running,
    stop: tokio::sync::watch::Sender<bool>,
    url: String,
    base: String,
}

impl Rx {
    async fn start(
        client: async_nats::Client,
        org: &str,
        secret: &str,
        max_body: Option<usize>,
    ) -> Rx {
        let mut cfg = receive::ReceiverConfig::new(org, "/webhook", Secret::new(secret));
        cfg.ack_timeout = Duration::from_secs(2);
        if let Some(m) = max_body {
            cfg.max_body = m;
        }
        let shared = receive::Shared::new(cfg, client, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (stop, rx) = tokio::sync::watch::channel(false);
        let running = receive::spawn(listener, shared, rx).expect("spawn");
        let base = format!("http://{}", running.addr);
        Rx {
            url: format!("{base}/webhook"),
            base,
            running,
            stop,
        }
    }
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.running.task)
            .await
            .expect("receiver stops on shutdown")
            .expect("join");
    }
    async fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Post with full control over headers (None = header left out).
async fn post(
    url: &str,
    content_type: Option<&str>,
    event: Option<&str>,
    delivery: Option<&str>,
    sig: Option<String>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut r = http().post(url).body(body);
    if let Some(c) = content_type {
        r = r.header("Content-Type", c);
    }
    if let Some(e) = event {
        r = r.header("X-GitHub-Event", e);
    }
    if let Some(d) = delivery {
        r = r.header("X-GitHub-Delivery", d);
    }
    if let Some(s) = sig {
        r = r.header("X-Hub-Signature-256", s);
    }
    r = r.header("X-GitHub-Hook-ID", "4242");
    let resp = r.send().await.expect("post");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

async fn post_signed(
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> (u16, String) {
    post(
        url,
        Some("application/json"),
        Some(event),
        Some(delivery),
        Some(verify::sign(secret.as_bytes(), body)),
        body.to_vec(),
    )
    .await
}

fn push_payload(repo: &str) -> Vec<u8> {
    serde_json::json!({"ref": "refs/heads/main", "action": "created", "repository": {"name": repo, "full_name": format!("{ORG}/{repo}")}, "pad": "x".repeat(2000)})
        .to_string()
        .into_bytes()
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_delivery_is_stored_once_with_subject_and_headers() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let body = push_payload("my.repo");
    let (status, text) = post_signed(&rx.url, SECRET, "push", "d-0001", &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(stored(&client, ORG).await, 1);
    let m = message(&client, ORG, 1).await;
    assert_eq!(
        m.subject.as_str(),
        "github.acme.my~2Erepo.push",
        "a repository name with '.' is one escaped token"
    );
    assert_eq!(
        m.payload.as_ref(),
        body.as_slice(),
        "the raw payload is relayed"
    );
    let h = |n: &str| m.headers.get(n).map(|v| v.as_str().to_string());
    // async-nats parses this one as a standard name: look it up with its constant
    assert_eq!(
        m.headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str()),
        Some("d-0001")
    );
    assert_eq!(h(subjects::headers::EVENT).as_deref(), Some("push"));
    assert_eq!(h(subjects::headers::DELIVERY).as_deref(), Some("d-0001"));
    assert_eq!(h(subjects::headers::HOOK_ID).as_deref(), Some("4242"));
    assert_eq!(h(subjects::headers::ACTION).as_deref(), Some("created"));

    // the same delivery again (a redelivery): answered 2xx, stored once
    let (status, text) = post_signed(&rx.url, SECRET, "push", "d-0001", &body).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"duplicate\":true"), "{text}");
    assert_eq!(stored(&client, ORG).await, 1);

    // an org-level event (no repository) gets the fixed token
    let (status, _) = post_signed(
        &rx.url,
        SECRET,
        "organization",
        "d-0002",
        br#"{"action":"member_added"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        message(&client, ORG, 2).await.subject.as_str(),
        "github.acme.~org.organization"
    );

    let m = rx.metrics().await;
    assert_eq!(metric(&m, "ghboot_webhook_received_total "), 3);
    assert_eq!(metric(&m, "ghboot_webhook_published_total "), 3);
    assert_eq!(metric(&m, "ghboot_webhook_duplicates_total "), 1);
    assert_eq!(metric(&m, "ghboot_webhook_publish_seconds_count "), 3);
    assert!(
        m.contains("# TYPE ghboot_webhook_publish_seconds histogram"),
        "{m}"
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_signature_test_vector_is_accepted() {
    // docs.github.com, "Validating webhook deliveries": this secret and payload give this signature.
    let secret = "It's a Secret to Everybody";
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(verify::sign(secret.as_bytes(), b"Hello, World!"), expected);
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, secret, None).await;
    // the signature passes (not 401); "Hello, World!" is then refused as a payload, not as a forgery
    let (status, text) = post(
        &rx.url,
        Some("application/json"),
        Some("push"),
        Some("tv"),
        Some(expected.into()),
        b"Hello, World!".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("malformed_payload"), "{text}");
    let wrong = expected.replace("757", "758");
    let (status, _) = post(
        &rx.url,
        Some("application/json"),
        Some("push"),
        Some("tv"),
        Some(wrong),
        b"Hello, World!".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(stored(&client, ORG).await, 0);
    rx.stop().await;
}

/// Raw HTTP/1.1 over TCP, for requests reqwest would not send (a lying Content-Length, an endless body).
async fn raw_request(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    let _ = s.write_all(body).await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_stores_nothing() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let body = push_payload("r");
    let sig = || Some(verify::sign(SECRET.as_bytes(), &body));
    let json = Some("application/json");

    let bad = Some(verify::sign(b"not the secret", &body));
    assert_eq!(
        post(&rx.url, json, Some("push"), Some("a1"), bad, body.clone())
            .await
            .0,
        401,
        "bad signature"
    );
    assert_eq!(
        post(&rx.url, json, Some("push"), Some("a2"), None, body.clone())
            .await
            .0,
        401,
        "missing signature"
    );
    assert_eq!(
        post(
            &rx.url,
            json,
            Some("push"),
            Some("a2b"),
            Some("sha256=nothex".into()),
            body.clone()
        )
        .await
        .0,
        401,
        "garbled signature"
    );
    assert_eq!(
        post(&rx.url, json, None, Some("a3"), sig(), body.clone())
            .await
            .0,
        400,
        "missing X-GitHub-Event"
    );
    assert_eq!(
        post(&rx.url, json, Some("push"), None, sig(), body.clone())
            .await
            .0,
        400,
        "missing X-GitHub-Delivery"
    );
    let broken = b"{\"repository\": {\"name\": ".to_vec();
    let bsig = Some(verify::sign(SECRET.as_bytes(), &broken));
    assert_eq!(
        post(&rx.url, json, Some("push"), Some("a4"), bsig, broken)
            .await
            .0,
        400,
        "malformed JSON"
    );
    assert_eq!(
        post(
            &rx.url,
            Some("text/plain"),
            Some("push"),
            Some("a5"),
            sig(),
            body.clone()
        )
        .await
        .0,
        415,
        "wrong content type"
    );
    assert_eq!(
        post(&rx.url, None, Some("push"), Some("a6"), sig(), body.clone())
            .await
            .0,
        415,
        "no content type"
    );
    let form_no_payload = b"other=1".to_vec();
    let fsig = Some(verify::sign(SECRET.as_bytes(), &form_no_payload));
    assert_eq!(
        post(
            &rx.url,
            Some("application/x-www-form-urlencoded"),
            Some("push"),
            Some("a7"),
            fsig,
            form_no_payload
        )
        .await
        .0,
        400,
        "form without payload"
    );

    // over 25 MB by Content-Length: refused before any of the body is read
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: a8\r\nContent-Length: {}\r\n\r\n",
        25 * 1024 * 1024 + 1
    );
    assert_eq!(
        raw_request(rx.running.addr, &head, b"").await,
        413,
        "oversize by Content-Length"
    );
    assert_eq!(
        stored(&client, ORG).await,
        0,
        "nothing stored by any refusal"
    );

    let m = rx.metrics().await;
    for (reason, n) in [
        ("signature_invalid", 2),
        ("signature_missing", 1),
        ("missing_header", 2),
        ("malformed_payload", 2),
        ("content_type", 2),
        ("too_large", 1),
    ] {
        assert_eq!(
            metric(
                &m,
                &format!("ghboot_webhook_rejected_total{{reason=\"{reason}\"}} ")
            ),
            n,
            "{reason} in\n{m}"
        );
    }
    assert_eq!(metric(&m, "ghboot_webhook_published_total "), 0);

    // form-encoded (GitHub's default content type for API-created hooks): verified over the raw bytes
    let d = send::Delivery {
        event: "push",
        id: "f1",
        payload: &body,
        form: true,
    };
    let a = send::send(&send::client(), &rx.url, &Secret::new(SECRET), &d)
        .await
        .expect("send");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(stored(&client, ORG).await, 1);
    let m = message(&client, ORG, 1).await;
    assert_eq!(
        m.payload.as_ref(),
        body.as_slice(),
        "the JSON from payload= is stored, not the form"
    );
    assert_eq!(m.subject.as_str(), "github.acme.r.push");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_is_cut_off_and_nothing_is_stored() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let mut cfg = receive::ReceiverConfig::new(ORG, "/webhook", Secret::new(SECRET));
    cfg.body_timeout = Duration::from_millis(300);
    let shared = receive::Shared::new(cfg, client.clone(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let running = receive::spawn(listener, shared, rx).expect("spawn");
    // promises 1000 bytes, sends 10, then waits: the receiver answers 400 instead of waiting forever
    let head = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: slow\r\nContent-Length: 1000\r\n\r\n";
    assert_eq!(raw_request(running.addr, head, b"{\"a\": 1, ").await, 400);
    assert_eq!(stored(&client, ORG).await, 0);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), running.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_is_refused_without_reading_it_whole() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, Some(4096)).await;
    // chunked (no Content-Length), 8 KB in one chunk and never terminated: the receiver must answer anyway
    let head = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: big\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut body = format!("{:x}\r\n", 8192).into_bytes();
    body.extend(vec![b'a'; 8192]);
    body.extend_from_slice(b"\r\n");
    assert_eq!(raw_request(rx.running.addr, head, &body).await, 413);
    assert_eq!(stored(&client, ORG).await, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_gives_503_and_the_redelivery_is_stored_once_after_restart() {
    let server = TestServer::start();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .expect("connect");
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let body = push_payload("r");
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "n-1", &body).await.0,
        200
    );
    let readyz = format!("{}/readyz", rx.base);
    assert_eq!(
        http()
            .get(&readyz)
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        200
    );

    let (dir, port, mport) = server.stop();
    let (status, text) = post_signed(&rx.url, SECRET, "push", "n-2", &body).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(
        http()
            .get(&readyz)
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        503
    );

    let server = TestServer::start_at(dir, port, mport, &[]);
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while http()
        .get(&readyz)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            std::time::Instant::now() < until,
            "receiver not ready again after the NATS restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // GitHub (or a person) redelivers n-2: stored; once more: still once
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "n-2", &body).await.0,
        200
    );
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "n-2", &body).await.0,
        200
    );
    assert_eq!(stored(&client, ORG).await, 2, "n-1 and n-2, each once");
    let m = rx.metrics().await;
    assert_eq!(
        metric(
            &m,
            "ghboot_webhook_rejected_total{reason=\"nats_unavailable\"} "
        ),
        1
    );
    rx.stop().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_needs_the_events_stream_and_ping_is_recorded() {
    let server = TestServer::start();
    let client = server.client().await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    assert_eq!(
        http()
            .get(format!("{}/healthz", rx.base))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{}/readyz", rx.base))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        503,
        "no stream yet"
    );
    // without the stream nothing can be acknowledged: 503, so GitHub's delivery is not lost as "delivered"
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "p-0", &push_payload("r"))
            .await
            .0,
        503
    );
    create_stream(&client, ORG).await;
    assert_eq!(
        http()
            .get(format!("{}/readyz", rx.base))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16(),
        200
    );
    assert!(rx.running.shared.first_ping().is_none());
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":4242}"#;
    assert_eq!(
        post_signed(&rx.url, SECRET, "ping", "p-1", ping).await.0,
        200
    );
    assert_eq!(
        post_signed(&rx.url, SECRET, "ping", "p-2", ping).await.0,
        200
    );
    let first = rx.running.shared.first_ping().expect("ping recorded");
    assert_eq!(first.delivery, "p-1");
    assert_eq!(first.hook_id.as_deref(), Some("4242"));
    assert_eq!(
        metric(&rx.metrics().await, "ghboot_webhook_pings_total "),
        2
    );
    rx.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// Registration against a local server speaking GitHub's documented hooks API.

mod fake_github {
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, patch};
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    pub const TOKEN: &str = "ghp_testtoken_abcdefghijklmnop";

    /// status, JSON body, extra headers
    pub type Canned = (u16, Value, Vec<(String, String)>);

    #[derive(Default)]
    pub struct Gh {
        /// hooks by owner key ("org:acme" or "repo:o/r"): full objects, secret stored unmasked
        pub hooks: Mutex<HashMap<String, Vec<Value>>>,
        pub log: Mutex<Vec<(String, String, Instant)>>,
        pub page_size: Mutex<usize>,
        /// answer the next request with this status and body (once)
        pub fail_next: Mutex<Option<Canned>>,
        /// answer every request with this
        pub fail_all: Mutex<Option<(u16, Value)>>,
        pub next_id: Mutex<u64>,
        pub base: Mutex<String>,
        /// headers added to the next successful list answer (once)
        pub list_headers_next: Mutex<Vec<(String, String)>>,
        /// the next create lands, then its answer takes this long (once): a client timeout after success
        pub slow_create_next: Mutex<Option<std::time::Duration>>,
        /// the next create first finds a hook with the same URL made by someone else, with this secret (once)
        pub concurrent_create: Mutex<Option<String>>,
    }

    impl Gh {
        pub fn writes(&self) -> Vec<String> {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|(m, _, _)| m != "GET")
                .map(|(m, p, _)| format!("{m} {p}"))
                .collect()
        }
        pub fn gets(&self) -> usize {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|(m, _, _)| m == "GET")
                .count()
        }
        pub fn add(&self, key: &str, url: &str, events: &[&str], secret: Option<&str>) -> u64 {
            let mut id = self.next_id.lock().unwrap();
            *id += 1;
            let mut config = json!({"url": url, "content_type": "json", "insecure_ssl": "0"});
            if let Some(s) = secret {
                config["secret"] = s.into();
            }
            let h = json!({"type": "Organization", "id": *id, "name": "web", "active": true, "events": events, "config": config});
            self.hooks
                .lock()
                .unwrap()
                .entry(key.to_string())
                .or_default()
                .push(h);
            *id
        }
        pub fn hook(&self, key: &str, url: &str) -> Option<Value> {
            self.hooks
                .lock()
                .unwrap()
                .get(key)?
                .iter()
                .find(|h| h["config"]["url"] == url)
                .cloned()
        }
    }

    fn masked(h: &Value) -> Value {
        let mut h = h.clone();
        if h["config"].get("secret").is_some() {
            h["config"]["secret"] = "********".into();
        }
        h
    }

    type S = State<Arc<Gh>>;

    fn gate(gh: &Gh, method: &str, path: &str, headers: &HeaderMap) -> Option<Response> {
        gh.log
            .lock()
            .unwrap()
            .push((method.to_string(), path.to_string(), Instant::now()));
        if let Some((status, body)) = gh.fail_all.lock().unwrap().clone() {
            return Some((StatusCode::from_u16(status).unwrap(), Json(body)).into_response());
        }
        if let Some((status, body, hdrs)) = gh.fail_next.lock().unwrap().take() {
            let mut r = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
            for (k, v) in hdrs {
                r.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            return Some(r);
        }
        let auth_ok = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !auth_ok {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"message": "Bad credentials"})),
                )
                    .into_response(),
            );
        }
        if headers
            .get("x-github-api-version")
            .and_then(|v| v.to_str().ok())
            != Some("2022-11-28")
        {
            return Some(
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"message": "missing API version"})),
                )
                    .into_response(),
            );
        }
        None
    }

    async fn list(
        gh: S,
        key: String,
        path: String,
        q: HashMap<String, String>,
        headers: HeaderMap,
    ) -> Response {
        if let Some(r) = gate(&gh, "GET", &path, &headers) {
            return r;
        }
        let all = gh
            .hooks
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let per = *gh.page_size.lock().unwrap();
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .map(masked)
            .collect();
        let mut r = Json(Value::Array(items)).into_response();
        for (k, v) in std::mem::take(&mut *gh.list_headers_next.lock().unwrap()) {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        if page * per < all.len() {
            let base = gh.base.lock().unwrap().clone();
            let link = format!("<{base}{path}?per_page=100&page={}>; rel=\"next\", <{base}{path}?page=1>; rel=\"first\"", page + 1);
            r.headers_mut().insert("link", link.parse().unwrap());
        }
        r
    }

    async fn create(gh: S, key: String, path: String, headers: HeaderMap, body: Value) -> Response {
        if let Some(r) = gate(&gh, "POST", &path, &headers) {
            return r;
        }
        let url = body["config"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let concurrent = gh.concurrent_create.lock().unwrap().take();
        if let Some(secret) = concurrent {
            gh.add(&key, &url, &["push"], Some(&secret));
        }
        if gh.hook(&key, &url).is_some() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"message": "Validation Failed", "errors": [{"message": "Hook already exists on this organization"}]})),
            )
                .into_response();
        }
        let events: Vec<&str> = body["events"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
            .unwrap_or_default();
        let id = gh.add(&key, &url, &events, body["config"]["secret"].as_str());
        let answer = {
            let mut hooks = gh.hooks.lock().unwrap();
            let h = hooks
                .get_mut(&key)
                .unwrap()
                .iter_mut()
                .find(|h| h["id"] == id)
                .unwrap();
            h["config"]["content_type"] = body["config"]["content_type"].clone();
            masked(h)
        };
        let slow = gh.slow_create_next.lock().unwrap().take();
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        (StatusCode::CREATED, Json(answer)).into_response()
    }

    async fn update(
        gh: S,
        key: String,
        path: String,
        id: u64,
        headers: HeaderMap,
        body: Value,
    ) -> Response {
        if let Some(r) = gate(&gh, "PATCH", &path, &headers) {
            return r;
        }
        let mut hooks = gh.hooks.lock().unwrap();
        let Some(h) = hooks
            .get_mut(&key)
            .and_then(|v| v.iter_mut().find(|h| h["id"] == id))
        else {
            return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
        };
        if let Some(c) = body.get("config") {
            h["config"] = c.clone(); // a PATCH without secret removes it, as on GitHub
        }
        if let Some(e) = body.get("events") {
            h["events"] = e.clone();
        }
        if let Some(a) = body.get("active") {
            h["active"] = a.clone();
        }
        Json(masked(h)).into_response()
    }

    pub fn router(gh: Arc<Gh>) -> Router {
        Router::new()
            .route(
                "/api/v3/orgs/{org}/hooks",
                get(
                    |s: S,
                     Path(org): Path<String>,
                     Query(q): Query<HashMap<String, String>>,
                     h: HeaderMap| async move {
                        list(
                            s,
                            format!("org:{org}"),
                            format!("/api/v3/orgs/{org}/hooks"),
                            q,
                            h,
                        )
                        .await
                    },
                )
                .post(
                    |s: S, Path(org): Path<String>, h: HeaderMap, Json(b): Json<Value>| async move {
                        create(
                            s,
                            format!("org:{org}"),
                            format!("/api/v3/orgs/{org}/hooks"),
                            h,
                            b,
                        )
                        .await
                    },
                ),
            )
            .route(
                "/api/v3/orgs/{org}/hooks/{id}",
                patch(
                    |s: S,
                     Path((org, id)): Path<(String, u64)>,
                     h: HeaderMap,
                     Json(b): Json<Value>| async move {
                        update(
                            s,
                            format!("org:{org}"),
                            format!("/api/v3/orgs/{org}/hooks/{id}"),
                            id,
                            h,
                            b,
                        )
                        .await
                    },
                ),
            )
            .route(
                "/api/v3/repos/{o}/{r}/hooks",
                get(
                    |s: S,
                     Path((o, r)): Path<(String, String)>,
                     Query(q): Query<HashMap<String, String>>,
                     h: HeaderMap| async move {
                        list(
                            s,
                            format!("repo:{o}/{r}"),
                            format!("/api/v3/repos/{o}/{r}/hooks"),
                            q,
                            h,
                        )
                        .await
                    },
                )
                .post(
                    |s: S,
                     Path((o, r)): Path<(String, String)>,
                     h: HeaderMap,
                     Json(b): Json<Value>| async move {
                        create(
                            s,
                            format!("repo:{o}/{r}"),
                            format!("/api/v3/repos/{o}/{r}/hooks"),
                            h,
                            b,
                        )
                        .await
                    },
                ),
            )
            .with_state(gh)
    }

    /// The fake over HTTPS with the certificate and key in `cert`/`key` (PEM), as an Enterprise Server
    /// behind a private CA serves; returns its API base.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> (Arc<Gh>, String) {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let gh = Arc::new(Gh {
            page_size: Mutex::new(100),
            ..Default::default()
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("https://{}", l.local_addr().unwrap());
        *gh.base.lock().unwrap() = root.clone();
        let app = router(gh.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // a client that does not trust the CA ends here, in the handshake
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        (gh, format!("{root}/api/v3"))
    }

    /// Start the fake on a free port; returns its API base (Enterprise Server style: .../api/v3).
    pub async fn start() -> (Arc<Gh>, String) {
        let gh = Arc::new(Gh {
            page_size: Mutex::new(100),
            ..Default::default()
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", l.local_addr().unwrap());
        *gh.base.lock().unwrap() = root.clone();
        let app = router(gh.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (gh, format!("{root}/api/v3"))
    }
}

const HOOK_URL: &str = "https://hooks.example.com/webhook";

fn desired(secret: &str, events: &[&str]) -> Desired {
    Desired {
        url: HOOK_URL.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        secret: Secret::new(secret),
    }
}

fn gh(api: &str) -> GitHub {
    GitHub::new(Some(api), Secret::new(fake_github::TOKEN)).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_creates_then_leaves_alone_then_updates_once() {
    let (fake, api) = fake_github::start().await;
    let g = gh(&api);
    let org = Target::Org(ORG.into());
    let want = desired(SECRET, &["*"]);

    let r = g.ensure(&org, &want, None).await.expect("create");
    assert_eq!(r.action, "created");
    assert_eq!(
        fake.writes(),
        vec!["POST /api/v3/orgs/acme/hooks".to_string()]
    );
    let h = fake.hook("org:acme", HOOK_URL).expect("hook exists");
    assert_eq!(
        h["config"]["secret"], SECRET,
        "the secret we verify with is set on the hook"
    );
    assert_eq!(h["config"]["content_type"], "json");
    assert_eq!(h["events"], serde_json::json!(["*"]));
    assert_eq!(r.secret_fingerprint, verify::fingerprint(SECRET.as_bytes()));
    assert!(
        !serde_json::to_string(&r).unwrap().contains(SECRET),
        "outputs hold a fingerprint, never the secret"
    );

    // unchanged: no write at all
    let r2 = g
        .ensure(&org, &want, Some(&r.secret_fingerprint))
        .await
        .expect("unchanged");
    assert_eq!(r2.action, "unchanged");
    assert_eq!(r2.hook_id, r.hook_id);
    assert_eq!(fake.writes().len(), 1);

    // drift (someone narrowed the events): exactly one PATCH
    fake.hooks.lock().unwrap().get_mut("org:acme").unwrap()[0]["events"] =
        serde_json::json!(["push"]);
    let r3 = g
        .ensure(&org, &want, Some(&r.secret_fingerprint))
        .await
        .expect("update");
    assert_eq!(r3.action, "updated");
    assert_eq!(
        fake.writes(),
        vec![
            "POST /api/v3/orgs/acme/hooks".to_string(),
            format!("PATCH /api/v3/orgs/acme/hooks/{}", r.hook_id)
        ]
    );
    assert_eq!(
        fake.hook("org:acme", HOOK_URL).unwrap()["events"],
        serde_json::json!(["*"])
    );
    assert_eq!(
        fake.hook("org:acme", HOOK_URL).unwrap()["config"]["secret"],
        SECRET,
        "the PATCH keeps the secret"
    );

    // a new secret (GitHub masks the old one: only our fingerprint tells): one more PATCH
    let r4 = g
        .ensure(
            &org,
            &desired("a-new-secret-value", &["*"]),
            Some(&r.secret_fingerprint),
        )
        .await
        .expect("rotate");
    assert_eq!(r4.action, "updated");
    assert_eq!(
        fake.hook("org:acme", HOOK_URL).unwrap()["config"]["secret"],
        "a-new-secret-value"
    );
    assert_eq!(fake.writes().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_pagination_and_handles_repo_hooks() {
    let (fake, api) = fake_github::start().await;
    *fake.page_size.lock().unwrap() = 2;
    for i in 0..5 {
        fake.add(
            "org:acme",
            &format!("https://other.example/{i}"),
            &["push"],
            Some("x"),
        );
    }
    fake.add("org:acme", HOOK_URL, &["*"], Some(SECRET));
    let g = gh(&api);
    let fp = verify::fingerprint(SECRET.as_bytes());
    let r = g
        .ensure(
            &Target::Org(ORG.into()),
            &desired(SECRET, &["*"]),
            Some(&fp),
        )
        .await
        .expect("found on page 3");
    assert_eq!(r.action, "unchanged");
    assert_eq!(fake.gets(), 3, "three pages listed");
    assert!(fake.writes().is_empty(), "no duplicate hook created");

    // a repository with '.' in its name
    let t = Target::repo(ORG, "my.repo");
    let r = g
        .ensure(&t, &desired(SECRET, &["push", "pull_request"]), None)
        .await
        .expect("repo create");
    assert_eq!(r.action, "created");
    assert!(
        fake.writes()
            .contains(&"POST /api/v3/repos/acme/my.repo/hooks".to_string()),
        "{:?}",
        fake.writes()
    );
    assert_eq!(
        r.events,
        vec!["pull_request".to_string(), "push".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_errors_name_the_permission_and_never_leak_secrets() {
    let (fake, api) = fake_github::start().await;
    let org = Target::Org(ORG.into());
    let want = desired(SECRET, &["*"]);

    let bad = GitHub::new(Some(&api), Secret::new("wrong-token-value")).unwrap();
    let e = format!(
        "{:#}",
        bad.ensure(&org, &want, None).await.expect_err("401")
    );
    let help = |e: &anyhow::Error| {
        ghboot::error::find_failure(e)
            .and_then(|f| f.help.clone())
            .unwrap_or_default()
    };
    let err = bad.ensure(&org, &want, None).await.expect_err("401");
    assert!(e.contains("401"), "{e}");
    assert!(help(&err).contains("admin:org_hook"), "{}", help(&err));

    *fake.fail_all.lock().unwrap() = Some((
        403,
        serde_json::json!({"message": "Must have admin rights to Repository."}),
    ));
    let err = gh(&api).ensure(&org, &want, None).await.expect_err("403");
    let all = format!("{err:#} {}", help(&err));
    assert!(
        all.contains("403") && all.contains("admin:org_hook") && all.contains("Webhooks"),
        "{all}"
    );
    let err = gh(&api)
        .ensure(&Target::repo(ORG, "r"), &want, None)
        .await
        .expect_err("403 repo");
    assert!(help(&err).contains("admin:repo_hook"), "{}", help(&err));

    // a 422 that echoes things back: still no token, no secret
    let echo = format!(
        "Validation Failed for {} with {}",
        fake_github::TOKEN,
        SECRET
    );
    *fake.fail_all.lock().unwrap() = Some((
        422,
        serde_json::json!({"message": echo, "errors": [{"message": "url is not reachable"}]}),
    ));
    let err = gh(&api).ensure(&org, &want, None).await.expect_err("422");
    let all = format!("{err:#} {} {err:?}", help(&err));
    assert!(
        all.contains("422") && all.contains("url is not reachable"),
        "{all}"
    );
    assert!(
        !all.contains(fake_github::TOKEN) && !all.contains(SECRET),
        "{all}"
    );

    *fake.fail_all.lock().unwrap() = Some((404, serde_json::json!({"message": "Not Found"})));
    let err = gh(&api).ensure(&org, &want, None).await.expect_err("404");
    assert!(format!("{err:#}").contains("404") && help(&err).contains("admin:org_hook"));
    assert!(fake.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_a_timeout_adopts_the_hook_it_made() {
    let (fake, api) = fake_github::start().await;
    let org = Target::Org(ORG.into());
    let want = desired(SECRET, &["*"]);
    // the first POST creates the hook but its answer comes after the client gave up: the resent POST meets
    // GitHub's 422 "Hook already exists"
    *fake.slow_create_next.lock().unwrap() = Some(Duration::from_secs(5));
    let mut g = gh(&api);
    g.timeout = Duration::from_millis(300);
    let r = g
        .ensure(&org, &want, None)
        .await
        .expect("adopted, not a URL problem");
    assert_eq!(r.action, "created");
    let hooks = fake.hooks.lock().unwrap()["org:acme"].clone();
    assert_eq!(hooks.len(), 1, "one hook, not two: {hooks:?}");
    assert_eq!(hooks[0]["id"], r.hook_id, "the id of the hook that exists");
    assert_eq!(hooks[0]["config"]["secret"], SECRET);
    assert_eq!(
        fake.writes(),
        vec!["POST /api/v3/orgs/acme/hooks".to_string(); 2],
        "the hook our own lost POST made is adopted as is"
    );
    let again = gh(&api)
        .ensure(&org, &want, Some(&r.secret_fingerprint))
        .await
        .expect("rerun");
    assert_eq!(
        (again.action.as_str(), again.hook_id),
        ("unchanged", r.hook_id)
    );

    // someone else's hook with our URL appears between the list and the POST: adopted, and given our secret
    // and events (its secret cannot be read back, so it cannot be trusted)
    let (fake, api) = fake_github::start().await;
    *fake.concurrent_create.lock().unwrap() = Some("someone-elses-secret".into());
    let r = gh(&api).ensure(&org, &want, None).await.expect("adopted");
    assert_eq!(r.action, "updated");
    let h = fake.hook("org:acme", HOOK_URL).expect("hook");
    assert_eq!(h["id"], r.hook_id);
    assert_eq!(h["config"]["secret"], SECRET);
    assert_eq!(h["events"], serde_json::json!(["*"]));
    assert_eq!(fake.hooks.lock().unwrap()["org:acme"].len(), 1);
    assert_eq!(
        fake.writes(),
        vec![
            "POST /api/v3/orgs/acme/hooks".to_string(),
            format!("PATCH /api/v3/orgs/acme/hooks/{}", r.hook_id)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_honours_retry_after() {
    let (fake, api) = fake_github::start().await;
    *fake.fail_next.lock().unwrap() = Some((
        403,
        serde_json::json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        vec![("retry-after".into(), "1".into())],
    ));
    let r = gh(&api)
        .ensure(&Target::Org(ORG.into()), &desired(SECRET, &["*"]), None)
        .await
        .expect("succeeds after waiting");
    assert_eq!(r.action, "created");
    let log = fake.log.lock().unwrap().clone();
    assert!(log.len() >= 2);
    let gap = log[1].2.duration_since(log[0].2);
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After: 1"
    );

    // a success that used up the primary limit: the next call waits for x-ratelimit-reset
    let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 1;
    *fake.list_headers_next.lock().unwrap() = vec![
        ("x-ratelimit-remaining".into(), "0".into()),
        ("x-ratelimit-reset".into(), reset.to_string()),
    ];
    let before = fake.log.lock().unwrap().len();
    let g = gh(&api);
    let fp = verify::fingerprint(SECRET.as_bytes());
    g.ensure(
        &Target::Org(ORG.into()),
        &desired(SECRET, &["*"]),
        Some(&fp),
    )
    .await
    .expect("list");
    g.ensure(
        &Target::Org(ORG.into()),
        &desired(SECRET, &["*"]),
        Some(&fp),
    )
    .await
    .expect("list after the reset");
    let log = fake.log.lock().unwrap().clone();
    let gap = log[before + 1].2.duration_since(log[before].2);
    assert!(
        gap >= Duration::from_secs(1),
        "the call after an exhausted limit came {gap:?} later, before the reset"
    );

    // a primary limit whose reset is far away: a clear error instead of a long hang
    let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    *fake.fail_next.lock().unwrap() = Some((
        403,
        serde_json::json!({"message": "API rate limit exceeded"}),
        vec![
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-reset".into(), reset.to_string()),
        ],
    ));
    let err = gh(&api)
        .ensure(&Target::Org(ORG.into()), &desired(SECRET, &["*"]), None)
        .await
        .expect_err("rate limited");
    assert!(format!("{err:#}").contains("rate limit"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------------------
// End to end with the binary.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_receiver_and_send_delivers_into_jetstream() {
    let inst = Instance::new();
    let printed = common::ok(&inst.up(&[]));
    assert!(
        printed.contains("gh webhook forward --org=YOUR_ORG --events='*' --url=http://127.0.0.1:"),
        "local only says how to forward:\n{printed}"
    );
    let st = inst.status();
    let url = st["webhook"]["url"]
        .as_str()
        .expect("status --json has webhook.url")
        .to_string();
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}/webhook", inst.webhook_port)
    );
    let stages = st["stages"].as_array().unwrap();
    let w = stages
        .iter()
        .find(|s| s["name"] == "webhooks")
        .expect("webhooks stage");
    assert_eq!(w["status"], "done", "{w}");
    let env = inst.env_json();
    assert_eq!(
        env["GHBOOT_WEBHOOK_URL"],
        url.as_str(),
        "env prints the full URL, path included"
    );

    // the events stream comes from the topology (nats stage): the receiver is ready right after up
    let client = inst.client().await;
    // dev's self-management round trip has put its own push events in the stream already
    let before = stored(&client, "local").await;
    assert_eq!(
        inst.status()["webhook"]["ready"],
        true,
        "NATS connected and the events stream present"
    );
    assert_eq!(inst.status()["components"]["webhook"]["ready"], true);

    let secret = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    assert!(secret.len() >= 32);
    // file modes are Unix's (on Windows the profile directory's ACL keeps other users out)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret_file = inst.state_dir().join("secrets/webhook-secret");
        assert_eq!(
            std::fs::metadata(&secret_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    for out in [
        inst.run(&["status", "--json"]),
        inst.run(&["env"]),
        inst.run(&["env", "--format", "json"]),
    ] {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&secret),
            "the secret leaked"
        );
    }
    let state = std::fs::read_to_string(inst.state_dir().join("state.json")).unwrap();
    assert!(!state.contains(&secret));

    let payload = inst.dir.path().join("push.json");
    std::fs::write(&payload, push_payload("my.repo")).unwrap();
    let out = inst.run(&[
        "webhook",
        "send",
        "--event",
        "push",
        "--payload",
        payload.to_str().unwrap(),
        "--delivery",
        "e2e-1",
    ]);
    let printed = common::ok(&out);
    assert!(printed.starts_with("200"), "{printed}");
    let out = inst.run(&[
        "webhook",
        "send",
        "--event",
        "push",
        "--payload",
        payload.to_str().unwrap(),
        "--delivery",
        "e2e-1",
        "--form",
    ]);
    common::ok(&out);
    assert_eq!(
        stored(&client, "local").await - before,
        1,
        "sent twice with one delivery id: stored once"
    );
    assert_eq!(
        message(&client, "local", before + 1).await.subject.as_str(),
        "github.local.my~2Erepo.push"
    );

    // the first ping is recorded in the runtime components (proof a hook reaches the receiver)
    std::fs::write(&payload, br#"{"zen":"Design for failure.","hook_id":7}"#).unwrap();
    common::ok(&inst.run(&[
        "webhook",
        "send",
        "--event",
        "ping",
        "--payload",
        payload.to_str().unwrap(),
        "--delivery",
        "ping-1",
    ]));
    let st = inst.status();
    assert_eq!(
        st["components"]["webhook"]["first_ping"]["delivery"], "ping-1",
        "{}",
        st["components"]
    );

    // a payload the receiver refuses: non-zero exit, status printed
    std::fs::write(&payload, b"not json").unwrap();
    let out = inst.run(&[
        "webhook",
        "send",
        "--event",
        "push",
        "--payload",
        payload.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("400"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // a rerun changes nothing and keeps the receiver; plan is clean
    let pid = st["supervisor"]["pid"].clone();
    common::ok(&inst.up(&[]));
    assert_eq!(
        inst.status()["supervisor"]["pid"],
        pid,
        "rerun replaced the supervisor"
    );
    let plan = inst.run(&["plan"]);
    assert!(
        plan.status.success(),
        "plan after up: {}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let summary = String::from_utf8_lossy(&inst.run(&["status", "--json"]).stdout).to_string();
    assert!(!summary.contains(&secret));
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_webhook_port_is_picked_once_and_kept() {
    let inst = Instance::new();
    let mut c = inst.cmd();
    c.args([
        "--mode",
        "dev",
        "--detach",
        "--non-interactive",
        "--port",
        &inst.port.to_string(),
        "--monitor-port",
        &inst.monitor_port.to_string(),
    ]);
    common::ok(&c.output().expect("up"));
    let url = inst.status()["webhook"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/webhook")
        .parse()
        .expect("port in url");
    assert!(port > 0);
    common::ok(&inst.run(&["down"]));
    common::ok(&c.output().expect("up again"));
    assert_eq!(
        inst.status()["webhook"]["url"].as_str(),
        Some(url.as_str()),
        "the picked port is kept"
    );
    let out = inst.run(&["plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A private CA and a certificate for 127.0.0.1 signed by it, made with openssl as an admin would:
/// (CA certificate, server certificate, server key), all PEM.
fn private_ca(dir: &std::path::Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let openssl = common::tool("openssl")?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ghboot test private CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    ];
    for args in steps {
        let out = std::process::Command::new(&openssl)
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some((dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_server_behind_a_private_ca_is_trusted_through_the_platform_store() {
    let certs = tempfile::tempdir().expect("tmp");
    let Some((ca, cert, key)) = private_ca(certs.path()) else {
        return;
    };
    let (fake, api) = fake_github::start_tls(&cert, &key).await;
    // the CA is in no store yet: refused in the handshake (so what follows is the store's doing)
    let err = gh(&api)
        .ensure(&Target::Org(ORG.into()), &desired(SECRET, &["*"]), None)
        .await
        .expect_err("an unknown CA is not trusted");
    assert!(format!("{err:#}").contains("failed"), "{err:#}");
    assert!(
        fake.log.lock().unwrap().is_empty(),
        "no request got through"
    );

    // the platform's store, here given as SSL_CERT_FILE (the variable OpenSSL and rustls-native-certs read)
    let inst = Arc::new(Instance::new());
    let i = inst.clone();
    let out = tokio::task::spawn_blocking(move || {
        i.cmd()
            .env("GITHUB_TOKEN", fake_github::TOKEN)
            .env("SSL_CERT_FILE", &ca)
            .args([
                "--mode",
                "dev",
                "--detach",
                "--non-interactive",
                "--org",
                ORG,
            ])
            .args([
                "--port",
                &i.port.to_string(),
                "--monitor-port",
                &i.monitor_port.to_string(),
            ])
            .args(["--webhook-port", &i.webhook_port.to_string()])
            .args(["--webhook-url", HOOK_URL, "--github-api-url", &api])
            .output()
            .expect("run ghboot")
    })
    .await
    .unwrap();
    common::ok(&out);
    assert_eq!(
        fake.writes(),
        vec!["POST /api/v3/orgs/acme/hooks".to_string()]
    );
    assert!(
        fake.hook("org:acme", HOOK_URL).is_some(),
        "registered over TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_registers_the_org_hook_once_and_a_rerun_writes_nothing() {
    let (fake, api) = fake_github::start().await;
    let inst = Arc::new(Instance::new());
    let up = |inst: Arc<Instance>, api: String| {
        tokio::task::spawn_blocking(move || {
            let mut c = inst.cmd();
            c.env("GITHUB_TOKEN", fake_github::TOKEN)
                .args([
                    "--mode",
                    "dev",
                    "--detach",
                    "--non-interactive",
                    "--org",
                    ORG,
                ])
                .args([
                    "--port",
                    &inst.port.to_string(),
                    "--monitor-port",
                    &inst.monitor_port.to_string(),
                    "--webhook-port",
                    &inst.webhook_port.to_string(),
                ])
                .args(["--webhook-url", HOOK_URL, "--github-api-url", &api]);
            c.output().expect("run ghboot")
        })
    };
    let out = up(inst.clone(), api.clone()).await.unwrap();
    let printed = common::ok(&out);
    assert_eq!(
        fake.writes(),
        vec!["POST /api/v3/orgs/acme/hooks".to_string()],
        "{printed}"
    );
    let i2 = inst.clone();
    let secret = tokio::task::spawn_blocking(move || common::ok(&i2.run(&["webhook", "secret"])))
        .await
        .unwrap()
        .trim()
        .to_string();
    let hook = fake.hook("org:acme", HOOK_URL).expect("hook registered");
    assert_eq!(
        hook["config"]["secret"],
        secret.as_str(),
        "the hook signs with the secret the receiver verifies with"
    );
    let state = std::fs::read_to_string(inst.state_dir().join("state.json")).unwrap();
    assert!(
        state.contains(&verify::fingerprint(secret.as_bytes())),
        "the fingerprint is recorded"
    );
    assert!(
        !state.contains(&secret) && !state.contains(fake_github::TOKEN),
        "no secret, no token in state.json"
    );
    let log =
        std::fs::read_to_string(inst.state_dir().join("logs/supervisor.log")).unwrap_or_default();
    assert!(
        !log.contains(&secret) && !log.contains(fake_github::TOKEN),
        "no secret, no token in the log"
    );

    // rerun while running: verified from the record, nothing written to GitHub
    common::ok(&up(inst.clone(), api.clone()).await.unwrap());
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.writes());
    // drift on GitHub's side is found by plan and fixed by one PATCH on the next apply
    fake.hooks.lock().unwrap().get_mut("org:acme").unwrap()[0]["events"] =
        serde_json::json!(["push"]);
    let i2 = inst.clone();
    let api2 = api.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let mut c = i2.cmd();
        c.env("GITHUB_TOKEN", fake_github::TOKEN).args([
            "plan",
            "--webhook-url",
            HOOK_URL,
            "--github-api-url",
            &api2,
        ]);
        c.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(2),
        "plan shows the hook update: {}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("update"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert_eq!(fake.writes().len(), 1, "plan writes nothing");
    // the next up finds the drift on GitHub (a read) and puts the hook back with one PATCH
    common::ok(&up(inst.clone(), api.clone()).await.unwrap());
    assert_eq!(fake.writes().len(), 2, "{:?}", fake.writes());
    assert!(
        fake.writes()[1].starts_with("PATCH /api/v3/orgs/acme/hooks/"),
        "{:?}",
        fake.writes()
    );
    assert_eq!(
        fake.hook("org:acme", HOOK_URL).unwrap()["events"],
        serde_json::json!(["*"])
    );
}

/// Unix only: the stop it checks is SIGTERM's.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serve_takes_everything_from_flags_and_env_and_stops_on_sigterm() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let inst = Instance::new(); // only for its clean environment and temp dir
    let port = common::free_ports(1)[0];
    let mut serve = inst
        .cmd()
        .env("GHBOOT_WEBHOOK_SECRET", SECRET)
        .args([
            "webhook",
            "serve",
            "--org",
            ORG,
            "--nats-url",
            &server.url(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start webhook serve");
    common::wait_for(Duration::from_secs(20), "standalone receiver ready", || {
        (common::http_status(port, "/readyz")? == 200).then_some(())
    });
    let payload = inst.dir.path().join("p.json");
    std::fs::write(&payload, push_payload("svc")).unwrap();
    let url = format!("http://127.0.0.1:{port}/webhook");
    let out = inst
        .cmd()
        .env("GHBOOT_WEBHOOK_SECRET", SECRET)
        .args([
            "webhook",
            "send",
            "--event",
            "push",
            "--payload",
            payload.to_str().unwrap(),
            "--url",
            &url,
            "--delivery",
            "s-1",
        ])
        .output()
        .unwrap();
    assert!(common::ok(&out).starts_with("200"));
    assert_eq!(stored(&client, ORG).await, 1);
    assert_eq!(
        message(&client, ORG, 1).await.subject.as_str(),
        "github.acme.svc.push"
    );
    // signed with another secret: 401, and `send` exits non-zero
    let out = inst
        .cmd()
        .env("GHBOOT_WEBHOOK_SECRET", "another-secret")
        .args([
            "webhook",
            "send",
            "--event",
            "push",
            "--payload",
            payload.to_str().unwrap(),
            "--url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401"));
    let pid = serve.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = common::wait_for(Duration::from_secs(15), "serve exits on SIGTERM", || {
        serve.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!err.contains(SECRET), "the secret reached the log: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_operator_secret_restarts_the_receiver_with_it() {
    let inst = Instance::new();
    common::ok(&inst.up(&[]));
    let pid = inst.status()["supervisor"]["pid"].clone();
    let mut c = inst.cmd();
    c.env("GHBOOT_WEBHOOK_SECRET", "operator-supplied-secret-1")
        .args(["--mode", "dev", "--detach", "--non-interactive"])
        .args([
            "--port",
            &inst.port.to_string(),
            "--monitor-port",
            &inst.monitor_port.to_string(),
            "--webhook-port",
            &inst.webhook_port.to_string(),
        ]);
    common::ok(&c.output().unwrap());
    assert_ne!(
        inst.status()["supervisor"]["pid"],
        pid,
        "the supervisor was restarted for the new secret"
    );
    let url = inst.status()["webhook"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let body = push_payload("r");
    assert_eq!(
        post_signed(&url, "operator-supplied-secret-1", "push", "op-1", &body)
            .await
            .0,
        200
    );
    let generated = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    assert_eq!(
        post_signed(&url, &generated, "push", "op-2", &body).await.0,
        401,
        "the generated secret no longer verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_nats_max_payload_is_413_not_an_endless_503() {
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), "max_payload: 8192\n").unwrap();
    let server = TestServer::start_with(&["-c", conf.path().to_str().unwrap()]);
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let big = serde_json::json!({"repository": {"name": "r"}, "pad": "y".repeat(20_000)})
        .to_string()
        .into_bytes();
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "big-1", &big).await.0,
        413
    );
    assert_eq!(
        post_signed(&rx.url, SECRET, "push", "small-1", &push_payload("r"))
            .await
            .0,
        200
    );
    assert_eq!(stored(&client, ORG).await, 1);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_head_is_closed_by_the_header_timeout_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let mut s = tokio::net::TcpStream::connect(rx.running.addr)
        .await
        .expect("connect");
    s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // the receiver may answer (408) before closing; read on until EOF or reset
    let mut buf = vec![0u8; 1024];
    tokio::time::timeout(receive::HEADER_TIMEOUT + Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the receiver closes a connection whose head never completes");
    let m = rx.metrics().await;
    assert_eq!(
        metric(
            &m,
            "ghboot_webhook_connections_closed_total{reason=\"header_timeout\"}"
        ),
        1,
        "{m}"
    );
    // and it still serves
    let (st, body) = post_signed(&rx.url, SECRET, "push", "after-half", &push_payload("r")).await;
    assert_eq!(st, 200, "{body}");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_repository_name_is_400_and_harms_no_other_delivery() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let long = "r".repeat(5000);
    let (st, body) = post_signed(&rx.url, SECRET, "push", "long", &push_payload(&long)).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("100 characters"), "{body}");
    let ok101 = "r".repeat(101);
    let (st, _) = post_signed(&rx.url, SECRET, "push", "l101", &push_payload(&ok101)).await;
    assert_eq!(st, 400);
    let (st, body) = post_signed(
        &rx.url,
        SECRET,
        "push",
        "l100",
        &push_payload(&"r".repeat(100)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) =
        post_signed(&rx.url, SECRET, "push", "after-long", &push_payload("fine")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(stored(&client, ORG).await, 2);
    assert_eq!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_400_and_an_empty_repository_name_has_its_own_token() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    for body in [&b"[]"[..], b" [{\"repository\": {\"name\": \"r\"}}]"] {
        let (st, text) = post_signed(&rx.url, SECRET, "push", "arr", body).await;
        assert_eq!(st, 400, "{text}");
        assert!(text.contains("not a JSON object"), "{text}");
    }
    assert_eq!(stored(&client, ORG).await, 0);
    let body = br#"{"repository": {"name": ""}}"#;
    let (st, text) = post_signed(&rx.url, SECRET, "push", "empty-name", body).await;
    assert_eq!(st, 200, "{text}");
    let m = message(&client, ORG, 1).await;
    assert_eq!(m.subject.as_str(), "github.acme.~.push");
    assert_ne!(
        m.subject.as_str(),
        subjects::event_subject(ORG, None, "push")
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_id_reused_for_another_payload_is_409_not_a_duplicate() {
    let server = TestServer::start();
    let client = server.client().await;
    create_stream(&client, ORG).await;
    let rx = Rx::start(client.clone(), ORG, SECRET, None).await;
    let (st, _) = post_signed(&rx.url, SECRET, "push", "reused", &push_payload("a")).await;
    assert_eq!(st, 200);
    let (st, text) = post_signed(&rx.url, SECRET, "push", "reused", &push_payload("a")).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("\"duplicate\":true"), "{text}");
    let (st, text) = post_signed(&rx.url, SECRET, "push", "reused", &push_payload("b")).await;
    assert_eq!(st, 409, "{text}");
    assert!(text.contains("delivery_id_conflict"), "{text}");
    assert_eq!(stored(&client, ORG).await, 1);
    rx.stop().await;
}
