//! `--mode docker` as a [`Target`]: the deployment logic lives in `crate::containers::docker`.

use super::{EnvVar, Health, Target};
use crate::config::Settings;
use crate::engine::{Ctx, Outputs};
use crate::stages::prerequisites::Check;
use anyhow::Result;

pub struct Docker;

#[async_trait::async_trait]
impl Target for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn describe(&self, s: &Settings) -> String {
        format!(
            "{} nats container(s) on Docker network {}",
            self.replicas(s),
            crate::containers::docker::network_name(s)
        )
    }
    fn checks(&self, s: &Settings) -> Vec<Check> {
        let mut out = crate::containers::checks::checks(s);
        if out.iter().all(|c| c.ok) && crate::containers::checks::needs_local_nats_server(s) {
            out.push(crate::stages::prerequisites::nats_server(s));
        }
        out
    }
    async fn mismatch(&self, s: &Settings) -> Result<Option<String>> {
        crate::containers::docker::mismatch(s).await
    }
    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        crate::containers::docker::ensure(ctx).await
    }
    async fn health(&self, s: &Settings) -> Health {
        crate::containers::docker::health(s).await
    }
    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        crate::containers::docker::connect(s).await
    }
    async fn stop(&self, s: &Settings, purge: bool) -> Result<bool> {
        crate::containers::docker::down(s, purge).await
    }
    fn replicas(&self, s: &Settings) -> usize {
        crate::containers::replicas(s)
    }
    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        crate::containers::client_env(s).await
    }
}
