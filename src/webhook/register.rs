//! Hook registration through GitHub's REST API (github.com or Enterprise Server), idempotently: list the
//! hooks (following `Link` pagination), match ours by `config.url`, update it only when its config or events
//! differ, create it when absent.
//!
//! GitHub masks a hook's secret as `********`, so whether the secret is the one we verify with cannot be
//! read back: the caller passes the fingerprint ([`super::verify::fingerprint`]) of the secret it set last
//! time, and a different one means an update. The token and the secret never appear in logs or errors.
//! `Retry-After` and the `x-ratelimit-*` headers are honoured (within [`GitHub::max_wait`]).

use super::verify;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

pub const DEFAULT_API: &str = "https://api.github.com";
pub const API_VERSION: &str = "2022-11-28";

/// A GitHub REST client for hooks.
pub struct GitHub {
    http: reqwest::Client,
    base: String,
    token: Secret,
    /// Longest total wait for rate limits before giving up with an error that says when to retry.
    pub max_wait: Duration,
    /// Wait after a secondary rate limit that gives no `Retry-After` (GitHub: at least a minute).
    pub secondary_wait: Duration,
    /// Longest wait for one answer; a request that takes longer is sent again (a few times).
    pub timeout: Duration,
    /// Set when a response said the primary limit is used up (`x-ratelimit-remaining: 0`): the next call
    /// waits until `x-ratelimit-reset` instead of being refused.
    exhausted_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Whose hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Org(String),
    Repo { owner: String, name: String },
}

impl Target {
    /// `owner/name` or `name` (in `org`) from `[webhook] repos`.
    pub fn repo(org: &str, spec: &str) -> Target {
        match spec.split_once('/') {
            Some((o, n)) => Target::Repo {
                owner: o.into(),
                name: n.into(),
            },
            None => Target::Repo {
                owner: org.into(),
                name: spec.into(),
            },
        }
    }
    fn hooks_path(&self) -> String {
        match self {
            Target::Org(o) => format!("/orgs/{}/hooks", seg(o)),
            Target::Repo { owner, name } => format!("/repos/{}/{}/hooks", seg(owner), seg(name)),
        }
    }
    pub fn label(&self) -> String {
        match self {
            Target::Org(o) => format!("org {o}"),
            Target::Repo { owner, name } => format!("repository {owner}/{name}"),
        }
    }
    /// A stable key for state outputs.
    pub fn key(&self) -> String {
        match self {
            Target::Org(o) => format!("org:{o}"),
            Target::Repo { owner, name } => format!("repo:{owner}/{name}"),
        }
    }
    fn permission(&self) -> &'static str {
        match self {
            Target::Org(_) => {
                "a classic token needs the admin:org_hook scope (and the token's user must be an owner of the org); \
a fine-grained token needs the organization permission \"Webhooks\" (read and write)"
            }
            Target::Repo { .. } => {
                "a classic token needs the admin:repo_hook scope (or repo); a fine-grained token needs the repository \
permission \"Webhooks\" (read and write)"
            }
        }
    }
}

fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The hook we want.
#[derive(Debug, Clone)]
pub struct Desired {
    pub url: String,
    pub events: Vec<String>,
    pub secret: Secret,
}

impl Desired {
    pub fn fingerprint(&self) -> String {
        verify::fingerprint(self.secret.expose().as_bytes())
    }
    fn config(&self) -> Value {
        json!({"url": self.url, "content_type": "json", "insecure_ssl": "0", "secret": self.secret.expose()})
    }
    fn event_set(&self) -> BTreeSet<String> {
        self.events.iter().cloned().collect()
    }
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needed {
    Create,
    Update { hook_id: u64, why: Vec<String> },
    Nothing { hook_id: u64 },
}

/// What [`ensure`] did; goes into the stage outputs (a fingerprint of the secret, never the secret).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    pub target: String,
    pub hook_id: u64,
    /// created | updated | unchanged
    pub action: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_fingerprint: String,
}

