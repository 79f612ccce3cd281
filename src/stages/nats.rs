//! Stage: NATS. In dev, a nats-server with JetStream that this process supervises, reachable only with
//! generated credentials; then the JetStream topology.

use crate::config::Settings;
use crate::engine::{Change, Ctx, NeedsRestart, Outputs, Role, Stage, Verdict};
use crate::error::{fail, Kind};
use crate::natsd::conf::NodeSpec;
use crate::natsd::supervise::{self, http_client};
use crate::secret::Secret;
use crate::state::Runtime;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub struct Nats;

pub const NATS_USER: &str = "ghboot";

/// Credentials clients use. Kept in a 0600 file, never in the state file.
#[derive(Clone, Serialize, Deserialize)]
pub struct Auth {
    pub user: String,
    pub password: Secret,
}

pub fn load_auth(s: &Settings) -> Result<Option<Auth>> {
    let path = s.layout.nats_auth_file();
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
            fail(Kind::Data, format!("credentials file {} is corrupt: {e}", path.display()))
                .help("remove it and run `ghboot up` again: new credentials are generated and the server restarted")
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn ensure_auth(s: &Settings) -> Result<Auth> {
    if let Some(a) = load_auth(s)? {
        return Ok(a);
    }
    let auth = Auth {
        user: NATS_USER.into(),
        password: Secret::generate(32),
    };
    crate::fsutil::create_private_dir(&s.layout.secrets_dir())?;
    crate::secret::write_private(
        &s.layout.nats_auth_file(),
        &serde_json::to_vec_pretty(&auth)?,
    )?;
    Ok(auth)
}

/// The nodes this configuration runs.
pub fn node_specs(s: &Settings, auth: &Auth) -> Vec<NodeSpec> {
    let l = &s.layout;
    let dir = l.node_dir("n0");
    vec![NodeSpec {
        name: format!("ghboot-{}", s.org),
        bind: s.bind.clone(),
        port: s.port,
        monitor_port: s.monitor_port,
        store_dir: dir.join("jetstream"),
        conf_file: dir.join("nats-server.conf"),
        log_file: l.log_file("nats"),
        ports_file_dir: l.run_dir(),
        cluster: None,
        jetstream_domain: None,
        user: auth.user.clone(),
        password: auth.password.clone(),
        extra: String::new(),
    }]
}

/// Fingerprint of what the servers were started with; a running instance with another one is rolled.
pub fn config_hash(specs: &[NodeSpec], auth: &Auth) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(specs).unwrap_or_default());
    h.update(auth.password.expose().as_bytes());
    hex::encode(&h.finalize()[..12])
}

pub fn url_host(bind: &str) -> &str {
    match bind {
        "0.0.0.0" | "::" => "127.0.0.1",
        b => b,
    }
}

/// Live view of the instance, read from the processes and the monitoring endpoint on every call.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub url: Option<String>,
    pub monitor_url: Option<String>,
    /// pid of the nats-server listening on the client port (the first node's, for a cluster)
    pub pid: Option<u32>,
    pub supervisor_pid: Option<u32>,
    pub supervisor_alive: bool,
    pub nodes: Vec<NodeHealth>,
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
}

