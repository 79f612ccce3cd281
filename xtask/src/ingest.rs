//! Webhook ingest against raw JetStream publishing of the same payloads, in the same run: throughput and
//! per-delivery latency (p50/p99), and the supervisor's peak memory afterwards.

use crate::bench::{cold_up, ghboot, status, Env, Figure, Table};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

const SENDERS: usize = 8;
const PER_SENDER: usize = 250;

fn payload() -> Vec<u8> {
    // a push payload of a few KB, shaped like GitHub's
    let files: Vec<String> = (0..40).map(|i| format!("\"templates/workflows/file-{i:03}.yml\"")).collect();
    format!(
        r#"{{"ref":"refs/heads/main","before":"{z}","after":"{z}","repository":{{"name":"bench","full_name":"local/bench"}},"pusher":{{"name":"bench"}},"head_commit":{{"id":"{z}","message":"bench","author":{{"name":"bench","email":"bench@example.com"}},"modified":[{}]}},"padding":"{}"}}"#,
        files.join(","),
        "x".repeat(1500),
        z = "0".repeat(40)
    )
    .into_bytes()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    per_sec: f64,
    p50: f64,
    p99: f64,
}

fn summarize(lat: Vec<f64>, total: Duration) -> Run {
    let mut l = lat;
    l.sort_by(|a, b| a.total_cmp(b));
    Run { per_sec: l.len() as f64 / total.as_secs_f64(), p50: pct(&l, 0.5), p99: pct(&l, 0.99) }
}

async fn raw(js: &async_nats::jetstream::Context, body: &[u8], run: usize) -> Result<Run> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let js = js.clone();
        let body = bytes::Bytes::copy_from_slice(body);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(PER_SENDER);
            for i in 0..PER_SENDER {
                let mut h = async_nats::HeaderMap::new();
                h.insert(async_nats::header::NATS_MESSAGE_ID, format!("raw-{run}-{s}-{i}").as_str());
                let t = Instant::now();
                js.publish_with_headers("github.local.bench.push", h, body.clone()).await?.await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(summarize(lat, t.elapsed()))
}

async fn webhook(url: &str, secret: &str, body: &[u8], run: usize) -> Result<Run> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(SENDERS).build()?;
    let sig = ghboot::webhook::verify::sign(secret.as_bytes(), body);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (client, url, sig, body) = (client.clone(), url.to_string(), sig.clone(), body.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(PER_SENDER);
            for i in 0..PER_SENDER {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("hook-{run}-{s}-{i}"))
                    .header("x-hub-signature-256", &sig)
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "receiver answered {}", r.status());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(summarize(lat, t.elapsed()))
}

fn vm_hwm_mib(pid: u64) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map(|k| k / 1024.0)
        .unwrap_or(f64::NAN)
}

pub fn ingest(env: &Env) -> Result<Vec<Table>> {
    let (_, inst) = cold_up(env)?;
    let out = ghboot(env, &inst.state).args(["env", "--format", "json"]).stdout(std::process::Stdio::piped()).output()?;
    let vars: serde_json::Value = serde_json::from_slice(&out.stdout).context("env json")?;
    let secret = ghboot(env, &inst.state).args(["webhook", "secret"]).stdout(std::process::Stdio::piped()).output()?;
    let secret = String::from_utf8_lossy(&secret.stdout).trim().to_string();
    let url = vars["GHBOOT_WEBHOOK_URL"].as_str().context("GHBOOT_WEBHOOK_URL")?.to_string();
    let nats_url = vars["NATS_URL"].as_str().context("NATS_URL")?.to_string();
    let (user, pass) = (vars["NATS_USER"].as_str().unwrap_or_default().to_string(), vars["NATS_PASSWORD"].as_str().unwrap_or_default().to_string());
    let body = payload();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (raw_runs, hook_runs) = rt.block_on(async {
        let nc = async_nats::ConnectOptions::with_user_and_password(user, pass).connect(nats_url).await?;
        let js = async_nats::jetstream::new(nc);
        let (mut r, mut h) = (Vec::new(), Vec::new());
        for run in 0..env.reps {
            r.push(raw(&js, &body, run).await?);
            h.push(webhook(&url, &secret, &body, run).await?);
        }
        anyhow::Ok((r, h))
    })?;
    let sup = status(env, &inst)?["supervisor"]["pid"].as_u64().unwrap_or(0);
    let rss = vm_hwm_mib(sup);
    let n = SENDERS * PER_SENDER;
    let fig = |name: &str, unit: &'static str, runs: &[Run], f: fn(&Run) -> f64| Figure::new(name, unit, runs.iter().map(f).collect());
    Ok(vec![
        Table {
            title: "Webhook ingest: throughput".into(),
            note: format!(
                "{n} deliveries of {} bytes per run from {SENDERS} concurrent senders, each waiting for its answer; the receiver answers only after JetStream's ack. Baseline: the same payloads published straight to JetStream with async-nats, each awaiting its ack. Ratio above 1 is faster. ghboot supervisor peak RSS after all runs: {rss:.1} MiB.",
                body.len()
            ),
            baseline: fig("raw JetStream publish (async-nats), acked", "msg/s", &raw_runs, |r| r.per_sec),
            rows: vec![fig("signed deliveries through ghboot's receiver", "msg/s", &hook_runs, |r| r.per_sec)],
        },
        Table {
            title: "Webhook ingest: latency p50".into(),
            note: "Per delivery, from sending until the answer (the ack, for raw publishing); median of the runs' p50.".into(),
            baseline: fig("raw JetStream publish p50", "ms", &raw_runs, |r| r.p50),
            rows: vec![fig("receiver p50", "ms", &hook_runs, |r| r.p50)],
        },
        Table {
            title: "Webhook ingest: latency p99".into(),
            note: "As above, the runs' p99.".into(),
            baseline: fig("raw JetStream publish p99", "ms", &raw_runs, |r| r.p99),
            rows: vec![fig("receiver p99", "ms", &hook_runs, |r| r.p99)],
        },
    ])
}
