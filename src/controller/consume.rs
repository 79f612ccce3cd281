//! The controller loop: a durable JetStream pull consumer on the org's push events for `.github`.
//!
//! Per wake-up it drains everything pending (coalescing a burst), classifies each event (ours or marked
//! `[skip-regen]` → ignored and counted; not touching `templates/` or not the watched branch → skipped),
//! and runs at most one regeneration for the lot, under the org's lock, then waits out the rate limit.
//! Failures nak with a growing delay; after `max_deliveries` an event goes to the dead-letter stream with
//! its reason and is acked.
use super::regenerate::{self, Job};
use super::templates::{SKIP_MARKER, TEMPLATES_DIR};
use super::workflow::{open_bucket, Phase, Workflow};
use super::{Config, DOT_GITHUB};
use crate::error::{fail, Kind};
use crate::topology::lock::{open_locks, Lock};
use crate::topology::subjects;
use anyhow::{Context, Result};
use async_nats::jetstream::{self, consumer::pull, AckKind, Message};
use futures::StreamExt;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Counters, published to the `state` bucket (`controller.<org>.<instance>`) and the runtime file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub instance: String,
    pub heartbeat: String,
    pub received: u64,
    pub regenerations: u64,
    pub commits: u64,
    /// Pushes by the controller itself or marked `[skip-regen]`.
    pub ignored_self: u64,
    /// Pushes that do not touch templates/ or are for another branch.
    pub skipped: u64,
    pub failures: u64,
    pub dead_lettered: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Head commits of the last pushes ignored as the controller's own (newest last, at most 16).
    pub recent_ignored: Vec<String>,
}

pub struct Controller {
    pub js: jetstream::Context,
    pub org: String,
    pub cfg: Config,
    pub vars: super::templates::Vars,
    pub instance: String,
    pub stats: Arc<Mutex<Stats>>,
    /// Ack wait of the durable consumer (progress is signalled while waiting for the lock).
    pub ack_wait: Duration,
}

/// What one event asks for.
enum Class {
    Regenerate { head: String, repo: Option<String> },
    IgnoredSelf(String),
    Skipped,
}

#[derive(Debug)]
struct Poison(String);

