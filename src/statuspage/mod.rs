//! The status page: the supervisor serves a live view of the instance (stages, NATS, deliveries, controller
//! and dead letters with a Replay button) on a loopback listener of its own, never on the webhook port
//! (which may be forwarded to the internet).
//!
//! - HTML is rendered on the server ([`render`], minijinja templates from `assets/statuspage/`), so the page
//!   reads without JavaScript; a small script then swaps in the live part from `GET /events`
//!   (server-sent events, at most one per second, only when something changed).
//! - Safety: bound to 127.0.0.1 unless `GHBOOT_UI_BIND` says otherwise. Every request must name this
//!   listener in its `Host` header (a DNS-rebinding page cannot talk to it). State-changing requests
//!   (replay) need the per-instance token (`secrets/ui-token`, 0600; carried in the URL `ghboot ui`
//!   prints, like Jupyter's) and a same-origin browser context (`Origin`, `Sec-Fetch-Site`). Bound
//!   anywhere but loopback, every page needs the token. The token is never logged.

pub mod render;
pub mod snapshot;

use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use crate::webhook::receive;
use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The request header that carries the token for scripts (the page's own script sets it).
pub const TOKEN_HEADER: &str = "x-ghboot-token";
/// How often the live part may change: the "no faster than once a second".
const TICK: Duration = Duration::from_secs(1);

/// What the supervisor's other parts hand to the page (they start after it).
#[derive(Clone, Default)]
pub struct Feeds {
    receiver: Arc<Mutex<Option<Arc<receive::Shared>>>>,
}

impl Feeds {
    pub fn set_receiver(&self, shared: Arc<receive::Shared>) {
        if let Ok(mut r) = self.receiver.lock() {
            *r = Some(shared);
        }
    }
    pub fn receiver(&self) -> Option<Arc<receive::Shared>> {
        self.receiver.lock().ok().and_then(|r| r.clone())
    }
}

/// Where the page listens: `GHBOOT_UI_BIND` (default 127.0.0.1) and `GHBOOT_UI_PORT` (default: a free port).
#[derive(Debug, Clone)]
pub struct Options {
    pub bind: IpAddr,
    pub port: u16,
}

impl Options {
    pub fn from_env() -> Result<Options> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let bind = match var("GHBOOT_UI_BIND") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(b) => b.trim().parse().map_err(|_| {
                fail(
                    Kind::Config,
                    format!("GHBOOT_UI_BIND {b:?} is not an IP address"),
                )
                .help("unset it (the page then listens on 127.0.0.1), or give an address such as 127.0.0.1")
            })?,
        };
        let port = match var("GHBOOT_UI_PORT") {
            None => 0,
            Some(p) => p.trim().parse().map_err(|_| {
                fail(Kind::Config, format!("GHBOOT_UI_PORT {p:?} is not a port"))
                    .help("give a port number (1-65535), or unset it for a free port")
            })?,
        };
        Ok(Options { bind, port })
    }
}

/// The instance's token, made on first use (0600 in the state dir's secrets).
pub fn ensure_token(settings: &Settings) -> Result<Secret> {
    if let Some(t) = load_token(settings) {
        return Ok(t);
    }
    let t = Secret::generate(32);
    crate::fsutil::create_private_dir(&settings.layout.secrets_dir())?;
    crate::secret::write_private(&settings.layout.ui_token_file(), t.expose().as_bytes())?;
    Ok(t)
}

pub fn load_token(settings: &Settings) -> Option<Secret> {
    crate::secret::read_secret_file(&settings.layout.ui_token_file())
        .ok()
        .filter(|t| !t.expose().is_empty())
}

/// The page's URL as the live supervisor recorded it (no token).
pub fn recorded_url(settings: &Settings) -> Option<String> {
    let rt = crate::state::Runtime::load(&settings.layout).filter(|r| r.supervisor_alive())?;
    rt.components
        .get("ui")?
        .get("url")?
        .as_str()
        .map(str::to_string)
}

/// The URL to open: the recorded one with the token in its query.
pub fn url_with_token(settings: &Settings) -> Option<String> {
    let url = recorded_url(settings)?;
    let token = load_token(settings)?;
    let mut u = url::Url::parse(&url).ok()?;
    u.query_pairs_mut().append_pair("token", token.expose());
    Some(u.to_string())
}

pub struct Started {
    pub url: String,
    pub port: u16,
    pub bind: IpAddr,
    pub task: tokio::task::JoinHandle<()>,
}

