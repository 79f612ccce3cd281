//! Rendering deployments from the templates in `assets/` (embedded): Kubernetes manifests, a Compose file,
//! nats-server configs and Dockerfiles. Secrets are never rendered into manifests or the Compose file: those
//! reference them (Kubernetes Secrets, Compose secret files); only the nats-server config ghboot copies into
//! a container itself (0600, never on a command line) carries the password.

use crate::config::Mode;
use crate::config::Settings;
use crate::deploy::containers::{CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT, WEBHOOK_PORT};
use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

const NATS_CONF: &str = include_str!("../../../assets/nats.conf.j2");
const K8S: [(&str, &str); 6] = [
    (
        "00-namespace.yaml",
        include_str!("../../../assets/kubernetes/00-namespace.yaml.j2"),
    ),
    (
        "10-configmap.yaml",
        include_str!("../../../assets/kubernetes/10-configmap.yaml.j2"),
    ),
    (
        "20-service-headless.yaml",
        include_str!("../../../assets/kubernetes/20-service-headless.yaml.j2"),
    ),
    (
        "21-service-client.yaml",
        include_str!("../../../assets/kubernetes/21-service-client.yaml.j2"),
    ),
    (
        "30-statefulset.yaml",
        include_str!("../../../assets/kubernetes/30-statefulset.yaml.j2"),
    ),
    (
        "40-ghboot.yaml",
        include_str!("../../../assets/kubernetes/40-ghboot.yaml.j2"),
    ),
];
const COMPOSE: &str = include_str!("../../../assets/docker/compose.yaml.j2");
pub const GHBOOT_DOCKERFILE: &str = include_str!("../../../assets/docker/ghboot.Dockerfile");
const NATS_DOCKERFILE: &str = include_str!("../../../assets/docker/nats.Dockerfile");

/// Where the receiver and controller containers find their secrets (files, never environment variables).
pub const NATS_PASSWORD_FILE: &str = "/run/secrets/ghboot/nats-password";
pub const WEBHOOK_SECRET_FILE: &str = "/run/secrets/ghboot/webhook-secret";
/// Where nats-server's config is inside a container.
pub const NATS_CONF_PATH: &str = "/etc/ghboot/nats.conf";
/// The Kubernetes Secrets the manifests reference.
pub const K8S_AUTH_SECRET: &str = "ghboot-nats-auth";
pub const K8S_WEBHOOK_SECRET: &str = "ghboot-webhook";
/// NATS pod sizing: JetStream's limits sit below the memory limit (the rest is the server's own heap,
/// GOMEMLIMIT below the limit too) and the volume (room for the server's metadata and compaction).
pub const K8S_NATS_MEMORY: &str = "1Gi";
pub const K8S_GOMEMLIMIT: &str = "900MiB";
pub const K8S_JS_MAX_MEMORY: &str = "256M";
pub const K8S_STORAGE: &str = "10Gi";
pub const K8S_JS_MAX_FILE: &str = "8G";
/// Which StorageClass the NATS volumes use; unset: the cluster's default.
pub const K8S_STORAGE_CLASS_ENV: &str = "GHBOOT_K8S_STORAGE_CLASS";
/// A Secret with the controller's GitHub token (key `token`); optional, the controller cannot push without.
pub const K8S_GITHUB_SECRET: &str = "ghboot-github";
/// The image Kubernetes pulls for nats-server unless `--image nats=...` says otherwise.
pub const K8S_NATS_IMAGE: &str = "nats:2.15.1-alpine";

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // JSON strings are valid YAML and nats.conf strings: every user-derived value goes through this.
    env.add_filter("tojson", |v: Value| -> Result<Value, minijinja::Error> {
        serde_json::to_string(&v)
            .map(Value::from_safe_string)
            .map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
    });
    env
}

fn render_str(name: &str, source: &str, ctx: Value) -> Result<String> {
    let env = env();
    env.render_str(source, ctx)
        .with_context(|| format!("cannot render the built-in template {name}"))
}

/// The images a container deployment runs.
#[derive(Debug, Clone, Serialize)]
pub struct Images {
    pub nats: String,
    pub ghboot: String,
}

/// `--image nats=REF` / `--image ghboot=REF`, when given.
pub fn image_override(s: &Settings, which: &str) -> Option<String> {
    s.images
        .iter()
        .find(|(k, _)| k == which)
        .map(|(_, v)| v.clone())
}

/// Images named in rendered files when ghboot does not build them itself (`ghboot render`).
pub fn default_images(s: &Settings) -> Images {
    let v = env!("CARGO_PKG_VERSION");
    let (nats, ghboot) = match s.mode {
        Mode::Kubernetes => (K8S_NATS_IMAGE.to_string(), format!("ghboot:{v}")),
        _ => (
            "ghboot-local/nats:latest".to_string(),
            "ghboot-local/ghboot:latest".to_string(),
        ),
    };
    Images {
        nats: image_override(s, "nats").unwrap_or(nats),
        ghboot: image_override(s, "ghboot").unwrap_or(ghboot),
    }
}

