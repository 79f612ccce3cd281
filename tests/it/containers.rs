//! Container targets. Rendered Kubernetes manifests are validated offline against the Kubernetes API schemas
//! (`kubernetes-validate --strict`); the Compose file against the Compose tool itself and the Compose
//! specification's JSON schema (`check-jsonschema`). Docker mode runs for real against the local engine:
//! up, a client through the published port, restart after a crash, an unchanged rerun that touches nothing,
//! `down` keeping volumes, `down --purge` removing them; and a three-node cluster that loses one node to a
//! network cut and heals without losing an acknowledged message. No Kubernetes cluster is exercised.
//!
//! The validators come from PATH (`cargo xtask test` provides them), else from a venv installed on first use.
//! Nothing is skipped silently: a missing Docker engine, Compose tool or terraform fails the test under CI and
//! is listed in `cargo xtask test`'s summary elsewhere; the Compose schema is vendored in tests/data.

use crate::common::{free_ports, install_hint, ok, skipped, tool, under_ci, wait_for, Instance};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A validator: on PATH (`cargo xtask test` puts its venv there), else from the venv in
/// `GHBOOT_TEST_VALIDATORS` (default /tmp/ghboot-kv), installed there on first use.
fn validator(tool: &str) -> PathBuf {
    if let Ok(p) = which::which(tool) {
        return p;
    }
    let venv = std::env::var_os("GHBOOT_TEST_VALIDATORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/ghboot-kv"));
    let kv = venv.join("bin/kubernetes-validate");
    let cj = venv.join("bin/check-jsonschema");
    if !kv.exists() || !cj.exists() {
        // one installer at a time (tests run in parallel threads)
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if !kv.exists() || !cj.exists() {
            let st = Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(
                st.success(),
                "cannot create the validators venv {}",
                venv.display()
            );
            let st = Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "kubernetes-validate", "check-jsonschema"])
                .status()
                .expect("pip install kubernetes-validate check-jsonschema");
            assert!(
                st.success(),
                "cannot install kubernetes-validate and check-jsonschema into {}",
                venv.display()
            );
        }
    }
    venv.join("bin").join(tool)
}

/// The Compose specification's schema, vendored in tests/data/compose-spec (its SOURCE.md says from where).
fn compose_schema() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose-spec/schema.json");
    assert!(
        p.is_file(),
        "the Compose specification's schema is missing at {} (vendored in the repository); cannot validate the Compose file",
        p.display()
    );
    p
}

fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn render(inst: &Instance, mode: &str, extra: &[&str]) -> PathBuf {
    let dir = inst.dir.path().join(format!("render-{mode}"));
    let mut c = inst.cmd();
    c.args(["render", "--mode", mode, "--out"])
        .arg(&dir)
        .args(["--org", "Acme-Corp"])
        .args(extra);
    ok(&c.output().expect("run ghboot render"));
    dir
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rendered dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let inst = Instance::new();
    let dir = render(&inst, "kubernetes", &[]);
    let files = yaml_files(&dir);
    assert!(files.len() >= 5, "too few manifests: {files:?}");
    let o = Command::new(validator("kubernetes-validate"))
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate");
    assert!(
        o.status.success(),
        "manifests fail the Kubernetes schemas:\n{}",
        out_text(&o)
    );
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    for kind in [
        "kind: Namespace",
        "kind: ConfigMap",
        "kind: StatefulSet",
        "kind: Deployment",
        "clusterIP: None",
        "volumeClaimTemplates",
    ] {
        assert!(all.contains(kind), "no {kind} in the manifests");
    }
    assert!(
        all.contains("replicas: 3"),
        "the StatefulSet is not a 3-node cluster"
    );
    // Secrets are referenced, never defined inline
    assert!(!all.contains("kind: Secret"), "a Secret is rendered inline");
    assert!(all.contains("secretKeyRef"), "no Secret reference");
    assert!(
        all.contains("[\"webhook\",\"serve\""),
        "the receiver does not run `ghboot webhook serve`"
    );
}

