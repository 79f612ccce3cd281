//! Container targets: Docker for real (through the docker CLI), Kubernetes rendered and applied with kubectl,
//! `--mode auto` detection, and the Terraform export of the state-backend stage.
//!
//! Everything a deployment is made of is rendered from the templates in `assets/` (embedded in the binary)
//! by [`render`], so `ghboot render` writes exactly what `up` runs.

pub mod auto;
pub mod checks;
pub mod docker;
pub mod images;
pub mod kubernetes;
pub mod render;
pub mod terraform;

use crate::cli::{Mode, NatsType};
use crate::config::Settings;
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

// ---- What the nats stage and the commands call in a container mode (until the deployment interface of the
// cluster issue takes these over as `Target`s). ----

use crate::engine::{Change, Ctx, Outputs, Verdict};
use anyhow::Result;

pub async fn mismatch(s: &Settings) -> Result<Option<String>> {
    match s.mode {
        Mode::Kubernetes => Ok(if kubernetes::health(s).await.healthy {
            None
        } else {
            Some("the StatefulSet is not ready".into())
        }),
        _ => docker::mismatch(s).await,
    }
}

pub async fn nats_plan(ctx: &mut Ctx) -> Result<Vec<Change>> {
    Ok(match mismatch(&ctx.settings).await? {
        Some(why) => vec![Change::new(
            "nats",
            format!(
                "{} deployment {}",
                ctx.settings.mode,
                project(&ctx.settings)
            ),
            "fix",
        )
        .note(why)],
        None => crate::topology::plan(ctx).await?,
    })
}

pub async fn nats_verify(ctx: &mut Ctx) -> Result<Verdict> {
    if let Some(why) = mismatch(&ctx.settings).await? {
        return Ok(Verdict::Drift(why));
    }
    let changes = crate::topology::plan(ctx).await?;
    Ok(if changes.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Drift(format!("{} JetStream change(s) pending", changes.len()))
    })
}

pub async fn nats_apply(ctx: &mut Ctx) -> Result<Outputs> {
    let mut out = match ctx.settings.mode {
        Mode::Kubernetes => kubernetes::ensure(ctx).await?,
        _ => docker::ensure(ctx).await?,
    };
    if ctx.settings.mode == Mode::Docker {
        let topo = crate::topology::apply(ctx).await?;
        out.insert("topology".into(), topo);
    }
    Ok(out)
}

pub async fn health(s: &Settings) -> crate::stages::nats::Health {
    match s.mode {
        Mode::Kubernetes => kubernetes::health(s).await,
        _ => docker::health(s).await,
    }
}

pub async fn connect(s: &Settings) -> Result<async_nats::Client> {
    match s.mode {
        Mode::Kubernetes => {
            Err(crate::error::fail(crate::error::Kind::Unavailable, "the NATS of --mode kubernetes is reachable inside the cluster only")
                .help("use `kubectl port-forward -n NAMESPACE service/nats 4222` and connect to 127.0.0.1:4222")
                .into())
        }
        _ => docker::connect(s).await,
    }
}

/// `down` of a container mode; returns whether anything was removed.
pub async fn down(s: &Settings, purge: bool) -> Result<bool> {
    match s.mode {
        Mode::Kubernetes => kubernetes::down(s, purge).await,
        _ => docker::down(s, purge).await,
    }
}

/// `up` of a container mode: the stages run in this process and it returns; the engine (restart policy)
/// or the cluster keeps things running, so there is no ghboot supervisor process.
pub async fn up(
    settings: Settings,
    state: Option<crate::state::StateFile>,
    reporter: crate::ui::Reporter,
) -> Result<u8> {
    let layout = settings.layout.clone();
    let _lock = crate::state::StateLock::acquire(&layout)?;
    if settings.detach {
        reporter.info(&format!(
            "--mode {}: the containers run detached in the engine; no supervisor process is needed",
            settings.mode
        ));
    }
    let mut state = state.unwrap_or_default();
    state.settings = settings.recorded();
    state.save(&layout)?;
    // this process hosts the run (the nats stage's target ensures the deployment) but supervises nothing
    // afterwards: the runtime file it keeps meanwhile is removed when it returns
    let runtime = crate::natsd::supervise::SharedRuntime::new(
        layout.clone(),
        crate::state::Runtime {
            supervisor_pid: std::process::id(),
            ..Default::default()
        },
    );
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let host = crate::engine::Host {
        runtime,
        supervisor: None,
        tasks: Vec::new(),
        shutdown,
        page: Default::default(),
    };
    let mut ctx = Ctx {
        settings,
        state,
        role: crate::engine::Role::Host(host),
        reporter,
        nats: None,
    };
    let result = crate::engine::run(&mut ctx, &crate::stages::all()).await;
    crate::state::Runtime::remove(&layout);
    result?;
    ctx.state.settings = ctx.settings.recorded();
    ctx.state.save(&layout)?;
    crate::commands::up::print_summary(&ctx.settings, "ghboot is ready").await;
    crate::commands::up::print_exports(&ctx.settings).await?;
    Ok(0)
}

/// `ghboot env` of a container deployment: the published URL(s) and the generated credentials.
pub async fn client_env(s: &Settings) -> Result<Vec<(String, String, bool)>> {
    crate::target::generated_auth_env(s, &health(s).await)
}
