//! What the container targets (Docker, Kubernetes) share: fixed in-container ports, the labels that mark an
//! instance's objects, the instance id, and secrets read from files at start-up.
//!
//! Everything a deployment is made of is rendered from the templates in `assets/` (embedded in the binary)
//! by `deploy::docker::render`, so `ghboot render` writes exactly what `up` runs.

use crate::config::Settings;
use crate::config::{Mode, NatsType};
use sha2::{Digest, Sha256};

/// Ports inside the containers (fixed; the host side is what the user chooses).
pub const CLIENT_PORT: u16 = 4222;
pub const MONITOR_PORT: u16 = 8222;
pub const CLUSTER_PORT: u16 = 6222;
pub const WEBHOOK_PORT: u16 = 8080;

/// Label keys on everything ghboot creates in an engine, so that `down` finds exactly its own.
pub const LABEL_MANAGED: &str = "dev.ghboot.managed";
pub const LABEL_INSTANCE: &str = "dev.ghboot.instance";
pub const LABEL_COMPONENT: &str = "dev.ghboot.component";
pub const LABEL_CONFIG: &str = "dev.ghboot.config-hash";

/// Short, stable id of an instance: a hash of its state dir's absolute path.
pub fn instance_id(s: &Settings) -> String {
    instance_id_of(s.layout.root())
}

/// [`instance_id`] of a state dir (absolute path).
pub fn instance_id_of(state_dir: &std::path::Path) -> String {
    let mut h = Sha256::new();
    h.update(state_dir.to_string_lossy().as_bytes());
    hex::encode(&h.finalize()[..5])
}

/// `ghboot-<id>`: prefix of every container, network and volume name of this instance; the compose project.
pub fn project(s: &Settings) -> String {
    format!("ghboot-{}", instance_id(s))
}

/// How many nats-server nodes a container deployment runs: Kubernetes always runs a 3-node JetStream
/// cluster; Docker runs one node, or three for `--nats-type self_hosted_cluster`.
pub fn replicas(s: &Settings) -> usize {
    match (s.mode, s.nats_type) {
        (Mode::Kubernetes, _) => 3,
        (_, NatsType::SelfHostedCluster) => 3,
        _ => 1,
    }
}

/// Is this a container mode whose NATS runs in an engine or a cluster rather than under a local supervisor?
pub fn is_container_mode(m: Mode) -> bool {
    matches!(m, Mode::Docker | Mode::Kubernetes)
}

/// An instance deployed to containers stays what it is for the commands that look at it (`status`, `env`,
/// `down`, ...): a `--mode`/`BOOTSTRAP_MODE` of the calling environment does not turn it into another one.
pub fn keep_recorded_mode(s: &mut Settings, state: &crate::state::StateFile) {
    if let Some(m) = state.settings.mode.filter(|m| is_container_mode(*m)) {
        s.mode = m;
    }
}

/// Inside a container, secrets come as files (never environment variables `docker inspect` would show):
/// `NATS_PASSWORD_FILE` and `GHBOOT_WEBHOOK_SECRET_FILE` become `NATS_PASSWORD` / `GHBOOT_WEBHOOK_SECRET` of
/// this process, when those are not set. Called once at start-up, before anything reads the environment.
pub fn env_from_files() {
    for (file_var, var) in [
        ("NATS_PASSWORD_FILE", "NATS_PASSWORD"),
        ("GHBOOT_WEBHOOK_SECRET_FILE", "GHBOOT_WEBHOOK_SECRET"),
    ] {
        if std::env::var_os(var).is_some() {
            continue;
        }
        if let Some(path) = std::env::var_os(file_var) {
            if let Ok(v) = std::fs::read_to_string(&path) {
                std::env::set_var(var, v.trim_end_matches(['\r', '\n']));
            }
        }
    }
}

/// Does this ghboot executable have the subcommands the receiver and controller containers run?
/// (`ghboot webhook serve` and `ghboot controller`; built by their own issues.)
pub fn ghboot_components_available(exe: &std::path::Path) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (name, args) in [
        ("receiver", &["webhook", "serve", "--help"][..]),
        ("controller", &["controller", "--help"][..]),
    ] {
        let ok = std::process::Command::new(exe)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            out.push(name);
        }
    }
    out
}