impl GitHub {
    pub fn new(base: Option<&str>, token: Secret) -> Result<Self> {
        let base = base
            .unwrap_or(DEFAULT_API)
            .trim_end_matches('/')
            .to_string();
        let parsed = url::Url::parse(&base).map_err(|_| {
            fail(
                Kind::Config,
                format!("GitHub API URL {base:?} is not a URL"),
            )
            .help("use https://api.github.com, or https://HOST/api/v3 for Enterprise Server")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(fail(
                Kind::Config,
                format!("GitHub API URL {base:?} is not http(s)"),
            )
            .help("use https://HOST/api/v3 for Enterprise Server")
            .into());
        }
        // the token travels in every request: plain http only where it cannot leave the machine (tests)
        if parsed.scheme() == "http" && !is_loopback(&parsed) {
            return Err(fail(
                Kind::Config,
                format!("GitHub API URL {base:?} is plain http to a non-loopback host"),
            )
            .help(
                "use https:// (plain http:// is accepted for 127.0.0.1, [::1] and localhost only)",
            )
            .into());
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ghboot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build an HTTP client: {e}"))?;
        Ok(GitHub {
            http,
            base,
            token,
            max_wait: Duration::from_secs(120),
            secondary_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            exhausted_until: std::sync::Mutex::new(None),
        })
    }

    /// Never lets the token or the secret through.
    fn scrub(&self, s: &str, also: &Secret) -> String {
        let mut s = s.to_string();
        for v in [self.token.expose(), also.expose()] {
            if !v.is_empty() {
                s = s.replace(v, "***");
            }
        }
        s
    }

    /// One hook API call: [`GitHub::send`], and a hook-specific error for a refusal.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        target: &Target,
        secret: &Secret,
    ) -> Result<(StatusCode, HeaderMap, Value)> {
        let a = self.call_raw(method, url, body, target).await?;
        if !a.status.is_success() {
            return Err(self.error(a.status, &a.value, target, secret));
        }
        Ok((a.status, a.headers, a.value))
    }

    /// [`Self::call`], but a non-2xx answer that is not a rate limit is returned, not turned into an error.
    async fn call_raw(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        target: &Target,
    ) -> Result<Answer> {
        let retry = "wait and run `ghboot up` again; the hook is then created or updated";
        self.send_answer(method, url, body, &target.label(), retry)
            .await
    }

    /// The API base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One API call, with rate-limit waits and a few retries of connection and server errors (callers send
    /// only idempotent requests through it, or accept a retried POST). Returns any final status: the caller
    /// maps a refusal to its own error. `what` names the object in messages; `retry_help` is the help line
    /// when the rate limit outlasts [`GitHub::max_wait`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
        retry_help: &str,
    ) -> Result<(StatusCode, HeaderMap, Value)> {
        let a = self
            .send_answer(method, url, body, what, retry_help)
            .await?;
        Ok((a.status, a.headers, a.value))
    }

    /// [`Self::send`], also telling whether a request may have reached GitHub unanswered (see [`Answer`]).
    async fn send_answer(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
        retry_help: &str,
    ) -> Result<Answer> {
        // set once a request may have reached GitHub without us seeing the answer (timeout, 5xx)
        let mut resent = false;
        let mut waited = Duration::ZERO;
        let pause = self.exhausted_until.lock().ok().and_then(|mut g| g.take());
        if let Some(wait) =
            pause.and_then(|until| until.checked_duration_since(std::time::Instant::now()))
        {
            if wait > self.max_wait {
                return Err(fail(
                    Kind::TempFail,
                    format!("GitHub rate limit used up (resets in {}s)", wait.as_secs()),
                )
                .help(retry_help)
                .into());
            }
            tracing::warn!(
                "GitHub rate limit used up: waiting {}s for the reset",
                wait.as_secs_f32().ceil()
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token.expose())
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", API_VERSION)
                .timeout(self.timeout);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < 3 && (e.is_connect() || e.is_timeout()) => {
                    resent |= e.is_timeout();
                    tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
                    continue;
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timed out"
                    } else {
                        "failed"
                    };
                    return Err(fail(
                        Kind::Unavailable,
                        format!(
                            "GitHub API request {what} ({} {})",
                            method,
                            self.path_of(url)
                        ),
                    )
                    .help(format!(
                        "check the network and the API URL {} (--github-api-url)",
                        self.base
                    ))
                    .into());
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            if status.is_success() {
                self.note_remaining(&headers);
            }
            let text = resp.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS {
                if let Some(wait) = self.rate_limit_wait(status, &headers, &value) {
                    if waited + wait <= self.max_wait && attempt < 6 {
                        tracing::warn!(
                            "GitHub rate limit on {what}: waiting {}s",
                            wait.as_secs_f32().ceil()
                        );
                        tokio::time::sleep(wait).await;
                        waited += wait;
                        continue;
                    }
                    return Err(fail(
                        Kind::TempFail,
                        format!(
                            "GitHub rate limit reached for {what} (retry in {}s)",
                            wait.as_secs()
                        ),
                    )
                    .help(retry_help)
                    .into());
                }
            }
            if status.is_server_error() && attempt < 3 {
                resent = true;
                tokio::time::sleep(Duration::from_millis(1000 * attempt as u64)).await;
                continue;
            }
            return Ok(Answer {
                status,
                headers,
                value,
                resent,
            });
        }
    }

