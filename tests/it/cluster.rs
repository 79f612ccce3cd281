//! Beyond one machine (issue 8): a local 3-node cluster that survives a killed node under load, Synadia-style
//! credentials against a real operator-mode (JWT) nats-server, and a hybrid leaf node whose uplink is cut and
//! restored without loss. Everything real: nats-server processes, sockets, signed JWTs.

use crate::common::*;
use std::time::Duration;

fn listener_pid(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss").args(["-ltnpH", &format!("sport = :{port}")]).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let i = s.find("pid=")? + 4;
    s[i..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn servers(url: &str) -> Vec<async_nats::ServerAddr> {
    url.split(',').map(|u| u.trim().parse().expect("server url")).collect()
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
    st["nats"]["nodes"].as_array()?.iter().find(|n| n["name"] == name)?["pid"].as_u64().map(|p| p as u32)
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_of_three_survives_a_killed_node_under_load() {
    let inst = Instance::new();
    ok(&inst.up(&["--nats-type", "self_hosted_cluster"]));
    let st = inst.status();
    assert_eq!(st["nats"]["healthy"], true, "{st}");
    let nodes = st["nats"]["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 3, "three nodes: {st}");
    assert_eq!(st["nats"]["pid"].as_u64().map(|p| p as u32), listener_pid(inst.port), "nats.pid is the --port listener's");
    assert_eq!(st["nats"]["replicas"], 3);
    assert!(st["nats"]["meta_leader"].as_str().is_some_and(|l| l.starts_with("ghboot-local-n")), "meta leader shown: {st}");
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
                    let ack = pub_js.publish_with_headers(format!("cltest.{}", i % 7), headers, format!("{i}").into()).await?;
                    tokio::time::timeout(Duration::from_secs(3), ack).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }
                .await;
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        retries += 1;
                        assert!(std::time::Instant::now() < deadline, "message {i} never acknowledged: {e}");
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
    let leader = stream.info().await.expect("info").cluster.clone().and_then(|c| c.leader).expect("stream has a leader");
    let victim = node_pid(&inst.status(), &leader).expect("leader is one of our nodes");
    ghboot::platform::kill(victim);

    let (acked, retries) = publisher.await.expect("publisher");
    assert_eq!(acked, N);
    // acknowledged == stored (no loss, no duplicates), read from the new leader
    let stored = stream.info().await.expect("info after failover").state.messages as usize;
    assert_eq!(stored, acked, "acknowledged {acked}, stored {stored} ({retries} retried publishes)");

    // The supervisor brings the killed node back, on its ports, and it catches up.
    let st = wait_for(Duration::from_secs(30), "killed node restarted and healthy", || {
        let st = inst.status();
        let back = st["nats"]["nodes"].as_array()?.iter().all(|n| n["healthy"] == true) && node_pid(&st, &leader).is_some_and(|p| p != victim);
        back.then_some(st)
    });
    let restarted = st["nats"]["nodes"].as_array().expect("nodes").iter().find(|n| n["name"] == leader.as_str()).cloned().expect("node");
    assert!(restarted["restarts"].as_u64().unwrap_or(0) >= 1);
    // status shows the stream with its replicas
    let streams = wait_for(Duration::from_secs(30), "stream replicas in status", || {
        let st = inst.status();
        let s = st["nats"]["jetstream"]["streams"].as_array()?.iter().find(|s| s["name"] == "CLUSTERLOAD")?.clone();
        (s["replicas"] == 3 && s["peers"].as_array().is_some_and(|p| p.len() == 2)).then_some(s)
    });
    assert_eq!(streams["messages"].as_u64(), Some(N as u64), "{streams}");
    drop(nc);
}
