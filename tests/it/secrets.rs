//! `ghboot secrets sync` against a fake of GitHub's Actions secrets API: a real HTTP server (axum, on
//! loopback) with one X25519 key pair per scope that opens every sealed box with its private key
//! (`crypto_box::SecretKey::unseal`, the receiving side ghboot never runs) and keeps the decrypted values.
use crate::common::{self, Instance};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "ghp_secretsfaketoken_0123456789";
const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// A stored secret: decrypted value, the key id it was sealed for, org visibility.
type Stored = (String, String, Option<String>);
/// A canned answer: status, JSON body, headers.
type Canned = (u16, Value, Vec<(&'static str, String)>);

#[derive(Default)]
struct Gh {
    /// scope ("org:acme", "repo:o/r") -> (key_id, private key)
    keys: Mutex<BTreeMap<String, (String, crypto_box::SecretKey)>>,
    /// scope -> name -> (decrypted value, key_id it was sealed for, visibility)
    secrets: Mutex<BTreeMap<String, BTreeMap<String, Stored>>>,
    /// every request: "METHOD scope name"
    log: Mutex<Vec<String>>,
    /// org hooks, as `ghboot up` registers them (config.secret kept unmasked here, masked in answers)
    hooks: Mutex<Vec<Value>>,
    /// answer the next PUT with this (status, body, headers), once
    put_fails_next: Mutex<Option<Canned>>,
}

impl Gh {
    fn key(&self, scope: &str) -> (String, crypto_box::PublicKey) {
        let mut keys = self.keys.lock().unwrap();
        let (id, sk) = keys.entry(scope.to_string()).or_insert_with(|| {
            (
                format!("{}", rand::random::<u32>()),
                crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng),
            )
        });
        (id.clone(), sk.public_key())
    }
    /// A new key pair for `scope` (GitHub rotated its key).
    fn rotate_key(&self, scope: &str) {
        self.keys.lock().unwrap().remove(scope);
        self.key(scope);
    }
    fn writes(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.starts_with("GET"))
            .cloned()
            .collect()
    }
    fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }
    fn value(&self, scope: &str, name: &str) -> Option<String> {
        self.secrets
            .lock()
            .unwrap()
            .get(scope)?
            .get(name)
            .map(|(v, _, _)| v.clone())
    }
    fn names(&self, scope: &str) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap()
            .get(scope)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    /// A secret someone else made (not through ghboot).
    fn add_foreign(&self, scope: &str, name: &str) {
        self.secrets
            .lock()
            .unwrap()
            .entry(scope.into())
            .or_default()
            .insert(name.into(), ("theirs".into(), "0".into(), None));
    }
}

fn scope_of(parts: &[&str]) -> Option<(String, Vec<String>)> {
    match parts {
        ["orgs", o, "actions", "secrets", rest @ ..] => Some((
            format!("org:{o}"),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        ["repos", o, r, "actions", "secrets", rest @ ..] => Some((
            format!("repo:{o}/{r}"),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        _ => None,
    }
}

async fn handle(
    State(gh): State<Arc<Gh>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let err = |s: u16, m: &str| {
        (
            StatusCode::from_u16(s).unwrap(),
            Json(json!({"message": m})),
        )
            .into_response()
    };
    let path = uri.path().trim_start_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').collect();
    if let ["orgs", _, "hooks", rest @ ..] = parts.as_slice() {
        return hooks(&gh, method.as_str(), rest, &body);
    }
    let Some((scope, rest)) = scope_of(&parts) else {
        return err(404, "Not Found");
    };
    gh.log.lock().unwrap().push(format!(
        "{method} {scope} {}",
        rest.first().cloned().unwrap_or_default()
    ));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return err(401, "Bad credentials");
    }
    match (
        method.as_str(),
        rest.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        ("GET", ["public-key"]) => {
            let (id, pk) = gh.key(&scope);
            Json(json!({"key_id": id, "key": B64.encode(pk.as_bytes())})).into_response()
        }
        ("GET", []) => {
            let names = gh.names(&scope);
            let items: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
            Json(json!({"total_count": items.len(), "secrets": items})).into_response()
        }
        ("PUT", [name]) => {
            if let Some((s, b, hs)) = gh.put_fails_next.lock().unwrap().take() {
                let mut r = (StatusCode::from_u16(s).unwrap(), Json(b)).into_response();
                for (k, v) in hs {
                    r.headers_mut().insert(k, v.parse().unwrap());
                }
                return r;
            }
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return err(400, "bad JSON");
            };
            let key_id = b["key_id"].as_str().unwrap_or_default().to_string();
            let keys = gh.keys.lock().unwrap();
            let Some((id, sk)) = keys.get(&scope) else {
                return err(422, "no key served");
            };
            if *id != key_id {
                return err(422, "key_id is not the current key");
            }
            let Some(raw) = b["encrypted_value"]
                .as_str()
                .and_then(|e| B64.decode(e).ok())
            else {
                return err(422, "encrypted_value is not base64");
            };
            let Ok(plain) = sk.unseal(&raw) else {
                return err(422, "the sealed box does not open");
            };
            drop(keys);
            let vis = b["visibility"].as_str().map(str::to_string);
            if scope.starts_with("org:") && vis.is_none() {
                return err(422, "visibility is required");
            }
            let value = String::from_utf8(plain).unwrap();
            let old = gh
                .secrets
                .lock()
                .unwrap()
                .entry(scope)
                .or_default()
                .insert(name.to_ascii_uppercase(), (value, key_id, vis));
            if old.is_some() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                StatusCode::CREATED.into_response()
            }
        }
        ("DELETE", [name]) => {
            let gone = gh
                .secrets
                .lock()
                .unwrap()
                .get_mut(&scope)
                .and_then(|m| m.remove(&name.to_ascii_uppercase()));
            if gone.is_some() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                err(404, "Not Found")
            }
        }
        _ => err(404, "Not Found"),
    }
}

