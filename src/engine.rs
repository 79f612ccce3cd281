//! The stage engine: six stages in a fixed order, each behind [`Stage`] (plan / apply / verify), with
//! progress persisted in the state file so that a rerun re-verifies what is done and resumes at the first
//! unfinished stage.

use crate::config::Settings;
use crate::natsd::supervise::{SharedRuntime, Supervisor};
use crate::state::{StageStatus, StateFile};
use crate::ui::Reporter;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

pub type Outputs = BTreeMap<String, serde_json::Value>;

/// What `verify` found.
pub enum Verdict {
    /// What the stage did is still true.
    Holds,
    /// It is not (the reason is shown); the stage is applied again.
    Drift(String),
}

/// One change `apply` would make, for `plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub stage: String,
    pub resource: String,
    /// create | update | replace | start | restart | fix
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

impl Change {
    pub fn new(stage: &str, resource: impl Into<String>, action: &str) -> Self {
        Change {
            stage: stage.into(),
            resource: resource.into(),
            action: action.into(),
            fields: vec![],
            note: None,
        }
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
    pub fn field(mut self, field: &str, from: impl ToString, to: impl ToString) -> Self {
        self.fields.push(FieldChange {
            field: field.into(),
            from: from.to_string(),
            to: to.to_string(),
        });
        self
    }
}

/// Where a run of the engine happens.
pub enum Role {
    /// This process supervises what the stages start (foreground `up`, or the detached supervisor).
    Host(Host),
    /// A supervisor is alive elsewhere: only verify, and change what a client can change (topology).
    Client,
}

/// The long-lived things a hosting process owns.
pub struct Host {
    pub runtime: SharedRuntime,
    pub supervisor: Option<Supervisor>,
    /// Background tasks (receiver, controller) stopped on shutdown.
    pub tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// What the status page reads from the parts the stages start (the receiver).
    pub page: crate::statuspage::Feeds,
}

/// Shared by the stages of one run.
pub struct Ctx {
    pub settings: Settings,
    pub state: StateFile,
    pub role: Role,
    pub reporter: Reporter,
    /// A client connection to the instance's NATS, made by the nats stage (or on demand).
    pub nats: Option<async_nats::Client>,
}

impl Ctx {
    pub fn host(&mut self) -> Option<&mut Host> {
        match &mut self.role {
            Role::Host(h) => Some(h),
            Role::Client => None,
        }
    }
    /// A connected NATS client for this instance.
    pub async fn nats(&mut self) -> Result<async_nats::Client> {
        if let Some(c) = &self.nats {
            if c.connection_state() == async_nats::connection::State::Connected {
                return Ok(c.clone());
            }
        }
        let c = crate::stages::nats::connect(&self.settings).await?;
        self.nats = Some(c.clone());
        Ok(c)
    }
}

/// Error that tells `up` a running supervisor must be replaced (its configuration changed).
#[derive(Debug)]
pub struct NeedsRestart(pub String);
impl std::fmt::Display for NeedsRestart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the running instance must be restarted: {}", self.0)
    }
}
impl std::error::Error for NeedsRestart {}

#[async_trait::async_trait]
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for `--help`, the README and `plan`.
    fn summary(&self) -> &'static str;
    /// Why this stage does not run with these settings; it then stays `pending` with this reason.
    fn skip_reason(&self, _settings: &Settings) -> Option<String> {
        None
    }
    /// What `apply` would change, changing nothing.
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>>;
    /// Is what `apply` did still true?
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict>;
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs>;
}