    /// Remember an exhausted primary limit so that the next call waits for its reset.
    fn note_remaining(&self, h: &HeaderMap) {
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        if header("x-ratelimit-remaining") != Some("0") {
            return;
        }
        let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok()) else {
            return;
        };
        let secs = (reset - time::OffsetDateTime::now_utc().unix_timestamp()).max(0) as u64 + 1;
        if let Ok(mut g) = self.exhausted_until.lock() {
            *g = Some(std::time::Instant::now() + Duration::from_secs(secs));
        }
    }

    /// How long a 403/429 asks us to wait, if it is a rate limit at all.
    fn rate_limit_wait(&self, status: StatusCode, h: &HeaderMap, body: &Value) -> Option<Duration> {
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_secs(secs));
        }
        if header("x-ratelimit-remaining") == Some("0") {
            let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok())?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            return Some(Duration::from_secs((reset - now).max(0) as u64 + 1));
        }
        let msg = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if status == StatusCode::TOO_MANY_REQUESTS
            || msg.contains("secondary rate limit")
            || msg.contains("abuse")
        {
            return Some(self.secondary_wait);
        }
        None
    }

    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.base.as_str())
            .unwrap_or(url)
            .split('?')
            .next()
            .unwrap_or("")
    }

    fn error(
        &self,
        status: StatusCode,
        body: &Value,
        target: &Target,
        secret: &Secret,
    ) -> anyhow::Error {
        let message = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        let details: Vec<String> = body
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        e.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                            .or_else(|| e.as_str().map(str::to_string))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut said = message.clone();
        if !details.is_empty() {
            said = format!("{said}: {}", details.join("; "));
        }
        let said = self.scrub(&said, secret);
        let t = target.label();
        let f = match status.as_u16() {
            401 => fail(Kind::Config, format!("GitHub rejected the token (401 {said})"))
                .help(format!("set GITHUB_TOKEN to a valid token for {t}: {}", target.permission())),
            403 => fail(Kind::Config, format!("the token may not manage the hooks of {t} (403 {said})")).help(target.permission()),
            404 => fail(Kind::Config, format!("{t} not found, or the token cannot see its hooks (404)"))
                .help(format!("check the name; GitHub also answers 404 when {}", target.permission())),
            422 => fail(Kind::Config, format!("GitHub refused the hook on {t} (422 {said})")).help(
                "the URL must be reachable from GitHub (public https, not localhost) and the events valid; see --webhook-url and [webhook] events",
            ),
            _ => fail(Kind::Error, format!("GitHub API error on {t} ({} {said})", status.as_u16()))
                .help("retry later; see https://www.githubstatus.com"),
        };
        f.into()
    }

    /// All hooks of `target`, following `Link: <...>; rel="next"` (only to the same API origin).
    pub async fn list(&self, target: &Target, secret: &Secret) -> Result<Vec<Value>> {
        let mut url = format!("{}{}?per_page=100", self.base, target.hooks_path());
        let mut out = Vec::new();
        for _ in 0..100 {
            let (_, headers, v) = self.call(Method::GET, &url, None, target, secret).await?;
            match v {
                Value::Array(a) => out.extend(a),
                _ => {
                    return Err(fail(
                        Kind::Data,
                        format!(
                            "GitHub answered the hook list of {} with something that is not a list",
                            target.label()
                        ),
                    )
                    .into())
                }
            }
            match next_link(&headers).filter(|n| same_origin(n, &self.base)) {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    /// What would have to change for `want` to hold on `target` (reads only).
    pub async fn inspect(
        &self,
        target: &Target,
        want: &Desired,
        known_fingerprint: Option<&str>,
    ) -> Result<Needed> {
        let hooks = self.list(target, &want.secret).await?;
        Ok(match find_hook(&hooks, want) {
            Some(h) => compare(h, want, known_fingerprint),
            None => Needed::Create,
        })
    }

    /// Make `want` hold on `target`: create, update (one PATCH) or leave alone.
    pub async fn ensure(
        &self,
        target: &Target,
        want: &Desired,
        known_fingerprint: Option<&str>,
    ) -> Result<Registered> {
        let needed = self.inspect(target, want, known_fingerprint).await?;
        let events: Vec<String> = want.event_set().into_iter().collect();
        let (hook_id, action) = match needed {
            Needed::Nothing { hook_id } => (hook_id, "unchanged"),
            Needed::Update { hook_id, why } => {
                self.update(target, want, hook_id, &why).await?;
                (hook_id, "updated")
            }
            Needed::Create => self.create(target, want).await?,
        };
        Ok(Registered {
            target: target.key(),
            hook_id,
            action: action.into(),
            url: want.url.clone(),
            events,
            secret_fingerprint: want.fingerprint(),
        })
    }

    async fn update(
        &self,
        target: &Target,
        want: &Desired,
        hook_id: u64,
        why: &[String],
    ) -> Result<()> {
        tracing::info!(
            "updating the hook on {} ({})",
            target.label(),
            why.join(", ")
        );
        let events: Vec<String> = want.event_set().into_iter().collect();
        let url = format!("{}{}/{hook_id}", self.base, target.hooks_path());
        let body = json!({"config": want.config(), "events": events, "active": true});
        self.call(Method::PATCH, &url, Some(&body), target, &want.secret)
            .await?;
        Ok(())
    }

    /// POST the hook. GitHub answers 422 "Hook already exists" when one with the URL appeared since the list:
    /// our own earlier attempt whose answer was lost (a timeout, a 5xx), or someone else's. Either way the hook
    /// is adopted rather than reported as a URL problem; only when the lost attempt was ours is its secret known
    /// to be the one we sent, otherwise (or when it differs in anything else) it is updated to ours.
    async fn create(&self, target: &Target, want: &Desired) -> Result<(u64, &'static str)> {
        let events: Vec<String> = want.event_set().into_iter().collect();
        let url = format!("{}{}", self.base, target.hooks_path());
        let body =
            json!({"name": "web", "config": want.config(), "events": events, "active": true});
        let a = self
            .call_raw(Method::POST, &url, Some(&body), target)
            .await?;
        if a.status.is_success() {
            return Ok((
                a.value
                    .get("id")
                    .and_then(|i| i.as_u64())
                    .unwrap_or_default(),
                "created",
            ));
        }
        if a.status != StatusCode::UNPROCESSABLE_ENTITY || !already_exists(&a.value) {
            return Err(self.error(a.status, &a.value, target, &want.secret));
        }
        let hooks = self.list(target, &want.secret).await?;
        let Some(h) = find_hook(&hooks, want) else {
            // it exists for GitHub but not in the list: nothing to adopt, say what GitHub said
            return Err(self.error(a.status, &a.value, target, &want.secret));
        };
        let ours = a.resent.then(|| want.fingerprint());
        match compare(h, want, ours.as_deref()) {
            Needed::Nothing { hook_id } => {
                tracing::info!(
                    "adopted hook {hook_id} on {} (created by a request whose answer was lost)",
                    target.label()
                );
                Ok((hook_id, "created"))
            }
            Needed::Update { hook_id, mut why } => {
                why.insert(0, "adopting a hook created concurrently".into());
                self.update(target, want, hook_id, &why).await?;
                Ok((hook_id, "updated"))
            }
            Needed::Create => Err(self.error(a.status, &a.value, target, &want.secret)),
        }
    }
}

/// One HTTP answer, and whether the request may have been sent more than once.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    value: Value,
    resent: bool,
}

/// GitHub's 422 for a second hook with the same URL: `{"message": "Validation Failed", "errors":
/// [{"message": "Hook already exists on this organization"}]}` (repository: "on this repository").
fn already_exists(body: &Value) -> bool {
    let mut texts = vec![body.get("message").and_then(|m| m.as_str()).unwrap_or("")];
    if let Some(errors) = body.get("errors").and_then(|e| e.as_array()) {
        for e in errors {
            texts.extend(e.get("message").and_then(|m| m.as_str()).or(e.as_str()));
        }
    }
    texts
        .iter()
        .any(|t| t.to_ascii_lowercase().contains("hook already exists"))
}

fn find_hook<'a>(hooks: &'a [Value], want: &Desired) -> Option<&'a Value> {
    hooks
        .iter()
        .find(|h| h.pointer("/config/url").and_then(|u| u.as_str()) == Some(want.url.as_str()))
}

