//! The receiver: `POST <path>` takes a GitHub delivery, verifies its signature over the raw body, and
//! publishes it to JetStream with `Nats-Msg-Id` = the delivery id. It answers 2xx only after JetStream has
//! acknowledged, so a delivery GitHub saw succeed is stored; a redelivery is stored once (the stream's
//! duplicate window).
//!
//! Status codes: 401 bad or missing signature, 400 missing headers or malformed payload, 413 too large,
//! 415 wrong content type, 503 NATS unavailable (GitHub may retry). Every rejection is counted by reason
//! and logged with the delivery id and event only: never the body, never the secret.
//!
//! Also `GET /healthz` (process up), `GET /readyz` (NATS connected and the events stream present) and
//! `GET /metrics` (Prometheus text format).

use super::verify;
use crate::secret::Secret;
use crate::topology::subjects;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver needs besides a NATS connection.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Org token of the subjects (`github.<org>.<repo>.<event>`).
    pub org: String,
    pub path: String,
    pub secret: Secret,
    /// Largest body accepted, in bytes (GitHub's own cap: 25 MB).
    pub max_body: usize,
    /// How long to wait for JetStream's acknowledgement before answering 503 (GitHub gives up after 10 s).
    pub ack_timeout: Duration,
    /// How long a client may take to send the whole body. GitHub sends at once; a client that trickles
    /// bytes would otherwise hold a connection and its buffer indefinitely.
    pub body_timeout: Duration,
}

impl ReceiverConfig {
    pub fn new(org: &str, path: &str, secret: Secret) -> Self {
        ReceiverConfig {
            org: org.into(),
            path: path.into(),
            secret,
            max_body: super::MAX_BODY,
            ack_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// GitHub's limit on repository names, in characters.
pub const MAX_REPO_NAME: usize = 100;

/// The first `ping` seen: GitHub sends one when a hook is created, so it proves the hook reaches us.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ping {
    pub at: String,
    pub delivery: String,
    pub hook_id: Option<String>,
}

pub type PingHook = Box<dyn Fn(&Ping) + Send + Sync>;

/// State shared by the handlers (and readable by whoever started the receiver).
pub struct Shared {
    cfg: ReceiverConfig,
    /// The secret deliveries are verified with, and during a rotation's grace period the previous one
    /// (until its deadline). Starts as `cfg.secret`; [`Shared::set_secrets`] swaps them live.
    secrets: std::sync::RwLock<(Secret, Option<(Secret, std::time::SystemTime)>)>,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream: String,
    pub metrics: Metrics,
    /// The last deliveries, for the status page.
    pub recent: super::recent::Recent,
    first_ping: Mutex<Option<Ping>>,
    on_first_ping: Option<PingHook>,
}

impl Shared {
    pub fn new(
        cfg: ReceiverConfig,
        client: async_nats::Client,
        on_first_ping: Option<PingHook>,
    ) -> Arc<Self> {
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(cfg.ack_timeout);
        let stream = subjects::events_stream(&cfg.org);
        Arc::new(Shared {
            secrets: std::sync::RwLock::new((cfg.secret.clone(), None)),
            cfg,
            client,
            js,
            stream,
            metrics: Metrics::default(),
            recent: Default::default(),
            first_ping: Mutex::new(None),
            on_first_ping,
        })
    }
    pub fn first_ping(&self) -> Option<Ping> {
        self.first_ping.lock().ok().and_then(|g| g.clone())
    }
    /// NATS connected and the org's events stream exists.
    pub async fn ready(&self) -> bool {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.js.get_stream(&self.stream)).await,
            Ok(Ok(_))
        )
    }
    pub fn config(&self) -> &ReceiverConfig {
        &self.cfg
    }
    /// Verify with `current` from now on, and also with `previous` until its deadline (a rotation).
    pub fn set_secrets(&self, current: Secret, previous: Option<(Secret, std::time::SystemTime)>) {
        if let Ok(mut g) = self.secrets.write() {
            *g = (current, previous);
        }
    }
    /// A signature made with the current secret, or with the previous one before its deadline.
    fn verify(&self, body: &[u8], header: Option<&[u8]>) -> Result<(), verify::Refused> {
        let (current, previous) = match self.secrets.read() {
            Ok(g) => (g.0.clone(), g.1.clone()),
            Err(_) => (self.cfg.secret.clone(), None),
        };
        let first = verify::verify(current.expose().as_bytes(), body, header);
        match (first, previous) {
            (Err(verify::Refused::Mismatch), Some((old, until)))
                if std::time::SystemTime::now() < until =>
            {
                verify::verify(old.expose().as_bytes(), body, header)
            }
            (r, _) => r,
        }
    }
}

