//! `--mode kubernetes`: the rendered manifests applied with `kubectl` (found on PATH), idempotently
//! (`kubectl apply` is a no-op for unchanged objects), then a wait for the rollout. The Secrets the manifests
//! reference are applied from ghboot's own 0600 files through kubectl's stdin, never a command line or a
//! file. No live cluster is exercised by ghboot's tests: the manifests are validated offline against the
//! Kubernetes API schemas, and this path fails at prerequisites when no kube context answers.

use crate::config::Settings;
use crate::deploy::dev::ensure_auth;
use crate::deploy::Health;
use crate::engine::{Ctx, Outputs};
use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The current context's name, when its API server answers within `timeout`.
pub async fn context_answers(kubectl: &Path, timeout: Duration) -> Result<String, String> {
    let ctx = tokio::process::Command::new(kubectl)
        .args(["config", "current-context"])
        .stdin(Stdio::null())
        .output()
        .await;
    let name = match ctx {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        }
        _ => return Err("kubectl has no current context".into()),
    };
    let t = format!("--request-timeout={}s", timeout.as_secs().max(1));
    let probe = tokio::time::timeout(
        timeout + Duration::from_secs(2),
        tokio::process::Command::new(kubectl)
            .args(["version", &t, "-o", "json"])
            .stdin(Stdio::null())
            .output(),
    )
    .await;
    match probe {
        Ok(Ok(o)) if o.status.success() => Ok(name),
        _ => Err(format!("kube context {name} does not answer")),
    }
}

pub fn kubectl() -> Result<PathBuf> {
    which::which("kubectl").map_err(|_| {
        fail(Kind::Unavailable, "--mode kubernetes needs kubectl, and none is on PATH")
            .help("install kubectl and select a context (`kubectl config use-context`), or use `ghboot render --mode kubernetes --out DIR` to get the manifests")
            .into()
    })
}

async fn run(kubectl: &Path, args: &[&str], input: Option<Vec<u8>>) -> Result<String> {
    let mut cmd = tokio::process::Command::new(kubectl);
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
        .with_context(|| format!("cannot run {}", kubectl.display()))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(&data).await?;
        drop(stdin);
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(fail(
            Kind::Error,
            format!(
                "`kubectl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
        .help("check `kubectl config current-context` and your permissions in the namespace")
        .into())
    }
}

/// The Secrets the manifests reference, as one JSON list (for `kubectl apply -f -`).
fn secrets_json(s: &Settings) -> Result<Vec<u8>> {
    let auth = ensure_auth(s)?;
    let ns = crate::deploy::docker::render::k8s_namespace(s);
    let webhook = std::fs::read_to_string(s.layout.webhook_secret_file()).unwrap_or_default();
    let v = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": crate::deploy::docker::render::K8S_AUTH_SECRET, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "ghboot"}},
             "stringData": {"user": auth.user, "password": auth.password.expose()}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": crate::deploy::docker::render::K8S_WEBHOOK_SECRET, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "ghboot"}},
             "stringData": {"secret": webhook.trim_end()}},
        ]
    });
    Ok(serde_json::to_vec(&v)?)
}

/// The nats stage in kubernetes mode.
pub async fn ensure(ctx: &mut Ctx) -> Result<Outputs> {
    let s = ctx.settings.clone();
    let k = kubectl()?;
    let context = context_answers(&k, Duration::from_secs(5))
        .await
        .map_err(|why| {
            fail(Kind::Unavailable, format!("--mode kubernetes: {why}"))
                .help("select a reachable cluster with `kubectl config use-context`")
        })?;
    let dir = s.layout.kubernetes_dir();
    crate::deploy::docker::render::write(&s, &dir)?;
    let ns = crate::deploy::docker::render::k8s_namespace(&s);
    let first = dir.join("00-namespace.yaml");
    run(&k, &["apply", "-f", &first.to_string_lossy()], None).await?;
    run(&k, &["apply", "-f", "-"], Some(secrets_json(&s)?)).await?;
    let applied = run(&k, &["apply", "-f", &dir.to_string_lossy()], None).await?;
    let wait = format!("--timeout={}s", s.wait_timeout.as_secs().max(60));
    for obj in [
        "statefulset/nats",
        "deployment/ghboot-receiver",
        "deployment/ghboot-controller",
    ] {
        run(&k, &["rollout", "status", "-n", &ns, obj, &wait], None).await?;
    }
    let mut out = Outputs::new();
    out.insert("target".into(), "kubernetes".into());
    out.insert("context".into(), context.clone().into());
    out.insert("namespace".into(), ns.clone().into());
    out.insert("manifests".into(), dir.display().to_string().into());
    out.insert(
        "applied".into(),
        applied
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into(),
    );
    out.insert(
        "url".into(),
        format!(
            "nats://nats.{ns}.svc.cluster.local:{}",
            crate::deploy::containers::CLIENT_PORT
        )
        .into(),
    );
    out.insert(
        "summary".into(),
        format!("applied to context {context}, namespace {ns}; rollout complete").into(),
    );
    Ok(out)
}

/// In-cluster view: the client Service's URL (reachable from inside the cluster, or through
/// `kubectl port-forward`), healthy when the StatefulSet's pods are all ready.
pub async fn health(s: &Settings) -> Health {
    let ns = crate::deploy::docker::render::k8s_namespace(s);
    let mut healthy = false;
    if let Ok(k) = kubectl() {
        if let Ok(o) = run(
            &k,
            &[
                "get",
                "-n",
                &ns,
                "statefulset/nats",
                "-o",
                "jsonpath={.status.readyReplicas}/{.spec.replicas}",
            ],
            None,
        )
        .await
        {
            healthy = o
                .split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && a == b);
        }
    }
    Health {
        healthy,
        url: Some(format!(
            "nats://nats.{ns}.svc.cluster.local:{}",
            crate::deploy::containers::CLIENT_PORT
        )),
        monitor_url: None,
        pid: None,
        supervisor_pid: None,
        supervisor_alive: false,
        nodes: vec![],
        ..Default::default()
    }
}

/// `down`: delete what the manifests made (the namespace keeps PVCs unless purged, which deletes it).
pub async fn down(s: &Settings, purge: bool) -> Result<bool> {
    let k = kubectl()?;
    let ns = crate::deploy::docker::render::k8s_namespace(s);
    let dir = s.layout.kubernetes_dir();
    if purge {
        run(
            &k,
            &["delete", "namespace", &ns, "--ignore-not-found"],
            None,
        )
        .await?;
    } else {
        // by label, not a fixed list: whatever kinds the manifests hold now (and held before) go
        let selector =
            format!("app.kubernetes.io/managed-by=ghboot,app.kubernetes.io/instance={ns}");
        run(
            &k,
            &[
                "delete",
                "-n",
                &ns,
                "deployment,statefulset,service,configmap,poddisruptionbudget,networkpolicy",
                "-l",
                &selector,
                "--ignore-not-found",
            ],
            None,
        )
        .await?;
    }
    let _ = dir;
    Ok(true)
}