#[test]
fn kubernetes_mode_fails_at_prerequisites_without_a_cluster() {
    let inst = Instance::new();
    // an empty kubeconfig: whatever this machine has, no context answers
    let kubeconfig = inst.dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .expect("kubeconfig");
    let o = inst
        .cmd()
        .env("KUBECONFIG", &kubeconfig)
        .args(["--mode", "kubernetes", "--non-interactive"])
        .output()
        .expect("run ghboot");
    assert_eq!(
        o.status.code(),
        Some(69),
        "expected the prerequisites exit code: {}",
        out_text(&o)
    );
    let text = out_text(&o);
    assert!(
        text.contains("kubernetes")
            && (text.contains("no current context") || text.contains("no kubectl")),
        "unclear message: {text}"
    );
}

/// Every object of the rendered manifests, parsed by PyYAML from the validators' venv (kubernetes-validate
/// needs it), as JSON.
fn k8s_objects(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let kv = validator("kubernetes-validate");
    let py = kv.with_file_name("python3");
    let py = if py.exists() {
        py
    } else {
        PathBuf::from("python3")
    };
    let o = Command::new(py)
        .args([
            "-c",
            "import json,sys,yaml\nfor f in sys.argv[1:]:\n  for d in yaml.safe_load_all(open(f)):\n    if d: print(json.dumps(d))",
        ])
        .args(files)
        .output()
        .expect("python3 with PyYAML");
    assert!(
        o.status.success(),
        "manifests do not parse:\n{}",
        out_text(&o)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn kubernetes_manifests_are_what_an_operator_would_ship() {
    let inst = Instance::new();
    let dir = render(&inst, "kubernetes", &[]);
    let objs = k8s_objects(&yaml_files(&dir));
    let named = |kind: &str, name: &str| {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
            .clone()
    };
    let ns = named("Namespace", "ghboot-acme-corp");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    // restricted Pod Security Standard on every container of every workload
    let workloads: Vec<_> = objs
        .iter()
        .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
        .collect();
    assert_eq!(workloads.len(), 3, "nats, receiver, controller");
    for w in &workloads {
        let spec = &w["spec"]["template"]["spec"];
        let name = &w["metadata"]["name"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_ne!(spec["securityContext"]["runAsUser"], 0, "{name}");
        let mut cs: Vec<serde_json::Value> =
            spec["containers"].as_array().cloned().unwrap_or_default();
        cs.extend(
            spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        for c in &cs {
            let sc = &c["securityContext"];
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{name}/{}",
                c["name"]
            );
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}/{}", c["name"]);
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}/{}",
                c["name"]
            );
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{name}/{} memory limit",
                c["name"]
            );
        }
    }
    // NATS: lame duck, probes, JetStream limits, GOMEMLIMIT, spread, PDB, NetworkPolicy, route auth
    let sts = named("StatefulSet", "nats");
    let pod = &sts["spec"]["template"]["spec"];
    let nats = &pod["containers"][0];
    let pre = nats["lifecycle"]["preStop"]["exec"]["command"].to_string();
    assert!(
        pre.contains("--signal") && pre.contains("ldm="),
        "preStop: {pre}"
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 60);
    assert_eq!(
        nats["readinessProbe"]["httpGet"]["path"],
        "/healthz?js-server-only=true"
    );
    assert!(nats["livenessProbe"]["failureThreshold"].as_u64() >= Some(3));
    assert!(nats["env"].to_string().contains("GOMEMLIMIT"));
    assert!(
        pod["topologySpreadConstraints"].is_array()
            || pod["affinity"]["podAntiAffinity"].is_object()
    );
    let conf = named("ConfigMap", "nats-config")["data"]["nats.conf"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for k in [
        "lame_duck_duration",
        "pid_file",
        "max_memory_store",
        "max_file_store",
    ] {
        assert!(conf.contains(k), "nats.conf has no {k}");
    }
    let cluster = &conf[conf.find("cluster {").expect("cluster block")..];
    assert!(
        cluster.contains("authorization"),
        "routes are not authenticated"
    );
    let pdb = named("PodDisruptionBudget", "nats");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        sts["spec"]["selector"]["matchLabels"]
    );
    let np = named("NetworkPolicy", "nats");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        sts["spec"]["selector"]["matchLabels"]
    );
    let rules = np["spec"]["ingress"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &rules {
        let ports: Vec<u64> = r["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_u64())
            .collect();
        if ports.contains(&6222) {
            assert_eq!(
                ports,
                vec![6222],
                "the route port shares a rule with client ports"
            );
            assert_eq!(
                r["from"][0]["podSelector"]["matchLabels"], sts["spec"]["selector"]["matchLabels"],
                "6222 open to non-peers"
            );
        }
    }
    assert!(
        rules
            .iter()
            .any(|r| r["ports"].to_string().contains("4222")),
        "clients cannot reach 4222"
    );
    // ghboot: receiver ≥ 2 behind the Service, controller probed, Secrets referenced
    let recv = named("Deployment", "ghboot-receiver");
    assert!(recv["spec"]["replicas"].as_u64() >= Some(2));
    let ctl = named("Deployment", "ghboot-controller");
    let c = &ctl["spec"]["template"]["spec"]["containers"][0];
    assert!(c["livenessProbe"]["exec"]["command"]
        .to_string()
        .contains("healthcheck"));
    assert!(c["env"].to_string().contains("secretKeyRef"));
    let svc = named("Service", "ghboot-webhook");
    assert_eq!(
        svc["spec"]["selector"],
        recv["spec"]["selector"]["matchLabels"]
    );
    // StorageClass: the cluster default unless chosen
    assert!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"].is_null());
    let dir2 = inst.dir.path().join("render-sc");
    let mut cmd = inst.cmd();
    cmd.env("GHBOOT_K8S_STORAGE_CLASS", "fast-ssd")
        .args([
            "render",
            "--mode",
            "kubernetes",
            "--org",
            "Acme-Corp",
            "--out",
        ])
        .arg(&dir2);
    ok(&cmd.output().expect("render"));
    let objs2 = k8s_objects(&yaml_files(&dir2));
    let sts2 = objs2
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .expect("sts");
    assert_eq!(
        sts2["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "fast-ssd"
    );
}

#[test]
fn compose_file_passes_compose_and_the_compose_schema() {
    let schema = compose_schema();
    let inst = Instance::new();
    // named images: the schema test builds none (the compose check builds and runs them)
    let dir = render(
        &inst,
        "docker",
        &[
            "--nats-type",
            "self_hosted_cluster",
            "--image",
            "nats=example/nats:1",
            "--image",
            "ghboot=example/ghboot:1",
        ],
    );
    let compose = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&compose).expect("compose.yaml");
    assert!(
        !text.lines().any(|l| l.starts_with("name:")),
        "a top-level name: (docker-compose 1.x refuses it)"
    );
    for n in [
        "nats-0:",
        "nats-1:",
        "nats-2:",
        "healthcheck:",
        "restart: unless-stopped",
        "networks:",
        "volumes:",
    ] {
        assert!(text.contains(n), "no {n} in the compose file");
    }
    let o = Command::new(validator("check-jsonschema"))
        .arg("--schemafile")
        .arg(&schema)
        .arg(&compose)
        .output()
        .expect("check-jsonschema");
    assert!(
        o.status.success(),
        "the compose file fails the Compose schema:\n{}",
        out_text(&o)
    );
    // the secret files it references were written, closed to other users
    for f in ["nats-auth.conf", "nats-password", "webhook-secret"] {
        let p = dir.join("secrets").join(f);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{f} is open to others"
            );
        }
        assert!(meta.len() > 0, "{f} is empty");
    }
    for dep in [
        "condition: service_healthy",
        "no-new-privileges:true",
        "max-size",
        "mem_limit",
    ] {
        assert!(text.contains(dep), "no {dep} in the compose file");
    }
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut c = if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        let Some(exe) = tool("docker-compose") else {
            return;
        };
        Command::new(exe)
    };
    let o = c
        .current_dir(&dir)
        .args([
            "-p",
            "ghboot-render-test",
            "-f",
            "compose.yaml",
            "config",
            "-q",
        ])
        .output()
        .expect("compose config");
    assert!(
        o.status.success(),
        "the Compose tool refuses the compose file:\n{}",
        out_text(&o)
    );
}