/// Run the stages in order: skip what does not apply, re-verify what is done, apply the rest.
pub async fn run(ctx: &mut Ctx, stages: &[Box<dyn Stage>]) -> Result<()> {
    for stage in stages {
        let name = stage.name();
        if let Some(reason) = stage.skip_reason(&ctx.settings) {
            let rec = ctx.state.stage_mut(name);
            rec.status = StageStatus::Pending;
            rec.reason = Some(reason.clone());
            ctx.state.save(&ctx.settings.layout)?;
            ctx.reporter.skipped(name, &reason);
            mirror(ctx).await;
            continue;
        }
        let t0 = Instant::now();
        if ctx.state.stage(name).map(|r| r.status) == Some(StageStatus::Done) {
            ctx.reporter.started(name, "verifying");
            match stage.verify(ctx).await {
                Ok(Verdict::Holds) => {
                    ctx.reporter.finished(name, t0.elapsed(), "verified");
                    continue;
                }
                Ok(Verdict::Drift(why)) => {
                    ctx.reporter.note(name, &format!("{why}; applying again"))
                }
                Err(e) => ctx
                    .reporter
                    .note(name, &format!("verify failed ({e:#}); applying again")),
            }
        }
        ctx.reporter.started(name, stage.summary());
        let previous = ctx
            .state
            .stage(name)
            .map(|r| r.status)
            .unwrap_or(StageStatus::Pending);
        {
            let rec = ctx.state.stage_mut(name);
            rec.status = StageStatus::Running;
            rec.reason = None;
            rec.started_at = Some(time::OffsetDateTime::now_utc());
            rec.runner_pid = Some(std::process::id());
            ctx.state.save(&ctx.settings.layout)?;
        }
        let result = stage.apply(ctx).await;
        let elapsed = t0.elapsed();
        let rec = ctx.state.stage_mut(name);
        rec.finished_at = Some(time::OffsetDateTime::now_utc());
        rec.duration_ms = Some(elapsed.as_millis() as u64);
        rec.runner_pid = None;
        match result {
            Ok(outputs) => {
                rec.status = StageStatus::Done;
                rec.last_error = None;
                rec.last_help = None;
                let detail = outputs
                    .get("summary")
                    .and_then(|v| v.as_str())
                    .unwrap_or("done")
                    .to_string();
                rec.outputs = outputs;
                ctx.state.save(&ctx.settings.layout)?;
                ctx.reporter.finished(name, elapsed, &detail);
                fault_point(name);
                mirror(ctx).await;
            }
            Err(e) => {
                if e.downcast_ref::<NeedsRestart>().is_some() {
                    rec.status = previous;
                    ctx.state.save(&ctx.settings.layout)?;
                    return Err(e);
                }
                rec.status = StageStatus::Failed;
                rec.last_error = Some(format!("{e:#}"));
                rec.last_help = crate::error::find_failure(&e).and_then(|f| f.help.clone());
                ctx.state.save(&ctx.settings.layout)?;
                ctx.reporter.failed(name, elapsed, &e);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Every stage's plan, in order. Stages that do not apply are listed with their reason.
pub async fn plan(
    ctx: &mut Ctx,
    stages: &[Box<dyn Stage>],
) -> Result<Vec<(String, Result<Vec<Change>, String>)>> {
    let mut out = Vec::new();
    for stage in stages {
        if let Some(reason) = stage.skip_reason(&ctx.settings) {
            out.push((stage.name().to_string(), Err(reason)));
            continue;
        }
        let changes = stage.plan(ctx).await?;
        out.push((stage.name().to_string(), Ok(changes)));
    }
    Ok(out)
}

/// Fault injection for the fault matrix and crash tests: `GHBOOT_FAULT_KILL_AFTER=<stage>` SIGKILLs this
/// process right after that stage's success is persisted, exactly as a crash would.
fn fault_point(stage: &str) {
    if std::env::var("GHBOOT_FAULT_KILL_AFTER").is_ok_and(|s| s == stage) {
        tracing::warn!("fault injection: killing ghboot after stage {stage}");
        crate::platform::kill(std::process::id());
    }
}

/// Once NATS is up, every persisted transition is mirrored into the `state` bucket too (local file first,
/// then NATS: the chicken before the egg). Best effort: the local file is the source of truth.
async fn mirror(ctx: &mut Ctx) {
    let Some(client) = ctx.nats.clone() else {
        return;
    };
    let js = crate::target::jetstream(&ctx.settings, client);
    if let Err(e) = crate::topology::mirror_state(ctx, &js).await {
        tracing::warn!("cannot mirror the state into NATS: {e:#}");
    }
}