/// How a nats-server config gets its credentials.
pub enum ConfAuth<'a> {
    /// user and password inline (a 0600 file ghboot copies into the container itself)
    Inline { user: &'a str, password: &'a str },
    /// `$NATS_USER` / `$NATS_PASSWORD` from the environment (Kubernetes Secret references)
    Env,
    /// `include` of a separate secret file (Compose secrets)
    Include(&'a str),
}

/// One nats-server node's config inside a container deployment.
pub fn nats_conf(
    s: &Settings,
    target: &str,
    server_name: &str,
    routes: &[String],
    auth: ConfAuth,
) -> Result<String> {
    let (mode, user, password) = match auth {
        ConfAuth::Inline { user, password } => ("inline".to_string(), user, password),
        ConfAuth::Env => ("env".to_string(), "", ""),
        ConfAuth::Include(p) => (p.to_string(), "", ""),
    };
    let ctx = context! {
        target, server_name, replicas => routes.len().max(1), routes,
        cluster_name => format!("ghboot-{}", s.org.to_lowercase()),
        client_port => CLIENT_PORT, monitor_port => MONITOR_PORT, cluster_port => CLUSTER_PORT,
        store_dir => "/data/jetstream", auth => mode, user, password,
        js_max_mem => K8S_JS_MAX_MEMORY, js_max_file => K8S_JS_MAX_FILE,
    };
    render_str("nats.conf", NATS_CONF, ctx)
}

pub fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..8])
}

/// The receiver and controller: same image, different subcommands.
#[derive(Debug, Clone, Serialize)]
pub struct GhbootContainer {
    pub name: &'static str,
    pub args: Vec<String>,
    pub port: Option<u16>,
    /// Docker/Compose: where the port is published on the host
    pub publish: String,
    /// What its health check probes (`ghboot healthcheck`)
    pub health: Option<String>,
    /// Environment of this component only (non-secret)
    pub env: Vec<(String, String)>,
}

/// Where the controller container records its heartbeat (a tmpfs / emptyDir), and how old it may get: the
/// controller beats at least every 5 s while its consumer answers.
pub const CONTROLLER_HEARTBEAT: &str = "/tmp/ghboot-controller.heartbeat";
pub const CONTROLLER_HEALTH: &str = "file:///tmp/ghboot-controller.heartbeat?max-age=30";

pub fn ghboot_containers(s: &Settings) -> Vec<GhbootContainer> {
    let publish = match s.webhook_port {
        Some(p) => format!("{}:{p}:{WEBHOOK_PORT}", s.bind),
        None => format!("{}::{WEBHOOK_PORT}", s.bind),
    };
    vec![
        GhbootContainer {
            name: "receiver",
            args: vec![
                "webhook".into(),
                "serve".into(),
                "--listen".into(),
                format!("0.0.0.0:{WEBHOOK_PORT}"),
            ],
            port: Some(WEBHOOK_PORT),
            publish,
            health: Some(format!("http://127.0.0.1:{WEBHOOK_PORT}/healthz")),
            env: vec![],
        },
        GhbootContainer {
            name: "controller",
            args: vec!["controller".into()],
            port: None,
            publish: String::new(),
            health: Some(CONTROLLER_HEALTH.into()),
            env: vec![
                (
                    crate::controller::HEARTBEAT_FILE_ENV.into(),
                    CONTROLLER_HEARTBEAT.into(),
                ),
                (crate::controller::APPLY_TOPOLOGY_ENV.into(), "1".into()),
            ],
        },
    ]
}

/// Non-secret environment of the receiver and controller containers. Secrets are files (see the consts).
pub fn ghboot_env(s: &Settings, nats_url: &str) -> Vec<(String, String)> {
    vec![
        ("NATS_URL".into(), nats_url.into()),
        ("GHBOOT_CONTROLLER_NATS_URL".into(), nats_url.into()),
        ("NATS_PASSWORD_FILE".into(), NATS_PASSWORD_FILE.into()),
        (
            "GHBOOT_WEBHOOK_SECRET_FILE".into(),
            WEBHOOK_SECRET_FILE.into(),
        ),
        ("GITHUB_ORG".into(), s.org.clone()),
        ("GHBOOT_BIND".into(), "0.0.0.0".into()),
        ("GHBOOT_WEBHOOK_PORT".into(), WEBHOOK_PORT.to_string()),
        ("GHBOOT_STATE_DIR".into(), "/var/lib/ghboot".into()),
    ]
}