/// What would have to change on hook `h` for `want` to hold.
fn compare(h: &Value, want: &Desired, known_fingerprint: Option<&str>) -> Needed {
    let hook_id = h.get("id").and_then(|i| i.as_u64()).unwrap_or_default();
    let mut why = Vec::new();
    if h.get("active").and_then(|a| a.as_bool()) != Some(true) {
        why.push("inactive".to_string());
    }
    let have: BTreeSet<String> = h
        .get("events")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if have != want.event_set() {
        why.push(format!("events {:?} -> {:?}", have, want.event_set()));
    }
    let ct = h
        .pointer("/config/content_type")
        .and_then(|v| v.as_str())
        .unwrap_or("form");
    if ct != "json" {
        why.push(format!("content_type {ct} -> json"));
    }
    let ssl = match h.pointer("/config/insecure_ssl") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    };
    if ssl != "0" {
        why.push("insecure_ssl -> 0".into());
    }
    match h.pointer("/config/secret") {
        None | Some(Value::Null) => why.push("no secret set".into()),
        Some(_) if known_fingerprint != Some(want.fingerprint().as_str()) => {
            why.push("secret differs from the one ghboot verifies with".into())
        }
        Some(_) => {}
    }
    if why.is_empty() {
        Needed::Nothing { hook_id }
    } else {
        Needed::Update { hook_id, why }
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(h: &HeaderMap) -> Option<String> {
    let link = h.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// 127.0.0.0/8, ::1 or localhost.
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://api.github.com/orgs/a/hooks?page=2>; rel=\"next\", <https://api.github.com/orgs/a/hooks?page=5>; rel=\"last\"".parse().unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/orgs/a/hooks?page=2")
        );
        h.insert(
            "link",
            "<https://api.github.com/orgs/a/hooks?page=1>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::repo("acme", "x.y"),
            Target::Repo {
                owner: "acme".into(),
                name: "x.y".into()
            }
        );
        assert_eq!(Target::repo("acme", "o/r").hooks_path(), "/repos/o/r/hooks");
        assert_eq!(Target::Org("acme".into()).hooks_path(), "/orgs/acme/hooks");
        assert!(!same_origin(
            "https://evil.example/x",
            "https://api.github.com"
        ));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let t = || Secret::new("t");
        assert!(GitHub::new(Some("http://127.0.0.1:9/api"), t()).is_ok());
        assert!(GitHub::new(Some("http://[::1]:9"), t()).is_ok());
        assert!(GitHub::new(Some("http://localhost:9"), t()).is_ok());
        assert!(GitHub::new(Some("https://ghe.example/api/v3"), t()).is_ok());
        assert!(GitHub::new(Some("http://ghe.example/api/v3"), t()).is_err());
        assert!(GitHub::new(Some("http://10.0.0.1/api/v3"), t()).is_err());
    }
}
