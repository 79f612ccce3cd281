//! Stage: the controller that regenerates the org's .github files, run in-process by the supervisor (dev);
//! other deployments run `ghboot controller` beside their NATS.
use crate::config::Settings;
use crate::controller::consume::Controller as Loop;
use crate::controller::{Config, DOT_GITHUB};
use crate::engine::{Change, Ctx, NeedsRestart, Outputs, Role, Stage, Verdict};
use crate::topology::subjects;
use anyhow::Result;
use std::time::Duration;

pub struct Controller;

/// A heartbeat older than this means the controller is not running.
const STALE: Duration = Duration::from_secs(30);
pub const TASK: &str = "controller";

fn running_here(ctx: &mut Ctx) -> bool {
    ctx.host()
        .is_some_and(|h| h.tasks.iter().any(|(n, t)| n == TASK && !t.is_finished()))
}

/// The supervisor's controller heartbeat, from the runtime file (for clients).
pub fn heartbeat_fresh(s: &Settings) -> bool {
    let Some(rt) = crate::state::Runtime::load(&s.layout).filter(|r| r.supervisor_alive()) else {
        return false;
    };
    let Some(hb) = rt
        .components
        .get(TASK)
        .and_then(|c| c["heartbeat"].as_str())
        .map(str::to_string)
    else {
        return false;
    };
    time::OffsetDateTime::parse(&hb, &time::format_description::well_known::Rfc3339)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds() < STALE.as_secs() as i64)
        .unwrap_or(false)
}

/// Does the controller's durable consumer exist on the org's events stream? (It is lost with the JetStream
/// store; the controller makes it again, and so does a rerun of this stage.)
async fn consumer_exists(ctx: &mut Ctx) -> Result<bool> {
    let cfg = Config::from_settings(&ctx.settings)?;
    let client = ctx.nats().await?;
    let js = crate::deploy::jetstream(&ctx.settings, client);
    let Ok(stream) = js
        .get_stream(subjects::events_stream(&ctx.settings.org))
        .await
    else {
        return Ok(false);
    };
    Ok(stream.consumer_info(&cfg.durable).await.is_ok())
}

/// Make the controller's durable consumer (the same definition the controller uses); idempotent.
async fn ensure_consumer(ctx: &mut Ctx) -> Result<()> {
    let cfg = Config::from_settings(&ctx.settings)?;
    let client = ctx.nats().await?;
    let js = crate::deploy::jetstream(&ctx.settings, client);
    let stream = js
        .get_stream(subjects::events_stream(&ctx.settings.org))
        .await
        .map_err(|e| anyhow::anyhow!("the events stream is missing ({e}); rerun `ghboot up`"))?;
    stream
        .get_or_create_consumer(
            &cfg.durable,
            crate::controller::consume::consumer_config(&cfg, &ctx.settings.org),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the controller's consumer: {e}"))?;
    Ok(())
}

#[async_trait::async_trait]
impl Stage for Controller {
    fn name(&self) -> &'static str {
        "controller"
    }
    fn summary(&self) -> &'static str {
        "the controller that regenerates the org's .github files"
    }
    fn skip_reason(&self, s: &Settings) -> Option<String> {
        match crate::deploy::for_settings(s).controller(s) {
            crate::deploy::Hosting::InProcess => None,
            crate::deploy::Hosting::Containers => {
                Some("the controller runs in the deployment's containers".into())
            }
            crate::deploy::Hosting::Elsewhere(why) => Some(why),
        }
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        if running_here(ctx) || heartbeat_fresh(&ctx.settings) {
            if consumer_exists(ctx).await.unwrap_or(false) {
                return Ok(vec![]);
            }
            return Ok(vec![Change::new(
                "controller",
                format!(
                    "durable consumer {} on {}",
                    Config::from_settings(&ctx.settings)?.durable,
                    subjects::events_stream(&ctx.settings.org)
                ),
                "create",
            )
            .note(
                "the controller runs but its consumer is gone (JetStream store lost?)",
            )]);
        }
        Ok(vec![Change::new(
            "controller",
            format!(
                "consumer on {}",
                subjects::push_filter(&ctx.settings.org, DOT_GITHUB)
            ),
            "start",
        )
        .note("in-process in the supervisor")])
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        if !(running_here(ctx)
            || (matches!(ctx.role, Role::Client) && heartbeat_fresh(&ctx.settings)))
        {
            return Ok(Verdict::Drift("the controller is not running".into()));
        }
        if !consumer_exists(ctx).await? {
            return Ok(Verdict::Drift(
                "the controller's durable consumer is missing".into(),
            ));
        }
        Ok(Verdict::Holds)
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let cfg = Config::from_settings(&ctx.settings)?;
        let alive_elsewhere = matches!(ctx.role, Role::Client)
            && crate::state::Runtime::load(&ctx.settings.layout)
                .is_some_and(|r| r.supervisor_alive() && r.components.contains_key(TASK));
        if running_here(ctx) || alive_elsewhere {
            // The controller task lives; what is missing is its consumer: make it (the controller also
            // does, whichever comes first), and keep the outputs of the run that started it.
            ensure_consumer(ctx).await?;
            let mut out = ctx
                .state
                .stage("controller")
                .map(|r| r.outputs.clone())
                .unwrap_or_default();
            out.entry("summary".into()).or_insert_with(|| {
                format!("watching pushes to {}/.github", ctx.settings.org).into()
            });
            return Ok(out);
        }
        if ctx.host().is_none() {
            return Err(NeedsRestart("the controller runs inside the supervisor".into()).into());
        }
        // least privilege: its own consumer, its buckets, ghboot's events and dead letters
        let client = crate::natsd::users::controller_client(ctx).await?;
        let instance = crate::controller::default_instance();
        let vars = cfg.vars(&ctx.settings);
        let org = ctx.settings.org.clone();
        let durable = cfg.durable.clone();
        let Some(host) = ctx.host() else {
            return Err(NeedsRestart("the controller runs inside the supervisor".into()).into());
        };
        let rx = host.shutdown.subscribe();
        let runtime = host.runtime.clone();
        let c = Loop::new(client, &org, cfg, vars, &instance);
        let log_instance = instance.clone();
        let task = tokio::spawn(async move {
            let report = |s: &crate::controller::consume::Stats| {
                let v = serde_json::to_value(s).unwrap_or_default();
                runtime.update(|r| {
                    r.components.insert(TASK.into(), v);
                });
            };
            if let Err(e) = c.run(rx, report).await {
                tracing::error!("controller {log_instance} stopped: {e:#}");
            }
        });
        host.tasks.push((TASK.into(), task));
        let mut out = Outputs::new();
        out.insert(
            "summary".into(),
            format!("watching pushes to {org}/.github").into(),
        );
        out.insert("instance".into(), instance.into());
        out.insert("durable".into(), durable.into());
        out.insert(
            "subject".into(),
            subjects::push_filter(&org, DOT_GITHUB).into(),
        );
        Ok(out)
    }
}