fn yaml_labels(pairs: &[(&str, String)], indent: usize) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}{k}: {}",
                " ".repeat(indent),
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kubernetes namespace (and instance label) of an org: a DNS label.
pub fn k8s_namespace(s: &Settings) -> String {
    format!("ghboot-{}", s.org.to_lowercase())
}

/// The Kubernetes manifests, file name -> content.
pub fn kubernetes(s: &Settings) -> Result<Vec<(String, String)>> {
    let images = default_images(s);
    let ns = k8s_namespace(s);
    let replicas = 3usize;
    let routes: Vec<String> = (0..replicas)
        .map(|i| format!("nats://nats-{i}.nats-headless.{ns}.svc.cluster.local:{CLUSTER_PORT}"))
        .collect();
    let conf = nats_conf(s, "kubernetes", "$POD_NAME", &routes, ConfAuth::Env)?;
    // host:port of each peer; the init container adds the route credentials (never in the ConfigMap)
    let route_hosts: Vec<String> = routes
        .iter()
        .map(|r| r.trim_start_matches("nats://").to_string())
        .collect();
    let labels = yaml_labels(
        &[
            ("app.kubernetes.io/managed-by", "ghboot".into()),
            ("app.kubernetes.io/part-of", "ghboot".into()),
            ("app.kubernetes.io/instance", ns.clone()),
            ("ghboot.dev/org", s.org.clone()),
        ],
        4,
    );
    let nats_url = format!("nats://nats.{ns}.svc.cluster.local:{CLIENT_PORT}");
    let containers = ghboot_containers(s);
    let ctx = context! {
        org => s.org, namespace => ns, instance => ns, labels, nats_conf => conf.trim_end(),
        config_hash => hash(&[conf.as_bytes(), images.nats.as_bytes()]),
        replicas, client_port => CLIENT_PORT, monitor_port => MONITOR_PORT, cluster_port => CLUSTER_PORT,
        webhook_port => WEBHOOK_PORT, nats_image => images.nats, ghboot_image => images.ghboot,
        auth_secret => K8S_AUTH_SECRET, webhook_secret => K8S_WEBHOOK_SECRET, storage_size => K8S_STORAGE,
        storage_class => std::env::var(K8S_STORAGE_CLASS_ENV).ok().filter(|c| !c.is_empty()),
        nats_memory => K8S_NATS_MEMORY, gomemlimit => K8S_GOMEMLIMIT, github_secret => K8S_GITHUB_SECRET,
        route_hosts,
        nonroot => NONROOT_ID, heartbeat_health => CONTROLLER_HEALTH,
        ghboot_containers => containers, ghboot_env => ghboot_env(s, &nats_url),
    };
    K8S.iter()
        .map(|(name, src)| Ok((name.to_string(), render_str(name, src, ctx.clone())?)))
        .collect()
}

/// Node `i` of a container deployment: names and publishing.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub volume: String,
    pub client_publish: String,
    pub monitor_publish: String,
}

pub fn node_views(s: &Settings) -> Vec<NodeView> {
    let n = crate::deploy::containers::replicas(s);
    (0..n)
        .map(|i| {
            let (cp, mp) = if i == 0 {
                (s.port, s.monitor_port)
            } else {
                (None, None)
            };
            let publish = |p: Option<u16>, inner: u16| match p {
                Some(p) => format!("{}:{p}:{inner}", s.bind),
                None => format!("{}::{inner}", s.bind),
            };
            NodeView {
                name: format!("nats-{i}"),
                volume: format!("nats-{i}-data"),
                client_publish: publish(cp, CLIENT_PORT),
                monitor_publish: publish(mp, MONITOR_PORT),
            }
        })
        .collect()
}

/// The user the Compose containers run as: the one who renders (so the 0600 secret files it writes are
/// theirs), or, when that is root, an unprivileged uid the secret files are handed to.
pub fn compose_user() -> (u32, u32) {
    match crate::platform::current_ids() {
        Some((u, g)) if u != 0 => (u, g),
        _ => (NONROOT_ID, NONROOT_ID),
    }
}
/// The unprivileged user of ghboot's images (distroless' "nonroot").
pub const NONROOT_ID: u32 = 65532;

/// The secret files next to the Compose file (relative path, content): the instance's NATS password (as a
/// nats-server `authorization` block and alone) and its webhook secret. Written 0600.
pub fn compose_secrets(s: &Settings) -> Result<Vec<(String, Vec<u8>)>> {
    let auth = crate::stages::nats::ensure_auth(s)?;
    let cfg = crate::webhook::WebhookConfig::from_settings(s)?;
    let (hook, _) = crate::webhook::ensure_secret(s, &cfg)?;
    let conf = format!(
        "authorization {{\n  user: {}\n  password: {}\n}}\n",
        serde_json::to_string(&auth.user)?,
        serde_json::to_string(auth.password.expose())?
    );
    Ok(vec![
        ("secrets/nats-auth.conf".into(), conf.into_bytes()),
        (
            "secrets/nats-password".into(),
            auth.password.expose().as_bytes().to_vec(),
        ),
        (
            "secrets/webhook-secret".into(),
            hook.expose().as_bytes().to_vec(),
        ),
    ])
}