impl Controller {
    pub fn new(
        client: async_nats::Client,
        org: &str,
        cfg: Config,
        vars: super::templates::Vars,
        instance: &str,
    ) -> Controller {
        let stats = Stats {
            instance: instance.into(),
            ..Default::default()
        };
        Controller {
            js: jetstream::new(client),
            org: org.into(),
            ack_wait: Duration::from_millis(cfg.ack_wait_ms),
            cfg,
            vars,
            instance: instance.into(),
            stats: Arc::new(Mutex::new(stats)),
        }
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
    pub fn snapshot(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn consumer(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<jetstream::consumer::Consumer<pull::Config>>> {
        let name = subjects::events_stream(&self.org);
        let mut warned = false;
        loop {
            match self.js.get_stream(&name).await {
                Ok(stream) => {
                    let mut cfg = consumer_config(&self.cfg, &self.org);
                    cfg.ack_wait = self.ack_wait;
                    let c = stream
                        .get_or_create_consumer(&self.cfg.durable, cfg)
                        .await
                        .context("cannot create the controller's consumer")?;
                    return Ok(Some(c));
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!("events stream {name} not available yet ({e}); waiting");
                        warned = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => return Ok(None),
                    }
                }
            }
        }
    }

    /// Run until `shutdown` flips to true. `report` is called with the counters after every change and
    /// as a heartbeat.
    pub async fn run(
        &self,
        mut shutdown: watch::Receiver<bool>,
        report: impl Fn(&Stats) + Send,
    ) -> Result<()> {
        let Some(mut consumer) = self.consumer(&mut shutdown).await? else {
            return Ok(());
        };
        let locks = open_locks(&self.js).await?;
        let state_kv = open_bucket(&self.js, subjects::STATE_BUCKET).await?;
        let mut wf = Workflow::open(&self.js, &self.org, &self.instance).await?;
        let stats_key = subjects::kv_key(&["controller", &self.org, &self.instance]);
        let publish_stats = |s: &Stats| {
            report(s);
            let kv = state_kv.clone();
            let key = stats_key.clone();
            let bytes: bytes::Bytes = serde_json::to_vec(s).unwrap_or_default().into();
            async move {
                if let Err(e) = kv.put(key, bytes).await {
                    tracing::debug!("cannot publish controller stats: {e}");
                }
            }
        };
        let mut next_allowed = Instant::now();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // The heartbeat means "consuming": only beat when the durable consumer answers. A consumer lost
            // with the JetStream store (or deleted) is made again; until then the heartbeat goes stale.
            match consumer.info().await {
                Ok(_) => self.bump(|s| s.heartbeat = now_rfc3339()),
                Err(e) => {
                    tracing::warn!(
                        "the controller's consumer {} does not answer ({e}); making it again",
                        self.cfg.durable
                    );
                    self.bump(|s| s.last_error = Some(format!("consumer lost: {e}")));
                    report(&self.snapshot());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    match self.consumer(&mut shutdown).await {
                        Ok(Some(c)) => consumer = c,
                        Ok(None) => return Ok(()),
                        Err(e) => tracing::warn!("{e:#}"),
                    }
                    continue;
                }
            }
            publish_stats(&self.snapshot()).await;
            // wait for one event (or a heartbeat tick), then drain what is pending
            let first = tokio::select! {
                r = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages() => r,
                _ = shutdown.changed() => return Ok(()),
            };
            let mut msgs: Vec<Message> = Vec::new();
            match first {
                Ok(mut b) => loop {
                    tokio::select! {
                        m = b.next() => match m {
                            Some(Ok(m)) => msgs.push(m),
                            Some(Err(e)) => { tracing::debug!("fetch: {e}"); break }
                            None => break,
                        },
                        _ = shutdown.changed() => return Ok(()),
                    }
                },
                Err(e) => {
                    tracing::warn!("cannot fetch events: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            if msgs.is_empty() {
                continue;
            }
            // the rate limit: wait (events pile up in the stream meanwhile and are coalesced below)
            while Instant::now() < next_allowed {
                let left = next_allowed.saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep(left.min(self.ack_wait / 3)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
            for _ in 0..100 {
                let mut got = 0;
                if let Ok(mut b) = consumer.fetch().max_messages(256).messages().await {
                    while let Some(Ok(m)) = b.next().await {
                        msgs.push(m);
                        got += 1;
                    }
                }
                if got == 0 {
                    break;
                }
            }
            self.handle(msgs, &locks, &mut wf, &mut shutdown).await;
            next_allowed = Instant::now() + Duration::from_millis(self.cfg.min_interval_ms);
            publish_stats(&self.snapshot()).await;
        }
    }

    fn classify(&self, m: &Message) -> std::result::Result<Class, Poison> {
        let v: serde_json::Value = serde_json::from_slice(&m.payload)
            .map_err(|e| Poison(format!("payload is not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Poison("payload is not a JSON object".into()))?;
        let r#ref = obj
            .get("ref")
            .and_then(|r| r.as_str())
            .ok_or_else(|| Poison("push payload has no `ref`".into()))?;
        let head_commit = v.get("head_commit").filter(|h| !h.is_null());
        let message = head_commit
            .and_then(|h| h["message"].as_str())
            .unwrap_or("");
        let who = [
            head_commit.and_then(|h| h["author"]["email"].as_str()),
            head_commit.and_then(|h| h["author"]["name"].as_str()),
            head_commit.and_then(|h| h["committer"]["email"].as_str()),
            v["pusher"]["name"].as_str(),
            v["pusher"]["email"].as_str(),
            v["sender"]["login"].as_str(),
        ];
        let bot = &self.vars.bot;
        if message.contains(SKIP_MARKER)
            || who
                .iter()
                .flatten()
                .any(|w| *w == bot.name || *w == bot.email)
        {
            return Ok(Class::IgnoredSelf(
                v["after"].as_str().unwrap_or("").to_string(),
            ));
        }
        if r#ref != format!("refs/heads/{}", self.cfg.branch)
            || v["deleted"].as_bool() == Some(true)
        {
            return Ok(Class::Skipped);
        }
        let commits = v["commits"].as_array().cloned().unwrap_or_default();
        let prefix = format!("{TEMPLATES_DIR}/");
        let touches = commits.is_empty()
            || commits.iter().any(|c| {
                ["added", "removed", "modified"].iter().any(|k| {
                    c[*k].as_array().is_some_and(|files| {
                        files
                            .iter()
                            .any(|f| f.as_str().is_some_and(|f| f.starts_with(&prefix)))
                    })
                })
            });
        if !touches {
            return Ok(Class::Skipped);
        }
        let head = v["after"].as_str().unwrap_or("").to_string();
        let repo = v["repository"]["clone_url"].as_str().map(str::to_string);
        Ok(Class::Regenerate { head, repo })
    }

    async fn handle(
        &self,
        msgs: Vec<Message>,
        locks: &async_nats::jetstream::kv::Store,
        wf: &mut Workflow,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        self.bump(|s| s.received += msgs.len() as u64);
        let mut relevant: Vec<Message> = Vec::new();
        let mut newest: Option<(String, Option<String>)> = None;
        for m in msgs {
            match self.classify(&m) {
                Ok(Class::IgnoredSelf(head)) => {
                    self.bump(|s| {
                        s.ignored_self += 1;
                        s.recent_ignored.push(head);
                        let excess = s.recent_ignored.len().saturating_sub(16);
                        s.recent_ignored.drain(..excess);
                    });
                    let _ = m.double_ack().await;
                }
                Ok(Class::Skipped) => {
                    self.bump(|s| s.skipped += 1);
                    let _ = m.double_ack().await;
                }
                Ok(Class::Regenerate { head, repo }) => {
                    newest = Some((head, repo));
                    relevant.push(m);
                }
                Err(Poison(reason)) => self.failed(&m, &reason).await,
            }
        }
        let Some((head, payload_repo)) = newest else {
            return;
        };
        let repo = match self.cfg.repo.clone().or(payload_repo) {
            Some(r) => r,
            None => {
                for m in &relevant {
                    self.failed(m, "no repository to regenerate: the push has no repository.clone_url and [controller] repo is not set").await;
                }
                return;
            }
        };
        wf.to(
            Phase::Pending,
            serde_json::json!({"head": head, "events": relevant.len()}),
        )
        .await;
        // one regeneration per org at a time, across processes
        let key = subjects::kv_key(&["regenerate", &self.org]);
        let lock = loop {
            match Lock::acquire_wait(
                locks,
                &key,
                &self.instance,
                Duration::from_millis(self.cfg.lock_wait_ms),
            )
            .await
            {
                Ok(Some(l)) => break l,
                Ok(None) => {
                    for m in &relevant {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                    if *shutdown.borrow() {
                        for m in &relevant {
                            let _ = m.ack_with(AckKind::Nak(None)).await;
                        }
                        return;
                    }
                }
                Err(e) => {
                    let reason = format!("cannot take the org's regeneration lock: {e:#}");
                    for m in &relevant {
                        self.failed(m, &reason).await;
                    }
                    wf.to(
                        Phase::Failed,
                        serde_json::json!({"head": head, "error": reason}),
                    )
                    .await;
                    return;
                }
            }
        };
        let token = lock.fencing_token();
        wf.to(
            Phase::Running,
            serde_json::json!({"head": head, "events": relevant.len(), "fencing_token": token}),
        )
        .await;
        let job = Job {
            repo: repo.clone(),
            branch: self.cfg.branch.clone(),
            templates: self.cfg.templates.clone(),
            vars: self.vars.clone(),
            fencing_token: token,
            push_attempts: self.cfg.push_attempts,
        };
        let lock = tokio::sync::Mutex::new(lock);
        let result = {
            let progress = async {
                loop {
                    tokio::time::sleep(self.ack_wait / 3).await;
                    for m in &relevant {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                    let _ = lock.lock().await.refresh().await;
                }
            };
            let work = regenerate::regenerate(&job, || async { lock.lock().await.refresh().await });
            tokio::select! {
                r = work => r,
                _ = progress => unreachable!("the progress loop never ends"),
            }
        };
        self.bump(|s| s.regenerations += 1);
        match result {
            Ok(out) => {
                let last = serde_json::json!({
                    "head": out.head, "commit": out.commit, "files": out.files, "events": relevant.len(),
                    "attempts": out.attempts, "duration_ms": out.duration_ms, "at": now_rfc3339(), "fencing_token": token,
                });
                self.bump(|s| {
                    if out.commit.is_some() {
                        s.commits += 1;
                    }
                    s.last = Some(last.clone());
                    s.last_error = None;
                });
                tracing::info!(
                    "regenerated {} at {} ({} event(s) coalesced): {}",
                    repo,
                    out.head,
                    relevant.len(),
                    out.commit.as_deref().unwrap_or("no change")
                );
                wf.to(Phase::Completed, last).await;
                for m in &relevant {
                    let _ = m.double_ack().await;
                }
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::warn!("regeneration of {repo} failed: {reason}");
                wf.to(
                    Phase::Failed,
                    serde_json::json!({"head": head, "error": reason}),
                )
                .await;
                for m in &relevant {
                    self.failed(m, &reason).await;
                }
            }
        }
        let lock = lock.into_inner();
        if let Err(e) = lock.release().await {
            tracing::debug!("releasing the lock: {e:#}");
        }
        if wf.phase() != Phase::Idle {
            wf.to(Phase::Idle, serde_json::json!({})).await;
        }
    }

    /// Nak with a growing delay, or after `max_deliveries` move the event to the dead-letter stream.
    async fn failed(&self, m: &Message, reason: &str) {
        self.bump(|s| {
            s.failures += 1;
            s.last_error = Some(reason.to_string());
        });
        let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
        if delivered < self.cfg.max_deliveries {
            let _ = m
                .ack_with(AckKind::Nak(Some(self.cfg.backoff(delivered))))
                .await;
            return;
        }
        match super::dlq::dead_letter(&self.js, &self.org, m, reason, delivered).await {
            Ok(()) => {
                self.bump(|s| s.dead_lettered += 1);
                let _ = m.double_ack().await;
            }
            Err(e) => {
                tracing::warn!("cannot dead-letter an event: {e:#}");
                let _ = m
                    .ack_with(AckKind::Nak(Some(self.cfg.backoff(delivered))))
                    .await;
            }
        }
    }
}

/// The controller's durable pull consumer: one definition for the controller and the stage that verifies it.
pub fn consumer_config(cfg: &Config, org: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(cfg.durable.clone()),
        filter_subject: subjects::push_filter(org, DOT_GITHUB),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_millis(cfg.ack_wait_ms),
        max_deliver: -1,
        description: Some("ghboot controller: regenerates .github files on template pushes".into()),
        ..Default::default()
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The controller's NATS connection: `--nats-url` (tests, other deployments) or the instance's credentials.
pub async fn connect(
    settings: &crate::config::Settings,
    url: Option<&str>,
) -> Result<async_nats::Client> {
    match url {
        // outside the state dir's instance (containers), credentials come from the environment, as for
        // `ghboot webhook serve`: NATS_CREDS, or NATS_USER + NATS_PASSWORD (NATS_PASSWORD_FILE is read at start-up)
        Some(u) => {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let opts = match (env("NATS_CREDS"), env("NATS_USER"), env("NATS_PASSWORD")) {
                (Some(creds), _, _) => async_nats::ConnectOptions::with_credentials_file(creds)
                    .await
                    .map_err(|e| {
                        fail(Kind::Data, format!("cannot read NATS_CREDS: {e}"))
                            .help("point NATS_CREDS at a .creds file")
                    })?,
                (None, Some(user), Some(pass)) => {
                    async_nats::ConnectOptions::with_user_and_password(user, pass)
                }
                _ => async_nats::ConnectOptions::new(),
            };
            // a cluster is a comma-separated list of servers
            let addrs = u
                .split(',')
                .map(|a| a.trim().parse::<async_nats::ServerAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    fail(Kind::Config, format!("invalid NATS URL {u:?}: {e}"))
                        .help("give nats://host:port[,nats://host:port...]")
                })?;
            opts.name("ghboot-controller")
            .connect(addrs)
            .await
            .map_err(|e| {
                if let Some(r) = crate::natsd::users::refused(&e, env("NATS_USER").as_deref(), u) {
                    return r;
                }
                fail(
                    Kind::Unavailable,
                    format!("cannot connect to NATS at {u}: {e}"),
                )
                .help("check the URL, the credentials (NATS_USER/NATS_PASSWORD or NATS_CREDS) and that the server runs")
                .into()
            })
        }
        None => {
            crate::deploy::for_settings(settings)
                .connect(settings)
                .await
        }
    }
}