/// Reasons a delivery is refused: metric labels and log fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TooLarge,
    ContentType,
    MissingHeader,
    SignatureMissing,
    SignatureInvalid,
    Malformed,
    BodyRead,
    NatsUnavailable,
    DeliveryConflict,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::TooLarge,
        Reason::ContentType,
        Reason::MissingHeader,
        Reason::SignatureMissing,
        Reason::SignatureInvalid,
        Reason::Malformed,
        Reason::BodyRead,
        Reason::NatsUnavailable,
        Reason::DeliveryConflict,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::ContentType => "content_type",
            Reason::MissingHeader => "missing_header",
            Reason::SignatureMissing => "signature_missing",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::Malformed => "malformed_payload",
            Reason::BodyRead => "body_read",
            Reason::NatsUnavailable => "nats_unavailable",
            Reason::DeliveryConflict => "delivery_id_conflict",
        }
    }
    pub fn status(self) -> StatusCode {
        match self {
            Reason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::MissingHeader | Reason::Malformed | Reason::BodyRead => StatusCode::BAD_REQUEST,
            Reason::SignatureMissing | Reason::SignatureInvalid => StatusCode::UNAUTHORIZED,
            Reason::NatsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::DeliveryConflict => StatusCode::CONFLICT,
        }
    }
}

/// Publish latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters of the receiver. The Prometheus text format is written by hand ([`Metrics::render`]): a dozen
/// atomics do not justify a metrics crate and its registry/global state (the `prometheus` crate pulls in
/// protobuf; `metrics-exporter-prometheus` brings its own HTTP server), and the format is small and stable.
#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub pings: AtomicU64,
    rejected: [AtomicU64; 9],
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    cut: [AtomicU64; 2],
}

/// Why the receiver closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request head was not complete within [`HEADER_TIMEOUT`] (or the connection sat idle that long).
    HeaderTimeout,
    /// [`MAX_CONNECTIONS`] were open already.
    Cap,
}

impl Cut {
    pub const ALL: [Cut; 2] = [Cut::HeaderTimeout, Cut::Cap];
    pub fn label(self) -> &'static str {
        match self {
            Cut::HeaderTimeout => "header_timeout",
            Cut::Cap => "connection_cap",
        }
    }
}

impl Metrics {
    fn cut(&self, c: Cut) {
        self.cut[c as usize].fetch_add(1, Relaxed);
    }
    pub fn cuts(&self, c: Cut) -> u64 {
        self.cut[c as usize].load(Relaxed)
    }
    fn reject(&self, r: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|x| *x == r) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }
    pub fn rejected(&self, r: Reason) -> u64 {
        Reason::ALL
            .iter()
            .position(|x| *x == r)
            .map(|i| self.rejected[i].load(Relaxed))
            .unwrap_or(0)
    }
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::with_capacity(2048);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            &mut o,
            "ghboot_webhook_received_total",
            "Deliveries received, whatever their outcome.",
            self.received.load(Relaxed),
        );
        let _ = write!(o, "# HELP ghboot_webhook_rejected_total Deliveries refused, by reason.\n# TYPE ghboot_webhook_rejected_total counter\n");
        for (i, r) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "ghboot_webhook_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                self.rejected[i].load(Relaxed)
            );
        }
        let _ = write!(o, "# HELP ghboot_webhook_connections_closed_total Connections the receiver closed itself, by reason.\n# TYPE ghboot_webhook_connections_closed_total counter\n");
        for c in Cut::ALL {
            let _ = writeln!(
                o,
                "ghboot_webhook_connections_closed_total{{reason=\"{}\"}} {}",
                c.label(),
                self.cuts(c)
            );
        }
        counter(
            &mut o,
            "ghboot_webhook_published_total",
            "Deliveries acknowledged by JetStream (duplicates included).",
            self.published.load(Relaxed),
        );
        counter(
            &mut o,
            "ghboot_webhook_duplicates_total",
            "Deliveries JetStream already had (same delivery id).",
            self.duplicates.load(Relaxed),
        );
        counter(
            &mut o,
            "ghboot_webhook_pings_total",
            "ping events received.",
            self.pings.load(Relaxed),
        );
        let name = "ghboot_webhook_publish_seconds";
        let _ = write!(o, "# HELP {name} Time from publish to JetStream acknowledgement.\n# TYPE {name} histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "{name}_count {count}");
        o
    }
}

