//! Target `dev` (and the local half of `hybrid`): nats-server processes this ghboot supervises on this
//! machine. One node for `self_hosted`, three routed nodes on loopback for `self_hosted_cluster` (JetStream
//! R3), one leaf node with its own JetStream domain under a remote hub for `hybrid`.

use crate::check::Check;
use crate::config::Settings;
use crate::config::{Mode, NatsType};
use crate::deploy::{EnvVar, Health, NodeHealth, Target};
use crate::engine::{Ctx, Outputs};
use crate::error::{fail, Kind};
use crate::natsd::conf::{ClusterSpec, NodeSpec};
use crate::natsd::supervise::{self, http_client};
use crate::secret::Secret;
use crate::state::{Runtime, StateFile};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

pub struct Dev;

pub const NATS_USER: &str = "ghboot";
/// Nodes of `self_hosted_cluster`.
pub const CLUSTER_SIZE: usize = 3;
/// How long a fresh cluster may take to elect a JetStream meta leader.
const META_LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// Credentials clients use. Kept in a 0600 file, never in the state file.
#[derive(Clone, Serialize, Deserialize)]
pub struct Auth {
    pub user: String,
    pub password: Secret,
}

pub fn load_auth(s: &Settings) -> Result<Option<Auth>> {
    let path = s.layout.nats_auth_file();
    if path.exists() {
        crate::secret::ensure_private_file(&path)?;
    }
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

/// How many nodes these settings run.
pub fn node_count(s: &Settings) -> usize {
    if s.nats_type == NatsType::SelfHostedCluster {
        CLUSTER_SIZE
    } else {
        1
    }
}

/// The ports of one node. Recorded in the nats stage's outputs (`nodes`) so that a later `up` reuses them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodePorts {
    pub port: Option<u16>,
    pub monitor_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_port: Option<u16>,
}

/// Ports recorded by the last successful nats stage.
pub fn recorded_ports(state: Option<&StateFile>) -> Vec<NodePorts> {
    state
        .and_then(|st| st.stage("nats"))
        .and_then(|r| r.outputs.get("nodes"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Ports to start with: node 0 takes `--port`/`--monitor-port`; the others reuse what was recorded (or let
/// the server pick); cluster ports are reused when free, else picked free now (routes must name them).
pub fn plan_ports(s: &Settings, recorded: &[NodePorts]) -> Result<Vec<NodePorts>> {
    let n = node_count(s);
    let clustered = n > 1;
    let mut held = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let rec = recorded.get(i).cloned().unwrap_or_default();
        let (port, monitor_port) = if i == 0 {
            (s.port, s.monitor_port)
        } else {
            // A recorded port something else took meanwhile is given up (the server then picks one).
            let free = |p: Option<u16>| p.filter(|p| crate::check::port_free(&s.bind, *p));
            (free(rec.port), free(rec.monitor_port))
        };
        let cluster_port = if clustered {
            match rec
                .cluster_port
                .filter(|p| crate::check::port_free(&s.bind, *p))
            {
                Some(p) => Some(p),
                None => {
                    let l = std::net::TcpListener::bind((s.bind.as_str(), 0))
                        .context("cannot pick a free cluster port")?;
                    let p = l.local_addr()?.port();
                    held.push(l);
                    Some(p)
                }
            }
        } else {
            None
        };
        out.push(NodePorts {
            port,
            monitor_port,
            cluster_port,
        });
    }
    drop(held);
    Ok(out)
}

/// The nodes these settings run, on the given ports.
pub fn node_specs(s: &Settings, auth: &Auth, ports: &[NodePorts]) -> Vec<NodeSpec> {
    let l = &s.layout;
    let clustered = ports.len() > 1;
    let host = url_host(&s.bind);
    let leaf = crate::deploy::creds::leaf_config(s).ok().flatten();
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let node = format!("n{i}");
            let cluster = clustered.then(|| ClusterSpec {
                name: format!("ghboot-{}", s.org),
                port: p.cluster_port.unwrap_or_default(),
                routes: ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, o)| {
                        format!("nats-route://{host}:{}", o.cluster_port.unwrap_or_default())
                    })
                    .collect(),
            });
            // Users (ghboot's own and the product repositories') live in an included file, so that adding
            // one is a reload, not a restart, and changes nothing here (nor the config hash).
            let mut extra = crate::natsd::users::auth_block();
            if let Some(leaf) = &leaf {
                extra.push_str(&leaf.render());
            }
            NodeSpec {
                name: if clustered {
                    format!("ghboot-{}-{node}", s.org)
                } else {
                    format!("ghboot-{}", s.org)
                },
                bind: s.bind.clone(),
                port: p.port,
                monitor_port: p.monitor_port,
                store_dir: l.node_store_dir(&node),
                conf_file: l.node_conf_file(&node),
                log_file: if i == 0 {
                    l.log_file("nats")
                } else {
                    l.log_file(&format!("nats-{node}"))
                },
                ports_file_dir: l.run_dir(),
                cluster,
                jetstream_domain: leaf.as_ref().map(|l| l.domain.clone()),
                user: auth.user.clone(),
                password: auth.password.clone(),
                extra,
            }
        })
        .collect()
}

