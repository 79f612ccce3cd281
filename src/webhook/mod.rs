//! Webhook ingress: verified GitHub deliveries into JetStream, exactly once per delivery id.
//!
//! - [`verify`]: the `X-Hub-Signature-256` HMAC, constant-time.
//! - [`receive`]: the axum receiver (`POST <path>`, `/healthz`, `/readyz`, `/metrics`); [`receive::spawn`]
//!   is also the library entry point for benchmarks.
//! - [`register`]: idempotent org/repo hook registration through GitHub's REST API.
//! - [`send`]: sign and post a delivery (`ghboot webhook send`).
//!
//! The secret is the operator's (`GHBOOT_WEBHOOK_SECRET`, or `[webhook] secret_file`) or generated once into
//! the state dir (0600). It is never logged, never recorded; state files keep only [`verify::fingerprint`].

pub mod receive;
pub mod recent;
pub mod register;
pub mod send;
pub mod verify;

use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/webhook";
/// GitHub does not deliver payloads over 25 MB; neither do we accept them.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// The `[webhook]` table of ghboot.toml, validated.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub path: String,
    /// Repositories (`owner/name`, or `name` in the org) to hook instead of the org.
    pub repos: Vec<String>,
    pub secret_file: Option<PathBuf>,
    /// Events the registered hook subscribes to.
    pub events: Vec<String>,
    pub public_url: Option<String>,
}

const KNOWN_KEYS: [&str; 6] = [
    "port",
    "path",
    "repos",
    "secret_file",
    "events",
    "public_url",
];

impl WebhookConfig {
    pub fn from_settings(s: &Settings) -> Result<Self> {
        let t = &s.file.webhook;
        let bad = |key: &str, want: &str| -> anyhow::Error {
            fail(Kind::Config, format!("[webhook] {key} must be {want}"))
                .help("fix ghboot.toml; see README.md")
                .into()
        };
        if let Some(k) = t.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(fail(
                Kind::Config,
                format!("unknown key [webhook] {k} in ghboot.toml"),
            )
            .help(format!("known keys: {}", KNOWN_KEYS.join(", ")))
            .into());
        }
        let string = |key: &str| -> Result<Option<String>> {
            match t.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| bad(key, "a string")),
            }
        };
        let list = |key: &str| -> Result<Option<Vec<String>>> {
            match t.get(key) {
                None => Ok(None),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad(key, "a list of strings"))
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some),
                Some(_) => Err(bad(key, "a list of strings")),
            }
        };
        let path = string("path")?.unwrap_or_else(|| DEFAULT_PATH.into());
        validate_path(&path)?;
        let events = list("events")?.unwrap_or_else(|| vec!["*".into()]);
        if events.is_empty() {
            return Err(bad("events", "a non-empty list (\"*\" for all events)"));
        }
        let repos = list("repos")?.unwrap_or_default();
        for r in &repos {
            let ok =
                !r.is_empty() && r.split('/').count() <= 2 && r.split('/').all(|p| !p.is_empty());
            if !ok {
                return Err(bad("repos", "a list of `owner/name` or `name`"));
            }
        }
        let secret_file = string("secret_file")?.map(PathBuf::from).map(|p| {
            match (&s.config_file, p.is_relative()) {
                (Some(cfg), true) => cfg.parent().map(|d| d.join(&p)).unwrap_or(p),
                _ => p,
            }
        });
        let public_url = s.webhook_public_url.clone().or(string("public_url")?);
        Ok(WebhookConfig {
            path,
            repos,
            secret_file,
            events,
            public_url,
        })
    }
}

pub fn validate_path(path: &str) -> Result<()> {
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.contains(['?', '#', ' ', '{', '}', '*'])
        && !["/healthz", "/readyz", "/metrics"].contains(&path);
    if ok {
        Ok(())
    } else {
        Err(fail(
            Kind::Config,
            format!("webhook path {path:?} is not a URL path"),
        )
        .help("use something like /webhook")
        .into())
    }
}

/// Where the webhook secret came from (recorded; the secret itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Env,
    File,
    Generated,
}

