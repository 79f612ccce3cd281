//! Stage: webhook ingress into JetStream, and hook registration.
//!
//! As host (`up` supervising): start the receiver in-process (a task stopped by `Host.shutdown`), on
//! `--webhook-port` or a free port that is then kept, and record it in the runtime file
//! (`components.webhook`). As client (a supervisor runs elsewhere): check the receiver answers with the
//! expected port, path and secret, else the supervisor must be restarted.
//!
//! With `GITHUB_TOKEN` and a public URL (`--webhook-url`) the org hook (or the hooks of `[webhook] repos`) is
//! created or updated; without them the stage completes as "local only" and says how to forward deliveries.

use crate::config::Settings;
use crate::deploy::Hosting;
use crate::engine::{Change, Ctx, NeedsRestart, Outputs, Role, Stage, Verdict};
use crate::error::{fail, Kind};
use crate::state::{Runtime, StageStatus, StateFile};
use crate::topology::subjects;
use crate::webhook::register::{Desired, GitHub, Needed, Registered, Target};
use crate::webhook::{self, receive, verify, WebhookConfig};
use anyhow::Result;
use serde_json::json;

pub struct Webhooks;

const NAME: &str = "webhooks";

/// The receiver the settings ask for, and what to compare a running one with.
struct Wanted {
    cfg: WebhookConfig,
    fingerprint: Option<String>,
}

fn wanted(s: &Settings) -> Result<Wanted> {
    let cfg = WebhookConfig::from_settings(s)?;
    let fingerprint =
        webhook::load_secret(s, &cfg)?.map(|(sec, _)| verify::fingerprint(sec.expose().as_bytes()));
    Ok(Wanted { cfg, fingerprint })
}

/// Why the running receiver (per the runtime file) is not the wanted one; None when it is.
async fn receiver_mismatch(s: &Settings, w: &Wanted) -> Option<String> {
    let rt = Runtime::load(&s.layout).filter(|r| r.supervisor_alive());
    let Some(comp) = rt.as_ref().and_then(|r| r.components.get("webhook")) else {
        return Some("the webhook receiver is not running".into());
    };
    let url = comp.get("url").and_then(|u| u.as_str()).unwrap_or_default();
    let port = comp.get("port").and_then(|p| p.as_u64()).map(|p| p as u16);
    if let Some(p) = s.webhook_port.filter(|p| Some(*p) != port) {
        return Some(format!("webhook port {} -> {p}", port.unwrap_or_default()));
    }
    let path = comp
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    if path != w.cfg.path {
        return Some(format!("webhook path {path} -> {}", w.cfg.path));
    }
    let bind = comp
        .get("bind")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    if bind != s.bind {
        return Some(format!("webhook bind address {bind} -> {}", s.bind));
    }
    let fp = comp.get("secret_fingerprint").and_then(|p| p.as_str());
    if w.fingerprint.is_some() && fp != w.fingerprint.as_deref() {
        return Some("the webhook secret changed".into());
    }
    if webhook::probe_ready(url).await.is_none() {
        return Some(format!("the webhook receiver at {url} does not answer"));
    }
    None
}

/// Registration targets, when registration is asked for (token and public URL).
fn targets(s: &Settings, cfg: &WebhookConfig) -> Result<Vec<Target>> {
    if cfg.repos.is_empty() {
        if s.org_defaulted || s.org == crate::config::LOCAL_ORG {
            return Err(
                fail(Kind::Config, "registering a GitHub hook needs a GitHub org")
                    .help("pass --org ORG (or GITHUB_ORG), or list repositories in [webhook] repos")
                    .into(),
            );
        }
        return Ok(vec![Target::Org(s.org.clone())]);
    }
    Ok(cfg.repos.iter().map(|r| Target::repo(&s.org, r)).collect())
}

fn registration_asked(s: &Settings, cfg: &WebhookConfig) -> bool {
    s.github_token.is_some() && cfg.public_url.is_some()
}

