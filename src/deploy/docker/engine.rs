//! `--mode docker`, for real: nats-server nodes (and ghboot's receiver and controller, when this ghboot has
//! them) as containers on a private network, with named volumes, health checks, a restart policy and ports
//! published on `--bind` (127.0.0.1 by default). Talks to the engine through the `docker` CLI found on PATH.
//!
//! Idempotent: every container carries a hash of what it was created from (image id, config, ports,
//! network, volume); an existing container with the same hash is reused untouched (started if stopped), one
//! with another hash is replaced, one node at a time, each healthy before the next. Everything carries the
//! instance's labels, so `down` removes exactly this instance's containers and network (and, with `--purge`,
//! its volumes and images). Secrets never appear in `docker inspect`: the nats-server config with the
//! password is copied into the container as a 0600 file (`docker cp` from a tar stream on stdin).

use crate::config::Settings;
use crate::deploy::containers::{
    instance_id, project, CLIENT_PORT, CLUSTER_PORT, LABEL_COMPONENT, LABEL_CONFIG, LABEL_INSTANCE,
    LABEL_MANAGED, MONITOR_PORT,
};
use crate::deploy::dev::{ensure_auth, load_auth, url_host};
use crate::deploy::docker::images::{self, tar_of, Image};
use crate::deploy::docker::render::{self, ConfAuth};
use crate::deploy::{Health, NodeHealth};
use crate::engine::{Ctx, Outputs};
use crate::error::{fail, Kind};
use crate::natsd::supervise::http_client;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const CMD_TIMEOUT: Duration = Duration::from_secs(300);
/// Bumped when the way containers are created changes, so that old ones are rolled.
const SPEC_VERSION: &str = "1";

/// The `docker` CLI.
#[derive(Debug, Clone)]
pub struct Docker {
    pub exe: PathBuf,
}

impl Docker {
    pub fn find() -> Result<Docker> {
        which::which("docker")
            .map(|exe| Docker { exe })
            .map_err(|_| {
                fail(
                    Kind::Unavailable,
                    "--mode docker needs the docker CLI, and none is on PATH",
                )
                .help("install Docker (engine and CLI), or use --mode dev")
                .into()
            })
    }

    /// Run a docker command; its stdout, or an error with its stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        self.exec(args, None, CMD_TIMEOUT).await
    }

    /// Same, feeding `input` on stdin (build contexts and `docker cp -` tar streams).
    pub async fn run_input(&self, args: &[&str], input: Vec<u8>) -> Result<String> {
        self.exec(args, Some(input), CMD_TIMEOUT).await
    }

    pub async fn exec(
        &self,
        args: &[&str],
        input: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                fail(
                    Kind::TempFail,
                    format!(
                        "`docker {}` took longer than {}s",
                        args.first().unwrap_or(&""),
                        timeout.as_secs()
                    ),
                )
            })??;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(anyhow::anyhow!(
                "`docker {}` failed: {}",
                args.iter().take(2).copied().collect::<Vec<_>>().join(" "),
                err
            ))
        }
    }

    /// The engine's version, when an engine answers.
    pub async fn engine_version(&self) -> Result<String> {
        self.exec(
            &["info", "--format", "{{.ServerVersion}}"],
            None,
            Duration::from_secs(10),
        )
        .await
        .map(|s| s.trim().to_string())
    }

    async fn inspect(&self, what: &str, names: &[String]) -> Vec<serde_json::Value> {
        if names.is_empty() {
            return vec![];
        }
        let mut args = vec![what, "inspect"];
        args.extend(names.iter().map(|s| s.as_str()));
        // inspect prints what it found even when some names are missing (and then exits 1)
        let out = tokio::process::Command::new(&self.exe)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await;
        out.ok()
            .and_then(|o| serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).ok())
            .unwrap_or_default()
    }

    /// Ids of objects (`container`, `network`, `volume`, `image`) carrying this instance's label.
    async fn labelled(&self, what: &str, instance: &str) -> Result<Vec<String>> {
        let filter = format!("label={LABEL_INSTANCE}={instance}");
        let args: Vec<&str> = match what {
            "container" => vec!["ps", "-aq", "--no-trunc", "--filter", &filter],
            "network" => vec!["network", "ls", "-q", "--filter", &filter],
            "volume" => vec!["volume", "ls", "-q", "--filter", &filter],
            _ => vec!["image", "ls", "-q", "--no-trunc", "--filter", &filter],
        };
        let mut ids: Vec<String> = self
            .run(&args)
            .await?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        ids.dedup();
        Ok(ids)
    }
}

