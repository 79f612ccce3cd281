//! What the status page shows, gathered in one JSON value: the stages from the state file, NATS through the
//! target (health per node, `/varz` of each node) and JetStream (streams, consumers), the receiver's last
//! deliveries and refusals, the controller's counters, workflow state and dead letters.
//!
//! Every source is read with a deadline and may fail on its own: the page then says what it could not read
//! instead of not answering. A snapshot is reused for up to a second, however many tabs are open.

use super::Feeds;
use crate::config::Settings;
use crate::state::{Runtime, StageRecord, StateFile};
use crate::webhook::receive::Reason;
use anyhow::Result;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one source may take before the page shows it as unreadable.
const DEADLINE: Duration = Duration::from_secs(2);
/// A snapshot younger than this is served again.
const FRESH: Duration = Duration::from_millis(900);
/// The last dead letters shown.
const DEAD_LETTERS: usize = 50;

pub struct Source {
    settings: Settings,
    feeds: Feeds,
    cache: Mutex<Option<(Instant, Arc<Value>)>>,
    /// One gathering at a time: concurrent tabs wait for it and share the result.
    gathering: tokio::sync::Mutex<()>,
    client: tokio::sync::Mutex<Option<async_nats::Client>>,
}

impl Source {
    pub fn new(settings: Settings, feeds: Feeds) -> Self {
        Source {
            settings,
            feeds,
            cache: Mutex::new(None),
            gathering: tokio::sync::Mutex::new(()),
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    fn cached(&self) -> Option<Arc<Value>> {
        let c = self.cache.lock().ok()?;
        c.as_ref()
            .filter(|(t, _)| t.elapsed() < FRESH)
            .map(|(_, v)| v.clone())
    }

    pub async fn get(&self) -> Arc<Value> {
        if let Some(v) = self.cached() {
            return v;
        }
        let _one = self.gathering.lock().await;
        if let Some(v) = self.cached() {
            return v;
        }
        let v = Arc::new(self.gather().await);
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((Instant::now(), v.clone()));
        }
        v
    }

    /// A connected client of the instance (made again when the connection is gone).
    pub async fn client(&self) -> Result<async_nats::Client> {
        let mut c = self.client.lock().await;
        if let Some(cl) = c.as_ref() {
            if cl.connection_state() == async_nats::connection::State::Connected {
                return Ok(cl.clone());
            }
        }
        let cl = tokio::time::timeout(DEADLINE, crate::stages::nats::connect(&self.settings))
            .await
            .map_err(|_| anyhow::anyhow!("NATS did not answer within {DEADLINE:?}"))??;
        *c = Some(cl.clone());
        Ok(cl)
    }

    async fn gather(&self) -> Value {
        let s = &self.settings;
        let state = StateFile::load(&s.layout)
            .ok()
            .flatten()
            .unwrap_or_default();
        let rt = Runtime::load(&s.layout);
        let target = crate::deploy::for_settings(s);
        let health = tokio::time::timeout(DEADLINE, target.health(s)).await.ok();
        let client = self.client().await;
        let js = client
            .as_ref()
            .ok()
            .map(|c| crate::deploy::jetstream(s, c.clone()));
        let (nodes, streams, details) = tokio::join!(
            nodes(health.as_ref()),
            async {
                match &js {
                    Some(js) => timed(streams(js)).await,
                    None => Err("not connected".to_string()),
                }
            },
            async {
                if crate::deploy::containers::is_container_mode(s.mode)
                    || crate::deploy::is_synadia(s)
                {
                    tokio::time::timeout(DEADLINE, target.details(s))
                        .await
                        .ok()
                        .flatten()
                } else {
                    None
                }
            }
        );
        let (dead, workflow) = match &js {
            Some(js) => tokio::join!(
                timed(async {
                    let mut l = crate::controller::dlq::list(js, &s.org).await?;
                    let skip = l.len().saturating_sub(DEAD_LETTERS);
                    l.drain(..skip);
                    l.reverse();
                    Ok(serde_json::to_value(l)?)
                }),
                timed(workflow(js, &s.org)),
            ),
            None => (
                Err("not connected".to_string()),
                Err("not connected".to_string()),
            ),
        };
        let version = client
            .as_ref()
            .ok()
            .map(|c| c.server_info().version.clone());
        let stages = stages(&state);
        let done = stages.iter().filter(|v| v["status"] == "done").count();
        let h = health.unwrap_or_default();
        json!({
            "at": now(),
            "mode": s.mode.to_string(),
            "org": s.org,
            "state_dir": s.layout.root(),
            "target": target.name(),
            "describe": target.describe(s),
            "ready": rt.as_ref().is_some_and(|r| r.ready),
            "stages": stages,
            "stages_done": done,
            "nats": {
                "healthy": h.healthy,
                "url": h.url,
                "monitor_url": h.monitor_url,
                "meta_leader": h.meta_leader,
                "jetstream_domain": h.jetstream_domain,
                "remote": h.remote,
                "version": version,
                "connect_error": client.as_ref().err().map(|e| format!("{e:#}")),
                "nodes": nodes,
                "streams": streams.as_ref().ok(),
                "streams_error": streams.as_ref().err(),
            },
            "deliveries": self.deliveries(),
            "controller": controller(&state, rt.as_ref(), dead, workflow),
            "details": details,
        })
    }

    fn deliveries(&self) -> Value {
        let Some(r) = self.feeds.receiver() else {
            return json!({"running": false});
        };
        let m = &r.metrics;
        use std::sync::atomic::Ordering::Relaxed;
        let refused: Vec<Value> = Reason::ALL
            .iter()
            .map(|x| json!({"reason": x.label(), "status": x.status().as_u16(), "count": m.rejected(*x)}))
            .collect();
        json!({
            "running": true,
            "path": r.config().path,
            "received": m.received.load(Relaxed),
            "published": m.published.load(Relaxed),
            "duplicates": m.duplicates.load(Relaxed),
            "refused_total": refused.iter().map(|v| v["count"].as_u64().unwrap_or(0)).sum::<u64>(),
            "refused": refused,
            "recent": r.recent.list(),
        })
    }
}

async fn timed<F: std::future::Future<Output = Result<Value>>>(
    f: F,
) -> std::result::Result<Value, String> {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {DEADLINE:?}")),
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn stages(state: &StateFile) -> Vec<Value> {
    crate::stages::NAMES
        .iter()
        .map(|n| {
            let rec = state
                .stage(n)
                .cloned()
                .unwrap_or_else(|| StageRecord::new(n));
            let duration = rec
                .duration_ms
                .map(|ms| format!("{:.1} s", ms as f64 / 1000.0));
            json!({
                "name": n,
                "status": rec.live_status(),
                "duration": duration,
                "reason": rec.reason,
                "error": rec.last_error,
                "help": rec.last_help,
                "summary": rec.outputs.get("summary"),
                "finished_at": rec.finished_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            })
        })
        .collect()
}

/// Each node as the target sees it, with version and connections from its own `/varz`.
async fn nodes(h: Option<&crate::deploy::Health>) -> Vec<Value> {
    let Some(h) = h else { return vec![] };
    let client = crate::natsd::supervise::http_client();
    let mut out = Vec::new();
    for n in &h.nodes {
        let varz: Option<Value> = async {
            let r = client
                .get(format!("{}/varz", n.monitor_url.trim_end_matches('/')))
                .send()
                .await
                .ok()?;
            r.json().await.ok()
        }
        .await;
        let v = varz.unwrap_or(Value::Null);
        out.push(json!({
            "name": n.name,
            "healthy": n.healthy,
            "alive": n.alive,
            "pid": n.pid,
            "url": n.url,
            "restarts": n.restarts,
            "version": v.get("version"),
            "connections": v.get("connections"),
            "server_name": v.get("server_name"),
            "meta_leader": h.meta_leader.as_deref().is_some_and(|l| v.get("server_name").and_then(|s| s.as_str()) == Some(l) || l == n.name),
        }));
    }
    out
}

/// Streams with messages/bytes, and their consumers with pending and ack-pending.
async fn streams(js: &async_nats::jetstream::Context) -> Result<Value> {
    let mut list = Vec::new();
    let mut infos = js.streams();
    while let Some(info) = infos.next().await {
        let info = info?;
        let mut consumers = Vec::new();
        if let Ok(st) = js.get_stream(&info.config.name).await {
            let mut cs = st.consumers();
            while let Some(c) = cs.next().await {
                let Ok(c) = c else { continue };
                consumers.push(json!({
                    "name": c.name,
                    "pending": c.num_pending,
                    "ack_pending": c.num_ack_pending,
                    "redelivered": c.num_redelivered,
                }));
            }
        }
        list.push(json!({
            "name": info.config.name,
            "subjects": info.config.subjects,
            "messages": info.state.messages,
            "bytes": info.state.bytes,
            "replicas": info.config.num_replicas,
            "consumers": consumers,
        }));
    }
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Value::Array(list))
}

/// The org's workflow state, when the bucket exists (never made here).
async fn workflow(js: &async_nats::jetstream::Context, org: &str) -> Result<Value> {
    let Ok(kv) = js
        .get_key_value(crate::topology::subjects::WORKFLOWS_BUCKET)
        .await
    else {
        return Ok(Value::Null);
    };
    let key = crate::controller::workflow::Workflow::key(org);
    Ok(match kv.get(&key).await? {
        Some(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        None => Value::Null,
    })
}

fn controller(
    state: &StateFile,
    rt: Option<&Runtime>,
    dead: std::result::Result<Value, String>,
    workflow: std::result::Result<Value, String>,
) -> Value {
    let stats = rt
        .and_then(|r| r.components.get(crate::stages::controller::TASK))
        .cloned()
        .unwrap_or(Value::Null);
    let heartbeat_age = stats["heartbeat"].as_str().and_then(|hb| {
        time::OffsetDateTime::parse(hb, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
    });
    let round_trip = state
        .stage("self-management")
        .and_then(|r| r.outputs.get("last_round_trip"))
        .cloned();
    json!({
        "running": !stats.is_null(),
        "stats": stats,
        "heartbeat_age_s": heartbeat_age,
        "last": flat(&stats["last"]),
        "last_round_trip": round_trip.as_ref().map(flat),
        "workflow": workflow.as_ref().ok(),
        "workflow_error": workflow.as_ref().err(),
        "dead_letters": dead.as_ref().ok(),
        "dead_letters_error": dead.as_ref().err(),
    })
}

/// A JSON object as `key: value` pairs for a definition list (nested values as compact JSON).
fn flat(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    json!([k, v])
                })
                .collect(),
        ),
        Value::Null => Value::Null,
        other => json!([["value", other.to_string()]]),
    }
}