/// Registrations recorded by the last successful apply.
fn recorded_registrations(state: &StateFile) -> Vec<Registered> {
    state
        .stage(NAME)
        .and_then(|r| r.outputs.get("registrations"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn github(s: &Settings) -> Result<Option<GitHub>> {
    match &s.github_token {
        Some(t) => Ok(Some(GitHub::new(s.github_api_url.as_deref(), t.clone())?)),
        None => Ok(None),
    }
}

/// How to get real deliveries to a local-only receiver: the commands, one per line.
pub fn forward_hint(s: &Settings, cfg: &WebhookConfig, url: &str) -> Vec<String> {
    let who = if !cfg.repos.is_empty() {
        let r = &cfg.repos[0];
        format!(
            "--repo={}",
            if r.contains('/') {
                r.clone()
            } else {
                format!("{}/{r}", s.org)
            }
        )
    } else if s.org_defaulted || s.org == crate::config::LOCAL_ORG {
        "--org=YOUR_ORG".to_string()
    } else {
        format!("--org={}", s.org)
    };
    // a command that works as printed: this executable, this instance
    let secret = crate::ui::command_for(s, "webhook secret");
    vec![
        format!("gh webhook forward {who} --events='*' --url={url} --secret=\"$({secret})\""),
        format!("smee --url https://smee.io/CHANNEL --target {url}   (hook secret: `{secret}`)"),
    ]
}

/// Rows for the `up` summary box.
pub fn summary_rows(s: &Settings) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    let Ok(Some(state)) = StateFile::load(&s.layout) else {
        return rows;
    };
    let Some(rec) = state.stage(NAME).filter(|r| r.status == StageStatus::Done) else {
        return rows;
    };
    if let Some(u) = webhook::recorded_url(s).or_else(|| {
        rec.outputs
            .get("url")
            .and_then(|u| u.as_str())
            .map(str::to_string)
    }) {
        rows.push(("webhook", u));
    }
    if rec.outputs.get("local_only").and_then(|v| v.as_bool()) == Some(true) {
        rows.push((
            "github hook",
            "none (local only: registering needs GITHUB_TOKEN and --webhook-url)".into(),
        ));
        let lines = rec
            .outputs
            .get("forward")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        for (i, l) in lines.iter().filter_map(|l| l.as_str()).enumerate() {
            rows.push((if i == 0 { "forward with" } else { "  or" }, l.to_string()));
        }
    } else if let Some(p) = rec.outputs.get("public_url").and_then(|v| v.as_str()) {
        rows.push(("github hook", p.to_string()));
    }
    rows
}

/// Start the receiver in this (supervising) process.
async fn start_receiver(ctx: &mut Ctx, cfg: &WebhookConfig) -> Result<Outputs> {
    let s = ctx.settings.clone();
    let (secret, source) = webhook::ensure_secret(&s, cfg)?;
    let fingerprint = verify::fingerprint(secret.expose().as_bytes());
    // least privilege: the receiver's user may only publish deliveries
    let client = crate::natsd::users::receiver_client(ctx).await?;
    let ip: std::net::IpAddr = s.bind.parse().map_err(|_| {
        fail(
            Kind::Config,
            format!("--bind {:?} is not an IP address", s.bind),
        )
    })?;
    let addr = std::net::SocketAddr::new(ip, s.webhook_port.unwrap_or(0));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot listen for webhooks on {addr}: {e}"),
        )
        .help("pass another --webhook-port (GHBOOT_WEBHOOK_PORT), or stop what uses this one")
    })?;
    let port = listener.local_addr()?.port();
    let url = webhook::local_url(&s.bind, port, &cfg.path);
    let host = ctx
        .host()
        .ok_or_else(|| anyhow::anyhow!("only a supervising ghboot runs the receiver"))?;
    let runtime = host.runtime.clone();
    let on_ping: receive::PingHook = {
        let runtime = runtime.clone();
        Box::new(move |p: &receive::Ping| {
            let p = json!(p);
            runtime.update(|r| {
                if let Some(w) = r.components.get_mut("webhook") {
                    w["first_ping"] = p;
                }
            })
        })
    };
    let shared = receive::Shared::new(
        receive::ReceiverConfig::new(&s.org, &cfg.path, secret),
        client,
        Some(on_ping),
    );
    if let Some(i) = host.tasks.iter().position(|(n, _)| n == "webhook") {
        let (_, old) = host.tasks.remove(i);
        old.abort();
    }
    host.page.set_receiver(shared.clone());
    let running = receive::spawn(listener, shared.clone(), host.shutdown.subscribe())?;
    host.tasks.push(("webhook".into(), running.task));
    if source == webhook::SecretSource::Generated {
        // `secrets rotate webhook-secret` swaps the files; the live receiver follows them
        if let Some(i) = host.tasks.iter().position(|(n, _)| n == "webhook-secret") {
            let (_, old) = host.tasks.remove(i);
            old.abort();
        }
        let rt = runtime.clone();
        let on_change: Box<dyn Fn(&str) + Send + Sync> = Box::new(move |fp: &str| {
            let fp = fp.to_string();
            rt.update(|r| {
                if let Some(w) = r.components.get_mut("webhook") {
                    w["secret_fingerprint"] = fp.into();
                }
            })
        });
        let watch = tokio::spawn(crate::secrets::rotate::watch(
            s.clone(),
            cfg.clone(),
            shared.clone(),
            on_change,
            host.shutdown.subscribe(),
        ));
        host.tasks.push(("webhook-secret".into(), watch));
    }
    let ready = shared.ready().await;
    runtime.update(|r| {
        r.components.insert(
            "webhook".into(),
            json!({"url": url, "port": port, "path": cfg.path, "bind": s.bind, "ready": ready, "secret_fingerprint": fingerprint, "pid": std::process::id()}),
        );
    });
    // A port picked now is this instance's port from now on.
    ctx.settings.webhook_port = Some(port);
    ctx.state.settings.webhook_port = Some(port);
    if !ready {
        ctx.reporter.note(
            NAME,
            &format!(
                "events stream {} not found yet: deliveries are answered 503 until it exists",
                subjects::events_stream(&s.org)
            ),
        );
    }
    let mut out = Outputs::new();
    out.insert("url".into(), url.into());
    out.insert("port".into(), port.into());
    out.insert("path".into(), cfg.path.clone().into());
    out.insert("ready".into(), ready.into());
    out.insert("secret_source".into(), json!(source));
    out.insert("secret_fingerprint".into(), fingerprint.into());
    out.insert("stream".into(), subjects::events_stream(&s.org).into());
    Ok(out)
}