/// Just enough of the org hooks API for `up` to register a hook and a rotation to PATCH its secret.
fn hooks(gh: &Gh, method: &str, rest: &[&str], body: &[u8]) -> Response {
    gh.log.lock().unwrap().push(format!("{method} hooks"));
    let mut hooks = gh.hooks.lock().unwrap();
    let masked = |h: &Value| {
        let mut h = h.clone();
        h["config"]["secret"] = "********".into();
        h
    };
    let b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method, rest) {
        ("GET", []) => Json(Value::Array(hooks.iter().map(masked).collect())).into_response(),
        ("POST", []) => {
            let h = json!({"id": hooks.len() + 1, "active": true, "events": b["events"], "config": b["config"]});
            hooks.push(h.clone());
            (StatusCode::CREATED, Json(masked(&h))).into_response()
        }
        ("PATCH", [id]) => {
            let Some(h) = hooks
                .iter_mut()
                .find(|h| h["id"].as_u64().map(|i| i.to_string()).as_deref() == Some(*id))
            else {
                return StatusCode::NOT_FOUND.into_response();
            };
            for k in ["config", "events", "active"] {
                if !b[k].is_null() {
                    h[k] = b[k].clone();
                }
            }
            Json(masked(h)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The fake on a free loopback port, served by its own runtime thread (the test itself stays blocking).
struct Fake {
    gh: Arc<Gh>,
    api: String,
    _rt: tokio::runtime::Runtime,
}

impl Fake {
    fn start() -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let gh = Arc::new(Gh::default());
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let api = format!("http://{}", l.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(gh.clone());
        rt.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Fake { gh, api, _rt: rt }
    }
}

/// `ghboot secrets sync` on `inst`'s state dir against `fake`.
fn sync(inst: &Instance, fake: &Fake, args: &[&str]) -> Output {
    let mut c = inst.cmd();
    c.env("GITHUB_TOKEN", TOKEN)
        .args(["secrets", "sync", "--github-api-url", &fake.api])
        .args(args);
    c.output().expect("run ghboot")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No value of `values` in the output, nor anywhere under the state dir.
fn assert_no_leak(inst: &Instance, outs: &[&Output], values: &[&str]) {
    for o in outs {
        let t = text(o);
        for v in values {
            assert!(!t.contains(v), "a value is printed:\n{t}");
        }
        assert!(!t.contains(TOKEN), "the token is printed");
    }
    for entry in walk(&inst.state_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let s = String::from_utf8_lossy(&bytes);
        for v in values.iter().chain([&TOKEN]) {
            assert!(!s.contains(v), "a value is stored in {}", entry.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn write_env(inst: &Instance, body: &str) -> String {
    let p = inst.dir.path().join("ci.env");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const ORG: &str = "org:acme";

#[test]
fn sync_is_sealed_idempotent_and_sends_one_put_per_change() {
    let fake = Fake::start();
    let inst = Instance::new();
    let env = write_env(
        &inst,
        "# CI secrets\nA=plain-value-1\nB=\"two words\"\n\nexport C='single quoted'\nD=\"line1\nline2\"\n",
    );
    let args = ["--org", "acme", "--env-file", env.as_str()];
    let first = sync(&inst, &fake, &args);
    common::ok(&first);
    let mut puts = fake.gh.writes();
    puts.sort();
    assert_eq!(
        puts,
        [
            "PUT org:acme A",
            "PUT org:acme B",
            "PUT org:acme C",
            "PUT org:acme D"
        ]
    );
    assert_eq!(fake.gh.value(ORG, "A").as_deref(), Some("plain-value-1"));
    assert_eq!(fake.gh.value(ORG, "B").as_deref(), Some("two words"));
    assert_eq!(fake.gh.value(ORG, "C").as_deref(), Some("single quoted"));
    assert_eq!(fake.gh.value(ORG, "D").as_deref(), Some("line1\nline2"));
    let vis = fake.gh.secrets.lock().unwrap()[ORG]["A"].2.clone();
    assert_eq!(
        vis.as_deref(),
        Some("private"),
        "the default org visibility"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["actions-secrets.json", "actions-secrets.key"] {
            let m = std::fs::metadata(inst.state_dir().join("secrets").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
    }

    // nothing changed: reads only
    let n = fake.gh.writes().len();
    let again = sync(&inst, &fake, &args);
    assert!(common::ok(&again).contains("unchanged"));
    assert_eq!(fake.gh.writes().len(), n, "a rerun sends nothing");

    // one change: one PUT
    write_env(
        &inst,
        "A=plain-value-1\nB=\"b rotated\"\nexport C='single quoted'\nD=\"line1\nline2\"\n",
    );
    let one = sync(&inst, &fake, &args);
    common::ok(&one);
    assert_eq!(fake.gh.writes()[n..], ["PUT org:acme B"]);
    assert_eq!(fake.gh.value(ORG, "B").as_deref(), Some("b rotated"));

    // --dry-run: exit 2, nothing sent, nothing recorded as sent
    write_env(
        &inst,
        "A=a-changed\nB=\"b rotated\"\nexport C='single quoted'\nD=\"line1\nline2\"\n",
    );
    let n = fake.gh.writes().len();
    let dry = sync(&inst, &fake, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
    assert!(
        text(&dry).contains("update    org:acme A (value changed)"),
        "{}",
        text(&dry)
    );
    assert_eq!(fake.gh.writes().len(), n, "a dry run sends nothing");
    common::ok(&sync(&inst, &fake, &args));
    assert_eq!(fake.gh.writes()[n..], ["PUT org:acme A"]);
    let dry = sync(&inst, &fake, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));

    // GitHub's public key changed: everything is sealed again, for the new key
    fake.gh.rotate_key(ORG);
    let n = fake.gh.writes().len();
    common::ok(&sync(&inst, &fake, &args));
    assert_eq!(fake.gh.writes().len(), n + 4, "{:?}", fake.gh.writes());
    let new_id = fake.gh.keys.lock().unwrap()[ORG].0.clone();
    assert!(fake.gh.secrets.lock().unwrap()[ORG]
        .values()
        .all(|(_, k, _)| *k == new_id));
    assert_eq!(fake.gh.value(ORG, "D").as_deref(), Some("line1\nline2"));

    assert_no_leak(
        &inst,
        &[&first, &again, &one, &dry],
        &[
            "plain-value-1",
            "two words",
            "single quoted",
            "line1",
            "b rotated",
            "a-changed",
        ],
    );
}

#[test]
fn bad_names_are_all_listed_and_nothing_is_sent() {
    let fake = Fake::start();
    let inst = Instance::new();
    let env = write_env(
        &inst,
        "A=fine\nGITHUB_BAD=1\n9X=two\nlower=3\nLOWER=4\nMY-VAR=5\n",
    );
    let out = sync(&inst, &fake, &["--org", "acme", "--env-file", &env]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let t = text(&out);
    for n in ["GITHUB_BAD", "9X", "LOWER", "MY-VAR"] {
        assert!(t.contains(n), "{n} not named: {t}");
    }
    assert!(t.contains("help:"), "{t}");
    assert_eq!(
        fake.gh.requests(),
        0,
        "not even a read before the names are fixed"
    );
    assert!(!t.contains("fine") && !t.contains("two"), "{t}");
}

#[test]
fn prune_deletes_only_what_ghboot_created() {
    let fake = Fake::start();
    let inst = Instance::new();
    fake.gh.add_foreign(ORG, "FOREIGN");
    fake.gh.add_foreign(ORG, "TAKEN_OVER");
    let env = write_env(&inst, "KEEP=1\nDROP=2\nTAKEN_OVER=3\n");
    let args = ["--org", "acme", "--env-file", env.as_str()];
    common::ok(&sync(&inst, &fake, &args));
    write_env(&inst, "KEEP=1\n");
    // without --prune: listed as stale, kept
    let n = fake.gh.writes().len();
    let kept = common::ok(&sync(&inst, &fake, &args));
    assert!(kept.contains("stale"), "{kept}");
    assert_eq!(fake.gh.writes().len(), n);
    let dry = sync(
        &inst,
        &fake,
        &[&args[..], &["--prune", "--dry-run"]].concat(),
    );
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
    assert_eq!(fake.gh.writes().len(), n);
    let pruned = common::ok(&sync(&inst, &fake, &[&args[..], &["--prune"]].concat()));
    assert_eq!(fake.gh.writes()[n..], ["DELETE org:acme DROP"], "{pruned}");
    assert_eq!(fake.gh.names(ORG), ["FOREIGN", "KEEP", "TAKEN_OVER"]);
    // the one it did not create is forgotten, not deleted; a second prune has nothing to do
    let again = sync(
        &inst,
        &fake,
        &[&args[..], &["--prune", "--dry-run"]].concat(),
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn repo_scope_uses_the_repository_key_and_rate_limits_are_waited_out() {
    let fake = Fake::start();
    let inst = Instance::new();
    let env = write_env(&inst, "A=repo-value\nB=second\n");
    // GitHub's secondary rate limit on the first PUT: ghboot waits Retry-After and sends it again
    *fake.gh.put_fails_next.lock().unwrap() = Some((
        403,
        json!({"message": "You have exceeded a secondary rate limit"}),
        vec![("retry-after", "1".into())],
    ));
    let out = sync(&inst, &fake, &["--env-file", &env, "--repo", "acme/web"]);
    common::ok(&out);
    assert_eq!(
        fake.gh.value("repo:acme/web", "A").as_deref(),
        Some("repo-value")
    );
    assert_eq!(
        fake.gh.value("repo:acme/web", "B").as_deref(),
        Some("second")
    );
    assert!(fake.gh.names(ORG).is_empty(), "nothing to the org");
    let repo_vis = fake.gh.secrets.lock().unwrap()["repo:acme/web"]["A"]
        .2
        .clone();
    assert_eq!(repo_vis, None, "repository secrets have no visibility");
    let n = fake.gh.writes().len();
    common::ok(&sync(
        &inst,
        &fake,
        &["--env-file", &env, "--repo", "acme/web"],
    ));
    assert_eq!(fake.gh.writes().len(), n);
    // a plain-http API that is not loopback is refused before anything is sent
    let mut c = inst.cmd();
    c.env("GITHUB_TOKEN", TOKEN).args([
        "secrets",
        "sync",
        "--env-file",
        &env,
        "--org",
        "acme",
        "--github-api-url",
        "http://github.example.com/api/v3",
    ]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
}

#[test]
fn instance_secrets_reach_the_org() {
    let fake = Fake::start();
    let inst = Instance::new();
    common::ok(&inst.up(&[]));
    let env = inst.env_json();
    let out = sync(&inst, &fake, &["--org", "acme", "--instance"]);
    common::ok(&out);
    for k in ["NATS_URL", "NATS_USER", "NATS_PASSWORD"] {
        assert_eq!(
            fake.gh.value(ORG, k).as_deref(),
            env[k].as_str(),
            "{k} as `ghboot env` gives it"
        );
    }
    let pw = env["NATS_PASSWORD"].as_str().unwrap();
    assert_no_leak(&inst, &[&out], &[]);
    assert!(!text(&out).contains(pw));
    let n = fake.gh.writes().len();
    common::ok(&sync(&inst, &fake, &["--org", "acme", "--instance"]));
    assert_eq!(fake.gh.writes().len(), n);
}

/// Post one delivery signed with `secret` to the receiver; the HTTP status.
async fn deliver(http: &reqwest::Client, url: &str, secret: &str, id: &str) -> u16 {
    let body = json!({"action": "opened", "repository": {"name": "web", "full_name": "acme/web"}})
        .to_string();
    let sig = ghboot::webhook::verify::sign(secret.as_bytes(), body.as_bytes());
    match http
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", sig)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[test]
fn webhook_secret_rotation_refuses_no_delivery() {
    const HOOK_URL: &str = "https://hooks.example.com/webhook";
    let fake = Fake::start();
    let inst = Instance::new();
    let mut up = inst.cmd();
    up.env("GITHUB_TOKEN", TOKEN)
        .args([
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
            "--org",
            "acme",
        ])
        .args(["--port", &inst.port.to_string()])
        .args(["--monitor-port", &inst.monitor_port.to_string()])
        .args(["--webhook-port", &inst.webhook_port.to_string()])
        .args(["--webhook-url", HOOK_URL, "--github-api-url", &fake.api]);
    common::ok(&up.output().unwrap());
    let hook_secret = || {
        fake.gh.hooks.lock().unwrap()[0]["config"]["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let old = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    assert_eq!(
        hook_secret(),
        old,
        "the registered hook signs with the receiver's secret"
    );
    let url = format!("http://127.0.0.1:{}/webhook", inst.webhook_port);

    // "GitHub" keeps delivering, always signed with the secret its hook holds at that moment
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gh = fake.gh.clone();
    let traffic = {
        let (stop, url) = (stop.clone(), url.clone());
        rt.spawn(async move {
            let http = reqwest::Client::new();
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || statuses.len() < 20 {
                let secret = gh.hooks.lock().unwrap()[0]["config"]["secret"]
                    .as_str()
                    .unwrap()
                    .to_string();
                i += 1;
                statuses.push(deliver(&http, &url, &secret, &format!("live-{i}")).await);
            }
            statuses
        })
    };
    let mut rot = inst.cmd();
    rot.env("GITHUB_TOKEN", TOKEN).args([
        "secrets",
        "rotate",
        "webhook-secret",
        "--github-api-url",
        &fake.api,
    ]);
    let rotated = rot.output().unwrap();
    let said = common::ok(&rotated);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = rt.block_on(traffic).unwrap();
    let new = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        hook_secret(),
        new,
        "the GitHub hook got the new secret: {said}"
    );
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "a delivery was refused during the rotation: {statuses:?}"
    );
    assert!(!said.contains(&new) && !said.contains(&old), "{said}");

    // within the grace period both secrets pass, anything else does not
    let http = reqwest::Client::new();
    assert_eq!(rt.block_on(deliver(&http, &url, &old, "old-1")), 200);
    assert_eq!(rt.block_on(deliver(&http, &url, &new, "new-1")), 200);
    assert_eq!(
        rt.block_on(deliver(&http, &url, "not-the-secret", "bad-1")),
        401
    );

    // a second rotation with a short grace: once it ends, only the newest secret passes
    let mut rot = inst.cmd();
    rot.env("GITHUB_TOKEN", TOKEN).args([
        "secrets",
        "rotate",
        "webhook-secret",
        "--grace",
        "2s",
        "--github-api-url",
        &fake.api,
    ]);
    common::ok(&rot.output().unwrap());
    let newest = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    let mut n = 0;
    common::wait_for(
        std::time::Duration::from_secs(20),
        "the old secret to be dropped",
        || {
            n += 1;
            (rt.block_on(deliver(&http, &url, &new, &format!("after-{n}"))) == 401).then_some(())
        },
    );
    common::wait_for(
        std::time::Duration::from_secs(5),
        "the previous secret file to go",
        || {
            (!inst
                .state_dir()
                .join("secrets/webhook-secret.previous")
                .exists())
            .then_some(())
        },
    );
    assert_eq!(rt.block_on(deliver(&http, &url, &newest, "newest-1")), 200);
    let state = std::fs::read_to_string(inst.state_dir().join("state.json")).unwrap();
    for v in [&old, &new, &newest] {
        assert!(!state.contains(v.as_str()));
    }
    // the running supervisor was not replaced: a rerun of `up` finds nothing to change
    let plan = inst.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

/// The pids of the running nats-server nodes, from the supervisor's runtime file.
fn server_pids(inst: &Instance) -> Vec<u64> {
    let rt: Value = serde_json::from_slice(
        &std::fs::read(inst.state_dir().join("run/supervisor.json")).unwrap(),
    )
    .unwrap();
    rt["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap())
        .collect()
}

async fn nats_connect(url: &str, user: &str, pw: &str) -> Result<(), async_nats::ConnectError> {
    let c = async_nats::ConnectOptions::with_user_and_password(user.into(), pw.into())
        .connection_timeout(std::time::Duration::from_secs(3))
        .connect(url)
        .await?;
    let _ = c.flush().await;
    Ok(())
}

#[test]
fn nats_password_rotation_reloads_without_restart_or_refused_delivery() {
    let fake = Fake::start();
    let inst = Instance::new();
    let mut up = inst.cmd();
    up.env("GITHUB_TOKEN", TOKEN)
        .args(["--mode", "dev", "--detach", "--non-interactive"])
        .args(["--org", "acme"])
        .args(["--port", &inst.port.to_string()])
        .args(["--monitor-port", &inst.monitor_port.to_string()])
        .args(["--webhook-port", &inst.webhook_port.to_string()]);
    common::ok(&up.output().unwrap());
    common::ok(&sync(&inst, &fake, &["--org", "acme", "--instance"]));
    let env = inst.env_json();
    let url = env["NATS_URL"].as_str().unwrap().to_string();
    let user = env["NATS_USER"].as_str().unwrap().to_string();
    let old = env["NATS_PASSWORD"].as_str().unwrap().to_string();
    assert_eq!(fake.gh.value(ORG, "NATS_PASSWORD").as_deref(), Some(&*old));
    let pids = server_pids(&inst);
    let secret = common::ok(&inst.run(&["webhook", "secret"]))
        .trim()
        .to_string();
    let hook = format!("http://127.0.0.1:{}/webhook", inst.webhook_port);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // an old-password client is connected before the rotation
    rt.block_on(nats_connect(&url, &user, &old))
        .expect("the old password works before the rotation");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, hook, secret) = (stop.clone(), hook.clone(), secret.clone());
        rt.spawn(async move {
            let http = reqwest::Client::new();
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || statuses.len() < 20 {
                i += 1;
                statuses.push(deliver(&http, &hook, &secret, &format!("nats-rot-{i}")).await);
            }
            statuses
        })
    };
    let mut rot = inst.cmd();
    rot.env("GITHUB_TOKEN", TOKEN).args([
        "--json",
        "secrets",
        "rotate",
        "nats-password",
        "--github-api-url",
        &fake.api,
    ]);
    let rotated = rot.output().unwrap();
    let said = common::ok(&rotated);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = rt.block_on(traffic).unwrap();
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "a delivery was refused during the rotation: {statuses:?}"
    );

    let new = inst.env_json()["NATS_PASSWORD"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    assert!(!text(&rotated).contains(&new) && !text(&rotated).contains(&old));
    let report: Value = serde_json::from_str(said.trim()).expect("--json report");
    assert_eq!(report["nodes_reloaded"], 1, "{said}");
    assert!(
        report["internal_users_connected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "ghboot-receiver"),
        "the receiver (own user) stays connected: {said}"
    );
    assert_eq!(server_pids(&inst), pids, "nats-server was restarted");

    // a fresh connection: the old password is refused, the new one works
    let refused = rt
        .block_on(nats_connect(&url, &user, &old))
        .expect_err("the old password still works");
    assert_eq!(
        refused.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{refused}"
    );
    rt.block_on(nats_connect(&url, &user, &new))
        .expect("the new password works");

    // a ghboot command with the stale password says what happened
    let mut stale = inst.cmd();
    stale
        .env("NATS_USER", &user)
        .env("NATS_PASSWORD", &old)
        .args(["dlq", "list", "--nats-url", &url]);
    let o = stale.output().unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        text(&o).contains("rotated") && text(&o).contains("ghboot env"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(&old));

    // the synced Actions secret and the NATS CLI context hold the new password
    assert_eq!(fake.gh.value(ORG, "NATS_PASSWORD").as_deref(), Some(&*new));
    let ctx = report["nats_context"].as_str().expect("context rewritten");
    let ctx: Value = serde_json::from_slice(&std::fs::read(ctx).unwrap()).unwrap();
    assert_eq!(ctx["password"], new.as_str());
    // the running supervisor stays: a rerun of `up` finds nothing to change
    let plan = inst.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert_eq!(server_pids(&inst), pids);
}

#[test]
fn nats_password_rotation_is_refused_where_ghboot_runs_no_server() {
    let inst = Instance::new();
    for mode in ["docker", "kubernetes"] {
        let o = inst
            .cmd()
            .args(["--mode", mode, "secrets", "rotate", "nats-password"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(78), "{mode}: {}", text(&o));
    }
}