#[test]
fn terraform_export_is_formatted_hcl_with_the_provider_resources() {
    let inst = Instance::new();
    let p = free_ports(2);
    // dev mode is enough: the state-backend stage writes the export before nats starts
    let o = inst
        .cmd()
        .args([
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
            "--org",
            "acme",
            "--terraform-backend",
            "s3",
        ])
        .args([
            "--port",
            &p[0].to_string(),
            "--monitor-port",
            &p[1].to_string(),
        ])
        .env("GHBOOT_TF_BUCKET", "acme-tf-state")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .expect("run ghboot");
    ok(&o);
    let tf = inst.state_dir().join("terraform");
    let backend = std::fs::read_to_string(tf.join("backend.tf")).expect("backend.tf");
    assert!(
        backend.contains("backend \"s3\"")
            && backend.contains("acme-tf-state")
            && backend.contains("eu-west-1"),
        "{backend}"
    );
    let js = std::fs::read_to_string(tf.join("jetstream.tf")).expect("jetstream.tf");
    for r in [
        "resource \"jetstream_stream\"",
        "resource \"jetstream_kv_bucket\"",
        "GITHUB_EVENTS_ACME",
        "github.acme.>",
        "sensitive = true",
    ] {
        assert!(js.contains(r), "no {r} in jetstream.tf:\n{js}");
    }
    let pw = inst.env_json()["NATS_PASSWORD"]
        .as_str()
        .unwrap_or("x")
        .to_string();
    assert!(!js.contains(&pw), "the password is in jetstream.tf");
    // every attribute is one the provider's schema has (nats-io/terraform-provider-jetstream:
    // docs/resources/jetstream_stream.md and jetstream/resource_kv_bucket.go)
    let provider: &[(&str, &[&str])] = &[
        (
            "jetstream_stream",
            &[
                "name",
                "description",
                "subjects",
                "discard",
                "discard_new_per_subject",
                "ack",
                "max_age",
                "max_bytes",
                "max_consumers",
                "max_msg_size",
                "max_msgs",
                "max_msgs_per_subject",
                "replicas",
                "retention",
                "storage",
                "duplicate_window",
                "placement_cluster",
                "placement_tags",
                "source",
                "mirror",
                "deny_delete",
                "deny_purge",
                "allow_rollup_hdrs",
                "allow_direct",
                "republish_source",
                "republish_destination",
                "republish_headers_only",
            ],
        ),
        (
            "jetstream_kv_bucket",
            &[
                "name",
                "description",
                "history",
                "ttl",
                "max_value_size",
                "max_bucket_size",
                "placement_cluster",
                "placement_tags",
                "replicas",
                "limit_marker_ttl",
            ],
        ),
    ];
    let mut kind = None;
    let mut seen = 0;
    for line in js.lines() {
        if let Some(rest) = line.strip_prefix("resource \"") {
            kind = provider
                .iter()
                .find(|(k, _)| rest.starts_with(&format!("{k}\"")))
                .map(|(_, a)| *a);
            assert!(
                kind.is_some(),
                "a resource type the provider does not have: {line}"
            );
            seen += 1;
        } else if line == "}" {
            kind = None;
        } else if let (Some(attrs), Some((k, _))) = (kind, line.trim().split_once(" = ")) {
            assert!(
                attrs.contains(&k.trim()),
                "attribute {k:?} is not in the provider's schema: {line}"
            );
        }
    }
    assert_eq!(seen, 6, "expected 3 streams and 3 KV buckets:\n{js}");
    // terraform itself parses them (fmt -check exits 0 only for valid, canonically formatted HCL)
    let Some(tf_exe) = tool("terraform") else {
        return;
    };
    let o = Command::new(tf_exe)
        .args(["fmt", "-check", "-diff", "-no-color"])
        .current_dir(&tf)
        .output()
        .expect("terraform fmt");
    assert!(
        o.status.success(),
        "terraform fmt refuses or reformats the export:\n{}",
        out_text(&o)
    );
    let st = inst.status();
    let sb = st["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "state-backend"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(sb["status"], "done", "{st}");
}

// ---------------------------------------------------------------------------------------------------------
// Docker, for real

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}",
        out_text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Does a Docker engine answer? Under CI it must; elsewhere the test is skipped and listed.