/// The receiver runs as a container of the deployment (made by the nats stage): find its published URL
/// and record it, so that `ghboot env` and `status` show it and registration points at it.
async fn container_receiver(ctx: &mut Ctx, cfg: &WebhookConfig) -> Result<Outputs> {
    let s = ctx.settings.clone();
    let url = crate::deploy::for_settings(&s)
        .receiver_url(&s)
        .await
        .ok_or_else(|| {
            fail(
                Kind::Unavailable,
                "the webhook receiver container is not running",
            )
            .help("see `ghboot status` and `ghboot logs receiver`, then `ghboot up` again")
        })?;
    let (secret, source) = webhook::ensure_secret(&s, cfg)?;
    let fingerprint = verify::fingerprint(secret.expose().as_bytes());
    let ready = webhook::probe_ready(&url).await.unwrap_or(false);
    let mut out = Outputs::new();
    out.insert("url".into(), url.clone().into());
    if let Some(port) = url::Url::parse(&url).ok().and_then(|u| u.port()) {
        out.insert("port".into(), port.into());
    }
    out.insert("path".into(), cfg.path.clone().into());
    out.insert("ready".into(), ready.into());
    out.insert("secret_source".into(), json!(source));
    out.insert("secret_fingerprint".into(), fingerprint.into());
    out.insert("stream".into(), subjects::events_stream(&s.org).into());
    out.insert("hosting".into(), "container".into());
    Ok(out)
}

/// Why the receiver container is not the one recorded (gone, moved, not answering); None when it is.
async fn container_receiver_mismatch(s: &Settings, state: &StateFile) -> Option<String> {
    let Some(url) = crate::deploy::for_settings(s).receiver_url(s).await else {
        return Some("the webhook receiver container is not running".into());
    };
    let recorded = state
        .stage(NAME)
        .and_then(|r| r.outputs.get("url"))
        .and_then(|u| u.as_str());
    if recorded != Some(url.as_str()) {
        return Some(format!(
            "the webhook receiver is at {url}, not recorded yet"
        ));
    }
    if webhook::probe_ready(&url).await.is_none() {
        return Some(format!("the webhook receiver at {url} does not answer"));
    }
    None
}