/// The secret to verify with, if there is one yet (does not generate).
pub fn load_secret(s: &Settings, cfg: &WebhookConfig) -> Result<Option<(Secret, SecretSource)>> {
    if let Some(sec) = &s.webhook_secret {
        return Ok(Some((sec.clone(), SecretSource::Env)));
    }
    if let Some(p) = &cfg.secret_file {
        let sec = crate::secret::read_secret_file(p).map_err(|e| {
            fail(
                Kind::Config,
                format!("cannot read the webhook secret file {}: {e:#}", p.display()),
            )
            .help("fix [webhook] secret_file in ghboot.toml")
        })?;
        return Ok(Some((non_empty(sec, p)?, SecretSource::File)));
    }
    let p = s.layout.webhook_secret_file();
    match std::fs::metadata(&p) {
        Ok(_) => Ok(Some((
            crate::secret::ensure_private_file(&p)
                .and_then(|_| crate::secret::read_secret_file(&p))
                .and_then(|sec| non_empty(sec, &p))?,
            SecretSource::Generated,
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", p.display()))),
    }
}

fn non_empty(sec: Secret, p: &std::path::Path) -> Result<Secret> {
    if sec.expose().is_empty() {
        return Err(fail(
            Kind::Data,
            format!("the webhook secret file {} is empty", p.display()),
        )
        .help("put the secret in it, or remove it to have one generated")
        .into());
    }
    Ok(sec)
}

/// The secret, generated into the state dir (0600) on first use when the operator supplied none.
pub fn ensure_secret(s: &Settings, cfg: &WebhookConfig) -> Result<(Secret, SecretSource)> {
    if let Some(found) = load_secret(s, cfg)? {
        return Ok(found);
    }
    let sec = Secret::generate(40);
    crate::fsutil::create_private_dir(&s.layout.secrets_dir())?;
    crate::secret::write_private(&s.layout.webhook_secret_file(), sec.expose().as_bytes())?;
    Ok((sec, SecretSource::Generated))
}

/// `http://HOST:PORT/PATH` for a receiver bound to `bind`.
pub fn local_url(bind: &str, port: u16, path: &str) -> String {
    let host = crate::deploy::dev::url_host(bind);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("http://{host}:{port}{path}")
}

/// Base of a receiver URL (scheme, host, port), for `/healthz` and `/readyz`.
pub fn base_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        host,
        u.port_or_known_default()?
    ))
}

/// The instance's receiver URL as the live supervisor recorded it.
pub fn recorded_url(s: &Settings) -> Option<String> {
    let rt = crate::state::Runtime::load(&s.layout).filter(|r| r.supervisor_alive())?;
    rt.components
        .get("webhook")?
        .get("url")?
        .as_str()
        .map(str::to_string)
}

/// Is the receiver at `url` ready (NATS connected and events stream present)? `None`: not answering at all.
pub async fn probe_ready(url: &str) -> Option<bool> {
    let base = base_of(url)?;
    let client = crate::natsd::supervise::http_client();
    let r = client.get(format!("{base}/readyz")).send().await.ok()?;
    Some(r.status().is_success())
}

/// The receiver URL of an instance: the live one, else the one the stage last recorded.
pub fn instance_url(s: &Settings) -> Option<String> {
    recorded_url(s).or_else(|| {
        let st = crate::state::StateFile::load(&s.layout).ok().flatten()?;
        st.stage("webhooks")?
            .outputs
            .get("url")?
            .as_str()
            .map(str::to_string)
    })
}

/// `webhook` in `status --json`: `{url, ready}` (ready read live from `/readyz`). Never the secret.
pub async fn status(s: &Settings, state: &crate::state::StateFile) -> serde_json::Value {
    let recorded = state.stage("webhooks").map(|r| &r.outputs);
    // a receiver container keeps running without a supervisor: its recorded URL is live too
    let in_container = recorded
        .and_then(|o| o.get("hosting"))
        .is_some_and(|h| h == "container");
    let from_state = recorded
        .and_then(|o| o.get("url"))
        .and_then(|u| u.as_str())
        .map(str::to_string);
    let live = recorded_url(s).or_else(|| from_state.clone().filter(|_| in_container));
    let url = live.clone().or(from_state);
    let ready = match &live {
        Some(u) => probe_ready(u).await.unwrap_or(false),
        None => false,
    };
    serde_json::json!({"url": url, "ready": ready})
}