pub async fn health(s: &Settings) -> Health {
    if crate::containers::is_container_mode(s.mode) {
        return crate::containers::health(s).await;
    }
    let rt = Runtime::load(&s.layout);
    let client = http_client();
    let host = url_host(&s.bind);
    let mut nodes = Vec::new();
    let supervisor_alive = rt.as_ref().is_some_and(|r| r.supervisor_alive());
    if let Some(rt) = &rt {
        for n in &rt.nodes {
            let alive = crate::platform::is_alive(n.pid);
            let healthy = supervisor_alive
                && alive
                && supervise::healthz(&client, &s.bind, n.monitor_port).await;
            nodes.push(NodeHealth {
                name: n.name.clone(),
                pid: n.pid,
                alive,
                healthy,
                url: format!("nats://{host}:{}", n.port),
                monitor_url: format!("http://{host}:{}", n.monitor_port),
                restarts: n.restarts,
            });
        }
    }
    let healthy = supervisor_alive && !nodes.is_empty() && nodes.iter().any(|n| n.healthy);
    let url = if nodes.is_empty() {
        s.port.map(|p| format!("nats://{host}:{p}"))
    } else {
        Some(
            nodes
                .iter()
                .map(|n| n.url.clone())
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    Health {
        healthy,
        url,
        monitor_url: nodes
            .first()
            .map(|n| n.monitor_url.clone())
            .or(s.monitor_port.map(|p| format!("http://{host}:{p}"))),
        pid: nodes.first().filter(|n| n.alive).map(|n| n.pid),
        supervisor_pid: rt.as_ref().map(|r| r.supervisor_pid),
        supervisor_alive,
        nodes,
    }
}

/// Connect to this instance with its credentials.
pub async fn connect(s: &Settings) -> Result<async_nats::Client> {
    if crate::containers::is_container_mode(s.mode) {
        return crate::containers::connect(s).await;
    }
    let auth = load_auth(s)?.ok_or_else(|| {
        fail(Kind::NoInput, "no NATS credentials in the state dir").help("run `ghboot up` first")
    })?;
    let rt = Runtime::load(&s.layout)
        .filter(|r| r.supervisor_alive() && !r.nodes.is_empty())
        .ok_or_else(|| {
            fail(
                Kind::Unavailable,
                format!(
                    "no ghboot instance is running in {}",
                    s.layout.root().display()
                ),
            )
            .help("start it with `ghboot up --detach`")
        })?;
    let host = url_host(&s.bind);
    let urls: Vec<String> = rt
        .nodes
        .iter()
        .map(|n| format!("nats://{host}:{}", n.port))
        .collect();
    let opts = async_nats::ConnectOptions::with_user_and_password(
        auth.user.clone(),
        auth.password.expose().to_string(),
    )
    .connection_timeout(Duration::from_secs(3))
    .name("ghboot");
    let addrs: Vec<async_nats::ServerAddr> = urls.iter().filter_map(|u| u.parse().ok()).collect();
    opts.connect(addrs).await.map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot connect to NATS at {}: {e}", urls.join(",")),
        )
        .help("check `ghboot status`; `ghboot up` restarts a stopped instance")
        .into()
    })
}

/// Why the running instance (if any) does not match the desired one; None when it does.
async fn running_mismatch(s: &Settings) -> Result<Option<String>> {
    let Some(rt) = Runtime::load(&s.layout).filter(|r| r.supervisor_alive()) else {
        return Ok(Some("nats-server is not running".into()));
    };
    let Some(auth) = load_auth(s)? else {
        return Ok(Some("credentials are missing".into()));
    };
    let specs = node_specs(s, &auth);
    for (spec, node) in specs.iter().zip(&rt.nodes) {
        if spec.port.is_some_and(|p| p != node.port) {
            return Ok(Some(format!(
                "client port {} -> {}",
                node.port,
                spec.port.unwrap_or_default()
            )));
        }
        if spec.monitor_port.is_some_and(|p| p != node.monitor_port) {
            return Ok(Some(format!(
                "monitoring port {} -> {}",
                node.monitor_port,
                spec.monitor_port.unwrap_or_default()
            )));
        }
    }
    if specs.len() != rt.nodes.len() {
        return Ok(Some(format!("{} nodes -> {}", rt.nodes.len(), specs.len())));
    }
    let h = health(s).await;
    if !h.healthy {
        return Ok(Some("nats-server is not healthy".into()));
    }
    if rt.config_hash != config_hash(&fill_ports(specs, &rt), &auth) {
        return Ok(Some("server configuration changed".into()));
    }
    Ok(None)
}

/// Specs with the ports the running nodes actually got (ephemeral instances pick them on first start).
fn fill_ports(mut specs: Vec<NodeSpec>, rt: &Runtime) -> Vec<NodeSpec> {
    for (spec, node) in specs.iter_mut().zip(&rt.nodes) {
        spec.port = Some(node.port);
        spec.monitor_port = Some(node.monitor_port);
    }
    specs
}