/// The Compose file plus the (secret-free) nats-server configs it references.
pub fn compose(s: &Settings) -> Result<Vec<(String, String)>> {
    compose_with(s, &default_images(s))
}

pub fn compose_with(s: &Settings, images: &Images) -> Result<Vec<(String, String)>> {
    let nodes = node_views(s);
    let routes: Vec<String> = if nodes.len() > 1 {
        nodes
            .iter()
            .map(|n| format!("nats://{}:{CLUSTER_PORT}", n.name))
            .collect()
    } else {
        vec![]
    };
    let mut files = Vec::new();
    for n in &nodes {
        let conf = nats_conf(
            s,
            "compose",
            &n.name,
            &routes,
            ConfAuth::Include("../../run/secrets/nats-auth.conf"),
        )?;
        files.push((format!("{}.conf", n.name), conf));
    }
    let nats_url = nodes
        .iter()
        .map(|n| format!("nats://{}:{CLIENT_PORT}", n.name))
        .collect::<Vec<_>>()
        .join(",");
    let labels = yaml_labels(
        &[
            (crate::deploy::containers::LABEL_MANAGED, "true".into()),
            (
                crate::deploy::containers::LABEL_INSTANCE,
                crate::deploy::containers::instance_id(s),
            ),
        ],
        0,
    );
    let ctx = context! {
        project => crate::deploy::containers::project(s), nodes, labels, monitor_port => MONITOR_PORT,
        nats_image => images.nats, ghboot_image => images.ghboot, user => crate::deploy::dev::NATS_USER,
        run_as => { let (u, g) = compose_user(); format!("{u}:{g}") },
        ghboot_containers => ghboot_containers(s), ghboot_env => ghboot_env(s, &nats_url), ghboot_volume => "ghboot-data",
    };
    files.insert(
        0,
        (
            "compose.yaml".into(),
            render_str("compose.yaml", COMPOSE, ctx)?,
        ),
    );
    Ok(files)
}

pub fn nats_dockerfile(base: &str) -> Result<String> {
    render_str("nats.Dockerfile", NATS_DOCKERFILE, context! { base })
}

/// `ghboot render --mode kubernetes|docker --out DIR`.
pub fn write(s: &Settings, out: &Path) -> Result<Vec<String>> {
    write_with(s, out, None)
}

/// Same, naming `images` (the ones `ghboot render` built) in the Compose file, and writing its secrets.
pub fn write_with(s: &Settings, out: &Path, images: Option<&Images>) -> Result<Vec<String>> {
    let mut secrets = Vec::new();
    let files = match s.mode {
        Mode::Kubernetes => kubernetes(s)?,
        Mode::Docker => {
            secrets = compose_secrets(s)?;
            match images {
                Some(i) => compose_with(s, i)?,
                None => compose(s)?,
            }
        }
        m => {
            return Err(
                fail(Kind::Usage, format!("nothing to render for --mode {m}"))
                    .help("pass --mode kubernetes (manifests) or --mode docker (a Compose file)")
                    .into(),
            )
        }
    };
    std::fs::create_dir_all(out).map_err(|e| {
        fail(
            Kind::CantCreate,
            format!("cannot create {}: {e}", out.display()),
        )
        .help("pass --out to a writable place")
    })?;
    // the mark that ghboot made this dir, so that `down --purge` may delete it when it lies in a state dir
    let _ = std::fs::write(out.join(crate::purge::RENDER_MARKER), "ghboot render\n");
    let mut written = Vec::new();
    for (name, content) in files {
        let p = out.join(&name);
        crate::fsutil::write_atomic(&p, content.as_bytes()).map_err(|e| {
            fail(
                Kind::CantCreate,
                format!("cannot write {}: {e}", p.display()),
            )
            .help("pass --out to a writable place")
        })?;
        written.push(p.display().to_string());
    }
    let (uid, gid) = compose_user();
    for (name, content) in secrets {
        let p = out.join(&name);
        let done = p
            .parent()
            .map_or(Ok(()), crate::fsutil::create_private_dir)
            .and_then(|_| crate::fsutil::write_atomic_mode(&p, &content, 0o600))
            // the containers run as `uid`: the file must be theirs (still 0600, closed to everyone else)
            .and_then(|_| crate::platform::chown(&p, uid, gid));
        done.map_err(|e| {
            fail(
                Kind::CantCreate,
                format!("cannot write the secret file {}: {e}", p.display()),
            )
            .help("pass --out to a writable place")
        })?;
        written.push(p.display().to_string());
    }
    Ok(written)
}