struct App {
    settings: Settings,
    token: Secret,
    port: u16,
    loopback: bool,
    snap: snapshot::Source,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Listen and serve until `shutdown` becomes true. Called by the supervisor before its stages run, so the
/// page shows the bootstrap as it happens.
pub async fn start(
    settings: &Settings,
    opts: &Options,
    feeds: Feeds,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Started> {
    let token = ensure_token(settings)?;
    let addr = SocketAddr::new(opts.bind, opts.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot listen for the status page on {addr}: {e}"),
        )
        .help("set GHBOOT_UI_PORT to a free port (or unset it), or stop what uses this one")
    })?;
    let port = listener.local_addr()?.port();
    let url = crate::webhook::local_url(&opts.bind.to_string(), port, "/");
    let app = Arc::new(App {
        settings: settings.clone(),
        snap: snapshot::Source::new(settings.clone(), feeds),
        token,
        port,
        loopback: opts.bind.is_loopback(),
        shutdown: shutdown.clone(),
    });
    let router = router(app);
    let mut stop = shutdown;
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("status page stopped: {e}");
        }
    });
    Ok(Started {
        url,
        port,
        bind: opts.bind,
        task,
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/api/status", get(status_json))
        .route("/api/dlq/{id}/replay", post(replay))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .with_state(app)
}

/// Why a request is refused: status and a one-line text (never the token).
type Refusal = (StatusCode, &'static str);

impl App {
    /// The `Host` header must name this listener: a page on another origin that rebinds its DNS name to
    /// 127.0.0.1 sends its own name and is refused.
    fn check_host(&self, h: &HeaderMap) -> Result<(), Refusal> {
        if !self.loopback {
            return Ok(()); // every page needs the token then; the operator chose the names
        }
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ok = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|n| host == format!("{n}:{}", self.port));
        if ok {
            Ok(())
        } else {
            Err((
                StatusCode::MISDIRECTED_REQUEST,
                "this page answers only on 127.0.0.1, localhost or [::1] with its own port\n",
            ))
        }
    }

    fn token_ok(&self, presented: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.token.expose().as_bytes())))
    }

    /// For reading pages: the host check, and the token when bound anywhere but loopback. Returns whether
    /// the request carried the token (the page then renders working Replay buttons).
    fn read_access(&self, h: &HeaderMap, q: &Option<String>) -> Result<bool, Refusal> {
        self.check_host(h)?;
        let authorized = self.token_ok(presented_token(h, q.as_deref(), None).as_deref());
        if !self.loopback && !authorized {
            return Err((
                StatusCode::FORBIDDEN,
                "this page is not bound to loopback: open the URL `ghboot ui` prints (it carries the token)\n",
            ));
        }
        Ok(authorized)
    }
}

fn presented_token(h: &HeaderMap, query: Option<&str>, form: Option<&[u8]>) -> Option<String> {
    if let Some(v) = h.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    let from = |b: &[u8]| {
        form_urlencoded::parse(b)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    };
    query
        .and_then(|q| from(q.as_bytes()))
        .or_else(|| form.and_then(from))
}

/// A state-changing request must come from the page itself: a browser names the page's origin in `Origin`
/// and says `same-origin` in `Sec-Fetch-Site`. A client that sends neither (curl with the token) is not a
/// browser a foreign page could drive.
fn same_origin(h: &HeaderMap) -> bool {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(o) = h.get(header::ORIGIN) {
        let want = format!("http://{host}");
        if o.to_str().ok() != Some(want.as_str()) {
            return false;
        }
    }
    match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => false,
    }
}

fn refuse((code, text): Refusal) -> Response {
    (code, text).into_response()
}

