//! Fault rows that need live traffic: the receiver's bad inputs, NATS failing under ingest load, a cluster
//! node lost, a lock holder stalled past its lease. Driven with async-nats and reqwest against a real instance.

use crate::bench::Env;
use crate::faults::{Inst, Row};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

struct Live {
    url: String,
    secret: String,
    nats_url: String,
    user: String,
    pass: String,
}

fn live(i: &Inst) -> Result<Live> {
    let v: serde_json::Value =
        serde_json::from_slice(&i.run(&["env", "--format", "json"]).stdout).context("env json")?;
    let secret = String::from_utf8_lossy(&i.run(&["webhook", "secret"]).stdout)
        .trim()
        .to_string();
    Ok(Live {
        url: v["GHBOOT_WEBHOOK_URL"]
            .as_str()
            .context("webhook url")?
            .into(),
        secret,
        nats_url: v["NATS_URL"].as_str().context("nats url")?.into(),
        user: v["NATS_USER"].as_str().unwrap_or_default().into(),
        pass: v["NATS_PASSWORD"].as_str().unwrap_or_default().into(),
    })
}

fn push_body(n: usize) -> Vec<u8> {
    format!(r#"{{"ref":"refs/heads/main","repository":{{"name":"faults"}},"n":{n}}}"#).into_bytes()
}

async fn post(
    c: &reqwest::Client,
    l: &Live,
    delivery: &str,
    body: Vec<u8>,
    sign: bool,
    ctype: &str,
    event: Option<&str>,
) -> u16 {
    let mut r = c
        .post(&l.url)
        .header("content-type", ctype)
        .header("x-github-delivery", delivery);
    if let Some(e) = event {
        r = r.header("x-github-event", e);
    }
    if sign {
        r = r.header(
            "x-hub-signature-256",
            ghboot::webhook::verify::sign(l.secret.as_bytes(), &body),
        );
    }
    match r.body(body).send().await {
        Ok(resp) => resp.status().as_u16(),
        Err(_) => 0,
    }
}

/// Messages of this row's repository (`faults`) in the events stream: what dev's own round trip stores there
/// does not count.
async fn stored(l: &Live, stream: &str) -> Result<u64> {
    let nc = async_nats::ConnectOptions::with_user_and_password(l.user.clone(), l.pass.clone())
        .connect(l.nats_url.split(',').next().unwrap_or_default())
        .await?;
    let js = async_nats::jetstream::new(nc);
    let s = js.get_stream(stream).await?;
    let mut c = s
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: "github.local.faults.push".into(),
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    Ok(c.info().await?.num_pending)
}

/// Status of a request whose body is never sent: the receiver must answer from the headers alone.
async fn status_without_body(url: &str, head_fields: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return 0;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut s) = tokio::net::TcpStream::connect(host).await else {
        return 0;
    };
    let head = format!("POST /{path} HTTP/1.1\r\nHost: {host}\r\n{head_fields}\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

pub fn rows(env: &Env) -> Result<Vec<Row>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    rows.extend(rt.block_on(receiver_bad_inputs(env))?);
    rows.push(rt.block_on(kill_nats_under_load(env))?);
    rows.push(rt.block_on(nats_stalled_during_ingest(env))?);
    rows.push(rt.block_on(cluster_node_killed(env))?);
    rows.push(rt.block_on(lock_holder_stalled(env))?);
    Ok(rows)
}

async fn receiver_bad_inputs(env: &Env) -> Result<Vec<Row>> {
    let i = Inst::new(env)?;
    i.up();
    let l = live(&i)?;
    let c = reqwest::Client::new();
    let stream = "GITHUB_EVENTS_LOCAL";
    let before = stored(&l, stream).await?;
    let big = 26 * 1024 * 1024;
    let cases: Vec<(&str, u16, u16)> = vec![
        ("bad signature", 401, {
            let body = push_body(1);
            let r = c
                .post(&l.url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", "bad-sig")
                .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
                .body(body)
                .send()
                .await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        }),
        (
            "missing signature",
            401,
            post(
                &c,
                &l,
                "no-sig",
                push_body(2),
                false,
                "application/json",
                Some("push"),
            )
            .await,
        ),
        (
            "missing X-GitHub-Event",
            400,
            post(
                &c,
                &l,
                "no-event",
                push_body(3),
                true,
                "application/json",
                None,
            )
            .await,
        ),
        (
            "malformed JSON",
            400,
            post(
                &c,
                &l,
                "bad-json",
                b"{not json".to_vec(),
                true,
                "application/json",
                Some("push"),
            )
            .await,
        ),
        (
            "body over GitHub's 25 MB cap",
            413,
            // announced by Content-Length and never sent: the receiver answers from the headers alone
            status_without_body(
                &l.url,
                &format!(
                    "Content-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: too-big\r\nX-Hub-Signature-256: sha256={}\r\nContent-Length: {}\r\n",
                    "0".repeat(64),
                    big
                ),
            )
            .await,
        ),
        (
            "wrong content type (text/plain)",
            415,
            post(
                &c,
                &l,
                "text",
                push_body(4),
                true,
                "text/plain",
                Some("push"),
            )
            .await,
        ),
    ];
    let after = stored(&l, stream).await?;
    Ok(cases
        .into_iter()
        .map(|(what, want, got)| Row {
            fault: format!("receiver: {what}"),
            expected: format!("HTTP {want}, nothing stored, counted in /metrics by reason"),
            observed: format!("HTTP {got}; stream grew by {}", after - before),
            pass: got == want && after == before,
            reproduce: format!(
                "ghboot webhook send … (or curl) with {what} → {}",
                l.url
                    .rsplit_once('/')
                    .map(|x| x.0)
                    .unwrap_or("")
                    .to_string()
                    + "/webhook"
            ),
        })
        .collect())
}

/// SIGKILL nats-server while 8 senders post deliveries; then redeliver what got no 2xx (as a person would from
/// GitHub's UI). Every acknowledged delivery must be stored, exactly once.
async fn kill_nats_under_load(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    i.up();
    let l = live(&i)?;
    let stream = "GITHUB_EVENTS_LOCAL";
    let before = stored(&l, stream).await?;
    let nats_pid = i.status()["nats"]["pid"].as_u64().unwrap_or(0);
    let c = reqwest::Client::new();
    let total = 1600usize;
    let l = std::sync::Arc::new(l);
    let mut tasks = Vec::new();
    for s in 0..8 {
        let (c, l) = (c.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut acked = 0usize;
            for k in 0..total / 8 {
                let n = s * 10_000 + k;
                match post(
                    &c,
                    &l,
                    &format!("load-{n}"),
                    push_body(n),
                    true,
                    "application/json",
                    Some("push"),
                )
                .await
                {
                    200..=299 => acked += 1,
                    _ => failed.push(n),
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-9", &nats_pid.to_string()])
        .status()?;
    let (mut acked, mut failed) = (0, Vec::new());
    for t in tasks {
        let (a, f) = t.await?;
        acked += a;
        failed.extend(f);
    }
    let first_failures = failed.len();
    // redeliver until each is acknowledged (the supervisor has restarted nats-server by now)
    let until = Instant::now() + Duration::from_secs(60);
    while let Some(n) = failed.pop() {
        if post(
            &c,
            &l,
            &format!("load-{n}"),
            push_body(n),
            true,
            "application/json",
            Some("push"),
        )
        .await
            / 100
            == 2
        {
            acked += 1;
        } else if Instant::now() < until {
            failed.push(n);
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            break;
        }
    }
    let after = stored(&l, stream).await?;
    let stored_new = after - before;
    let ids: HashSet<usize> = (0..8)
        .flat_map(|s| (0..total / 8).map(move |k| s * 10_000 + k))
        .collect();
    Ok(Row {
        fault: "SIGKILL of nats-server under webhook ingest load (8 senders, 1600 deliveries)".into(),
        expected: "503 while it is down (never a 2xx without JetStream's ack); after restart and redelivery, acknowledged == stored, each delivery once".into(),
        observed: format!("{first_failures} refused during the outage and redelivered; acknowledged {acked} of {}; stored {stored_new}", ids.len()),
        pass: acked == ids.len() && stored_new as usize == acked,
        reproduce: "cargo xtask faults (row: kill_nats_under_load)".into(),
    })
}

/// nats-server frozen (SIGSTOP) while a delivery arrives: the receiver must not answer 2xx.
async fn nats_stalled_during_ingest(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    i.up();
    let l = live(&i)?;
    let stream = "GITHUB_EVENTS_LOCAL";
    let before = stored(&l, stream).await?;
    let pid = i.status()["nats"]["pid"].as_u64().unwrap_or(0).to_string();
    let c = reqwest::Client::new();
    Command::new("kill").args(["-STOP", &pid]).status()?;
    let t = Instant::now();
    let during = post(
        &c,
        &l,
        "stalled-1",
        push_body(1),
        true,
        "application/json",
        Some("push"),
    )
    .await;
    let waited = t.elapsed();
    Command::new("kill").args(["-CONT", &pid]).status()?;
    let mut again = 0;
    for _ in 0..100 {
        again = post(
            &c,
            &l,
            "stalled-1",
            push_body(1),
            true,
            "application/json",
            Some("push"),
        )
        .await;
        if again / 100 == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = stored(&l, stream).await?;
    Ok(Row {
        fault: "NATS unresponsive (nats-server SIGSTOPped) during ingest".into(),
        expected: "503 within the ack timeout so GitHub retries; after SIGCONT the redelivery is stored once".into(),
        observed: format!("HTTP {during} after {:.1}s; redelivery HTTP {again}; stored {}", waited.as_secs_f64(), after - before),
        pass: during == 503 && again / 100 == 2 && after - before == 1,
        reproduce: "kill -STOP <nats pid>; ghboot webhook send --event push --payload p.json; kill -CONT <nats pid>; send again".into(),
    })
}

async fn cluster_node_killed(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i
        .cmd()
        .args(i.up_args())
        .args(["--nats-type", "self_hosted_cluster"])
        .output()?;
    let st = i.status();
    let nodes: Vec<u64> = st["nats"]["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["pid"].as_u64()).collect())
        .unwrap_or_default();
    let victim = nodes.get(1).copied().unwrap_or(0);
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()?;
    let l = live(&i)?;
    let c = reqwest::Client::new();
    let before = stored(&l, "GITHUB_EVENTS_LOCAL").await.unwrap_or(0);
    let mut ok = 0;
    for n in 0..100 {
        for _ in 0..50 {
            if post(
                &c,
                &l,
                &format!("cl-{n}"),
                push_body(n),
                true,
                "application/json",
                Some("push"),
            )
            .await
                / 100
                == 2
            {
                ok += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let after = stored(&l, "GITHUB_EVENTS_LOCAL").await.unwrap_or(0);
    let back = {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let st = i.status();
            let all = st["nats"]["nodes"]
                .as_array()
                .map(|a| a.len() == 3 && a.iter().all(|n| n["healthy"] == true))
                .unwrap_or(false);
            if all || Instant::now() > until {
                break all;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    Ok(Row {
        fault: "a node of the 3-node cluster SIGKILLed".into(),
        expected: "ingest keeps working (R3 streams); the supervisor brings the node back".into(),
        observed: format!("cluster up exit {}; {} nodes; acknowledged {ok}/100 with the node down, stored {}; all 3 healthy again: {back}", up.status.code().unwrap_or(-1), nodes.len(), after - before),
        pass: up.status.success() && nodes.len() == 3 && ok == 100 && after - before == 100 && back,
        reproduce: "ghboot --nats-type self_hosted_cluster --detach; kill -9 <node 1 pid>; ghboot webhook send …".into(),
    })
}

/// A holder that stalls past its lease (a clock jump or a long GC pause, from its point of view) must not be
/// able to write with its old fencing token once someone else holds the lock.
async fn lock_holder_stalled(env: &Env) -> Result<Row> {
    use ghboot::topology::lock::{fenced_write, open_locks, Lock};
    let i = Inst::new(env)?;
    i.up();
    let l = live(&i)?;
    let nc = async_nats::ConnectOptions::with_user_and_password(l.user.clone(), l.pass.clone())
        .connect(l.nats_url.clone())
        .await?;
    let js = async_nats::jetstream::new(nc);
    // a private bucket with a 1 s lease, so the row runs quickly
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "faults_locks".into(),
            max_age: Duration::from_secs(1),
            history: 1,
            ..Default::default()
        })
        .await?;
    let _ = open_locks; // the real bucket is `locks`; same code path
    let a = Lock::acquire(&kv, "regen.local", "A")
        .await?
        .context("A gets the lock")?;
    let token_a = a.fencing_token();
    fenced_write(&kv, "resource.local", token_a, "from A".into()).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await; // A stalls past its lease
    let b = Lock::acquire_wait(&kv, "regen.local", "B", Duration::from_secs(5))
        .await?
        .context("B gets the lock after A's lease")?;
    fenced_write(&kv, "resource.local", b.fencing_token(), "from B".into()).await?;
    let stale = fenced_write(&kv, "resource.local", token_a, "late write from A".into()).await;
    let refused = stale.as_ref().err().is_some_and(|e| {
        e.downcast_ref::<ghboot::topology::lock::StaleToken>()
            .is_some()
    });
    let _ = js.delete_key_value("faults_locks").await;
    Ok(Row {
        fault: "lock holder stalled past its lease (clock jump / pause), then writes".into(),
        expected: "another holder gets the lock; the stale holder's write with its old fencing token is refused".into(),
        observed: format!("B acquired with token {} > {token_a}; A's late write refused: {refused}", b.fencing_token()),
        pass: refused && b.fencing_token() > token_a,
        reproduce: "cargo xtask faults (row: lock_holder_stalled)".into(),
    })
}