/// Names of this instance's objects.
pub fn network_name(s: &Settings) -> String {
    project(s)
}
pub fn node_name(s: &Settings, i: usize) -> String {
    format!("{}-nats-{i}", project(s))
}
pub fn volume_name(s: &Settings, i: usize) -> String {
    format!("{}-nats-{i}", project(s))
}
fn component_name(s: &Settings, c: &str) -> String {
    format!("{}-{c}", project(s))
}

fn labels(s: &Settings, component: &str) -> Vec<String> {
    vec![
        format!("{LABEL_MANAGED}=true"),
        format!("{LABEL_INSTANCE}={}", instance_id(s)),
        format!("{LABEL_COMPONENT}={component}"),
    ]
}

/// Is the engine there and answering?
pub async fn engine_check(docker: &Docker) -> Result<String> {
    docker.engine_version().await.map_err(|e| {
        fail(
            Kind::Unavailable,
            format!(
                "no Docker engine answers: {}",
                first_line(&format!("{e:#}"))
            ),
        )
        .help(
            "start the Docker engine (or set DOCKER_HOST), check `docker info`, or use --mode dev",
        )
        .into()
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// What one container should be.
struct Spec {
    name: String,
    component: String,
    image: String,
    /// `docker create` arguments after the name and labels, before the image
    args: Vec<String>,
    /// command after the image
    cmd: Vec<String>,
    /// files copied in before the first start: path inside, content, mode
    files: Vec<(String, Vec<u8>, u32)>,
    hash: String,
}

impl Spec {
    fn new(
        name: String,
        component: &str,
        image: &Image,
        args: Vec<String>,
        cmd: Vec<String>,
        files: Vec<(String, Vec<u8>, u32)>,
    ) -> Spec {
        let mut parts: Vec<Vec<u8>> = vec![
            SPEC_VERSION.into(),
            image.reference.clone().into(),
            image.id.clone().into(),
        ];
        parts.extend(args.iter().map(|a| a.clone().into_bytes()));
        parts.extend(cmd.iter().map(|a| a.clone().into_bytes()));
        for (p, d, m) in &files {
            parts.push(p.clone().into_bytes());
            parts.push(d.clone());
            parts.push(m.to_le_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Spec {
            name,
            component: component.into(),
            image: image.reference.clone(),
            args,
            cmd,
            files,
            hash: render::hash(&refs),
        }
    }
}

/// What happened to one container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub name: String,
    pub id: String,
    /// created | reused | started | replaced
    pub action: String,
}

async fn ensure_container(docker: &Docker, s: &Settings, spec: &Spec) -> Result<Applied> {
    let found = docker
        .inspect("container", std::slice::from_ref(&spec.name))
        .await;
    let mut action = "created";
    if let Some(c) = found.first() {
        let id = c["Id"].as_str().unwrap_or_default().to_string();
        let same = c["Config"]["Labels"][LABEL_CONFIG].as_str() == Some(spec.hash.as_str());
        let ours = c["Config"]["Labels"][LABEL_INSTANCE].as_str() == Some(instance_id(s).as_str());
        if !ours {
            return Err(fail(
                Kind::Unavailable,
                format!(
                    "a container named {} exists and is not this instance's",
                    spec.name
                ),
            )
            .help("remove it (`docker rm -f NAME`) or use another --state-dir")
            .into());
        }
        if same {
            if c["State"]["Running"].as_bool() == Some(true) {
                return Ok(Applied {
                    name: spec.name.clone(),
                    id,
                    action: "reused".into(),
                });
            }
            docker.run(&["start", &spec.name]).await?;
            return Ok(Applied {
                name: spec.name.clone(),
                id,
                action: "started".into(),
            });
        }
        docker.run(&["rm", "-f", &spec.name]).await?;
        action = "replaced";
    }
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), spec.name.clone()];
    for l in labels(s, &spec.component) {
        args.extend(["--label".into(), l]);
    }
    args.extend(["--label".into(), format!("{LABEL_CONFIG}={}", spec.hash)]);
    args.extend(spec.args.iter().cloned());
    args.push(spec.image.clone());
    args.extend(spec.cmd.iter().cloned());
    let argv: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let id = docker.run(&argv).await?.trim().to_string();
    if !spec.files.is_empty() {
        let files: Vec<(&str, &[u8], u32)> = spec
            .files
            .iter()
            .map(|(p, d, m)| (p.trim_start_matches('/'), d.as_slice(), *m))
            .collect();
        let target = format!("{}:/", spec.name);
        docker
            .run_input(&["cp", "-", &target], tar_of(&files)?)
            .await?;
    }
    docker.run(&["start", &spec.name]).await?;
    Ok(Applied {
        name: spec.name.clone(),
        id,
        action: action.into(),
    })
}

async fn ensure_network(docker: &Docker, s: &Settings) -> Result<bool> {
    let name = network_name(s);
    if !docker
        .inspect("network", std::slice::from_ref(&name))
        .await
        .is_empty()
    {
        return Ok(false);
    }
    let mut args = vec!["network".to_string(), "create".into()];
    for l in labels(s, "network") {
        args.extend(["--label".into(), l]);
    }
    args.push(name);
    docker
        .run(&args.iter().map(|a| a.as_str()).collect::<Vec<_>>())
        .await?;
    Ok(true)
}

async fn ensure_volume(docker: &Docker, s: &Settings, name: &str, component: &str) -> Result<()> {
    if !docker
        .inspect("volume", &[name.to_string()])
        .await
        .is_empty()
    {
        return Ok(());
    }
    let mut args = vec!["volume".to_string(), "create".into()];
    for l in labels(s, component) {
        args.extend(["--label".into(), l]);
    }
    args.push(name.to_string());
    docker
        .run(&args.iter().map(|a| a.as_str()).collect::<Vec<_>>())
        .await?;
    Ok(())
}

fn publish(s: &Settings, host: Option<u16>, inner: u16) -> String {
    match host {
        Some(p) => format!("{}:{p}:{inner}", s.bind),
        None => format!("{}::{inner}", s.bind),
    }
}

fn node_specs(
    s: &Settings,
    image: &Image,
    user: &str,
    password: &str,
    ports: &[(Option<u16>, Option<u16>)],
) -> Result<Vec<Spec>> {
    let n = crate::deploy::containers::replicas(s);
    let routes: Vec<String> = if n > 1 {
        (0..n)
            .map(|j| format!("nats://{}:{CLUSTER_PORT}", node_name(s, j)))
            .collect()
    } else {
        vec![]
    };
    (0..n)
        .map(|i| {
            let conf = render::nats_conf(
                s,
                "docker",
                &format!("\"nats-{i}\""),
                &routes,
                ConfAuth::Inline { user, password },
            )?;
            let (cp, mp) = ports.get(i).copied().unwrap_or((None, None));
            let args = vec![
                "--restart".into(),
                "unless-stopped".into(),
                "--network".into(),
                network_name(s),
                "--network-alias".into(),
                format!("nats-{i}"),
                "--hostname".into(),
                format!("nats-{i}"),
                "-p".into(),
                publish(s, cp, CLIENT_PORT),
                "-p".into(),
                publish(s, mp, MONITOR_PORT),
                "-v".into(),
                format!("{}:/data", volume_name(s, i)),
            ];
            let cmd = vec!["--config".into(), render::NATS_CONF_PATH.into()];
            Ok(Spec::new(
                node_name(s, i),
                "nats",
                image,
                args,
                cmd,
                vec![(render::NATS_CONF_PATH.into(), conf.into_bytes(), 0o600)],
            ))
        })
        .collect()
}

/// Host ports the nodes should publish: node 0 takes --port/--monitor-port (or, for an ephemeral instance,
/// the ports its existing container already got); the other nodes keep the ports they have, or let the
/// engine choose.
async fn desired_ports(docker: &Docker, s: &Settings) -> Vec<(Option<u16>, Option<u16>)> {
    let live = nodes_live(docker, s).await;
    (0..crate::deploy::containers::replicas(s))
        .map(|i| {
            let have = live.iter().find(|n| n.index == i);
            let (hc, hm) = (
                have.and_then(|n| n.client_port),
                have.and_then(|n| n.monitor_port),
            );
            if i == 0 {
                (s.port.or(hc), s.monitor_port.or(hm))
            } else {
                (hc, hm)
            }
        })
        .collect()
}

/// A nats container as the engine reports it.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub index: usize,
    pub name: String,
    pub id: String,
    pub running: bool,
    pub pid: u32,
    pub health: Option<String>,
    pub restarts: u32,
    pub client_port: Option<u16>,
    pub monitor_port: Option<u16>,
}

fn host_port(c: &serde_json::Value, inner: u16) -> Option<u16> {
    let ports = &c["NetworkSettings"]["Ports"][format!("{inner}/tcp")];
    let from_live = ports
        .as_array()
        .and_then(|a| a.first())
        .and_then(|p| p["HostPort"].as_str())
        .and_then(|p| p.parse().ok());
    // a container cut off its network has no live port mapping: fall back to what it was created with
    from_live.or_else(|| {
        c["HostConfig"]["PortBindings"][format!("{inner}/tcp")]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p["HostPort"].as_str())
            .and_then(|p| p.parse().ok())
    })
}

