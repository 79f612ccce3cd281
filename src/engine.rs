//! The stage engine: six stages in a fixed order, each behind [`Stage`] (plan / apply / verify), with
//! progress persisted in the state file so that a rerun re-verifies what is done and resumes at the first
//! unfinished stage.

use crate::config::Settings;
use crate::natsd::supervise::{SharedRuntime, Supervisor};
use crate::state::{StageStatus, StateFile};
use crate::ui::Reporter;
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::Instant;

pub type Outputs = BTreeMap<String, serde_json::Value>;

pub use crate::change::{Change, FieldChange};

/// What `verify` found.
pub enum Verdict {
    /// What the stage did is still true.
    Holds,
    /// It is not (the reason is shown); the stage is applied again.
    Drift(String),
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

/// Told after every transition the runner persisted (the stages' owner mirrors the state file into NATS).
#[async_trait::async_trait]
pub trait Observer: Send + Sync {
    async fn persisted(&self, ctx: &mut Ctx);
}

/// An [`Observer`] that does nothing.
pub struct Unobserved;
#[async_trait::async_trait]
impl Observer for Unobserved {
    async fn persisted(&self, _ctx: &mut Ctx) {}
}

/// Run the stages in order: skip what does not apply, re-verify what is done, apply the rest. Every
/// transition is persisted to the state file, then `observer` hears of it.
pub async fn run(ctx: &mut Ctx, stages: &[Box<dyn Stage>], observer: &dyn Observer) -> Result<()> {
    for stage in stages {
        let name = stage.name();
        if let Some(reason) = stage.skip_reason(&ctx.settings) {
            let rec = ctx.state.stage_mut(name);
            rec.status = StageStatus::Pending;
            rec.reason = Some(reason.clone());
            ctx.state.save(&ctx.settings.layout)?;
            ctx.reporter.skipped(name, &reason);
            observer.persisted(ctx).await;
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
                observer.persisted(ctx).await;
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
/// process right after that stage's success is persisted, exactly as a crash would. Only in builds with the
/// `fault-injection` feature (`cargo xtask test`, `cargo xtask faults`), never in a release.
#[cfg(feature = "fault-injection")]
fn fault_point(stage: &str) {
    if std::env::var("GHBOOT_FAULT_KILL_AFTER").is_ok_and(|s| s == stage) {
        tracing::warn!("fault injection: killing ghboot after stage {stage}");
        crate::platform::kill(std::process::id());
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault_point(_stage: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    /// A stage that does what it is told and writes down what the runner asked of it, with the stage
    /// statuses the state file on disk held at that moment.
    struct Fake {
        name: &'static str,
        skip: Option<&'static str>,
        /// None: what was done holds; Some(why): it drifted
        drift: Option<&'static str>,
        fail: bool,
        log: Log,
    }

    fn on_disk(ctx: &Ctx) -> String {
        let st = StateFile::load(&ctx.settings.layout)
            .expect("load")
            .unwrap_or_default();
        st.stages
            .iter()
            .map(|r| format!("{}={:?}", r.name, r.status))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[async_trait::async_trait]
    impl Stage for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn summary(&self) -> &'static str {
            "fake"
        }
        fn skip_reason(&self, _s: &Settings) -> Option<String> {
            self.skip.map(str::to_string)
        }
        async fn plan(&self, _ctx: &mut Ctx) -> Result<Vec<Change>> {
            Ok(vec![Change::new(self.name, "thing", "create")])
        }
        async fn verify(&self, _ctx: &mut Ctx) -> Result<Verdict> {
            self.log
                .lock()
                .expect("log")
                .push(format!("verify {}", self.name));
            Ok(match self.drift {
                None => Verdict::Holds,
                Some(why) => Verdict::Drift(why.into()),
            })
        }
        async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
            self.log
                .lock()
                .expect("log")
                .push(format!("apply {} [{}]", self.name, on_disk(ctx)));
            if self.fail {
                anyhow::bail!("{} broke", self.name);
            }
            let mut out = Outputs::new();
            out.insert("summary".into(), format!("{} done", self.name).into());
            Ok(out)
        }
    }

    struct Counting(Log);
    #[async_trait::async_trait]
    impl Observer for Counting {
        async fn persisted(&self, ctx: &mut Ctx) {
            self.0
                .lock()
                .expect("log")
                .push(format!("persisted [{}]", on_disk(ctx)));
        }
    }

    fn ctx(dir: &std::path::Path) -> Ctx {
        let settings =
            crate::config::resolve(&Default::default(), dir.to_path_buf(), None).expect("settings");
        Ctx {
            settings,
            state: StateFile::new(),
            role: Role::Client,
            reporter: Reporter::quiet(),
            nats: None,
        }
    }

    fn fake(name: &'static str, log: &Log) -> Fake {
        Fake {
            name,
            skip: None,
            drift: None,
            fail: false,
            log: log.clone(),
        }
    }

    fn taken(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.lock().expect("log"))
    }

    #[tokio::test]
    async fn applies_in_order_and_persists_after_every_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ctx = ctx(dir.path());
        let log: Log = Default::default();
        let stages: Vec<Box<dyn Stage>> =
            vec![Box::new(fake("a", &log)), Box::new(fake("b", &log))];
        run(&mut ctx, &stages, &Counting(log.clone()))
            .await
            .expect("run");
        assert_eq!(
            taken(&log),
            [
                "apply a [a=Running]",
                "persisted [a=Done]",
                "apply b [a=Done,b=Running]",
                "persisted [a=Done,b=Done]",
            ]
        );
        let st = StateFile::load(&ctx.settings.layout)
            .expect("load")
            .expect("saved");
        let a = st.stage("a").expect("a");
        assert_eq!(a.outputs["summary"], "a done");
        assert!(a.finished_at.is_some() && a.runner_pid.is_none());
    }

    #[tokio::test]
    async fn a_skipped_stage_stays_pending_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ctx = ctx(dir.path());
        let log: Log = Default::default();
        let mut a = fake("a", &log);
        a.skip = Some("not here");
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(a), Box::new(fake("b", &log))];
        run(&mut ctx, &stages, &Unobserved).await.expect("run");
        assert_eq!(taken(&log), ["apply b [a=Pending,b=Running]"]);
        let rec = ctx.state.stage("a").expect("a");
        assert_eq!(rec.status, StageStatus::Pending);
        assert_eq!(rec.reason.as_deref(), Some("not here"));
        let plans = plan(&mut ctx, &stages).await.expect("plan");
        assert_eq!(
            plans[0].1.as_ref().err().map(String::as_str),
            Some("not here")
        );
        assert_eq!(plans[1].1.as_ref().map(|c| c.len()).ok(), Some(1));
    }

