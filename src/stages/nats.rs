//! Stage: NATS. Asks the deployment target (`crate::deploy`) to make NATS run as desired — a supervised
//! local nats-server, a local cluster, a leaf node, a remote account — then reconciles the JetStream topology.

use crate::config::Settings;
use crate::engine::{Change, Ctx, NeedsRestart, Outputs, Role, Stage, Verdict};
use crate::state::Runtime;
use anyhow::Result;

pub use crate::deploy::dev::{ensure_auth, load_auth, url_host, Auth, NATS_USER};
pub use crate::deploy::{Health, NodeHealth};

pub struct Nats;

impl Ctx {
    /// A connected NATS client for this instance.
    pub async fn nats(&mut self) -> Result<async_nats::Client> {
        if let Some(c) = &self.nats {
            if c.connection_state() == async_nats::connection::State::Connected {
                return Ok(c.clone());
            }
        }
        let c = connect(&self.settings).await?;
        self.nats = Some(c.clone());
        Ok(c)
    }
}

/// Live view of the instance (through its target).
pub async fn health(s: &Settings) -> Health {
    crate::deploy::for_settings(s).health(s).await
}

/// Connect to this instance with its credentials (through its target).
pub async fn connect(s: &Settings) -> Result<async_nats::Client> {
    crate::deploy::for_settings(s).connect(s).await
}

/// JetStream replicas for this deployment's topology (1 single server, 3 cluster).
pub fn replicas(s: &Settings) -> usize {
    crate::deploy::for_settings(s).replicas(s)
}

#[async_trait::async_trait]
impl Stage for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }
    fn summary(&self) -> &'static str {
        "start (or reach) NATS with JetStream and reconcile the topology"
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        let target = crate::deploy::for_settings(&ctx.settings);
        match target.mismatch(&ctx.settings).await? {
            Some(why) => {
                let action =
                    if Runtime::load(&ctx.settings.layout).is_some_and(|r| r.supervisor_alive()) {
                        "restart"
                    } else {
                        "start"
                    };
                let port = ctx
                    .settings
                    .port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "free port".into());
                Ok(vec![Change::new(
                    "nats",
                    target.describe(&ctx.settings),
                    action,
                )
                .note(why)
                .field("port", "-", port)])
            }
            None => {
                let client = ctx.nats().await?;
                crate::topology::plan(&ctx.settings, client).await
            }
        }
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        let target = crate::deploy::for_settings(&ctx.settings);
        if let Some(why) = target.mismatch(&ctx.settings).await? {
            return Ok(Verdict::Drift(why));
        }
        let client = ctx.nats().await?;
        let changes = crate::topology::plan(&ctx.settings, client).await?;
        Ok(if changes.is_empty() {
            Verdict::Holds
        } else {
            Verdict::Drift(format!("{} JetStream change(s) pending", changes.len()))
        })
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let target = crate::deploy::for_settings(&ctx.settings);
        let mut out = Outputs::new();
        match ctx.role {
            Role::Host(_) => out.extend(target.ensure(ctx).await?),
            Role::Client => {
                if let Some(why) = target.mismatch(&ctx.settings).await? {
                    return Err(NeedsRestart(why).into());
                }
                if let Some(prev) = ctx.state.stage("nats") {
                    out.extend(prev.outputs.clone());
                }
            }
        }
        let h = target.health(&ctx.settings).await;
        let client = ctx.nats().await?;
        let topo =
            crate::topology::apply(&ctx.settings, client, &ctx.reporter, &mut ctx.state).await?;
        out.insert("target".into(), target.name().into());
        out.insert("topology".into(), topo);
        out.insert("url".into(), h.url.clone().unwrap_or_default().into());
        out.insert(
            "monitor_url".into(),
            h.monitor_url.clone().unwrap_or_default().into(),
        );
        out.insert(
            "summary".into(),
            format!("NATS ready at {}", h.url.unwrap_or_default()).into(),
        );
        Ok(out)
    }
}
