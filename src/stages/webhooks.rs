//! Stage: webhook ingress into JetStream and hook registration. Not built yet (issue #5): listed as pending with that reason, never reported done.
use crate::config::Settings;
use crate::engine::{Change, Ctx, Outputs, Stage, Verdict};
use anyhow::Result;

pub struct Webhooks;

#[async_trait::async_trait]
impl Stage for Webhooks {
    fn name(&self) -> &'static str {
        "webhooks"
    }
    fn summary(&self) -> &'static str {
        "webhook ingress into JetStream and hook registration"
    }
    fn skip_reason(&self, _s: &Settings) -> Option<String> {
        Some("not implemented yet (issue #5)".into())
    }
    async fn plan(&self, _ctx: &mut Ctx) -> Result<Vec<Change>> {
        Ok(vec![])
    }
    async fn verify(&self, _ctx: &mut Ctx) -> Result<Verdict> {
        Ok(Verdict::Drift("not implemented".into()))
    }
    async fn apply(&self, _ctx: &mut Ctx) -> Result<Outputs> {
        anyhow::bail!("not implemented yet (issue #5)")
    }
}
