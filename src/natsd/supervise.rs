//! Running nats-server nodes as supervised children: spawn, wait for JetStream readiness, restart on an
//! unexpected exit with exponential backoff and jitter for as long as the supervisor lives (the restart
//! budget only decides what is reported), stop in order (SIGTERM, grace, SIGKILL).
//!
//! Architecture invariant: every nats-server ghboot starts is started here, with
//! `platform::supervise_child`, so none can outlive ghboot.

use super::conf::{self, NodeSpec};
use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::state::{NodeRuntime, Restarting, Runtime};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::watch;

pub const READY_DEADLINE: Duration = Duration::from_secs(30);
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// More than this many restart attempts of one node within `BUDGET_WINDOW` are reported (never a reason to
/// stop trying).
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
    /// Set when a node exceeded its restart budget (a report: the node is still being restarted).
    failed: watch::Receiver<Option<String>>,
    /// Counts successful restarts of any node: what was made inside NATS may have to be made again.
    restarted: watch::Receiver<u64>,
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
    let (restarted_tx, restarted) = watch::channel(0u64);
    let restarted_tx = Arc::new(restarted_tx);
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
                restarting: None,
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
        let rtx = restarted_tx.clone();
        tasks.push(tokio::spawn(async move {
            watch_node(exe, spec, i, s.child, rt, rx, ftx, rtx).await
        }));
    }
    Ok(Supervisor {
        shutdown,
        tasks,
        failed,
        restarted,
    })
}

impl Supervisor {
    /// A receiver that changes on every successful restart of a node.
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarted.clone()
    }

    /// The restart-budget report, if one was made.
    pub fn budget_report(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Resolves when a node has exceeded its restart budget, with the reason.
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

/// Rewrite the supervisor's heartbeat in the runtime file until shutdown: readers tell a live supervisor
/// from one that is stopped (SIGSTOP) or wedged by its age.
pub fn spawn_heartbeat(
    rt: SharedRuntime,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            rt.update(|r| r.heartbeat = Some(time::OffsetDateTime::now_utc()));
            tokio::select! {
                _ = tokio::time::sleep(crate::state::SUPERVISOR_HEARTBEAT) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Delay before restart attempt `attempt` (1-based): the first is immediate when the node had been up a
/// while (a one-off crash should cost nothing), then exponential from 100 ms, capped at [`MAX_BACKOFF`],
/// with "equal jitter" (half fixed, half random) so that nodes and instances do not retry in lockstep.
pub fn backoff(attempt: u32, immediate_first: bool) -> Duration {
    if attempt <= 1 && immediate_first {
        return Duration::ZERO;
    }
    let exp = attempt.saturating_sub(1).min(16);
    let base = (Duration::from_millis(100) * (1u32 << exp)).min(MAX_BACKOFF);
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// The longest wait between two restart attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Keep one node running: on an unexpected exit start it again, for as long as the supervisor lives,
/// whatever the cause (port taken, binary missing, log unwritable, config rejected). Each failed attempt
/// backs off further; the restart budget only decides when this is *reported* (runtime file, `status`,
/// the exit code of a foreground `up`), never when to stop trying.
#[allow(clippy::too_many_arguments)] // one task's whole context; a struct would only rename it
async fn watch_node(
    exe: PathBuf,
    spec: NodeSpec,
    index: usize,
    mut child: Child,
    rt: SharedRuntime,
    mut shutdown: watch::Receiver<bool>,
    failed: Arc<watch::Sender<Option<String>>>,
    restarted: Arc<watch::Sender<u64>>,
) {
    let mut restarts_in_window: Vec<Instant> = Vec::new();
    let mut up_since = Instant::now();
    loop {
        let status = tokio::select! {
            status = child.wait() => status,
            _ = shutdown.changed() => {
                stop_child(&mut child).await;
                return;
            }
        };
        if *shutdown.borrow() {
            return;
        }
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let mut last_error = format!("nats-server exited unexpectedly ({status})");
        tracing::warn!("nats-server {} {last_error}; restarting", spec.name);
        // A node that crashes soon after a restart keeps its backoff growing instead of starting over.
        let immediate_first = up_since.elapsed() > Duration::from_secs(60);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let now = Instant::now();
            restarts_in_window.retain(|t| now.duration_since(*t) < BUDGET_WINDOW);
            restarts_in_window.push(now);
            if restarts_in_window.len() as u32 > RESTART_BUDGET && failed.borrow().is_none() {
                let msg = format!(
                    "nats-server {} needed more than {RESTART_BUDGET} restarts within {}s (last: {last_error}); still trying (see {})",
                    spec.name,
                    BUDGET_WINDOW.as_secs(),
                    spec.log_file.display()
                );
                tracing::error!("{msg}");
                rt.update(|r| r.budget_exceeded = Some(msg.clone()));
                let _ = failed.send(Some(msg));
            }
            let delay = backoff(attempt, immediate_first);
            let next_at = time::OffsetDateTime::now_utc() + delay;
            rt.update(|r| {
                if let Some(n) = r.nodes.get_mut(index) {
                    n.restarting = Some(Restarting {
                        attempt,
                        next_at: Some(next_at),
                        last_error: Some(last_error.clone()),
                    });
                }
            });
            tracing::info!(
                "restart attempt {attempt} of nats-server {} in {:.1}s",
                spec.name,
                delay.as_secs_f64()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            match start_one(&exe, &spec).await {
                Ok((c, pid)) => {
                    tracing::info!(
                        "nats-server {} restarted (pid {pid}, attempt {attempt})",
                        spec.name
                    );
                    up_since = Instant::now();
                    rt.update(|r| {
                        if let Some(n) = r.nodes.get_mut(index) {
                            n.pid = pid;
                            n.restarts += 1;
                            n.started_at = Some(time::OffsetDateTime::now_utc());
                            n.restarting = None;
                        }
                    });
                    child = c;
                    restarted.send_modify(|n| *n += 1);
                    break;
                }
                Err(e) => {
                    last_error = one_line(&format!("{e:#}"));
                    tracing::warn!(
                        "restart attempt {attempt} of nats-server {} failed: {last_error}",
                        spec.name
                    );
                }
            }
        }
    }
}

/// Spawn one node and wait until it is ready; a node that does not become ready is stopped again.
async fn start_one(exe: &Path, spec: &NodeSpec) -> Result<(Child, u32)> {
    let (mut c, pid) = spawn(exe, spec).await?;
    match wait_ready(&mut c, pid, spec, READY_DEADLINE).await {
        Ok(_) => Ok((c, pid)),
        Err(e) => {
            stop_child(&mut c).await;
            Err(e)
        }
    }
}

fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    l.chars().take(300).collect()
}

async fn spawn(exe: &Path, spec: &NodeSpec) -> Result<(Child, u32)> {
    for dir in [&spec.store_dir, &spec.ports_file_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let unwritable = |e: std::io::Error| -> anyhow::Error {
        fail(
            Kind::CantCreate,
            format!(
                "cannot write the nats-server log {}: {e}",
                spec.log_file.display()
            ),
        )
        .help(format!(
            "make {} writable by this user (or remove it: ghboot creates it again)",
            spec.log_file.display()
        ))
        .into()
    };
    if let Some(d) = spec.log_file.parent() {
        std::fs::create_dir_all(d).map_err(unwritable)?;
    }
    crate::secret::write_private(&spec.conf_file, conf::render(spec).as_bytes())?;
    // Early failures (bad config) go to stderr before the server opens its log file: keep them there too.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_file)
        .map_err(unwritable)?;
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