fn need_engine() -> bool {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        let what = "no Docker engine answers (`docker info`)";
        assert!(
            !under_ci(),
            "{what}: the docker-mode tests need one under CI; {}",
            install_hint("docker")
        );
        skipped(what, install_hint("docker"));
    }
    answers
}

/// Removes everything labelled with the instance's id, whatever the test did (also on panic).
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let f = format!("label=dev.ghboot.instance={}", self.0);
        for (ls, rm) in [
            (vec!["ps", "-aq", "--filter", &f], vec!["rm", "-f", "-v"]),
            (
                vec!["network", "ls", "-q", "--filter", &f],
                vec!["network", "rm"],
            ),
            (
                vec!["volume", "ls", "-q", "--filter", &f],
                vec!["volume", "rm", "-f"],
            ),
            (
                vec!["image", "ls", "-q", "--filter", &f],
                vec!["image", "rm", "-f"],
            ),
        ] {
            let ids = docker(&ls);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut a: Vec<&str> = rm.clone();
                a.extend(ids.iter().map(|s| s.as_str()));
                let _ = docker(&a);
            }
        }
    }
}

fn docker_instance() -> Option<(Instance, Cleanup)> {
    if !need_engine() {
        return None;
    }
    let inst = Instance::new();
    let id = ghboot::deploy::containers::instance_id_of(&inst.state_dir());
    Some((inst, Cleanup(id)))
}