/// Fingerprint of what the servers were started with; a running instance with another one is rolled.
/// The admin password is not part of it: clients' passwords live in `users.conf` and change by a reload
/// (`secrets rotate nats-password`); a cluster's routes keep the password their supervisor started them with
/// (all its nodes, restarted ones too, render from the same specs), so a rotation must not roll the servers.
pub fn config_hash(specs: &[NodeSpec]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(specs).unwrap_or_default());
    for s in specs {
        // leaf remotes (hub URL, credentials file) live in `extra`
        h.update(s.extra.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

pub fn url_host(bind: &str) -> &str {
    match bind {
        "0.0.0.0" | "::" => "127.0.0.1",
        b => b,
    }
}

/// Ports the running nodes actually have.
fn running_ports(rt: &Runtime) -> Vec<NodePorts> {
    rt.nodes
        .iter()
        .map(|n| NodePorts {
            port: Some(n.port),
            monitor_port: Some(n.monitor_port),
            cluster_port: n.cluster_port,
        })
        .collect()
}

/// GET a monitoring endpoint as JSON.
pub async fn monitor_json(
    client: &reqwest::Client,
    bind: &str,
    monitor_port: u16,
    path: &str,
) -> Option<serde_json::Value> {
    let url = format!("http://{}:{monitor_port}{path}", url_host(bind));
    client.get(url).send().await.ok()?.json().await.ok()
}

/// The JetStream meta leader as seen by the first node that knows one.
async fn meta_leader(
    client: &reqwest::Client,
    bind: &str,
    monitor_ports: &[u16],
) -> Option<String> {
    meta_state(client, bind, monitor_ports)
        .await
        .map(|(l, _)| l)
}

/// (meta leader, every peer known, current and online) as seen by the first node that knows a leader.
async fn meta_state(
    client: &reqwest::Client,
    bind: &str,
    monitor_ports: &[u16],
) -> Option<(String, bool)> {
    // Only the leader knows whether its followers are current: a follower reports the other one as not.
    let mut seen = None;
    for p in monitor_ports {
        let Some(v) = monitor_json(client, bind, *p, "/jsz").await else {
            continue;
        };
        let Some(l) = v
            .pointer("/meta_cluster/leader")
            .and_then(|l| l.as_str())
            .filter(|l| !l.is_empty())
        else {
            continue;
        };
        let peers = v
            .pointer("/meta_cluster/replicas")
            .and_then(|r| r.as_array())
            .cloned()
            .unwrap_or_default();
        if peers
            .iter()
            .any(|p| p.get("name").and_then(|n| n.as_str()) == Some(l))
        {
            seen = Some((l.to_string(), false)); // a follower's view
            continue;
        }
        let all_current = peers.len() + 1 >= monitor_ports.len()
            && peers.iter().all(|p| {
                p.get("current").and_then(|c| c.as_bool()) == Some(true)
                    && p.get("offline").and_then(|c| c.as_bool()) != Some(true)
            });
        return Some((l.to_string(), all_current));
    }
    seen
}

async fn wait_meta_leader(s: &Settings, monitor_ports: &[u16]) -> Result<String> {
    let client = http_client();
    let until = Instant::now() + META_LEADER_DEADLINE;
    loop {
        // A leader alone is not enough: stream placement needs every peer known and current.
        if let Some((l, true)) = meta_state(&client, &s.bind, monitor_ports).await {
            return Ok(l);
        }
        if Instant::now() > until {
            return Err(fail(
                Kind::TempFail,
                format!(
                    "the cluster elected no JetStream meta leader within {}s",
                    META_LEADER_DEADLINE.as_secs()
                ),
            )
            .help(format!(
                "see {} and the nats-n*.log files next to it",
                s.layout.log_file("nats").display()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[async_trait::async_trait]
impl Target for Dev {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn describe(&self, s: &Settings) -> String {
        match s.nats_type {
            NatsType::SelfHostedCluster => format!("{CLUSTER_SIZE} supervised nats-server nodes in one cluster (JetStream R{CLUSTER_SIZE})"),
            NatsType::Hybrid => "a supervised local leaf node (own JetStream domain) linked to a remote hub".into(),
            _ => "a supervised nats-server with JetStream".into(),
        }
    }

    fn checks(&self, s: &Settings) -> Vec<Check> {
        let mut out = vec![crate::natsd::check(s)];
        out.extend(crate::check::ports(s));
        if s.nats_type == NatsType::Hybrid {
            out.push(crate::deploy::creds::leaf_check(s));
        }
        if s.mode == Mode::Dev {
            out.push(crate::check::git());
        }
        out
    }

    fn mode_line(&self, s: &Settings) -> String {
        match s.mode {
            // `auto` is resolved by `up`; until then the dev target stands in
            Mode::Auto => crate::deploy::docker::checks::mode_detail(s).unwrap_or_default(),
            Mode::Synadia => format!("synadia: {}", self.describe(s)),
            _ => s
                .mode_reason
                .clone()
                .unwrap_or_else(|| format!("dev: {}", self.describe(s))),
        }
    }

    fn controller(&self, s: &Settings) -> crate::deploy::Hosting {
        if s.mode == Mode::Dev {
            crate::deploy::Hosting::InProcess
        } else {
            crate::deploy::Hosting::Elsewhere(format!(
                "in {} mode the controller runs as its own process: `ghboot controller`",
                s.mode
            ))
        }
    }

    fn round_trip_skip(&self, s: &Settings) -> Option<String> {
        (s.mode != Mode::Dev).then(|| {
            format!(
                "in {} mode the round trip runs against GitHub itself (not automated yet)",
                s.mode
            )
        })
    }

    async fn mismatch(&self, s: &Settings) -> Result<Option<String>> {
        let Some(rt) = Runtime::load(&s.layout).filter(|r| r.supervisor_alive()) else {
            return Ok(Some("nats-server is not running".into()));
        };
        let Some(auth) = load_auth(s)? else {
            return Ok(Some("credentials are missing".into()));
        };
        let want = node_count(s);
        if rt.nodes.len() != want {
            return Ok(Some(format!("{} nodes -> {want}", rt.nodes.len())));
        }
        if let Some(n) = rt.nodes.first() {
            if s.port.is_some_and(|p| p != n.port) {
                return Ok(Some(format!(
                    "client port {} -> {}",
                    n.port,
                    s.port.unwrap_or_default()
                )));
            }
            if s.monitor_port.is_some_and(|p| p != n.monitor_port) {
                return Ok(Some(format!(
                    "monitoring port {} -> {}",
                    n.monitor_port,
                    s.monitor_port.unwrap_or_default()
                )));
            }
        }
        let h = self.health(s).await;
        if !h.healthy {
            return Ok(Some("nats-server is not healthy".into()));
        }
        if rt.config_hash != config_hash(&node_specs(s, &auth, &running_ports(&rt))) {
            return Ok(Some("server configuration changed".into()));
        }
        Ok(None)
    }

    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let s = ctx.settings.clone();
        supervise::reap_strays(&s.layout);
        let found = crate::natsd::find::find(s.nats_server.as_deref())?;
        let version = crate::natsd::find::version_of(&found.path)?;
        let auth = ensure_auth(&s)?;
        if s.nats_type == NatsType::Hybrid {
            crate::deploy::creds::prepare_leaf(&s)?;
        }
        let host = ctx
            .host()
            .context("only a supervising ghboot starts servers")?;
        if let Some(old) = host.supervisor.take() {
            old.stop().await;
        }
        let ports = plan_ports(&s, &recorded_ports(Some(&ctx.state)))?;
        let specs = node_specs(&s, &auth, &ports);
        crate::natsd::users::write(&s)?;
        let host = ctx
            .host()
            .context("only a supervising ghboot starts servers")?;
        let sup = supervise::start(&found.path, specs, host.runtime.clone()).await?;
        host.supervisor = Some(sup);
        let rt = host.runtime.get();
        let actual = running_ports(&rt);
        let hash = config_hash(&node_specs(&s, &auth, &actual));
        host.runtime.update(|r| r.config_hash = hash);
        // Ports the servers picked (ephemeral) become this instance's ports from now on.
        if let Some(n) = rt.nodes.first() {
            ctx.settings.port = Some(n.port);
            ctx.settings.monitor_port = Some(n.monitor_port);
            ctx.state.settings.port = Some(n.port);
            ctx.state.settings.monitor_port = Some(n.monitor_port);
        }
        let mut out = Outputs::new();
        if actual.len() > 1 {
            let leader = wait_meta_leader(
                &s,
                &rt.nodes.iter().map(|n| n.monitor_port).collect::<Vec<_>>(),
            )
            .await?;
            out.insert("meta_leader".into(), leader.into());
        }
        out.insert("nodes".into(), serde_json::to_value(&actual)?);
        out.insert("replicas".into(), self.replicas(&s).into());
        out.insert(
            "nats_server".into(),
            found.path.display().to_string().into(),
        );
        out.insert("nats_server_source".into(), found.source.to_string().into());
        out.insert("version".into(), version.to_string().into());
        if let Some(d) = self.jetstream_domain(&s) {
            out.insert("jetstream_domain".into(), d.into());
        }
        Ok(out)
    }

    async fn health(&self, s: &Settings) -> Health {
        let rt = Runtime::load(&s.layout);
        let client = http_client();
        let host = url_host(&s.bind);
        let mut nodes = Vec::new();
        let supervisor_alive = rt.as_ref().is_some_and(|r| r.supervisor_alive());
        // A stopped (SIGSTOP) or wedged supervisor restarts nothing: its nodes do not count as healthy.
        let responsive = rt.as_ref().is_some_and(|r| r.supervisor_responsive());
        if let Some(rt) = &rt {
            for n in &rt.nodes {
                let alive = crate::platform::is_alive(n.pid);
                let healthy = responsive
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
                    cluster_port: n.cluster_port,
                });
            }
        }
        let healthy = responsive && !nodes.is_empty() && nodes.iter().any(|n| n.healthy);
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
        let meta_leader = if nodes.len() > 1 && supervisor_alive {
            let ports: Vec<u16> = rt
                .as_ref()
                .map(|r| r.nodes.iter().map(|n| n.monitor_port).collect())
                .unwrap_or_default();
            meta_leader(&client, &s.bind, &ports).await
        } else {
            None
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
            meta_leader,
            jetstream_domain: self.jetstream_domain(s),
            remote: if s.nats_type == NatsType::Hybrid {
                crate::deploy::creds::leaf_remote_status(s, rt.as_ref()).await
            } else {
                None
            },
        }
    }

    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        let auth = load_auth(s)?.ok_or_else(|| {
            fail(Kind::NoInput, "no NATS credentials in the state dir")
                .help("run `ghboot up` first")
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
        // The password is read again at every (re)connect: a long-lived client (the supervisor's own) keeps
        // working after `secrets rotate nats-password` instead of retrying the old password forever.
        let settings = s.clone();
        let opts = async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
            let settings = settings.clone();
            async move {
                let a = load_auth(&settings).ok().flatten().ok_or_else(|| {
                    async_nats::AuthError::new("no NATS credentials in the state dir")
                })?;
                let mut out = async_nats::Auth::new();
                out.username = Some(a.user);
                out.password = Some(a.password.expose().to_string());
                Ok(out)
            }
        })
        .connection_timeout(Duration::from_secs(3))
        .reconnect_delay_callback(crate::natsd::users::local_reconnect_delay)
        .name("ghboot");
        let addrs: Vec<async_nats::ServerAddr> =
            urls.iter().filter_map(|u| u.parse().ok()).collect();
        opts.connect(addrs).await.map_err(|e| {
            if let Some(r) = crate::natsd::users::refused(&e, Some(&auth.user), &urls.join(",")) {
                return r;
            }
            fail(
                Kind::Unavailable,
                format!("cannot connect to NATS at {}: {e}", urls.join(",")),
            )
            .help("check `ghboot status`; `ghboot up` restarts a stopped instance")
            .into()
        })
    }

    async fn stop(&self, s: &Settings, _purge: bool) -> Result<bool> {
        // The supervisor owns the servers; its data lives in the state dir, which `down --purge` removes.
        crate::deploy::supervisor::stop(&s.layout).await
    }

    fn replicas(&self, s: &Settings) -> usize {
        node_count(s)
    }

    fn jetstream_domain(&self, s: &Settings) -> Option<String> {
        (s.nats_type == NatsType::Hybrid).then(|| crate::deploy::creds::leaf_domain(s))
    }

    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        let h = self.health(s).await;
        let mut v = crate::deploy::generated_auth_env(s, &h)?;
        if let Some(d) = h.jetstream_domain {
            v.push(("NATS_JS_DOMAIN".into(), d, false));
        }
        Ok(v)
    }

    async fn details(&self, s: &Settings) -> Option<serde_json::Value> {
        let rt = Runtime::load(&s.layout).filter(|r| r.supervisor_alive())?;
        let client = http_client();
        for n in &rt.nodes {
            let Some(v) = monitor_json(
                &client,
                &s.bind,
                n.monitor_port,
                "/jsz?accounts=true&streams=true&config=true",
            )
            .await
            else {
                continue;
            };
            let mut streams = Vec::new();
            for acc in v
                .get("account_details")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                for st in acc
                    .get("stream_detail")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                {
                    let peers: Vec<serde_json::Value> = st
                        .pointer("/cluster/replicas")
                        .and_then(|r| r.as_array())
                        .map(|r| r.iter().map(|p| serde_json::json!({"name": p.get("name"), "current": p.get("current")})).collect())
                        .unwrap_or_default();
                    streams.push(serde_json::json!({
                        "name": st.get("name"),
                        "replicas": st.pointer("/config/num_replicas"),
                        "leader": st.pointer("/cluster/leader"),
                        "peers": peers,
                        "messages": st.pointer("/state/messages"),
                    }));
                }
            }
            return Some(serde_json::json!({
                "meta_leader": v.pointer("/meta_cluster/leader"),
                "meta_cluster_size": v.pointer("/meta_cluster/cluster_size"),
                "streams": streams,
            }));
        }
        None
    }
}
