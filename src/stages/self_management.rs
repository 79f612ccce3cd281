//! Stage: the end-to-end round trip that proves self-management. Not built yet (issue #6): listed as pending with that reason, never reported done.
use crate::config::Settings;
use crate::engine::{Change, Ctx, Outputs, Stage, Verdict};
use anyhow::Result;

pub struct SelfManagement;

#[async_trait::async_trait]
impl Stage for SelfManagement {
    fn name(&self) -> &'static str {
        "self-management"
    }
    fn summary(&self) -> &'static str {
        "the end-to-end round trip that proves self-management"
    }
    fn skip_reason(&self, _s: &Settings) -> Option<String> {
        Some("not implemented yet (issue #6)".into())
    }
    async fn plan(&self, _ctx: &mut Ctx) -> Result<Vec<Change>> {
        Ok(vec![])
    }
    async fn verify(&self, _ctx: &mut Ctx) -> Result<Verdict> {
        Ok(Verdict::Drift("not implemented".into()))
    }
    async fn apply(&self, _ctx: &mut Ctx) -> Result<Outputs> {
        anyhow::bail!("not implemented yet (issue #6)")
    }
}
