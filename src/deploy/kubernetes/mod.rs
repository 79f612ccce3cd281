//! `--mode kubernetes` as a [`Target`]: rendering and kubectl live in `crate::deploy::containers`. No live cluster
//! is exercised by the tests; without a kube context that answers, the prerequisites fail with the reason.

pub mod kubectl;

use crate::check::Check;
use crate::config::Settings;
use crate::deploy::{EnvVar, Health, Hosting, Target};
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
        Ok(if kubectl::health(s).await.healthy {
            None
        } else {
            Some("the StatefulSet is not ready".into())
        })
    }
    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        crate::deploy::kubernetes::kubectl::ensure(ctx).await
    }
    async fn health(&self, s: &Settings) -> Health {
        crate::deploy::kubernetes::kubectl::health(s).await
    }
    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        let _ = s;
        Err(crate::error::fail(
            crate::error::Kind::Unavailable,
            "the NATS of --mode kubernetes is reachable inside the cluster only",
        )
        .help("use `kubectl port-forward -n NAMESPACE service/nats 4222` and connect to 127.0.0.1:4222")
        .into())
    }
    async fn stop(&self, s: &Settings, purge: bool) -> Result<bool> {
        crate::deploy::kubernetes::kubectl::down(s, purge).await
    }
    fn mode_line(&self, s: &Settings) -> String {
        crate::deploy::docker::checks::mode_detail(s).unwrap_or_default()
    }
    fn supervises(&self) -> bool {
        false
    }
    fn receiver(&self, _s: &Settings) -> Hosting {
        Hosting::Elsewhere(
            "--mode kubernetes: the receiver runs in the cluster's ghboot pod (see `ghboot status`)"
                .into(),
        )
    }
    fn controller(&self, _s: &Settings) -> Hosting {
        Hosting::Elsewhere(
            "--mode kubernetes: the controller runs in the cluster's ghboot pod (see `ghboot status`)"
                .into(),
        )
    }
    fn replicas(&self, _s: &Settings) -> usize {
        3
    }
    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        crate::deploy::generated_auth_env(s, &kubectl::health(s).await)
    }
}
