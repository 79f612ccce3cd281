//! Beyond one machine (issue 8): a local 3-node cluster that survives a killed node under load, Synadia-style
//! credentials against a real operator-mode (JWT) nats-server, and a hybrid leaf node whose uplink is cut and
//! restored without loss. Everything real: nats-server processes, sockets, signed JWTs.

use crate::common::*;
use std::time::Duration;

fn servers(url: &str) -> Vec<async_nats::ServerAddr> {
    url.split(',')
        .map(|u| u.trim().parse().expect("server url"))
        .collect()
}

/// A client for the instance with the credentials `ghboot env` prints (all cluster nodes as seeds).
async fn cluster_client(inst: &Instance) -> async_nats::Client {
    let env = inst.env_json();
    async_nats::ConnectOptions::with_user_and_password(
        env["NATS_USER"].as_str().unwrap_or_default().into(),
        env["NATS_PASSWORD"].as_str().unwrap_or_default().into(),
    )
    .retry_on_initial_connect()
    .connect(servers(env["NATS_URL"].as_str().expect("NATS_URL")))
    .await
    .expect("connect to the cluster")
}

fn node_pid(st: &serde_json::Value, name: &str) -> Option<u32> {
    st["nats"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)?["pid"]
        .as_u64()
        .map(|p| p as u32)
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_of_three_survives_a_killed_node_under_load() {
    let inst = Instance::new();
    ok(&inst.up(&["--nats-type", "self_hosted_cluster"]));
    let st = inst.status();
    assert_eq!(st["nats"]["healthy"], true, "{st}");
    let nodes = st["nats"]["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 3, "three nodes: {st}");
    assert_eq!(
        st["nats"]["pid"].as_u64().map(|p| p as u32),
        listener_pid(inst.port),
        "nats.pid is the --port listener's"
    );
    assert_eq!(st["nats"]["replicas"], 3);
    assert!(
        st["nats"]["meta_leader"]
            .as_str()
            .is_some_and(|l| l.starts_with("ghboot-local-n")),
        "meta leader shown: {st}"
    );
    // the topology's own streams and buckets were made with 3 replicas
    let owned = st["nats"]["jetstream"]["streams"]
        .as_array()
        .expect("streams in status")
        .clone();
    assert!(!owned.is_empty(), "topology streams listed: {st}");
    assert!(
        owned.iter().all(|s| s["replicas"] == 3),
        "every stream R3: {owned:?}"
    );
    let env = inst.env_json();
    let urls: Vec<&str> = env["NATS_URL"].as_str().expect("url").split(',').collect();
    assert_eq!(urls.len(), 3, "NATS_URL lists every node: {env}");
    assert_eq!(urls[0], format!("nats://127.0.0.1:{}", inst.port));

    let nc = cluster_client(&inst).await;
    let js = async_nats::jetstream::new(nc.clone());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "CLUSTERLOAD".into(),
            subjects: vec!["cltest.>".into()],
            num_replicas: 3,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .expect("create R3 stream");
    assert_eq!(stream.info().await.expect("info").config.num_replicas, 3);

    // Ingest load: every message is published until acknowledged (a message id makes a retry idempotent).
    const N: usize = 1500;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let pub_js = js.clone();
    let publisher = tokio::spawn(async move {
        let mut acked = 0usize;
        let mut retries = 0usize;
        for i in 0..N {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("m{i}").as_str());
                let r = async {
                    let ack = pub_js
                        .publish_with_headers(
                            format!("cltest.{}", i % 7),
                            headers,
                            format!("{i}").into(),
                        )
                        .await?;
                    tokio::time::timeout(Duration::from_secs(3), ack)
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }
                .await;
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        retries += 1;
                        assert!(
                            std::time::Instant::now() < deadline,
                            "message {i} never acknowledged: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            acked += 1;
            let _ = progress_tx.send(acked);
        }
        (acked, retries)
    });

    // A third of the way in, SIGKILL the node that leads the stream.
    while *progress.borrow_and_update() < N / 3 {
        progress.changed().await.expect("publisher alive");
    }
    let leader = stream
        .info()
        .await
        .expect("info")
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("stream has a leader");
    let victim = node_pid(&inst.status(), &leader).expect("leader is one of our nodes");
    ghboot::platform::kill(victim);

    let (acked, retries) = publisher.await.expect("publisher");
    assert_eq!(acked, N);
    // acknowledged == stored (no loss, no duplicates), read from the new leader
    let stored = stream
        .info()
        .await
        .expect("info after failover")
        .state
        .messages as usize;
    assert_eq!(
        stored, acked,
        "acknowledged {acked}, stored {stored} ({retries} retried publishes)"
    );

    // The supervisor brings the killed node back, on its ports, and it catches up.
    let st = wait_for(
        Duration::from_secs(30),
        "killed node restarted and healthy",
        || {
            let st = inst.status();
            let back = st["nats"]["nodes"]
                .as_array()?
                .iter()
                .all(|n| n["healthy"] == true)
                && node_pid(&st, &leader).is_some_and(|p| p != victim);
            back.then_some(st)
        },
    );
    let restarted = st["nats"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == leader.as_str())
        .cloned()
        .expect("node");
    assert!(restarted["restarts"].as_u64().unwrap_or(0) >= 1);
    // status shows the stream with its replicas
    let streams = wait_for(Duration::from_secs(30), "stream replicas in status", || {
        let st = inst.status();
        let s = st["nats"]["jetstream"]["streams"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "CLUSTERLOAD")?
            .clone();
        (s["replicas"] == 3 && s["peers"].as_array().is_some_and(|p| p.len() == 2)).then_some(s)
    });
    assert_eq!(streams["messages"].as_u64(), Some(N as u64), "{streams}");
    drop(nc);
}

// ---------- decentralized (JWT) auth, generated here with nkeys ----------

mod jwt {
    use base64::Engine;
    use nkeys::KeyPair;
    use serde_json::{json, Value};

    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// Sign `claims` (iss = signer's public key unless given) the way nats JWT v2 does.
    pub fn encode(mut claims: Value, signer: &KeyPair) -> String {
        if claims.get("iss").is_none() {
            claims["iss"] = signer.public_key().into();
        }
        claims["iat"] = claims.get("iat").cloned().unwrap_or(now().into());
        claims["jti"] = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_uppercase()
            .into();
        let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let payload = b64(claims.to_string().as_bytes());
        let input = format!("{header}.{payload}");
        let sig = signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", b64(&sig))
    }

    pub fn operator(op: &KeyPair, sys: &KeyPair) -> String {
        encode(
            json!({"sub": op.public_key(), "name": "test-operator", "nats": {"type": "operator", "version": 2, "system_account": sys.public_key()}}),
            op,
        )
    }

    pub fn account(
        op: &KeyPair,
        acc: &KeyPair,
        name: &str,
        jetstream: bool,
        revoked: &[String],
    ) -> String {
        let mut limits = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1});
        if jetstream {
            for k in ["mem_storage", "disk_storage", "streams", "consumer"] {
                limits[k] = (-1).into();
            }
        }
        let revocations: serde_json::Map<String, Value> = revoked
            .iter()
            .map(|u| (u.clone(), (now() + 3600).into()))
            .collect();
        let mut nats = json!({"type": "account", "version": 2, "limits": limits, "default_permissions": {"pub": {}, "sub": {}}});
        if !revocations.is_empty() {
            nats["revocations"] = Value::Object(revocations);
        }
        encode(
            json!({"sub": acc.public_key(), "name": name, "nats": nats}),
            op,
        )
    }

    pub fn user(
        signer: &KeyPair,
        iss: Option<&str>,
        user: &KeyPair,
        name: &str,
        exp: Option<i64>,
    ) -> String {
        let mut c = json!({"sub": user.public_key(), "name": name, "nats": {"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}});
        if let Some(i) = iss {
            c["iss"] = i.into();
        }
        if let Some(e) = exp {
            c["exp"] = e.into();
        }
        encode(c, signer)
    }

    pub fn creds(jwt: &str, user: &KeyPair) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().expect("seed")
        )
    }
}

/// A nats-server in operator mode (memory resolver, accounts preloaded), JetStream in `domain`, with a
/// leaf-node port: the stand-in for Synadia Cloud and for any hub.
struct JwtServer {
    child: std::process::Child,
    port: u16,
    monitor_port: u16,
    leaf_port: u16,
    dir: tempfile::TempDir,
    op: nkeys::KeyPair,
    acc: nkeys::KeyPair,
    /// a user of `acc` revoked in the account JWT
    revoked: nkeys::KeyPair,
}

impl JwtServer {
    fn start(domain: &str) -> Self {
        let (op, sys, acc, revoked) = (
            nkeys::KeyPair::new_operator(),
            nkeys::KeyPair::new_account(),
            nkeys::KeyPair::new_account(),
            nkeys::KeyPair::new_user(),
        );
        let p = free_ports(3);
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = format!(
            "server_name: hub\nhost: 127.0.0.1\nport: {}\nhttp: \"127.0.0.1:{}\"\njetstream {{ store_dir: {:?}, domain: {domain:?} }}\noperator: {:?}\nsystem_account: {:?}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {:?}\n  {}: {:?}\n}}\nleafnodes {{ host: 127.0.0.1, port: {} }}\n",
            p[0],
            p[1],
            dir.path().join("js"),
            jwt::operator(&op, &sys),
            sys.public_key(),
            sys.public_key(),
            jwt::account(&op, &sys, "SYS", false, &[]),
            acc.public_key(),
            jwt::account(&op, &acc, "APP", true, &[revoked.public_key()]),
            p[2],
        );
        std::fs::write(dir.path().join("hub.conf"), conf).expect("conf");
        let s = JwtServer {
            child: Self::spawn(dir.path()),
            port: p[0],
            monitor_port: p[1],
            leaf_port: p[2],
            dir,
            op,
            acc,
            revoked,
        };
        s.wait_ready();
        s
    }
    fn spawn(dir: &std::path::Path) -> std::process::Child {
        std::process::Command::new(nats_server_bin())
            .arg("-c")
            .arg(dir.join("hub.conf"))
            .arg("-l")
            .arg(dir.join("hub.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start operator-mode nats-server")
    }
    fn wait_ready(&self) {
        let m = self.monitor_port;
        wait_for(
            Duration::from_secs(20),
            "operator-mode nats-server ready",
            || (http_status(m, "/healthz")? == 200).then_some(()),
        );
    }
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    /// Credentials file of a fresh user of the account (`exp`: unix seconds).
    fn user_creds(&self, name: &str, exp: Option<i64>) -> (std::path::PathBuf, nkeys::KeyPair) {
        let u = nkeys::KeyPair::new_user();
        let path = self.write_creds(name, &jwt::user(&self.acc, None, &u, name, exp), &u);
        (path, u)
    }
    fn write_creds(&self, name: &str, jwt: &str, u: &nkeys::KeyPair) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("{name}.creds"));
        std::fs::write(&path, jwt::creds(jwt, u)).expect("write creds");
        path
    }
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    async fn client(&self, creds: &std::path::Path) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .credentials_file(creds)
            .await
            .expect("creds")
            .connect(self.url())
            .await
            .expect("connect to the JWT server")
    }
}