fn docker_up(inst: &Instance, extra: &[&str]) -> String {
    let mut c = inst.cmd();
    c.args([
        "--mode",
        "docker",
        "--detach",
        "--non-interactive",
        "--org",
        "acme",
    ])
    .args([
        "--port",
        &inst.port.to_string(),
        "--monitor-port",
        &inst.monitor_port.to_string(),
    ])
    .args(["--webhook-port", &inst.webhook_port.to_string()])
    .args(extra);
    let o = c.output().expect("run ghboot");
    ok(&o);
    out_text(&o)
}

fn labelled(id: &str, what: &str) -> Vec<String> {
    let f = format!("label=dev.ghboot.instance={id}");
    let args: Vec<&str> = match what {
        "container" => vec!["ps", "-aq", "--filter", &f],
        "network" => vec!["network", "ls", "-q", "--filter", &f],
        _ => vec!["volume", "ls", "-q", "--filter", &f],
    };
    docker_ok(&args)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn inspect(name: &str, fmt: &str) -> String {
    docker_ok(&["inspect", "-f", fmt, name])
}

fn http_ok(port: u16, path: &str) -> bool {
    crate::common::http_status(port, path) == Some(200)
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_mode_lifecycle() {
    let Some((inst, guard)) = docker_instance() else {
        return;
    };
    let id = guard.0.clone();
    let out = docker_up(&inst, &[]);
    assert!(
        out.contains("built locally"),
        "ghboot does not say it built its images locally:\n{out}"
    );
    let node = format!("ghboot-{id}-nats-0");

    // healthy through the published monitoring port, and a client connects through the published client port
    let st = inst.status();
    assert_eq!(st["mode"], "docker");
    assert_eq!(st["nats"]["healthy"], true, "{st}");
    let env = inst.env_json();
    assert_eq!(env["NATS_URL"], format!("nats://127.0.0.1:{}", inst.port));
    // the caller's BOOTSTRAP_MODE does not turn the docker instance into another one for status
    let o = inst
        .cmd()
        .env("BOOTSTRAP_MODE", "dev")
        .args(["status", "--json"])
        .output()
        .expect("status");
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("status: {}", out_text(&o)));
    assert_eq!(
        (v["mode"].as_str(), v["nats"]["healthy"].as_bool()),
        (Some("docker"), Some(true)),
        "{v}"
    );
    let nc = inst.client().await;
    let mut sub = nc.subscribe("containers.ping").await.expect("subscribe");
    nc.publish("containers.ping", "hello".into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut sub))
        .await
        .expect("message in time")
        .expect("message");
    assert_eq!(&msg.payload[..], b"hello");
    let js = async_nats::jetstream::new(nc.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KEEP".into(),
        subjects: vec!["keep.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    js.publish("keep.one", "kept".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    // a signed delivery through the receiver container's published port lands in JetStream
    let receiver = format!("ghboot-{id}-receiver");
    assert_eq!(
        inspect(&receiver, "{{.State.Health.Status}}"),
        "healthy",
        "the receiver container is not healthy"
    );
    let payload = inst.dir.path().join("push.json");
    std::fs::write(
        &payload,
        r#"{"ref":"refs/heads/main","repository":{"name":"r.one"}}"#,
    )
    .expect("payload");
    let url = format!("http://127.0.0.1:{}/webhook", inst.webhook_port);
    let o = inst
        .cmd()
        .args(["webhook", "send", "--event", "push", "--payload"])
        .arg(&payload)
        .args(["--url", &url])
        .output()
        .expect("send");
    assert!(
        o.status.success(),
        "the receiver container refused a signed delivery: {}",
        out_text(&o)
    );
    let events = js
        .get_stream("GITHUB_EVENTS_ACME")
        .await
        .expect("events stream");
    let m = events
        .get_last_raw_message_by_subject("github.acme.r~2Eone.push")
        .await
        .expect("the delivery is stored");
    assert!(String::from_utf8_lossy(&m.payload).contains("refs/heads/main"));
    drop(nc);

    // the password is in no command line, environment or label docker inspect shows
    let auth: serde_json::Value = serde_json::from_slice(
        &std::fs::read(inst.state_dir().join("secrets/nats-auth.json")).expect("auth"),
    )
    .expect("json");
    let pw = auth["password"].as_str().expect("password").to_string();
    assert!(
        !docker_ok(&["inspect", &node]).contains(&pw),
        "the NATS password shows in docker inspect"
    );
    assert!(
        !docker_ok(&["inspect", &receiver]).contains(&pw),
        "the NATS password shows in docker inspect of the receiver"
    );
    assert_eq!(
        inspect(&node, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert!(
        inspect(&node, "{{json .Config.Healthcheck}}").contains("healthcheck"),
        "no health check on the nats container"
    );
    wait_for(
        Duration::from_secs(60),
        "docker's health check to report healthy",
        || (inspect(&node, "{{.State.Health.Status}}") == "healthy").then_some(()),
    );

    // a rerun with nothing changed touches nothing
    let before = (
        inspect(&node, "{{.Id}}"),
        inspect(&node, "{{.Created}}"),
        inspect(&node, "{{.State.StartedAt}}"),
    );
    let out = docker_up(&inst, &[]);
    assert!(
        out.contains("nats: verified"),
        "an unchanged rerun did not just verify:\n{out}"
    );
    let after = (
        inspect(&node, "{{.Id}}"),
        inspect(&node, "{{.Created}}"),
        inspect(&node, "{{.State.StartedAt}}"),
    );
    assert_eq!(before, after, "an unchanged rerun touched the container");

    // a crashed nats-server is restarted by the engine (restart policy), and serves again
    let pid: i32 = inspect(&node, "{{.State.Pid}}").parse().expect("pid");
    assert!(pid > 1, "no pid for the nats container");
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    wait_for(
        Duration::from_secs(60),
        "the engine to restart the killed container",
        || {
            let restarts: u32 = inspect(&node, "{{.RestartCount}}").parse().unwrap_or(0);
            (restarts >= 1
                && inspect(&node, "{{.State.Running}}") == "true"
                && http_ok(inst.monitor_port, "/healthz"))
            .then_some(())
        },
    );
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc);
    let mut stream = js
        .get_stream("KEEP")
        .await
        .expect("stream survives the crash");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);

    // a changed configuration is rolled: a new container on the same volume, the data still there
    let new_mon = free_ports(1)[0];
    let mut c = inst.cmd();
    c.args([
        "--mode",
        "docker",
        "--non-interactive",
        "--monitor-port",
        &new_mon.to_string(),
    ]);
    let out = out_text(&c.output().expect("run ghboot"));
    assert!(
        out.contains("replaced"),
        "a changed monitoring port was not rolled:\n{out}"
    );
    assert_ne!(inspect(&node, "{{.Id}}"), before.0);
    assert!(
        http_ok(new_mon, "/healthz"),
        "the rolled container does not serve on the new monitoring port"
    );
    let nc = inst.client().await;
    let mut stream = async_nats::jetstream::new(nc)
        .get_stream("KEEP")
        .await
        .expect("stream after the roll");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        1,
        "the roll lost data"
    );

    // down removes containers and network, keeps volumes
    let volumes = labelled(&id, "volume");
    assert!(!volumes.is_empty(), "no labelled volume");
    ok(&inst.run(&["down"]));
    assert!(
        labelled(&id, "container").is_empty(),
        "containers left after down"
    );
    assert!(
        labelled(&id, "network").is_empty(),
        "network left after down"
    );
    assert_eq!(labelled(&id, "volume"), volumes, "down removed volumes");

    // up again: the data is still there
    docker_up(&inst, &["--monitor-port", &new_mon.to_string()]);
    let nc = inst.client().await;
    let mut stream = async_nats::jetstream::new(nc)
        .get_stream("KEEP")
        .await
        .expect("stream after down and up");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);

    // down --purge removes the volumes (and this instance's images) too
    ok(&inst.run(&["down", "--purge"]));
    assert!(labelled(&id, "container").is_empty());
    assert!(
        labelled(&id, "volume").is_empty(),
        "volumes left after down --purge"
    );
    let images = docker_ok(&[
        "image",
        "ls",
        "-q",
        "--filter",
        &format!("label=dev.ghboot.instance={id}"),
    ]);
    assert!(
        images.is_empty(),
        "images left after down --purge: {images}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_cluster_survives_a_node_cut_off_the_network() {
    let Some((inst, guard)) = docker_instance() else {
        return;
    };
    let id = guard.0.clone();
    docker_up(&inst, &["--nats-type", "self_hosted_cluster"]);
    let st = inst.status();
    assert_eq!(
        st["nats"]["nodes"].as_array().map(|a| a.len()),
        Some(3),
        "{st}"
    );
    let net = format!("ghboot-{id}");
    let cut = format!("ghboot-{id}-nats-2");

    // a client on node 0 only, so the cut never moves it
    let env = inst.env_json();
    let first = env["NATS_URL"]
        .as_str()
        .expect("url")
        .split(',')
        .next()
        .expect("first url")
        .to_string();
    let nc = async_nats::ConnectOptions::with_user_and_password(
        env["NATS_USER"].as_str().unwrap_or_default().into(),
        env["NATS_PASSWORD"].as_str().unwrap_or_default().into(),
    )
    .connect(first.as_str())
    .await
    .expect("connect to node 0");
    let js = async_nats::jetstream::new(nc.clone());
    let cfg = async_nats::jetstream::stream::Config {
        name: "PART".into(),
        subjects: vec!["part.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    let mut stream = wait_for_async(
        Duration::from_secs(60),
        "an R3 stream (the cluster needs a meta leader)",
        || {
            let js = js.clone();
            let cfg = cfg.clone();
            async move { js.create_stream(cfg).await.ok() }
        },
    )
    .await;
    let mut acked = Vec::new();
    let publish = |phase: &'static str, n: usize| {
        let js = js.clone();
        async move {
            let mut got = Vec::new();
            for i in 0..n {
                let body = format!("{phase}-{i}");
                // only acknowledged messages count; an unacknowledged one may or may not be stored
                let r: Result<_, async_nats::Error> = async {
                    Ok(js
                        .publish(format!("part.{phase}"), body.clone().into())
                        .await?
                        .await?)
                }
                .await;
                if let Ok(ack) = r {
                    got.push((ack.sequence, body));
                }
            }
            got
        }
    };
    acked.extend(publish("before", 50).await);

    // cut node 2 off; the other two keep a quorum and keep acknowledging
    docker_ok(&["network", "disconnect", &net, &cut]);
    acked.extend(publish("during", 100).await);
    // the cluster has noticed: node 2's replica is behind or offline (the cut is real, not a no-op)
    wait_for_async(
        Duration::from_secs(60),
        "the cluster to see node 2 cut off",
        || {
            let mut s = stream.clone();
            async move {
                let info = s.info().await.ok()?;
                let cl = info.cluster.clone()?;
                let leader_is_2 = cl.leader.as_deref() == Some("nats-2");
                let lagging = cl
                    .replicas
                    .iter()
                    .any(|r| r.name == "nats-2" && (!r.current || r.offline));
                (!leader_is_2 && lagging).then_some(())
            }
        },
    )
    .await;
    assert!(
        acked.len() >= 140,
        "the cluster stopped acknowledging with one node cut off: {} acked",
        acked.len()
    );

    // heal: node 2 rejoins under its alias and catches up
    docker_ok(&["network", "connect", "--alias", "nats-2", &net, &cut]);
    acked.extend(publish("after", 50).await);
    wait_for_async(
        Duration::from_secs(90),
        "node 2 to rejoin and be current",
        || {
            let mut s = stream.clone();
            async move {
                let info = s.info().await.ok()?;
                let cl = info.cluster.clone()?;
                let all =
                    cl.replicas.len() == 2 && cl.replicas.iter().all(|r| r.current && !r.offline);
                all.then_some(())
            }
        },
    )
    .await;
    let info = stream.info().await.expect("info");
    assert!(
        info.state.messages >= acked.len() as u64,
        "{} stored < {} acknowledged",
        info.state.messages,
        acked.len()
    );
    for (seq, body) in &acked {
        let m = stream
            .get_raw_message(*seq)
            .await
            .unwrap_or_else(|e| panic!("acknowledged message {seq} lost: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&m.payload),
            *body,
            "message {seq} changed"
        );
    }
    // the healed node serves again through its published port
    let st = inst.status();
    wait_for(
        Duration::from_secs(60),
        "all three nodes healthy after the heal",
        || {
            let st = inst.status();
            st["nats"]["nodes"]
                .as_array()
                .filter(|n| n.iter().all(|n| n["healthy"] == true))
                .map(|_| ())
        },
    );
    drop(st);
    ok(&inst.run(&["down", "--purge"]));
    assert!(labelled(&id, "container").is_empty());
    assert!(labelled(&id, "volume").is_empty());
}

async fn wait_for_async<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn auto_mode_chooses_what_answers_and_says_why() {
    if !need_engine() {
        return;
    }
    let inst = Instance::new();
    let kubeconfig = inst.dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .expect("kubeconfig");
    // no kube context answers, the Docker engine does: docker
    let out = inst.dir.path().join("auto");
    let o = inst
        .cmd()
        .env("KUBECONFIG", &kubeconfig)
        .args(["render", "--mode", "auto", "--out"])
        .arg(&out)
        .output()
        .expect("run ghboot");
    let text = out_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("--mode auto chose docker")
            && text.contains("Docker engine")
            && text.contains("answers"),
        "{text}"
    );
    assert!(
        out.join("compose.yaml").is_file(),
        "auto did not render the docker deployment"
    );
    // neither kubectl nor docker on PATH: dev, and why
    let empty = inst.dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).expect("dir");
    let o = inst
        .cmd()
        .env("PATH", &empty)
        .args(["doctor", "--mode", "auto", "--json"])
        .output()
        .expect("run ghboot");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("doctor --json: {}", out_text(&o)));
    let mode = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "mode"))
        .cloned()
        .unwrap_or_default();
    let detail = mode["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("chose dev")
            && detail.contains("no kubectl")
            && detail.contains("no docker"),
        "{v}"
    );
}