/// Pages carry a token: no caching, no referrer, no framing by another origin.
fn private(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

async fn index(State(app): State<Arc<App>>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let authorized = match app.read_access(&h, &q) {
        Ok(a) => a,
        Err(r) => return refuse(r),
    };
    let snap = app.snap.get().await;
    let token = authorized.then(|| app.token.expose());
    match render::page(&snap, token) {
        Ok(html) => {
            private(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
        }
        Err(e) => {
            tracing::warn!("status page: cannot render: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the page\n",
            )
                .into_response()
        }
    }
}

async fn status_json(State(app): State<Arc<App>>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = app.read_access(&h, &q) {
        return refuse(r);
    }
    let snap = app.snap.get().await;
    private(axum::Json((*snap).clone()).into_response())
}

/// The live part of the page, rendered on the server, sent when it changed (checked once a second).
async fn events(State(app): State<Arc<App>>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let authorized = match app.read_access(&h, &q) {
        Ok(a) => a,
        Err(r) => return refuse(r),
    };
    let mut stop = app.shutdown.clone();
    let app2 = app.clone();
    let stream = futures::stream::unfold(
        (app2, String::new(), true),
        move |(app, last, first)| async move {
            if !first {
                tokio::time::sleep(TICK).await;
            }
            let snap = app.snap.get().await;
            let token = authorized.then(|| app.token.expose());
            let html = render::live(&snap, token).unwrap_or_else(|e| {
                tracing::warn!("status page: cannot render: {e:#}");
                String::new()
            });
            let at = snap["at"].as_str().unwrap_or_default().to_string();
            // the page itself only when it changed (a swap every second would close what the reader opened);
            // the time of the check always
            let mut evs = Vec::with_capacity(2);
            if html != last || first {
                evs.push(Event::default().event("live").data(html.clone()));
            }
            evs.push(Event::default().event("tick").data(at));
            Some((evs, (app, html, false)))
        },
    )
    .flat_map(|evs| futures::stream::iter(evs.into_iter().map(Ok::<_, std::convert::Infallible>)))
    .take_until(async move {
        // the supervisor's graceful shutdown waits for open connections: end the stream when it stops
        let _ = stop.wait_for(|v| *v).await;
    });
    private(
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response(),
    )
}

async fn replay(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = app.check_host(&h) {
        return refuse(r);
    }
    let form = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let presented = presented_token(&h, q.as_deref(), form.then_some(&body[..]));
    if !app.token_ok(presented.as_deref()) {
        tracing::info!("status page: replay refused: no valid token");
        return refuse((
            StatusCode::FORBIDDEN,
            "replay needs the page's token: open the URL `ghboot ui` prints\n",
        ));
    }
    if !same_origin(&h) {
        tracing::info!("status page: replay refused: not from the page's own origin");
        return refuse((
            StatusCode::FORBIDDEN,
            "replay must come from the status page itself (Origin / Sec-Fetch-Site)\n",
        ));
    }
    let Ok(id) = id.parse::<u64>() else {
        return (StatusCode::BAD_REQUEST, "the dead-letter id is a number\n").into_response();
    };
    let result = async {
        let client = app.snap.client().await?;
        let js = crate::deploy::jetstream(&app.settings, client);
        crate::controller::dlq::replay(&js, &app.settings.org, id).await
    }
    .await;
    app.snap.invalidate();
    match result {
        Ok(seq) => {
            tracing::info!("status page: replayed dead letter {id} (events stream sequence {seq})");
            if form {
                // a browser without the script: back to the page (the token stays in the tab's URL)
                let back = format!(
                    "/?token={}#dead-letters",
                    form_urlencoded::byte_serialize(app.token.expose().as_bytes())
                        .collect::<String>()
                );
                return private(
                    (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response(),
                );
            }
            axum::Json(serde_json::json!({"replayed": id, "sequence": seq})).into_response()
        }
        Err(e) => {
            let code = match crate::error::find_failure(&e).map(|f| f.kind) {
                Some(Kind::NoInput) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_GATEWAY,
            };
            (
                code,
                axum::Json(serde_json::json!({"error": format!("{e:#}")})),
            )
                .into_response()
        }
    }
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/statuspage/app.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/statuspage/style.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn only_the_pages_own_origin_may_change_state() {
        let own = [("host", "127.0.0.1:8000")];
        assert!(
            same_origin(&headers(&own)),
            "curl with the token: no browser involved"
        );
        assert!(same_origin(&headers(&[
            own[0],
            ("origin", "http://127.0.0.1:8000"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            own[0],
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            own[0],
            ("origin", "http://127.0.0.1:8001")
        ])));
        assert!(!same_origin(&headers(&[
            own[0],
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            own[0],
            ("sec-fetch-site", "same-site")
        ])));
    }

    #[test]
    fn the_token_comes_from_header_query_or_form() {
        let h = headers(&[("x-ghboot-token", "a")]);
        assert_eq!(
            presented_token(&h, Some("token=b"), None).as_deref(),
            Some("a")
        );
        let none = HeaderMap::new();
        assert_eq!(
            presented_token(&none, Some("x=1&token=b"), None).as_deref(),
            Some("b")
        );
        assert_eq!(
            presented_token(&none, None, Some(b"token=c%2Fd")).as_deref(),
            Some("c/d")
        );
        assert_eq!(presented_token(&none, Some("x=1"), Some(b"id=3")), None);
    }
}