impl Drop for JwtServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn synadia_up(
    inst: &Instance,
    hub: &JwtServer,
    extra_env: &[(&str, &str)],
    detach: bool,
) -> std::process::Output {
    let mut c = inst.cmd();
    c.args([
        "--mode",
        "synadia",
        "--non-interactive",
        "--nats-url",
        &hub.url(),
        "--js-domain",
        "cloud",
    ])
    .args(["--webhook-port", &inst.webhook_port.to_string()])
    .env_remove("SYNADIA_CREDS_FILE")
    .env_remove("SYNADIA_JWT")
    .env_remove("SYNADIA_NKEY_SEED");
    if detach {
        c.arg("--detach");
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("run ghboot")
}

#[tokio::test(flavor = "multi_thread")]
async fn synadia_credentials_are_validated_then_used_against_a_jwt_server() {
    let hub = JwtServer::start("cloud");

    // Good credentials: up connects, JetStream works in the account's domain, the seed never shows.
    let inst = Instance::new();
    let (good, user) = hub.user_creds("ghboot-app", Some(jwt::now() + 3600));
    let seed = user.seed().expect("seed");
    let out = synadia_up(
        &inst,
        &hub,
        &[("SYNADIA_CREDS_FILE", good.to_str().expect("path"))],
        true,
    );
    let text = all_output(&out);
    assert!(out.status.success(), "synadia up failed: {text}");
    assert!(!text.contains(&seed));
    let st = inst.status();
    assert_eq!(st["target"], "synadia", "{st}");
    assert_eq!(st["nats"]["healthy"], true, "{st}");
    assert_eq!(st["nats"]["jetstream_domain"], "cloud");
    let env = inst.env_json();
    assert_eq!(env["NATS_URL"], hub.url().as_str());
    assert_eq!(env["NATS_JS_DOMAIN"], "cloud");
    let creds_copy = std::path::PathBuf::from(env["NATS_CREDS"].as_str().expect("NATS_CREDS"));
    // file modes are Unix's (on Windows the profile directory's ACL keeps other users out)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&creds_copy)
                .expect("creds copy")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    for f in files_under(&inst.state_dir()) {
        if f != creds_copy {
            assert!(
                !read(&f).contains(&seed),
                "seed leaked into {}",
                f.display()
            );
        }
    }
    let nc = hub.client(&creds_copy).await;
    let js = async_nats::jetstream::with_domain(nc, "cloud");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SYN".into(),
        subjects: vec!["syn.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream in the account's domain");
    js.publish("syn.x", "1".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(
        js.get_stream("SYN")
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .state
            .messages,
        1
    );
    ok(&inst.run(&["down"]));

    // Bad credentials: each a clear error naming the cause, exit 78, never the seed.
    let refused = |what: &str, out: &std::process::Output, seed: &str, want: &str| {
        let text = all_output(out);
        assert_eq!(
            out.status.code(),
            Some(78),
            "{what}: want exit 78 (config): {text}"
        );
        assert!(text.contains(want), "{what}: want {want:?} in: {text}");
        assert!(!text.contains(seed), "{what}: the seed was printed");
        assert!(
            text.contains("help:"),
            "{what}: a remedy is printed: {text}"
        );
    };
    let (expired, u) = hub.user_creds("expired", Some(jwt::now() - 60));
    let out = synadia_up(
        &Instance::new(),
        &hub,
        &[("SYNADIA_CREDS_FILE", expired.to_str().expect("path"))],
        false,
    );
    refused("expired", &out, &u.seed().expect("seed"), "expired at");

    // signed by some other key while claiming the account as issuer; given as SYNADIA_JWT + SYNADIA_NKEY_SEED
    let u = nkeys::KeyPair::new_user();
    let forged = jwt::user(
        &nkeys::KeyPair::new_account(),
        Some(&hub.acc.public_key()),
        &u,
        "forged",
        None,
    );
    let useed = u.seed().expect("seed");
    let out = synadia_up(
        &Instance::new(),
        &hub,
        &[("SYNADIA_JWT", &forged), ("SYNADIA_NKEY_SEED", &useed)],
        false,
    );
    refused("wrongly signed", &out, &useed, "signature does not verify");

    // a seed that is not the JWT's user
    let other = nkeys::KeyPair::new_user().seed().expect("seed");
    let (_, good_jwt_user) = hub.user_creds("mismatch", None);
    let jwt_text = jwt::user(&hub.acc, None, &good_jwt_user, "mismatch", None);
    let out = synadia_up(
        &Instance::new(),
        &hub,
        &[("SYNADIA_JWT", &jwt_text), ("SYNADIA_NKEY_SEED", &other)],
        false,
    );
    refused("foreign seed", &out, &other, "not to the JWT's user");

    // revoked in the account JWT: well-formed and well-signed, refused by the server
    let rpath = hub.write_creds(
        "revoked",
        &jwt::user(&hub.acc, None, &hub.revoked, "revoked", None),
        &hub.revoked,
    );
    let out = synadia_up(
        &Instance::new(),
        &hub,
        &[("SYNADIA_CREDS_FILE", rpath.to_str().expect("path"))],
        false,
    );
    refused(
        "revoked",
        &out,
        &hub.revoked.seed().expect("seed"),
        "revoked",
    );

    // a well-signed user of an account the server does not know (another operator's)
    let stranger = nkeys::KeyPair::new_account();
    let su = nkeys::KeyPair::new_user();
    let spath = hub.write_creds(
        "stranger",
        &jwt::user(&stranger, None, &su, "stranger", None),
        &su,
    );
    let out = synadia_up(
        &Instance::new(),
        &hub,
        &[("SYNADIA_CREDS_FILE", spath.to_str().expect("path"))],
        false,
    );
    refused(
        "unknown account",
        &out,
        &su.seed().expect("seed"),
        "refused the credentials",
    );
    let _ = &hub.op;
}

async fn stream_count(js: &async_nats::jetstream::Context, name: &str) -> Option<u64> {
    let mut s = js.get_stream(name).await.ok()?;
    Some(s.info().await.ok()?.state.messages)
}

async fn wait_count(js: &async_nats::jetstream::Context, name: &str, want: u64, what: &str) {
    let t0 = std::time::Instant::now();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = stream_count(js, name).await;
        if n == Some(want) {
            eprintln!("{what}: {:?}", t0.elapsed());
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{what}: {name} has {n:?} messages, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP relay in front of the hub's leaf port: the uplink, which the test can cut and restore while the
/// hub itself stays up (as when a network link fails).
struct Uplink {
    port: u16,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Uplink {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let (tx, _) = tokio::sync::watch::channel(true);
        let up = std::sync::Arc::new(tx);
        let up2 = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*up2.borrow() {
                    continue; // cut: the connection is dropped at once
                }
                let mut rx = up2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Uplink { port, up, task }
    }
    fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn uplink(inst: &Instance) -> Option<bool> {
    inst.status()["nats"]["remote"]["connected"].as_bool()
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_leaf_keeps_working_without_its_uplink_and_catches_up() {
    let hub = JwtServer::start("hub");
    let (creds, _) = hub.user_creds("leaf", None);
    let inst = Instance::new();
    let link = Uplink::start(hub.leaf_port).await;
    let hub_url = format!("nats-leaf://127.0.0.1:{}", link.port);
    ok(&inst.up(&[
        "--nats-type",
        "hybrid",
        "--hub-url",
        &hub_url,
        "--hub-creds",
        creds.to_str().expect("path"),
    ]));
    let st = inst.status();
    assert_eq!(st["nats"]["jetstream_domain"], "ghboot-local", "{st}");
    wait_for(Duration::from_secs(20), "leaf connected to the hub", || {
        uplink(&inst).filter(|c| *c)
    });

    // Local JetStream (the leaf's own domain) takes the events; the hub sources them across the uplink.
    let local = async_nats::jetstream::new(inst.client().await);
    local
        .create_stream(async_nats::jetstream::stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["ev.>".into()],
            ..Default::default()
        })
        .await
        .expect("local stream");
    let hub_js = async_nats::jetstream::new(hub.client(&creds).await);
    hub_js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "EVENTS_HUB".into(),
            sources: Some(vec![async_nats::jetstream::stream::Source {
                name: "EVENTS".into(),
                external: Some(async_nats::jetstream::stream::External {
                    api_prefix: "$JS.ghboot-local.API".into(),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .await
        .expect("hub stream sourcing the leaf's");
    let publish = |from: usize, to: usize| {
        let local = local.clone();
        async move {
            for i in from..to {
                local
                    .publish(format!("ev.{i}"), format!("{i}").into())
                    .await
                    .expect("local publish")
                    .await
                    .expect("local ack");
            }
        }
    };
    publish(0, 50).await;
    wait_count(&hub_js, "EVENTS_HUB", 50, "uplink up").await;

    // Uplink lost: local processing goes on (publishes are acknowledged by the leaf's JetStream).
    link.set(false);
    wait_for(
        Duration::from_secs(20),
        "leaf notices the lost uplink",
        || uplink(&inst).filter(|c| !*c),
    );
    publish(50, 120).await;
    assert_eq!(stream_count(&local, "EVENTS").await, Some(120));
    assert_eq!(
        inst.status()["nats"]["healthy"],
        true,
        "the leaf stays healthy without its hub"
    );

    // Uplink back: the hub catches up with everything, in order, nothing lost or doubled.
    link.set(true);
    wait_for(Duration::from_secs(30), "leaf reconnected", || {
        uplink(&inst).filter(|c| *c)
    });
    let hub_js = async_nats::jetstream::new(hub.client(&creds).await);
    wait_count(&hub_js, "EVENTS_HUB", 120, "uplink restored").await;
    let s = hub_js.get_stream("EVENTS_HUB").await.expect("hub stream");
    let last = s.get_raw_message(120).await.expect("last message");
    assert_eq!(&last.payload[..], b"119");
}