/// Register (or check) the hooks, when asked for; else the local-only note.
async fn register(ctx: &mut Ctx, cfg: &WebhookConfig, url: &str, out: &mut Outputs) -> Result<()> {
    let s = ctx.settings.clone();
    if !registration_asked(&s, cfg) {
        let hint = forward_hint(&s, cfg, url);
        if s.github_token.is_some() {
            ctx.reporter.note(
                NAME,
                "GITHUB_TOKEN is set but no public URL (--webhook-url): no hook registered",
            );
        } else if cfg.public_url.is_some() {
            ctx.reporter.note(
                NAME,
                "a public URL is set but no GITHUB_TOKEN: no hook registered",
            );
        }
        // the commands themselves are in the ready summary, whole and once
        ctx.reporter.note(NAME, "local only: no GitHub hook registered (needs GITHUB_TOKEN and --webhook-url); the summary says how to forward deliveries");
        out.insert("local_only".into(), true.into());
        out.insert("forward".into(), json!(hint));
        out.insert(
            "summary".into(),
            format!("receiver at {url} (local only)").into(),
        );
        return Ok(());
    }
    let gh = github(&s)?.ok_or_else(|| anyhow::anyhow!("no token"))?;
    let (secret, _) = webhook::ensure_secret(&s, cfg)?;
    let public = cfg.public_url.clone().unwrap_or_default();
    let want = Desired {
        url: public.clone(),
        events: cfg.events.clone(),
        secret,
    };
    let previous = recorded_registrations(&ctx.state);
    let mut done = Vec::new();
    for t in targets(&s, cfg)? {
        let known = previous
            .iter()
            .find(|r| r.target == t.key() && r.url == public)
            .map(|r| r.secret_fingerprint.as_str());
        let r = gh.ensure(&t, &want, known).await?;
        ctx.reporter.note(
            NAME,
            &format!("hook {} on {} ({})", r.hook_id, t.label(), r.action),
        );
        done.push(r);
    }
    let summary = format!(
        "receiver at {url}; {} hook(s) for {public}: {}",
        done.len(),
        done.iter()
            .map(|r| r.action.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.insert("local_only".into(), false.into());
    out.insert("public_url".into(), public.into());
    out.insert("registrations".into(), serde_json::to_value(&done)?);
    out.insert("summary".into(), summary.into());
    Ok(())
}

/// Does the recorded registration still match what the settings ask for (no API call)?
async fn registration_drift(ctx: &Ctx, w: &Wanted) -> Result<Option<String>> {
    if !registration_asked(&ctx.settings, &w.cfg) {
        return Ok(None);
    }
    let public = w.cfg.public_url.clone().unwrap_or_default();
    let recorded = recorded_registrations(&ctx.state);
    let mut events: Vec<String> = w.cfg.events.clone();
    events.sort();
    events.dedup();
    for t in targets(&ctx.settings, &w.cfg)? {
        let ok = recorded.iter().any(|r| {
            r.target == t.key()
                && r.url == public
                && r.events == events
                && Some(&r.secret_fingerprint) == w.fingerprint.as_ref()
        });
        if !ok {
            return Ok(Some(format!(
                "the hook on {} is not registered as configured",
                t.label()
            )));
        }
    }
    // The record matches: check GitHub itself (reads only), so a hook changed there is put back.
    let (Some(gh), Some((secret, _))) = (
        github(&ctx.settings)?,
        webhook::load_secret(&ctx.settings, &w.cfg)?,
    ) else {
        return Ok(None);
    };
    let want = Desired {
        url: public.clone(),
        events: w.cfg.events.clone(),
        secret,
    };
    for t in targets(&ctx.settings, &w.cfg)? {
        match gh.inspect(&t, &want, w.fingerprint.as_deref()).await? {
            Needed::Nothing { .. } => {}
            Needed::Create => {
                return Ok(Some(format!(
                    "the hook on {} is gone from GitHub",
                    t.label()
                )))
            }
            Needed::Update { why, .. } => {
                return Ok(Some(format!(
                    "the hook on {} changed on GitHub ({})",
                    t.label(),
                    why.join(", ")
                )))
            }
        }
    }
    Ok(None)
}

#[async_trait::async_trait]
impl Stage for Webhooks {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "webhook ingress into JetStream and hook registration"
    }
    fn skip_reason(&self, s: &crate::config::Settings) -> Option<String> {
        match crate::deploy::for_settings(s).receiver(s) {
            Hosting::Elsewhere(why) => Some(why),
            Hosting::InProcess | Hosting::Containers => None,
        }
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        let w = wanted(&ctx.settings)?;
        let mut changes = Vec::new();
        let hosting_here = ctx
            .host()
            .is_some_and(|h| h.tasks.iter().any(|(n, _)| n == "webhook"));
        let target = crate::deploy::for_settings(&ctx.settings);
        if target.receiver(&ctx.settings) == Hosting::Containers {
            if let Some(why) = container_receiver_mismatch(&ctx.settings, &ctx.state).await {
                changes.push(
                    Change::new(NAME, "webhook receiver", "record")
                        .note(format!("{why} (the nats stage makes its container)")),
                );
            }
        } else if !hosting_here {
            if let Some(why) = receiver_mismatch(&ctx.settings, &w).await {
                let alive =
                    Runtime::load(&ctx.settings.layout).is_some_and(|r| r.supervisor_alive());
                let port = ctx
                    .settings
                    .webhook_port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "free port".into());
                changes.push(
                    Change::new(
                        NAME,
                        "webhook receiver",
                        if alive { "restart" } else { "start" },
                    )
                    .note(why)
                    .field("port", "-", port),
                );
            }
        }
        if registration_asked(&ctx.settings, &w.cfg) {
            let public = w.cfg.public_url.clone().unwrap_or_default();
            let Some(fp) = w.fingerprint.clone() else {
                for t in targets(&ctx.settings, &w.cfg)? {
                    changes.push(
                        Change::new(NAME, format!("hook on {}", t.label()), "create")
                            .note("after the webhook secret is generated"),
                    );
                }
                return Ok(changes);
            };
            let gh = github(&ctx.settings)?.ok_or_else(|| anyhow::anyhow!("no token"))?;
            let (secret, _) = webhook::load_secret(&ctx.settings, &w.cfg)?
                .ok_or_else(|| anyhow::anyhow!("no secret"))?;
            let want = Desired {
                url: public.clone(),
                events: w.cfg.events.clone(),
                secret,
            };
            let previous = recorded_registrations(&ctx.state);
            for t in targets(&ctx.settings, &w.cfg)? {
                let known = previous
                    .iter()
                    .find(|r| r.target == t.key() && r.url == public)
                    .map(|r| r.secret_fingerprint.clone());
                let known = known.filter(|k| *k == fp);
                match gh.inspect(&t, &want, known.as_deref()).await? {
                    Needed::Nothing { .. } => {}
                    Needed::Create => changes.push(
                        Change::new(NAME, format!("hook on {}", t.label()), "create")
                            .field("url", "-", &public),
                    ),
                    Needed::Update { hook_id, why } => changes.push(
                        Change::new(NAME, format!("hook {hook_id} on {}", t.label()), "update")
                            .note(why.join(", ")),
                    ),
                }
            }
        }
        Ok(changes)
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        let w = wanted(&ctx.settings)?;
        let target = crate::deploy::for_settings(&ctx.settings);
        if target.receiver(&ctx.settings) == Hosting::Containers {
            if let Some(why) = container_receiver_mismatch(&ctx.settings, &ctx.state).await {
                return Ok(Verdict::Drift(why));
            }
            if let Some(why) = registration_drift(ctx, &w).await? {
                return Ok(Verdict::Drift(why));
            }
            return Ok(Verdict::Holds);
        }
        if let Role::Host(h) = &ctx.role {
            if !h.tasks.iter().any(|(n, _)| n == "webhook") {
                return Ok(Verdict::Drift(
                    "the receiver is not running in this supervisor".into(),
                ));
            }
        }
        if let Some(why) = receiver_mismatch(&ctx.settings, &w).await {
            return Ok(Verdict::Drift(why));
        }
        if let Some(why) = registration_drift(ctx, &w).await? {
            return Ok(Verdict::Drift(why));
        }
        Ok(Verdict::Holds)
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let cfg = WebhookConfig::from_settings(&ctx.settings)?;
        let in_containers = crate::deploy::for_settings(&ctx.settings).receiver(&ctx.settings)
            == Hosting::Containers;
        let mut out = match ctx.role {
            _ if in_containers => container_receiver(ctx, &cfg).await?,
            Role::Host(_) => start_receiver(ctx, &cfg).await?,
            Role::Client => {
                let w = wanted(&ctx.settings)?;
                if let Some(why) = receiver_mismatch(&ctx.settings, &w).await {
                    return Err(NeedsRestart(why).into());
                }
                let mut out = ctx
                    .state
                    .stage(NAME)
                    .map(|r| r.outputs.clone())
                    .unwrap_or_default();
                if let Some(u) = webhook::recorded_url(&ctx.settings) {
                    out.insert(
                        "ready".into(),
                        webhook::probe_ready(&u).await.unwrap_or(false).into(),
                    );
                    out.insert("url".into(), u.into());
                }
                out
            }
        };
        let url = out
            .get("url")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string();
        out.remove("registrations");
        out.remove("forward");
        register(ctx, &cfg, &url, &mut out).await?;
        Ok(out)
    }
}
