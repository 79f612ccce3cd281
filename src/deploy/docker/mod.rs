//! `--mode docker` as a [`Target`]: the deployment logic lives in `crate::deploy::docker::engine`.

pub mod checks;
pub mod engine;
pub mod images;
pub mod render;

use crate::check::Check;
use crate::config::Settings;
use crate::deploy::{EnvVar, Health, Hosting, Target};
use crate::engine::{Ctx, Outputs};
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
            crate::deploy::docker::engine::network_name(s)
        )
    }
    fn checks(&self, s: &Settings) -> Vec<Check> {
        let mut out = crate::deploy::docker::checks::checks(s);
        if out.iter().all(|c| c.ok) && crate::deploy::docker::checks::needs_local_nats_server(s) {
            out.push(crate::natsd::check(s));
        }
        out
    }
    async fn mismatch(&self, s: &Settings) -> Result<Option<String>> {
        crate::deploy::docker::engine::mismatch(s).await
    }
    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        crate::deploy::docker::engine::ensure(ctx).await
    }
    async fn health(&self, s: &Settings) -> Health {
        crate::deploy::docker::engine::health(s).await
    }
    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        crate::deploy::docker::engine::connect(s).await
    }
    async fn stop(&self, s: &Settings, purge: bool) -> Result<bool> {
        crate::deploy::docker::engine::down(s, purge).await
    }
    fn mode_line(&self, s: &Settings) -> String {
        checks::mode_detail(s).unwrap_or_default()
    }
    fn supervises(&self) -> bool {
        false
    }
    fn receiver(&self, _s: &Settings) -> Hosting {
        Hosting::Containers
    }
    async fn receiver_url(&self, s: &Settings) -> Option<String> {
        engine::receiver_url(s).await
    }
    fn controller(&self, _s: &Settings) -> Hosting {
        Hosting::Elsewhere(
            "--mode docker: the controller runs in the deployment's ghboot container (see `ghboot status`)"
                .into(),
        )
    }
    fn replicas(&self, s: &Settings) -> usize {
        crate::deploy::containers::replicas(s)
    }
    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        crate::deploy::generated_auth_env(s, &engine::health(s).await)
    }
}
