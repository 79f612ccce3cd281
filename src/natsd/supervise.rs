//! Running nats-server nodes as supervised children: spawn, wait for JetStream readiness, restart on an
//! unexpected exit with exponential backoff and a restart budget, stop in order (SIGTERM, grace, SIGKILL).
//!
//! Architecture invariant: every nats-server ghboot starts is started here, with
//! `platform::supervise_child`, so none can outlive ghboot.

use super::conf::{self, NodeSpec};
use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::state::{NodeRuntime, Runtime};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::watch;

pub const READY_DEADLINE: Duration = Duration::from_secs(30);
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// More than this many restarts of one node within `BUDGET_WINDOW` and the supervisor gives up.
pub const RESTART_BUDGET: u32 = 5;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(120);

/// The runtime file's content, shared by everything the supervisor runs and saved on every change.
#[derive(Clone)]
pub struct SharedRuntime {
    inner: Arc<Mutex<Runtime>>,
    layout: Layout,
}

impl SharedRuntime {
    pub fn new(layout: Layout, rt: Runtime) -> Self {
        SharedRuntime {
            inner: Arc::new(Mutex::new(rt)),
            layout,
        }
    }
    pub fn get(&self) -> Runtime {
        self.inner.lock().map(|g| g.clone()).unwrap_or_default()
    }
    pub fn update(&self, f: impl FnOnce(&mut Runtime)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g);
            if let Err(e) = g.save(&self.layout) {
                tracing::warn!("cannot save runtime file: {e:#}");
            }
        }
    }
}

/// Live handle on the supervised nodes.
pub struct Supervisor {
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Set when a node exhausted its restart budget.
    failed: watch::Receiver<Option<String>>,
}

pub struct Started {
    pub child: Child,
    pub pid: u32,
    pub port: u16,
    pub monitor_port: u16,
}

/// Start every node, wait until each is ready, then supervise them in the background.
pub async fn start(exe: &Path, specs: Vec<NodeSpec>, runtime: SharedRuntime) -> Result<Supervisor> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (failed_tx, failed) = watch::channel(None);
    let failed_tx = Arc::new(failed_tx);
    // Spawn all first, then wait: cluster nodes only become ready once they see each other.
    let mut children = Vec::new();
    for spec in &specs {
        match spawn(exe, spec).await {
            Ok(c) => children.push(c),
            Err(e) => {
                for (mut c, _) in children {
                    stop_child(&mut c).await;
                }
                return Err(e);
            }
        }
    }
    let mut started = Vec::new();
    let mut error = None;
    for ((child, pid), spec) in children.into_iter().zip(&specs) {
        if error.is_some() {
            started.push((
                Started {
                    child,
                    pid,
                    port: 0,
                    monitor_port: 0,
                },
                spec.clone(),
            ));
            continue;
        }
        let mut child = child;
        match wait_ready(&mut child, pid, spec, READY_DEADLINE).await {
            Ok((port, monitor_port)) => started.push((
                Started {
                    child,
                    pid,
                    port,
                    monitor_port,
                },
                spec.clone(),
            )),
            Err(e) => {
                error = Some(e);
                started.push((
                    Started {
                        child,
                        pid,
                        port: 0,
                        monitor_port: 0,
                    },
                    spec.clone(),
                ));
            }
        }
    }
    if let Some(e) = error {
        for (mut s, _) in started {
            stop_child(&mut s.child).await;
        }
        return Err(e);
    }
    runtime.update(|rt| {
        rt.nodes = started
            .iter()
            .map(|(s, spec)| NodeRuntime {
                name: spec.name.clone(),
                pid: s.pid,
                port: s.port,
                monitor_port: s.monitor_port,
                cluster_port: spec.cluster.as_ref().map(|c| c.port),
                restarts: 0,
                started_at: Some(time::OffsetDateTime::now_utc()),
            })
            .collect();
    });
    let mut tasks = Vec::new();
    for (i, (s, mut spec)) in started.into_iter().enumerate() {
        // Restarts reuse the ports the first start got, so URLs never change under clients.
        spec.port = Some(s.port);
        spec.monitor_port = Some(s.monitor_port);
        let exe = exe.to_path_buf();
        let rt = runtime.clone();
        let rx = shutdown_rx.clone();
        let ftx = failed_tx.clone();
        tasks.push(tokio::spawn(async move {
            watch_node(exe, spec, i, s.child, rt, rx, ftx).await
        }));
    }
    Ok(Supervisor {
        shutdown,
        tasks,
        failed,
    })
}