    #[tokio::test]
    async fn done_stages_are_verified_and_only_drifted_ones_applied_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ctx = ctx(dir.path());
        let log: Log = Default::default();
        let first: Vec<Box<dyn Stage>> = vec![Box::new(fake("a", &log)), Box::new(fake("b", &log))];
        run(&mut ctx, &first, &Unobserved).await.expect("first run");
        taken(&log);
        let mut b = fake("b", &log);
        b.drift = Some("b moved");
        let second: Vec<Box<dyn Stage>> = vec![Box::new(fake("a", &log)), Box::new(b)];
        run(&mut ctx, &second, &Unobserved)
            .await
            .expect("second run");
        assert_eq!(
            taken(&log),
            ["verify a", "verify b", "apply b [a=Done,b=Running]"]
        );
        assert_eq!(
            ctx.state.stage("b").map(|r| r.status),
            Some(StageStatus::Done)
        );
    }

    #[tokio::test]
    async fn a_failed_apply_is_persisted_and_stops_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ctx = ctx(dir.path());
        let log: Log = Default::default();
        let mut a = fake("a", &log);
        a.fail = true;
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(a), Box::new(fake("b", &log))];
        let e = run(&mut ctx, &stages, &Unobserved)
            .await
            .expect_err("a fails");
        assert!(format!("{e:#}").contains("a broke"));
        assert_eq!(taken(&log), ["apply a [a=Running]"]);
        let st = StateFile::load(&ctx.settings.layout)
            .expect("load")
            .expect("saved");
        let rec = st.stage("a").expect("a");
        assert_eq!(rec.status, StageStatus::Failed);
        assert_eq!(rec.last_error.as_deref(), Some("a broke"));
        assert!(st.stage("b").is_none(), "b never started");
    }

    /// A stage that tells `up` to replace the supervisor leaves its record as it was.
    struct Restart;
    #[async_trait::async_trait]
    impl Stage for Restart {
        fn name(&self) -> &'static str {
            "r"
        }
        fn summary(&self) -> &'static str {
            "restart"
        }
        async fn plan(&self, _ctx: &mut Ctx) -> Result<Vec<Change>> {
            Ok(vec![])
        }
        async fn verify(&self, _ctx: &mut Ctx) -> Result<Verdict> {
            Ok(Verdict::Drift("changed".into()))
        }
        async fn apply(&self, _ctx: &mut Ctx) -> Result<Outputs> {
            Err(NeedsRestart("port changed".into()).into())
        }
    }

    #[tokio::test]
    async fn needs_restart_restores_the_previous_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ctx = ctx(dir.path());
        ctx.state.stage_mut("r").status = StageStatus::Done;
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(Restart)];
        let e = run(&mut ctx, &stages, &Unobserved)
            .await
            .expect_err("restart");
        assert!(e.downcast_ref::<NeedsRestart>().is_some());
        let st = StateFile::load(&ctx.settings.layout)
            .expect("load")
            .expect("saved");
        assert_eq!(st.stage("r").map(|r| r.status), Some(StageStatus::Done));
    }
}