/// The routes, for embedding or for [`spawn`].
pub fn router(shared: Arc<Shared>) -> Router {
    let path = shared.cfg.path.clone();
    Router::new()
        .route(&path, post(deliver))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// A receiver running on a tokio task.
pub struct Running {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub task: tokio::task::JoinHandle<()>,
}

/// A client must send a whole request head within this long (also the most a keep-alive connection may
/// sit idle between two requests: hyper's head timer runs while it waits for the next head).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once (and counted) instead of starving real deliveries
/// of file descriptors.
pub const MAX_CONNECTIONS: usize = 512;

/// Serve on `listener` until `shutdown` becomes true (or its sender is dropped); in-flight deliveries are
/// finished first. This is also the entry point for ingest benchmarks.
pub fn spawn(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    tracing::info!(
        "webhook receiver listening on http://{addr}{}",
        shared.cfg.path
    );
    let app = router(shared.clone());
    let sh = shared.clone();
    let task = tokio::spawn(async move { serve(listener, app, sh, shutdown).await });
    Ok(Running { addr, shared, task })
}

/// The accept loop: HTTP/1.1 (what GitHub speaks) with a header-read timeout and a connection cap.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    sh: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => Some(r),
            _ = shutdown.wait_for(|v| *v) => None,
        };
        let stream = match accepted {
            None => break,
            Some(Ok((stream, _peer))) => stream,
            Some(Err(e)) => {
                // e.g. EMFILE: say so (at most once a second), back off a little, keep serving
                if last_accept_error.map_or(true, |t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!("webhook receiver: accept error: {e}");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            sh.metrics.cut(Cut::Cap);
            tracing::warn!(
                "webhook receiver: {MAX_CONNECTIONS} connections open; closing a new one"
            );
            drop(stream);
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing.clone();
        let sh = sh.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = b.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = closing.wait_for(|v| *v) => None,
            };
            let r = match done {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                if e.is_timeout() {
                    sh.metrics.cut(Cut::HeaderTimeout);
                    tracing::info!(
                        "webhook receiver: closed a connection whose request head did not arrive within {}s",
                        HEADER_TIMEOUT.as_secs()
                    );
                } else {
                    tracing::debug!("webhook connection: {e}");
                }
            }
        });
    }
    let _ = closing_tx.send(true);
    while conns.join_next().await.is_some() {}
}

async fn readyz(State(sh): State<Arc<Shared>>) -> Response {
    if sh.ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: NATS disconnected or stream {} missing\n",
                sh.stream
            ),
        )
            .into_response()
    }
}

async fn metrics(State(sh): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sh.metrics.render(),
    )
        .into_response()
}

struct Rejection {
    reason: Reason,
    detail: &'static str,
}

fn reject(reason: Reason, detail: &'static str) -> Rejection {
    Rejection { reason, detail }
}

/// What a delivery's payload must have for routing; the rest is relayed as raw bytes, unparsed.
#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    action: Option<serde_json::Value>,
    #[serde(default)]
    repository: Option<Repo>,
}

#[derive(Deserialize)]
struct Repo {
    name: String,
}

#[derive(Debug)]
enum Kind {
    Json,
    Form,
}

fn content_kind(h: &HeaderMap) -> Option<Kind> {
    let ct = h.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Some(Kind::Json),
        "application/x-www-form-urlencoded" => Some(Kind::Form),
        _ => None,
    }
}

