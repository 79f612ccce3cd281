//! Target `synadia`: NATS is a Synadia Cloud account; ghboot runs no server and connects with the user's
//! credentials. Filled in with issue 8.

use super::{EnvVar, Health, Target};
use crate::config::Settings;
use crate::engine::{Ctx, Outputs};
use crate::error::{fail, Kind};
use crate::stages::prerequisites::Check;
use anyhow::Result;

pub struct Synadia;

#[async_trait::async_trait]
impl Target for Synadia {
    fn name(&self) -> &'static str {
        "synadia"
    }
    fn describe(&self, _s: &Settings) -> String {
        "a Synadia Cloud account".into()
    }
    fn checks(&self, _s: &Settings) -> Vec<Check> {
        vec![]
    }
    async fn mismatch(&self, _s: &Settings) -> Result<Option<String>> {
        Ok(Some("not available yet".into()))
    }
    async fn ensure(&self, _ctx: &mut Ctx) -> Result<Outputs> {
        Err(
            fail(Kind::Unavailable, "Synadia Cloud is not available yet")
                .help("use --mode dev")
                .into(),
        )
    }
    async fn health(&self, _s: &Settings) -> Health {
        Health::default()
    }
    async fn connect(&self, _s: &Settings) -> Result<async_nats::Client> {
        Err(
            fail(Kind::Unavailable, "Synadia Cloud is not available yet")
                .help("use --mode dev")
                .into(),
        )
    }
    async fn stop(&self, s: &Settings, _purge: bool) -> Result<bool> {
        crate::commands::down::stop(&s.layout).await
    }
    fn replicas(&self, _s: &Settings) -> usize {
        1
    }
    async fn client_env(&self, _s: &Settings) -> Result<Vec<EnvVar>> {
        Err(
            fail(Kind::Unavailable, "Synadia Cloud is not available yet")
                .help("use --mode dev")
                .into(),
        )
    }
}
