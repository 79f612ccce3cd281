//! Prerequisite checks of the container modes (the prerequisites stage and `ghboot doctor` show them):
//! a Docker engine that answers, a kube context that answers, host ports free or already ours.

use crate::check::{port_free, Check};
use crate::config::Settings;
use crate::error::Kind;
use std::path::Path;

fn ok(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        remedy: None,
        kind: None,
    }
}

fn bad(name: &str, kind: Kind, detail: impl Into<String>, remedy: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        remedy: Some(remedy.into()),
        kind: Some(kind),
    }
}

/// The checks of `s.mode` (docker or kubernetes); the nats-server check of docker mode is the caller's.
pub fn checks(s: &Settings) -> Vec<Check> {
    match s.mode {
        crate::config::Mode::Docker => {
            let engine = docker_engine();
            let up = engine.ok;
            let mut out = vec![engine];
            if up {
                out.extend(container_ports(s));
            }
            out
        }
        crate::config::Mode::Kubernetes => vec![kube_context()],
        _ => vec![],
    }
}

/// Does docker mode build its nats image from a local nats-server (no `--image nats=...`)?
pub fn needs_local_nats_server(s: &Settings) -> bool {
    s.mode == crate::config::Mode::Docker
        && crate::deploy::docker::render::image_override(s, "nats").is_none()
}

/// `mode` check detail for the container modes and auto.
pub fn mode_detail(s: &Settings) -> Option<String> {
    use crate::config::Mode;
    s.mode_reason.clone().or_else(|| match s.mode {
        Mode::Docker => Some("docker: containers in the local Docker engine".into()),
        Mode::Kubernetes => Some("kubernetes: manifests applied with kubectl".into()),
        Mode::Auto => Some("auto: decided when `up` runs (kubernetes, docker or dev)".into()),
        _ => None,
    })
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
        return bad(
            "docker",
            Kind::Unavailable,
            "no docker CLI on PATH",
            "install Docker (engine and CLI), or use --mode dev",
        );
    };
    match probe(&docker, &["info", "--format", "{{.ServerVersion}}"], std::time::Duration::from_secs(10)) {
        Ok(v) => ok("docker", format!("engine {v} answers ({})", docker.display())),
        Err(e) => bad(
            "docker",
            Kind::Unavailable,
            format!("no Docker engine answers: {e}"),
            "start the Docker engine (or set DOCKER_HOST) and check `docker info`, or use --mode dev",
        ),
    }
}

fn kube_context() -> Check {
    let Ok(kubectl) = which::which("kubectl") else {
        return bad(
            "kubernetes",
            Kind::Unavailable,
            "no kubectl on PATH",
            "install kubectl and select a context, or write the manifests with `ghboot render --mode kubernetes --out DIR`",
        );
    };
    let ctx =
        match probe(&kubectl, &["config", "current-context"], std::time::Duration::from_secs(5)) {
            Ok(c) if !c.is_empty() => c,
            _ => return bad(
                "kubernetes",
                Kind::Unavailable,
                "kubectl has no current context (no cluster configured)",
                "select a cluster with `kubectl config use-context NAME`, or write the manifests with `ghboot render --mode kubernetes --out DIR`",
            ),
        };
    match probe(&kubectl, &["version", "--request-timeout=3s", "-o", "json"], std::time::Duration::from_secs(8)) {
        Ok(_) => ok("kubernetes", format!("context {ctx} answers")),
        Err(e) => bad(
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
                crate::deploy::containers::LABEL_INSTANCE,
                crate::deploy::containers::instance_id(s)
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
                        .parse::<u16>()
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
            out.push(ok(
                what,
                format!("{port} (published by this instance's containers)"),
            ));
        } else if port_free(&s.bind, port) {
            out.push(ok(what, format!("{}:{port} is free", s.bind)));
        } else {
            out.push(bad(
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