/// A header value fit for a subject token / NATS header: visible ASCII, no spaces, bounded.
fn token_header<'a>(h: &'a HeaderMap, name: &str, max: usize) -> Option<&'a str> {
    let v = h.get(name)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic())).then_some(v)
}

async fn deliver(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    sh.metrics.received.fetch_add(1, Relaxed);
    let event = token_header(&headers, "x-github-event", 100);
    let delivery = token_header(&headers, "x-github-delivery", 128);
    match accept(&sh, &headers, event, delivery, body).await {
        Ok(resp) => resp,
        Err(r) => {
            sh.metrics.reject(r.reason);
            sh.recent.refused(event, delivery, r.reason.label());
            tracing::info!(reason = r.reason.label(), status = r.reason.status().as_u16(), event = ?event, delivery = ?delivery, "delivery refused: {}", r.detail);
            let mut resp = (
                r.reason.status(),
                format!("{}: {}\n", r.reason.label(), r.detail),
            )
                .into_response();
            if r.reason == Reason::TooLarge {
                // the rest of the body is not read: the connection cannot be reused
                resp.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            resp
        }
    }
}

async fn accept(
    sh: &Shared,
    headers: &HeaderMap,
    event: Option<&str>,
    delivery: Option<&str>,
    body: Body,
) -> Result<Response, Rejection> {
    let max = sh.cfg.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(reject(
            Reason::TooLarge,
            "body over the size limit (Content-Length)",
        ));
    }
    let kind = content_kind(headers).ok_or(reject(
        Reason::ContentType,
        "expected application/json or application/x-www-form-urlencoded",
    ))?;
    let event = event.ok_or(reject(
        Reason::MissingHeader,
        "X-GitHub-Event missing or invalid",
    ))?;
    let delivery = delivery.ok_or(reject(
        Reason::MissingHeader,
        "X-GitHub-Delivery missing or invalid",
    ))?;

    // Read the body, never more than `max` bytes.
    let mut raw = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(max as u64) as usize);
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + sh.cfg.body_timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| reject(Reason::BodyRead, "the body did not arrive in time"))?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| reject(Reason::BodyRead, "could not read the body"))?;
        if raw.len() + chunk.len() > max {
            return Err(reject(Reason::TooLarge, "body over the size limit"));
        }
        raw.extend_from_slice(&chunk);
    }
    let raw = raw.freeze();

    sh.verify(&raw, headers.get(verify::HEADER).map(|v| v.as_bytes()))
        .map_err(|e| match e {
            verify::Refused::Missing => {
                reject(Reason::SignatureMissing, "X-Hub-Signature-256 missing")
            }
            _ => reject(
                Reason::SignatureInvalid,
                "X-Hub-Signature-256 does not match",
            ),
        })?;

    let json: bytes::Bytes = match kind {
        Kind::Json => raw,
        Kind::Form => {
            let p = form_urlencoded::parse(&raw)
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v.into_owned());
            bytes::Bytes::from(p.ok_or(reject(
                Reason::Malformed,
                "form body without a payload field",
            ))?)
        }
    };
    // A GitHub payload is an object; serde would also take an array for a struct, so look first.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(reject(Reason::Malformed, "payload is not a JSON object"));
    }
    let meta: Meta = serde_json::from_slice(&json)
        .map_err(|_| reject(Reason::Malformed, "payload is not a JSON object"))?;
    let action = meta
        .action
        .as_ref()
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty() && a.len() <= 100 && a.bytes().all(|b| b.is_ascii_graphic()));
    // An empty name gets its own (escaped) token, never the org-level one.
    let repo = meta.repository.as_ref().map(|r| r.name.as_str());
    // GitHub caps repository names at 100 characters: a longer one is a forged or broken payload, and
    // its subject could exceed what NATS accepts on a control line (which would cost the receiver its
    // connection, and every other delivery a 503). Refused before anything is published.
    if repo.is_some_and(|r| r.chars().count() > MAX_REPO_NAME) {
        return Err(reject(
            Reason::Malformed,
            "repository.name is longer than GitHub's 100 characters",
        ));
    }
    let hook_id = token_header(headers, "x-github-hook-id", 32)
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));

    let subject = subjects::event_subject(&sh.cfg.org, repo, event);
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", delivery);
    h.insert(subjects::headers::EVENT, event);
    h.insert(subjects::headers::DELIVERY, delivery);
    if let Some(id) = hook_id {
        h.insert(subjects::headers::HOOK_ID, id);
    }
    if let Some(a) = action {
        h.insert(subjects::headers::ACTION, a);
    }
    for name in [
        "x-github-hook-installation-target-type",
        "x-github-hook-installation-target-id",
    ] {
        if let Some(v) = token_header(headers, name, 64) {
            h.insert(name, v);
        }
    }
    h.insert("Content-Type", "application/json");

    if sh.client.connection_state() != async_nats::connection::State::Connected {
        return Err(reject(Reason::NatsUnavailable, "NATS is not connected"));
    }
    // A payload NATS cannot carry would be refused on every retry: say so (413) instead of 503 forever.
    // (nats-server's max_payload defaults to 1 MB; GitHub's cap is 25 MB.)
    let max_payload = sh.client.server_info().max_payload;
    if max_payload > 0 && json.len() + 1024 > max_payload {
        tracing::warn!(delivery = ?delivery, size = json.len(), max_payload, "payload larger than the NATS server's max_payload");
        return Err(reject(
            Reason::TooLarge,
            "payload larger than the NATS server's max_payload",
        ));
    }
    let t0 = Instant::now();
    let sent = json.clone();
    let ack = async {
        let fut = sh.js.publish_with_headers(subject.clone(), h, json).await?;
        fut.await
    };
    let ack = match tokio::time::timeout(sh.cfg.ack_timeout + Duration::from_millis(500), ack).await
    {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!(delivery = ?delivery, subject = %subject, "JetStream did not acknowledge: {e}");
            return Err(reject(
                Reason::NatsUnavailable,
                "JetStream did not acknowledge",
            ));
        }
        Err(_) => {
            return Err(reject(
                Reason::NatsUnavailable,
                "JetStream acknowledgement timed out",
            ))
        }
    };
    if ack.duplicate && !same_as_stored(sh, ack.sequence, &subject, &sent).await {
        // The id names another delivery: answering `duplicate` would claim a payload was stored that was not.
        return Err(reject(
            Reason::DeliveryConflict,
            "X-GitHub-Delivery was already used for a different payload; nothing stored",
        ));
    }
    sh.metrics.observe(t0.elapsed());
    sh.metrics.published.fetch_add(1, Relaxed);
    if ack.duplicate {
        sh.metrics.duplicates.fetch_add(1, Relaxed);
    }
    sh.recent
        .stored(event, repo, delivery, &subject, ack.duplicate);
    if event == "ping" {
        sh.metrics.pings.fetch_add(1, Relaxed);
        record_ping(sh, delivery, hook_id);
    }
    tracing::info!(delivery = ?delivery, subject = %subject, seq = ack.sequence, duplicate = ack.duplicate, "delivery stored");
    let body = serde_json::json!({"stored": true, "duplicate": ack.duplicate, "stream": ack.stream, "seq": ack.sequence, "subject": subject});
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Is the message JetStream deduplicated against (its sequence is in the duplicate ack) this very delivery?
/// When it cannot be read (expired, purged, NATS gone) the benefit of the doubt goes to "the same".
async fn same_as_stored(sh: &Shared, seq: u64, subject: &str, payload: &[u8]) -> bool {
    let Ok(stream) = sh.js.get_stream_no_info(&sh.stream).await else {
        return true;
    };
    match stream.get_raw_message(seq).await {
        Ok(m) => m.subject.as_str() == subject && m.payload.as_ref() == payload,
        Err(_) => true,
    }
}

fn record_ping(sh: &Shared, delivery: &str, hook_id: Option<&str>) {
    let Ok(mut first) = sh.first_ping.lock() else {
        return;
    };
    if first.is_some() {
        return;
    }
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let p = Ping {
        at,
        delivery: delivery.to_string(),
        hook_id: hook_id.map(str::to_string),
    };
    tracing::info!(delivery = %p.delivery, hook_id = ?p.hook_id, "first ping received: the hook reaches this receiver");
    *first = Some(p.clone());
    drop(first);
    if let Some(f) = &sh.on_first_ping {
        f(&p);
    }
}
