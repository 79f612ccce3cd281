//! `--mode kubernetes` as a [`Target`]: rendering and kubectl live in `crate::deploy::containers`. No live cluster
//! is exercised by the tests; without a kube context that answers, the prerequisites fail with the reason.

pub mod kubectl;

use crate::check::Check;
use crate::config::Settings;
use crate::deploy::{EnvVar, Health, Target};
use crate::engine::{Ctx, Outputs};
use anyhow::Result;

pub struct Kubernetes;

#[async_trait::async_trait]
impl Target for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn describe(&self, s: &Settings) -> String {
        format!(
            "a 3-node JetStream StatefulSet in namespace {}",
            crate::deploy::docker::render::k8s_namespace(s)
        )
    }
    fn checks(&self, s: &Settings) -> Vec<Check> {
        crate::deploy::docker::checks::checks(s)
    }
    async fn mismatch(&self, s: &Settings) -> Result<Option<String>> {
        crate::deploy::containers::mismatch(s).await
    }
    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        crate::deploy::kubernetes::kubectl::ensure(ctx).await
    }
    async fn health(&self, s: &Settings) -> Health {
        crate::deploy::kubernetes::kubectl::health(s).await
    }
    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        crate::deploy::containers::connect(s).await
    }
    async fn stop(&self, s: &Settings, purge: bool) -> Result<bool> {
        crate::deploy::kubernetes::kubectl::down(s, purge).await
    }
    fn replicas(&self, _s: &Settings) -> usize {
        3
    }
    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        crate::deploy::containers::client_env(s).await
    }
}
