//! `ghboot status`: one typed [`Report`] of the instance, built once, then printed as JSON (`--json`) or as
//! text.

use crate::cli::GlobalArgs;
use crate::config::{Mode, NatsType, Settings};
use crate::deploy::NodeHealth;
use crate::state::{Runtime, StageRecord, StageStatus, StateFile};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let (settings, state) = super::existing_instance(g)?;
    let report = report(&settings, &state).await;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(0)
}

/// What `status` knows about an instance. Its JSON is `status --json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub state_dir: std::path::PathBuf,
    pub mode: Mode,
    pub nats_type: NatsType,
    pub org: String,
    pub stages: Vec<StageRow>,
    pub target: &'static str,
    pub nats: NatsReport,
    pub supervisor: SupervisorReport,
    /// What the live supervisor's components (receiver, controller) publish in the runtime file.
    pub components: BTreeMap<String, serde_json::Value>,
    pub webhook: serde_json::Value,
    /// The target keeps itself running (containers): no supervisor is expected.
    #[serde(skip)]
    pub self_running: bool,
}

#[derive(Debug, Serialize)]
pub struct StageRow {
    pub name: String,
    pub status: StageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_round_trip: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct NatsReport {
    pub url: Option<String>,
    pub monitor_url: Option<String>,
    pub healthy: bool,
    pub pid: Option<u32>,
    pub nodes: Vec<NodeHealth>,
    pub meta_leader: Option<String>,
    pub jetstream_domain: Option<String>,
    pub remote: Option<serde_json::Value>,
    pub replicas: usize,
    /// Streams and their replicas (read from a live deployment only).
    pub jetstream: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct SupervisorReport {
    pub pid: Option<u32>,
    pub alive: bool,
    pub uptime_s: Option<i64>,
}

fn stage_row(name: &str, state: &StateFile) -> StageRow {
    let rec = state
        .stage(name)
        .cloned()
        .unwrap_or_else(|| StageRecord::new(name));
    StageRow {
        name: name.to_string(),
        status: rec.live_status(),
        reason: rec.reason.clone(),
        error: rec.last_error.clone(),
        duration_ms: rec.duration_ms,
        finished_at: rec.finished_at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        summary: rec.outputs.get("summary").cloned(),
        last_round_trip: rec.outputs.get("last_round_trip").cloned(),
    }
}

/// Read everything once: the state file, the runtime file, and the live deployment through its target.
pub async fn report(settings: &Settings, state: &StateFile) -> Report {
    let target = crate::deploy::for_settings(settings);
    let h = target.health(settings).await;
    let jetstream = if h.supervisor_alive {
        target.details(settings).await
    } else {
        None
    };
    let rt = Runtime::load(&settings.layout).filter(|_| h.supervisor_alive);
    let uptime_s = rt
        .as_ref()
        .and_then(|r| r.started_at)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds());
    Report {
        state_dir: settings.layout.root().to_path_buf(),
        mode: settings.mode,
        nats_type: settings.nats_type,
        org: settings.org.clone(),
        stages: crate::stages::NAMES
            .iter()
            .map(|n| stage_row(n, state))
            .collect(),
        target: target.name(),
        nats: NatsReport {
            url: h.url,
            monitor_url: h.monitor_url,
            healthy: h.healthy,
            pid: h.pid,
            nodes: h.nodes,
            meta_leader: h.meta_leader,
            jetstream_domain: h.jetstream_domain,
            remote: h.remote,
            replicas: target.replicas(settings),
            jetstream,
        },
        supervisor: SupervisorReport {
            pid: h.supervisor_pid,
            alive: h.supervisor_alive,
            uptime_s,
        },
        components: rt.map(|r| r.components).unwrap_or_default(),
        webhook: crate::webhook::status(settings, state).await,
        self_running: !target.supervises(),
    }
}

/// The text form of a [`Report`].
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "ghboot instance in {} ({} mode, org {})",
        r.state_dir.display(),
        r.mode,
        r.org
    ));
    line(String::new());
    line(format!("{:<17} {:<8} DETAIL", "STAGE", "STATUS"));
    for s in &r.stages {
        let detail = s
            .error
            .as_deref()
            .or(s.reason.as_deref())
            .or(s.summary.as_ref().and_then(|v| v.as_str()))
            .unwrap_or("");
        line(format!(
            "{:<17} {:<8} {}",
            s.name,
            status_word(s.status),
            first_line(detail)
        ));
    }
    line(String::new());
    let n = &r.nats;
    line(format!(
        "{:<17} {}",
        "nats",
        if n.healthy { "healthy" } else { "DOWN" }
    ));
    for node in &n.nodes {
        line(format!(
            "  {:<15} pid {} {} {} (restarts {})",
            node.name,
            node.pid,
            node.url,
            if node.healthy { "healthy" } else { "down" },
            node.restarts
        ));
    }
    for (label, v) in [
        ("monitoring", &n.monitor_url),
        ("meta leader", &n.meta_leader),
        ("js domain", &n.jetstream_domain),
    ] {
        if let Some(v) = v {
            line(format!("  {label:<15} {v}"));
        }
    }
    if let Some(remote) = &n.remote {
        line(format!("  {:<15} {}", "remote", remote));
    }
    for st in n
        .jetstream
        .as_ref()
        .and_then(|d| d.get("streams"))
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        line(format!(
            "  stream {:<8} R{} leader {} messages {}",
            st["name"].as_str().unwrap_or(""),
            st["replicas"].as_u64().unwrap_or(1),
            st["leader"].as_str().unwrap_or("-"),
            st["messages"].as_u64().unwrap_or(0)
        ));
    }
    line(match r.supervisor.pid {
        Some(p) if r.supervisor.alive => format!(
            "{:<17} pid {p}, up {}",
            "supervisor",
            r.supervisor
                .uptime_s
                .map(|s| format!("{s}s"))
                .unwrap_or_default()
        ),
        _ if r.self_running => format!(
            "{:<17} none: the {} deployment keeps itself running (`ghboot down` removes it)",
            "supervisor", r.mode
        ),
        _ => format!(
            "{:<17} not running (start with `ghboot up --detach`)",
            "supervisor"
        ),
    });
    if let Some(url) = r.webhook["url"].as_str() {
        let ready = if r.webhook["ready"] == true {
            "ready"
        } else {
            "NOT READY"
        };
        line(format!("{:<17} {ready} {url}", "webhook receiver"));
    }
    if let Some(ctl) = r.components.get("controller") {
        if let Some(hb) = ctl["heartbeat"].as_str() {
            let age =
                time::OffsetDateTime::parse(hb, &time::format_description::well_known::Rfc3339)
                    .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
                    .unwrap_or(-1);
            line(format!(
                "{:<17} heartbeat {age}s ago; {} regeneration(s), {} own push(es) ignored, {} dead-lettered",
                "controller",
                ctl["regenerations"].as_u64().unwrap_or(0),
                ctl["ignored_self"].as_u64().unwrap_or(0),
                ctl["dead_lettered"].as_u64().unwrap_or(0)
            ));
        }
    }
    out
}

fn status_word(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Pending => "pending",
        StageStatus::Running => "running",
        StageStatus::Done => "done",
        StageStatus::Failed => "failed",
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
