//! The controller: regenerates the org's `.github` files when their templates change, without ever
//! reacting to its own commits. See `consume` (the JetStream loop), `regenerate` (git work) and `templates`
//! (rendering, manifest, check, clean).
pub mod consume;
pub mod dlq;
pub mod hook;
pub mod regenerate;
pub mod templates;
pub mod workflow;

use crate::config::Settings;
use crate::error::{fail, Kind};
use anyhow::Result;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The repository whose pushes the controller watches.
pub const DOT_GITHUB: &str = ".github";

/// `[controller]` in ghboot.toml. Unknown keys are allowed (templates read the table too).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Name and email of the controller's commits; a push by this identity never triggers a regeneration.
    pub bot_name: String,
    pub bot_email: String,
    /// The branch regenerated (pushes to other branches are ignored).
    pub branch: String,
    /// The `.github` repository (local path or clone URL); default: the push payload's `clone_url`.
    pub repo: Option<String>,
    /// Override dir for templates (default: the repository's own `templates/`, else the built-in set).
    pub templates: Option<PathBuf>,
    /// Deliveries of one event before it goes to the dead-letter stream.
    pub max_deliveries: i64,
    /// First redelivery delay after a failure; doubles per delivery up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Rate limit: at least this long between two regenerations of one org (backpressure: events wait,
    /// and are coalesced, in the stream meanwhile).
    pub min_interval_ms: u64,
    /// How long a controller waits for the org's regeneration lock before it tries again.
    pub lock_wait_ms: u64,
    /// Push attempts when the branch moved under a regeneration.
    pub push_attempts: u32,
    /// Ack wait of the consumer: an event whose controller died is redelivered after this long.
    pub ack_wait_ms: u64,
    /// Durable consumer name (shared by all controller processes of an org: they split the work).
    pub durable: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bot_name: "ghboot-controller".into(),
            bot_email: "ghboot-controller@users.noreply.github.com".into(),
            branch: "main".into(),
            repo: None,
            templates: None,
            max_deliveries: 5,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
            min_interval_ms: 500,
            lock_wait_ms: 2000,
            push_attempts: 10,
            ack_wait_ms: 30_000,
            durable: "ghboot-controller".into(),
        }
    }
}

impl Config {
    pub fn from_settings(s: &Settings) -> Result<Config> {
        let table = toml::Value::Table(s.file.controller.clone());
        let c: Config = table.try_into().map_err(|e: toml::de::Error| {
            fail(
                Kind::Config,
                format!("invalid [controller] table: {}", e.message()),
            )
            .help("fix ghboot.toml; see README.md for the [controller] keys")
        })?;
        if c.max_deliveries < 1 || c.push_attempts < 1 {
            return Err(fail(
                Kind::Config,
                "[controller] max_deliveries and push_attempts must be at least 1",
            )
            .into());
        }
        Ok(c)
    }
    pub fn backoff(&self, delivered: i64) -> Duration {
        let exp = (delivered.max(1) - 1).min(20) as u32;
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(1u64 << exp)
                .min(self.max_backoff_ms),
        )
    }
    pub fn vars(&self, s: &Settings) -> templates::Vars {
        templates::Vars {
            org: s.org.clone(),
            branch: self.branch.clone(),
            bot: templates::Bot {
                name: self.bot_name.clone(),
                email: self.bot_email.clone(),
            },
            controller: serde_json::to_value(&s.file.controller).unwrap_or_default(),
        }
    }
}

/// This controller's name among its peers when none is given: `<hostname>-<pid>`.
/// Where `ghboot controller` records its heartbeat for a container health check (`ghboot healthcheck
/// file://PATH?max-age=SECS`), when set.
pub const HEARTBEAT_FILE_ENV: &str = "GHBOOT_CONTROLLER_HEARTBEAT_FILE";

/// Set in container deployments (Compose, Kubernetes), where no `ghboot up` runs next to NATS: the controller
/// creates (or updates in place) the org's streams and buckets before it consumes, as the topology stage does.
pub const APPLY_TOPOLOGY_ENV: &str = "GHBOOT_CONTROLLER_APPLY_TOPOLOGY";

pub fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}
