//! Deployment targets: what differs between the ways ghboot runs NATS (supervised local servers, a remote
//! Synadia Cloud account, a local leaf node under a remote hub, containers), behind one small interface so
//! that stages and commands never branch on the mode. Modelled on kind's `Provider`.
//!
//! `for_settings` picks the target; the nats stage, `status`, `env`, `down` and `Ctx::nats` ask it.

pub mod auto;
pub mod containers;
pub mod creds;
pub mod dev;
pub mod docker;
pub mod kubernetes;
pub mod supervisor;
pub mod synadia;

use crate::check::Check;
use crate::config::Settings;
use crate::config::{Mode, NatsType};
use crate::engine::{Ctx, Outputs};
use anyhow::Result;
use serde::Serialize;

/// Live view of the deployment, read on every call. `status --json` shows it under `"nats"`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Health {
    pub healthy: bool,
    /// What clients connect to: one URL, or a comma-separated list (a cluster).
    pub url: Option<String>,
    pub monitor_url: Option<String>,
    /// pid of the nats-server listening on the client port (the node whose port is `--port`, for a cluster)
    pub pid: Option<u32>,
    pub supervisor_pid: Option<u32>,
    pub supervisor_alive: bool,
    pub nodes: Vec<NodeHealth>,
    /// The JetStream meta leader (clustered JetStream only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_leader: Option<String>,
    /// Where JetStream lives, when not the default: the JetStream domain (hybrid leaf, Synadia).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream_domain: Option<String>,
    /// Remote side (Synadia, or the hub of a leaf node), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeHealth {
    pub name: String,
    pub pid: u32,
    pub alive: bool,
    pub healthy: bool,
    pub url: String,
    pub monitor_url: String,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_port: Option<u16>,
}

/// One client-facing variable of `ghboot env`: (name, value, secret).
pub type EnvVar = (String, String, bool);

/// What clients of a deployment that uses ghboot's generated user and password need: `NATS_URL`,
/// `NATS_USER`, `NATS_PASSWORD` (marked secret) and the monitoring URL.
pub fn generated_auth_env(s: &Settings, h: &Health) -> Result<Vec<EnvVar>> {
    use crate::error::{fail, Kind};
    let auth = dev::load_auth(s)?.ok_or_else(|| {
        fail(Kind::NoInput, "this instance has no NATS credentials yet")
            .help("run `ghboot up` first")
    })?;
    let url = h.url.clone().ok_or_else(|| {
        fail(Kind::NoInput, "this instance has no NATS URL yet").help("run `ghboot up` first")
    })?;
    let mut v = vec![
        ("NATS_URL".to_string(), url, false),
        ("NATS_USER".to_string(), auth.user.clone(), false),
        (
            "NATS_PASSWORD".to_string(),
            auth.password.expose().to_string(),
            true,
        ),
    ];
    if let Some(m) = &h.monitor_url {
        v.push(("GHBOOT_MONITOR_URL".into(), m.clone(), false));
    }
    Ok(v)
}

/// Where one of ghboot's own services (the webhook receiver, the controller) runs for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosting {
    /// A task of the supervising `up` process (its stage starts it).
    InProcess,
    /// Containers of the deployment, made by the nats stage; the stage checks and records them.
    Containers,
    /// Not run by `up`; the stage stays pending with this reason.
    Elsewhere(String),
}

#[async_trait::async_trait]
pub trait Target: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for the nats stage summary and `plan`.
    fn describe(&self, s: &Settings) -> String;
    /// Tools and conditions this target needs (the prerequisites stage and `doctor` show them).
    fn checks(&self, s: &Settings) -> Vec<Check>;
    /// Why the running deployment differs from the desired one (None: it matches).
    async fn mismatch(&self, s: &Settings) -> Result<Option<String>>;
    /// Make NATS run as desired. Only called with `Role::Host` (the supervisor); outputs go to the stage record.
    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs>;
    async fn health(&self, s: &Settings) -> Health;
    /// A connected client with this deployment's credentials.
    async fn connect(&self, s: &Settings) -> Result<async_nats::Client>;
    /// Stop what this target runs (`down`); `purge`: also its volumes/data. Returns whether anything ran.
    async fn stop(&self, s: &Settings, purge: bool) -> Result<bool>;
    /// JetStream replicas the topology should ask for (1 for a single server, 3 for a cluster).
    fn replicas(&self, s: &Settings) -> usize;
    /// JetStream domain clients must address (None: the default).
    fn jetstream_domain(&self, _s: &Settings) -> Option<String> {
        None
    }
    /// What `ghboot env` exports for clients: NATS_URL plus auth (NATS_USER/NATS_PASSWORD or NATS_CREDS, ...).
    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>>;
    /// The `mode` line of the prerequisites (which mode, and why when `auto` picked it).
    fn mode_line(&self, s: &Settings) -> String {
        format!("{}: {}", s.mode, self.describe(s))
    }
    /// Does `up` stay as the supervisor afterwards (false: an engine or cluster keeps things running)?
    fn supervises(&self) -> bool {
        true
    }
    /// Does JetStream store its data under the state dir (the disk prerequisite)?
    fn stores_locally(&self, _s: &Settings) -> bool {
        true
    }
    /// Where the webhook receiver runs.
    fn receiver(&self, _s: &Settings) -> Hosting {
        Hosting::InProcess
    }
    /// The receiver's URL on this host, when it runs as a container (`Hosting::Containers`).
    async fn receiver_url(&self, _s: &Settings) -> Option<String> {
        None
    }
    /// Where the controller runs.
    fn controller(&self, s: &Settings) -> Hosting {
        Hosting::Elsewhere(format!(
            "in {} mode the controller runs as its own process: `ghboot controller`",
            s.mode
        ))
    }
    /// Why the self-management round trip does not run here (None: it does).
    fn round_trip_skip(&self, s: &Settings) -> Option<String> {
        Some(format!(
            "in {} mode the round trip runs against GitHub itself (not automated yet)",
            s.mode
        ))
    }
    /// Extra detail for `status` (streams and their replicas, meta leader...); None when there is nothing.
    async fn details(&self, _s: &Settings) -> Option<serde_json::Value> {
        None
    }
}

/// Is this a deployment on Synadia Cloud (no local server)?
pub fn is_synadia(s: &Settings) -> bool {
    s.mode == Mode::Synadia || s.nats_type == NatsType::SynadiaCloud
}

/// The target for these settings: the one place that maps mode and NATS type to a deployment.
pub fn for_settings(s: &Settings) -> Box<dyn Target> {
    if s.nats_type == NatsType::Hybrid {
        // a local leaf node (supervised like dev) whose uplink is Synadia or any hub
        return Box::new(dev::Dev);
    }
    if is_synadia(s) {
        return Box::new(synadia::Synadia);
    }
    match s.mode {
        Mode::Docker => Box::new(docker::Docker),
        Mode::Kubernetes => Box::new(kubernetes::Kubernetes),
        _ => Box::new(dev::Dev),
    }
}

/// JetStream replicas for these settings' topology (1 single server / leaf / Synadia, 3 cluster). The
/// topology reconciler asks this instead of hard-coding 1.
pub fn replicas(s: &Settings) -> usize {
    for_settings(s).replicas(s)
}

/// A JetStream context for this deployment, in its JetStream domain when it has one (Synadia with
/// `--js-domain`, the hybrid leaf's own domain). Use it instead of `async_nats::jetstream::new`.
pub fn jetstream(s: &Settings, client: async_nats::Client) -> async_nats::jetstream::Context {
    creds::jetstream(client, for_settings(s).jetstream_domain(s).as_deref())
}