pub async fn nodes_live(docker: &Docker, s: &Settings) -> Vec<LiveNode> {
    let names: Vec<String> = (0..3).map(|i| node_name(s, i)).collect();
    let mut out: Vec<LiveNode> = docker
        .inspect("container", &names)
        .await
        .into_iter()
        .filter(|c| c["Config"]["Labels"][LABEL_INSTANCE].as_str() == Some(instance_id(s).as_str()))
        .filter_map(|c| {
            let name = c["Name"].as_str()?.trim_start_matches('/').to_string();
            let index = name.rsplit('-').next()?.parse().ok()?;
            Some(LiveNode {
                index,
                id: c["Id"].as_str().unwrap_or_default().to_string(),
                running: c["State"]["Running"].as_bool().unwrap_or(false),
                pid: c["State"]["Pid"].as_u64().unwrap_or(0) as u32,
                health: c["State"]["Health"]["Status"].as_str().map(str::to_string),
                restarts: c["RestartCount"].as_u64().unwrap_or(0) as u32,
                client_port: host_port(&c, CLIENT_PORT),
                monitor_port: host_port(&c, MONITOR_PORT),
                name,
            })
        })
        .collect();
    out.sort_by_key(|n| n.index);
    out
}

async fn http_ok(client: &reqwest::Client, bind: &str, port: u16, path: &str) -> bool {
    let url = format!("http://{}:{port}{path}", url_host(bind));
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Wait until every node answers `/healthz` (JetStream up; in a cluster, a meta leader known) through its
/// published monitoring port.
async fn wait_healthy(
    docker: &Docker,
    s: &Settings,
    only: Option<usize>,
    deadline: Duration,
) -> Result<()> {
    let client = http_client();
    let until = Instant::now() + deadline;
    loop {
        let nodes = nodes_live(docker, s).await;
        let mut all = !nodes.is_empty();
        for n in nodes.iter().filter(|n| only.map_or(true, |i| i == n.index)) {
            let ok = match n.monitor_port {
                Some(p) => n.running && http_ok(&client, &s.bind, p, "/healthz").await,
                None => false,
            };
            all &= ok;
        }
        if all {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(fail(
                Kind::TempFail,
                format!(
                    "the nats containers were not healthy within {}s",
                    deadline.as_secs()
                ),
            )
            .help(format!(
                "see `docker logs {}`",
                node_name(s, only.unwrap_or(0))
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The nats stage in docker mode: images, network, volumes, containers; then wait until healthy.
pub async fn ensure(ctx: &mut Ctx) -> Result<Outputs> {
    let s = ctx.settings.clone();
    let docker = Docker::find()?;
    let engine = engine_check(&docker).await?;
    let auth = ensure_auth(&s)?;
    let ghboot = images::ghboot_image(&docker, &s).await?;
    let nats = images::nats_image(&docker, &s, &ghboot).await?;
    for img in [&ghboot, &nats] {
        ctx.reporter
            .note("nats", &format!("image {}: {}", img.reference, img.origin));
    }
    let net_created = ensure_network(&docker, &s).await?;
    let ports = desired_ports(&docker, &s).await;
    let specs = node_specs(&s, &nats, &auth.user, auth.password.expose(), &ports)?;
    let existed = !nodes_live(&docker, &s).await.is_empty();
    let mut applied = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        ensure_volume(&docker, &s, &volume_name(&s, i), "nats").await?;
        let a = ensure_container(&docker, &s, spec).await?;
        // rolling: a replaced node of a running deployment is healthy again before the next one goes
        if existed && a.action == "replaced" {
            wait_healthy(&docker, &s, Some(i), Duration::from_secs(90)).await?;
        }
        ctx.reporter
            .note("nats", &format!("container {}: {}", a.name, a.action));
        applied.push(a);
    }
    // a scaled-down deployment: remove the nodes it no longer has (their volumes stay until --purge)
    for gone in nodes_live(&docker, &s)
        .await
        .into_iter()
        .filter(|n| n.index >= specs.len())
    {
        docker.run(&["rm", "-f", &gone.name]).await?;
        applied.push(Applied {
            name: gone.name,
            id: gone.id,
            action: "removed".into(),
        });
    }
    wait_healthy(&docker, &s, None, Duration::from_secs(120)).await?;
    let components = ensure_components(ctx, &docker, &ghboot, &auth).await?;
    for c in &components {
        wait_container_healthy(&docker, &c.name, Duration::from_secs(90)).await?;
    }
    applied.extend(components);
    let live = nodes_live(&docker, &s).await;
    if let Some(n0) = live.first() {
        ctx.settings.port = n0.client_port.or(ctx.settings.port);
        ctx.settings.monitor_port = n0.monitor_port.or(ctx.settings.monitor_port);
        ctx.state.settings.port = ctx.settings.port;
        ctx.state.settings.monitor_port = ctx.settings.monitor_port;
    }
    let h = health(&ctx.settings).await;
    let changed = applied.iter().filter(|a| a.action != "reused").count();
    let mut out = Outputs::new();
    out.insert("target".into(), "docker".into());
    out.insert("engine".into(), engine.into());
    out.insert(
        "network".into(),
        serde_json::json!({"name": network_name(&s), "created": net_created}),
    );
    out.insert("images".into(), serde_json::to_value([&ghboot, &nats])?);
    out.insert("containers".into(), serde_json::to_value(&applied)?);
    out.insert("url".into(), h.url.clone().unwrap_or_default().into());
    out.insert(
        "monitor_url".into(),
        h.monitor_url.clone().unwrap_or_default().into(),
    );
    out.insert(
        "summary".into(),
        format!(
            "{} nats container(s) on network {} ({changed} changed), NATS at {}",
            specs.len(),
            network_name(&s),
            h.url.unwrap_or_default()
        )
        .into(),
    );
    Ok(out)
}

/// Wait until the engine's health check calls a container healthy (one without a health check: running).
async fn wait_container_healthy(docker: &Docker, name: &str, deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    loop {
        let c = docker.inspect("container", &[name.to_string()]).await;
        let state = c.first().map(|c| c["State"].clone()).unwrap_or_default();
        let ok = match state["Health"]["Status"].as_str() {
            Some(h) => h == "healthy",
            None => state["Running"].as_bool() == Some(true),
        };
        if ok {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(fail(
                Kind::TempFail,
                format!(
                    "container {name} was not healthy within {}s",
                    deadline.as_secs()
                ),
            )
            .help(format!("see `docker logs {name}`"))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The receiver and controller containers, when this ghboot has their subcommands.
async fn ensure_components(
    ctx: &mut Ctx,
    docker: &Docker,
    image: &Image,
    auth: &crate::deploy::dev::Auth,
) -> Result<Vec<Applied>> {
    let s = ctx.settings.clone();
    let exe = std::env::current_exe().context("cannot find ghboot's own executable")?;
    let available = crate::deploy::containers::ghboot_components_available(&exe);
    let mut applied = Vec::new();
    let n = crate::deploy::containers::replicas(&s);
    let nats_url = (0..n)
        .map(|i| format!("nats://{}:{CLIENT_PORT}", node_name(&s, i)))
        .collect::<Vec<_>>()
        .join(",");
    let env = render::ghboot_env(&s, &nats_url);
    // the receiver verifies deliveries with the instance's webhook secret: make it now (the webhooks stage,
    // which would otherwise, leaves the receiver to the container in this mode)
    let webhook_secret = match crate::webhook::WebhookConfig::from_settings(&s)
        .and_then(|cfg| crate::webhook::ensure_secret(&s, &cfg))
    {
        Ok((sec, _)) => sec.expose().as_bytes().to_vec(),
        Err(e) => {
            return Err(e.context("cannot prepare the webhook secret for the receiver container"))
        }
    };
    for c in render::ghboot_containers(&s) {
        let name = component_name(&s, c.name);
        if !available.contains(&c.name) {
            ctx.reporter.note(
                "nats",
                &format!(
                    "{} container not created: this ghboot has no `ghboot {}` yet",
                    c.name,
                    c.args.join(" ")
                ),
            );
            if !docker
                .inspect("container", std::slice::from_ref(&name))
                .await
                .is_empty()
            {
                docker.run(&["rm", "-f", &name]).await?;
            }
            continue;
        }
        ensure_volume(docker, &s, &format!("{}-ghboot", project(&s)), "ghboot").await?;
        let mut args: Vec<String> = vec![
            "--restart".into(),
            "unless-stopped".into(),
            "--network".into(),
            network_name(&s),
        ];
        for (k, v) in &env {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        args.extend(["-e".into(), format!("NATS_USER={}", auth.user)]);
        if let Some(h) = &c.health {
            args.extend(["-e".into(), format!("GHBOOT_HEALTHCHECK_URL={h}")]);
        }
        for (k, v) in &c.env {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        args.extend([
            "-v".into(),
            format!("{}-ghboot:/var/lib/ghboot", project(&s)),
        ]);
        if c.port.is_some() {
            args.extend(["-p".into(), c.publish.clone()]);
        }
        let files = vec![
            (
                render::NATS_PASSWORD_FILE.to_string(),
                auth.password.expose().as_bytes().to_vec(),
                0o600,
            ),
            (
                render::WEBHOOK_SECRET_FILE.to_string(),
                webhook_secret.clone(),
                0o600,
            ),
        ];
        let spec = Spec::new(name, c.name, image, args, c.args.clone(), files);
        let a = ensure_container(docker, &s, &spec).await?;
        ctx.reporter
            .note("nats", &format!("container {}: {}", a.name, a.action));
        applied.push(a);
    }
    Ok(applied)
}

/// The receiver container's URL on this host (its published port), when it exists.
pub async fn receiver_url(s: &Settings) -> Option<String> {
    let docker = Docker::find().ok()?;
    let c = docker
        .inspect("container", &[component_name(s, "receiver")])
        .await;
    let port = host_port(c.first()?, crate::deploy::containers::WEBHOOK_PORT)?;
    let path = crate::webhook::WebhookConfig::from_settings(s).ok()?.path;
    Some(crate::webhook::local_url(&s.bind, port, &path))
}

/// Why the running deployment does not match the settings; None when it does.
pub async fn mismatch(s: &Settings) -> Result<Option<String>> {
    let docker = Docker::find()?;
    engine_check(&docker).await?;
    let live = nodes_live(&docker, s).await;
    let n = crate::deploy::containers::replicas(s);
    if live.len() != n {
        return Ok(Some(format!("{} of {n} nats containers exist", live.len())));
    }
    if let Some(down) = live.iter().find(|l| !l.running) {
        return Ok(Some(format!("container {} is not running", down.name)));
    }
    if let (Some(want), Some(have)) = (s.port, live[0].client_port) {
        if want != have {
            return Ok(Some(format!("client port {have} -> {want}")));
        }
    }
    if let (Some(want), Some(have)) = (s.monitor_port, live[0].monitor_port) {
        if want != have {
            return Ok(Some(format!("monitoring port {have} -> {want}")));
        }
    }
    if load_auth(s)?.is_none() {
        return Ok(Some("credentials are missing".into()));
    }
    if !health(s).await.healthy {
        return Ok(Some("nats containers are not healthy".into()));
    }
    Ok(None)
}

/// Live view, from the engine and the published monitoring ports.
pub async fn health(s: &Settings) -> Health {
    let host = url_host(&s.bind);
    let Ok(docker) = Docker::find() else {
        return empty_health(s);
    };
    let client = http_client();
    let mut nodes = Vec::new();
    for n in nodes_live(&docker, s).await {
        let healthy = match n.monitor_port {
            Some(p) => {
                n.running && http_ok(&client, &s.bind, p, "/healthz?js-enabled-only=true").await
            }
            None => false,
        };
        nodes.push(NodeHealth {
            name: n.name.clone(),
            pid: n.pid,
            alive: n.running,
            healthy,
            url: n
                .client_port
                .map(|p| format!("nats://{host}:{p}"))
                .unwrap_or_default(),
            monitor_url: n
                .monitor_port
                .map(|p| format!("http://{host}:{p}"))
                .unwrap_or_default(),
            restarts: n.restarts,
            cluster_port: None,
        });
    }
    if nodes.is_empty() {
        return empty_health(s);
    }
    let urls: Vec<String> = nodes
        .iter()
        .filter(|n| !n.url.is_empty())
        .map(|n| n.url.clone())
        .collect();
    Health {
        healthy: nodes.iter().any(|n| n.healthy),
        url: Some(urls.join(",")).filter(|u| !u.is_empty()),
        monitor_url: nodes
            .first()
            .map(|n| n.monitor_url.clone())
            .filter(|u| !u.is_empty()),
        pid: nodes.first().filter(|n| n.alive).map(|n| n.pid),
        supervisor_pid: None,
        supervisor_alive: false,
        nodes,
        ..Default::default()
    }
}

fn empty_health(s: &Settings) -> Health {
    let host = url_host(&s.bind);
    Health {
        healthy: false,
        url: s.port.map(|p| format!("nats://{host}:{p}")),
        monitor_url: s.monitor_port.map(|p| format!("http://{host}:{p}")),
        pid: None,
        supervisor_pid: None,
        supervisor_alive: false,
        nodes: vec![],
        ..Default::default()
    }
}

/// A client connection through the published ports.
pub async fn connect(s: &Settings) -> Result<async_nats::Client> {
    let auth = load_auth(s)?.ok_or_else(|| {
        fail(Kind::NoInput, "no NATS credentials in the state dir").help("run `ghboot up` first")
    })?;
    let h = health(s).await;
    let url = h.url.filter(|_| !h.nodes.is_empty()).ok_or_else(|| {
        fail(
            Kind::Unavailable,
            format!(
                "no nats containers of the instance in {} are running",
                s.layout.root().display()
            ),
        )
        .help("start them with `ghboot --mode docker up`")
    })?;
    let addrs: Vec<async_nats::ServerAddr> =
        url.split(',').filter_map(|u| u.parse().ok()).collect();
    async_nats::ConnectOptions::with_user_and_password(
        auth.user.clone(),
        auth.password.expose().to_string(),
    )
    .connection_timeout(Duration::from_secs(3))
    .name("ghboot")
    .connect(addrs)
    .await
    .map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot connect to NATS at {url}: {e}"),
        )
        .help("check `ghboot status` and `docker ps`")
        .into()
    })
}

/// `down`: remove this instance's containers and network; with `purge`, its volumes and images too.
/// Returns whether anything was removed.
pub async fn down(s: &Settings, purge: bool) -> Result<bool> {
    let docker = Docker::find()?;
    engine_check(&docker).await?;
    let id = instance_id(s);
    let mut removed = false;
    let containers = docker.labelled("container", &id).await?;
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        // -v removes anonymous volumes only; named ones stay for --purge
        args.extend(containers.iter().map(|c| c.as_str()));
        docker.run(&args).await?;
        removed = true;
    }
    for n in docker.labelled("network", &id).await? {
        docker.run(&["network", "rm", &n]).await?;
        removed = true;
    }
    if purge {
        for v in docker.labelled("volume", &id).await? {
            docker.run(&["volume", "rm", &v]).await?;
        }
        for i in docker.labelled("image", &id).await? {
            // an image another container still uses stays (the engine refuses): that is fine
            let _ = docker.run(&["image", "rm", "-f", &i]).await;
        }
    }
    Ok(removed)
}

/// `ghboot healthcheck URL` inside a container: `http://host:port/path` must answer 2xx, `tcp://host:port`
/// must accept a connection. Exit 0 or 1 (Docker's HEALTHCHECK contract).
pub fn healthcheck(url: &str) -> u8 {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    // `env`: the URL is the container's GHBOOT_HEALTHCHECK_URL (one image, several components); none: healthy
    let from_env;
    let url = if url == "env" {
        match std::env::var("GHBOOT_HEALTHCHECK_URL") {
            Ok(u) if !u.is_empty() => {
                from_env = u;
                from_env.as_str()
            }
            _ => return 0,
        }
    } else {
        url
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    if scheme == "file" {
        return fresh_file(rest);
    }
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return 1;
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return 1;
    };
    if scheme == "tcp" {
        return 0;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").is_err() {
        return 1;
    }
    let mut buf = [0u8; 32];
    let n = stream.read(&mut buf).unwrap_or(0);
    let status = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(c) if (200..300).contains(&c) => 0,
        _ => 1,
    }
}

/// `file:///path?max-age=SECS`: the file exists and was written at most SECS (default 30) ago (the
/// controller's heartbeat file).
fn fresh_file(rest: &str) -> u8 {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let max_age = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("max-age="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30);
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    match age {
        Some(a) if a <= Duration::from_secs(max_age) => 0,
        _ => 1,
    }
}

/// `ghboot logs` in docker mode: the containers' own logs (`docker logs`), not files in the state dir.
/// `component`: nats, receiver or controller; None: all of them. Several containers are followed at once.
pub async fn logs(
    s: &Settings,
    component: Option<&str>,
    follow: bool,
    tail: Option<usize>,
    since: Option<&str>,
) -> Result<u8> {
    let docker = Docker::find()?;
    engine_check(&docker).await?;
    let nats: Vec<String> = (0..crate::deploy::containers::replicas(s))
        .map(|i| node_name(s, i))
        .collect();
    let names: Vec<String> = match component {
        Some("nats") => nats,
        Some(c) => vec![component_name(s, c)],
        None => nats
            .into_iter()
            .chain(["receiver", "controller"].map(|c| component_name(s, c)))
            .collect(),
    };
    let existing: Vec<String> = docker
        .inspect("container", &names)
        .await
        .iter()
        .filter_map(|c| {
            c["Name"]
                .as_str()
                .map(|n| n.trim_start_matches('/').to_string())
        })
        .collect();
    if existing.is_empty() {
        return Err(fail(
            Kind::NoInput,
            format!(
                "no container of this instance to show logs of ({})",
                names.join(", ")
            ),
        )
        .help("run `ghboot up --mode docker` first")
        .into());
    }
    let mut children = Vec::new();
    for name in &existing {
        let mut cmd = tokio::process::Command::new(&docker.exe);
        cmd.arg("logs").kill_on_drop(true);
        if follow {
            cmd.arg("--follow");
        }
        if let Some(n) = tail {
            cmd.args(["--tail", &n.to_string()]);
        }
        if let Some(w) = since {
            cmd.args(["--since", w]);
        }
        cmd.arg(name);
        if existing.len() > 1 {
            eprintln!("== {name} ==");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", docker.exe.display()))?;
        if follow {
            children.push(child);
        } else {
            // one after the other, so that each container's lines stay together
            child.wait_with_output().await?;
        }
    }
    for mut c in children {
        let _ = c.wait().await;
    }
    Ok(0)
}
