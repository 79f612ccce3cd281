//! The six stages, one module each, in the order they run.
use crate::engine::{Ctx, Observer, Stage};
use anyhow::Result;

pub mod controller;
pub mod nats;
pub mod prerequisites;
pub mod self_management;
pub mod state_backend;
pub mod webhooks;

pub const NAMES: [&str; 6] = [
    "prerequisites",
    "state-backend",
    "nats",
    "webhooks",
    "controller",
    "self-management",
];

pub fn all() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(prerequisites::Prerequisites),
        Box::new(state_backend::StateBackend),
        Box::new(nats::Nats),
        Box::new(webhooks::Webhooks),
        Box::new(controller::Controller),
        Box::new(self_management::SelfManagement),
    ]
}

/// Run every stage through the engine, mirroring each persisted transition into NATS.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    crate::engine::run(ctx, &all(), &MirrorState).await
}

/// Once NATS is up, every persisted transition is mirrored into the `state` bucket too (local file first,
/// then NATS: the chicken before the egg). Best effort: the local file is the source of truth.
pub struct MirrorState;

#[async_trait::async_trait]
impl Observer for MirrorState {
    async fn persisted(&self, ctx: &mut Ctx) {
        let Some(client) = ctx.nats.clone() else {
            return;
        };
        let js = crate::deploy::jetstream(&ctx.settings, client);
        if let Err(e) = crate::topology::mirror_state(&ctx.settings, &mut ctx.state, &js).await {
            tracing::warn!("cannot mirror the state into NATS: {e:#}");
        }
    }
}
