//! Product repositories (`ghboot repo ...`) against a real supervised nats-server: each repository's own
//! identity, seen from outside by nats-py (`repo_identity.py`), gets exactly its own events and is refused
//! everything else; routing by explicit grant; the consumers are topology (plan shows drift, up repairs it);
//! removal revokes at once. And the org Taskfile, run by the real `task` from a product directory.

use crate::common::{self, Instance};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ORG: &str = "acme";

/// The Python of the test venv (nats-py); `cargo xtask test` sets it. Elsewhere the test skips loudly.
fn python() -> Option<PathBuf> {
    match std::env::var_os("GHBOOT_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("GHBOOT_TEST_PYTHON is required under CI (run `cargo xtask test`)")
        }
        None => {
            eprintln!("SKIPPED: no GHBOOT_TEST_PYTHON (run `cargo xtask test`)");
            None
        }
    }
}

/// Run repo_identity.py with a repository's env on stdin; its JSON answer.
fn probe(py: &Path, env: &Value, args: &[&str]) -> Value {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/repo_identity.py");
    let mut child = Command::new(py)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(env.to_string().as_bytes())
        .expect("write env");
    let out = child.wait_with_output().expect("probe output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "probe {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("probe printed {text}"))
}

fn repo_env(inst: &Instance, name: &str) -> Value {
    let out = common::ok(&inst.run(&["repo", "env", name, "--format", "json"]));
    serde_json::from_str(&out).expect("repo env json")
}

fn listed(inst: &Instance) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&common::ok(&inst.run(&["repo", "list", "--json"]))).unwrap();
    v["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[tokio::test]
async fn each_repository_gets_only_its_own_slice() {
    let Some(py) = python() else { return };
    let inst = Instance::new();
    common::ok(&inst.up(&["--org", ORG]));
    common::ok(&inst.run(&["repo", "add", "web", "--subscribe", "api.deploy"]));
    common::ok(&inst.run(&["repo", "add", "api", "--events", "push"]));
    assert_eq!(listed(&inst), vec!["api", "web"]);

    // deliveries as the receiver stores them (the receiver itself is covered by webhook.rs)
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    for subject in [
        "github.acme.web.push",
        "github.acme.web.issues",
        "github.acme.api.push",
        "github.acme.api.issues",
        "github.acme.webx.push",
    ] {
        js.publish(subject, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    let web = repo_env(&inst, "web");
    let api = repo_env(&inst, "api");
    assert_eq!(web["NATS_USER"], "repo-web");
    assert_ne!(web["NATS_PASSWORD"], api["NATS_PASSWORD"]);
    // the NATS CLI context of the repository's identity, private, with the inbox prefix it must use
    let ctx_file = inst.dir.path().join(format!(
        "config/nats/context/{}.json",
        web["NATS_CONTEXT"].as_str().expect("context name")
    ));
    let ctx: Value = serde_json::from_str(&common::read(&ctx_file)).unwrap();
    assert_eq!(ctx["user"], "repo-web");
    assert_eq!(ctx["inbox_prefix"], web["NATS_INBOX_PREFIX"]);
    assert_eq!(
        ghboot::platform::file_mode(&ctx_file).map(|m| m & 0o777),
        Some(0o600)
    );
    let got = probe(&py, &web, &["fetch", "GHBOOT_STREAM", "GHBOOT_CONSUMER"]);
    assert_eq!(
        got["subjects"],
        serde_json::json!(["github.acme.web.issues", "github.acme.web.push"]),
        "web gets all of its own events and nothing of webx or api"
    );
    let got = probe(&py, &api, &["fetch", "GHBOOT_STREAM", "GHBOOT_CONSUMER"]);
    assert_eq!(
        got["subjects"],
        serde_json::json!(["github.acme.api.push"]),
        "--events push filters"
    );

    // refused: another repository's subjects, forging deliveries, the JetStream admin API, another consumer
    let before = js
        .get_stream("GITHUB_EVENTS_ACME")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    let r = probe(
        &py,
        &web,
        &[
            "refuse",
            "github.acme.api.>",
            "github.acme.web.push",
            "GITHUB_EVENTS_ACME",
            "repo-api",
        ],
    );
    for k in ["subscribe", "publish", "delete", "fetch"] {
        assert_eq!(r[k], true, "web's identity was not refused {k}: {r}");
    }
    let mut st = js
        .get_stream("GITHUB_EVENTS_ACME")
        .await
        .expect("stream kept");
    assert_eq!(
        st.info().await.unwrap().state.messages,
        before,
        "nothing forged"
    );

    // routing: api publishes its own topic, web (granted api.deploy) receives it; nobody publishes as another
    let p = probe(&py, &api, &["publish", "repo.acme.api.deploy"]);
    assert_eq!(p["stream"], "GHBOOT_ROUTES_ACME", "{p}");
    let p = probe(&py, &api, &["publish", "repo.acme.web.deploy"]);
    assert_eq!(p["refused"], "permissions violation", "{p}");
    let got = probe(
        &py,
        &web,
        &["fetch", "GHBOOT_ROUTES_STREAM", "GHBOOT_ROUTES_CONSUMER"],
    );
    assert_eq!(got["subjects"], serde_json::json!(["repo.acme.api.deploy"]));

    // the consumers are topology: plan is clean, drift is shown and repaired by up
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 0, "{}", String::from_utf8_lossy(&plan.stdout));
    js.get_stream("GITHUB_EVENTS_ACME")
        .await
        .unwrap()
        .delete_consumer("repo-web")
        .await
        .expect("delete behind ghboot's back");
    let plan = inst.run(&["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(code(&plan), 2, "{text}");
    assert!(
        text.contains("create   consumer GITHUB_EVENTS_ACME/repo-web"),
        "{text}"
    );
    common::ok(&inst.up(&["--org", ORG]));
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 0, "{}", String::from_utf8_lossy(&plan.stdout));

    // removal revokes at once: the command returns after the server reloaded
    common::ok(&inst.run(&["repo", "remove", "web"]));
    assert!(!ctx_file.exists(), "repo remove leaves no context behind");
    let r = probe(&py, &web, &["revoked"]);
    assert_eq!(r["revoked"], true, "{r}");
    assert_eq!(listed(&inst), vec!["api"]);
    let consumers: Vec<String> = {
        use futures::TryStreamExt;
        js.get_stream("GITHUB_EVENTS_ACME")
            .await
            .unwrap()
            .consumer_names()
            .try_collect()
            .await
            .unwrap()
    };
    assert!(!consumers.iter().any(|c| c == "repo-web"), "{consumers:?}");
    // api is untouched
    let p = probe(&py, &api, &["publish", "repo.acme.api.deploy"]);
    assert_eq!(p["stream"], "GHBOOT_ROUTES_ACME", "{p}");

    // least privilege inside ghboot: the receiver publishes as its own user, limited to github.acme.>
    let connz: Value = reqwest::get(format!(
        "http://127.0.0.1:{}/connz?auth=true",
        inst.monitor_port
    ))
    .await
    .expect("connz")
    .json()
    .await
    .expect("connz json");
    let users: Vec<&str> = connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["authorized_user"].as_str())
        .collect();
    assert!(users.contains(&"ghboot-receiver"), "{users:?}");
    let conf = common::read(&inst.state_dir().join("nats/n0/users.conf"));
    let line = conf
        .lines()
        .find(|l| l.contains("\"ghboot-receiver\""))
        .expect("receiver user");
    assert!(
        line.contains(
            r#"publish: { allow: ["github.acme.>", "$JS.API.STREAM.INFO.GITHUB_EVENTS_ACME"] }"#
        ),
        "{line}"
    );

    // bad input: one line and a distinct code, nothing registered
    let out = inst.run(&["repo", "add", "a b"]);
    assert_eq!(code(&out), 64);
    let out = inst.run(&["repo", "remove", "nope"]);
    assert_eq!(code(&out), 66);
    assert_eq!(listed(&inst), vec!["api"]);
    let secrets = inst.state_dir().join("secrets/repo-passwords.json");
    assert_eq!(
        ghboot::platform::file_mode(&secrets).map(|m| m & 0o777),
        Some(0o600)
    );
}

#[tokio::test]
async fn org_taskfile_is_included_from_a_product_repository() {
    let Some(task) = common::tool("task") else {
        return;
    };
    let inst = Instance::new();
    common::ok(&inst.up(&[]));
    let org = inst.dir.path().join("org");
    let dotgithub = org.join(".github");
    let product = org.join("web");
    std::fs::create_dir_all(&dotgithub).unwrap();
    std::fs::create_dir_all(&product).unwrap();
    let st = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&dotgithub)
        .status()
        .expect("git");
    assert!(st.success());
    common::ok(&inst.run(&["generate", "--repo", dotgithub.to_str().unwrap()]));
    let taskfile = common::read(&dotgithub.join("Taskfile.yml"));
    for t in [
        "nats:health:",
        "nats:env:",
        "bootstrap:",
        "secrets:sync:",
        "repo:add:",
    ] {
        assert!(taskfile.contains(t), "{t} missing:\n{taskfile}");
    }
    std::fs::write(
        product.join("Taskfile.yml"),
        "version: '3'\nincludes:\n  infra: {taskfile: ../.github/Taskfile.yml, dir: ../.github}\n",
    )
    .unwrap();
    let bin_dir = common::ghboot_bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let health = || {
        let mut c = Command::new(&task);
        c.arg("infra:nats:health")
            .current_dir(&product)
            .env("PATH", &path)
            .env("GHBOOT_STATE_DIR", inst.state_dir())
            .stdin(Stdio::null());
        // `ghboot health` bounds its own probes (2 s HTTP timeouts): no hang to guard against here
        c.output().expect("run task")
    };
    let up = health();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    common::ok(&inst.run(&["down"]));
    let down = health();
    assert!(
        !down.status.success(),
        "task infra:nats:health passed after down"
    );
}