impl Supervisor {
    /// Resolves when a node has exhausted its restart budget, with the reason.
    pub async fn failed(&self) -> String {
        let mut rx = self.failed.clone();
        loop {
            if let Some(reason) = rx.borrow().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stop every node: SIGTERM, wait for the grace period, then SIGKILL.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn watch_node(
    exe: PathBuf,
    spec: NodeSpec,
    index: usize,
    mut child: Child,
    rt: SharedRuntime,
    mut shutdown: watch::Receiver<bool>,
    failed: Arc<watch::Sender<Option<String>>>,
) {
    let mut restarts_in_window: Vec<Instant> = Vec::new();
    // The first restart is immediate (a one-off crash should cost nothing); repeated ones back off.
    let mut backoff = Duration::ZERO;
    let mut up_since = Instant::now();
    loop {
        tokio::select! {
            status = child.wait() => {
                if *shutdown.borrow() { return; }
                let now = Instant::now();
                // A node that stayed up a while earns a fresh backoff.
                if now.duration_since(up_since) > Duration::from_secs(60) { backoff = Duration::ZERO; }
                restarts_in_window.retain(|t| now.duration_since(*t) < BUDGET_WINDOW);
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                if restarts_in_window.len() as u32 >= RESTART_BUDGET {
                    let msg = format!("nats-server {} exited ({status}) {} times within {}s; giving up (see {})",
                        spec.name, RESTART_BUDGET + 1, BUDGET_WINDOW.as_secs(), spec.log_file.display());
                    tracing::error!("{msg}");
                    let _ = failed.send(Some(msg));
                    return;
                }
                restarts_in_window.push(now);
                tracing::warn!("nats-server {} exited unexpectedly ({status}); restarting in {:?}", spec.name, backoff);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
                match spawn(&exe, &spec).await {
                    Ok((mut c, pid)) => match wait_ready(&mut c, pid, &spec, READY_DEADLINE).await {
                        Ok(_) => {
                            tracing::info!("nats-server {} restarted (pid {pid})", spec.name);
                            up_since = Instant::now();
                            rt.update(|r| if let Some(n) = r.nodes.get_mut(index) {
                                n.pid = pid; n.restarts += 1; n.started_at = Some(time::OffsetDateTime::now_utc());
                            });
                            child = c;
                        }
                        Err(e) => {
                            tracing::warn!("restart of nats-server {} failed: {e:#}", spec.name);
                            stop_child(&mut c).await;
                            child = c;
                        }
                    },
                    Err(e) => {
                        let msg = format!("cannot restart nats-server {}: {e:#}", spec.name);
                        tracing::error!("{msg}");
                        let _ = failed.send(Some(msg));
                        return;
                    }
                }
            }
            _ = shutdown.changed() => {
                stop_child(&mut child).await;
                return;
            }
        }
    }
}

async fn spawn(exe: &Path, spec: &NodeSpec) -> Result<(Child, u32)> {
    for dir in [&spec.store_dir, &spec.ports_file_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Some(d) = spec.log_file.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::secret::write_private(&spec.conf_file, conf::render(spec).as_bytes())?;
    // Early failures (bad config) go to stderr before the server opens its log file: keep them there too.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_file)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("-c")
        .arg(&spec.conf_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    crate::platform::supervise_child(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    // Windows: into the kill-on-close job before it runs (a no-op on Unix, where pre_exec did it all)
    crate::platform::adopt_child(&child)
        .context("cannot tie nats-server's lifetime to ghboot's")?;
    let pid = child.id().context("nats-server exited at once")?;
    tracing::debug!("spawned nats-server {} pid {pid}", spec.name);
    Ok((child, pid))
}

/// Wait for `/healthz?js-enabled-only=true` with a deadline; learn ports picked by the server (-1).
async fn wait_ready(
    child: &mut Child,
    pid: u32,
    spec: &NodeSpec,
    deadline: Duration,
) -> Result<(u16, u16)> {
    let until = Instant::now() + deadline;
    let client = http_client();
    let mut ports: Option<(u16, u16)> = spec.port.zip(spec.monitor_port);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(
                Kind::Error,
                format!(
                    "nats-server {} exited during start-up ({status}): {}",
                    spec.name,
                    log_tail(&spec.log_file)
                ),
            )
            .help(format!("see {}", spec.log_file.display()))
            .into());
        }
        if ports.is_none() {
            ports = read_ports_file(&spec.ports_file_dir, pid);
        }
        if let Some((_, m)) = ports {
            if healthz(&client, &spec.bind, m).await {
                return ports.context("ports known");
            }
        }
        if Instant::now() > until {
            return Err(fail(
                Kind::TempFail,
                format!(
                    "nats-server {} not ready within {}s",
                    spec.name,
                    deadline.as_secs()
                ),
            )
            .help(format!("see {}", spec.log_file.display()))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

fn host_for_url(bind: &str) -> &str {
    match bind {
        "0.0.0.0" | "::" => "127.0.0.1",
        b => b,
    }
}

pub async fn healthz(client: &reqwest::Client, bind: &str, monitor_port: u16) -> bool {
    let url = format!(
        "http://{}:{monitor_port}/healthz?js-enabled-only=true",
        host_for_url(bind)
    );
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

fn read_ports_file(dir: &Path, pid: u32) -> Option<(u16, u16)> {
    let suffix = format!("_{pid}.ports");
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    let port_of = |key: &str| -> Option<u16> {
        v.get(key)?
            .get(0)?
            .as_str()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()
    };
    Some((port_of("nats")?, port_of("monitoring")?))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains("[FTL]") || l.contains("[ERR]") || l.contains("nats-server:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

pub async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        crate::platform::terminate(pid);
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Stop processes recorded by a supervisor that is gone (they should have died with it; this is the
/// belt to parent-death's braces on platforms without it).
pub fn reap_strays(layout: &Layout) {
    if let Some(rt) = Runtime::load(layout) {
        if rt.supervisor_alive() {
            return;
        }
        for n in rt.nodes {
            let is_nats = crate::platform::exe_of(n.pid)
                .map(|e| e.to_string_lossy().contains("nats-server"))
                .unwrap_or(false);
            if is_nats && crate::platform::is_alive(n.pid) {
                tracing::warn!(
                    "stopping stray nats-server pid {} left by a dead supervisor",
                    n.pid
                );
                crate::platform::kill(n.pid);
            }
        }
    }
}