async fn start_servers(ctx: &mut Ctx) -> Result<Outputs> {
    let s = ctx.settings.clone();
    supervise::reap_strays(&s.layout);
    let found = crate::natsd::find::find(s.nats_server.as_deref())?;
    let version = crate::natsd::find::version_of(&found.path)?;
    let auth = ensure_auth(&s)?;
    let specs = node_specs(&s, &auth);
    let host = ctx
        .host()
        .context("only a supervising ghboot starts servers")?;
    if let Some(old) = host.supervisor.take() {
        old.stop().await;
    }
    let sup = supervise::start(&found.path, specs.clone(), host.runtime.clone()).await?;
    host.supervisor = Some(sup);
    let rt = host.runtime.get();
    let hash = config_hash(&fill_ports(specs, &rt), &auth);
    host.runtime.update(|r| r.config_hash = hash);
    // Ports the server picked (ephemeral) become this instance's ports from now on.
    if let Some(n) = rt.nodes.first() {
        ctx.settings.port = Some(n.port);
        ctx.settings.monitor_port = Some(n.monitor_port);
        ctx.state.settings.port = Some(n.port);
        ctx.state.settings.monitor_port = Some(n.monitor_port);
    }
    let mut out = Outputs::new();
    out.insert(
        "nats_server".into(),
        found.path.display().to_string().into(),
    );
    out.insert("nats_server_source".into(), found.source.to_string().into());
    out.insert("version".into(), version.to_string().into());
    Ok(out)
}

#[async_trait::async_trait]
impl Stage for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }
    fn summary(&self) -> &'static str {
        "start a supervised nats-server with JetStream and reconcile the topology"
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        if crate::containers::is_container_mode(ctx.settings.mode) {
            return crate::containers::nats_plan(ctx).await;
        }
        match running_mismatch(&ctx.settings).await? {
            Some(why) => {
                let action =
                    if Runtime::load(&ctx.settings.layout).is_some_and(|r| r.supervisor_alive()) {
                        "restart"
                    } else {
                        "start"
                    };
                let port = ctx
                    .settings
                    .port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "free port".into());
                Ok(vec![Change::new("nats", "nats-server", action)
                    .note(why)
                    .field("port", "-", port)])
            }
            None => crate::topology::plan(ctx).await,
        }
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        if crate::containers::is_container_mode(ctx.settings.mode) {
            return crate::containers::nats_verify(ctx).await;
        }
        if let Some(why) = running_mismatch(&ctx.settings).await? {
            return Ok(Verdict::Drift(why));
        }
        let changes = crate::topology::plan(ctx).await?;
        Ok(if changes.is_empty() {
            Verdict::Holds
        } else {
            Verdict::Drift(format!("{} JetStream change(s) pending", changes.len()))
        })
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        if crate::containers::is_container_mode(ctx.settings.mode) {
            return crate::containers::nats_apply(ctx).await;
        }
        let mut out = Outputs::new();
        match ctx.role {
            Role::Host(_) => out.extend(start_servers(ctx).await?),
            Role::Client => {
                if let Some(why) = running_mismatch(&ctx.settings).await? {
                    return Err(NeedsRestart(why).into());
                }
                if let Some(prev) = ctx.state.stage("nats") {
                    out.extend(prev.outputs.clone());
                }
            }
        }
        let h = health(&ctx.settings).await;
        let topo = crate::topology::apply(ctx).await?;
        out.insert("topology".into(), topo);
        out.insert("url".into(), h.url.clone().unwrap_or_default().into());
        out.insert(
            "monitor_url".into(),
            h.monitor_url.clone().unwrap_or_default().into(),
        );
        out.insert(
            "summary".into(),
            format!("nats-server ready at {}", h.url.unwrap_or_default()).into(),
        );
        Ok(out)
    }
}
