use crate::cli::GlobalArgs;
use crate::state::{Runtime, StageRecord};
use anyhow::Result;

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let (settings, state) = super::existing_instance(g)?;
    let target = crate::deploy::for_settings(&settings);
    let h = target.health(&settings).await;
    let details = if h.supervisor_alive {
        target.details(&settings).await
    } else {
        None
    };
    let rt = Runtime::load(&settings.layout).filter(|_| h.supervisor_alive);
    let stages: Vec<serde_json::Value> = crate::stages::NAMES
        .iter()
        .map(|n| {
            let rec = state
                .stage(n)
                .cloned()
                .unwrap_or_else(|| StageRecord::new(n));
            let mut v = serde_json::json!({"name": n, "status": rec.live_status()});
            if let Some(r) = &rec.reason {
                v["reason"] = r.clone().into();
            }
            if let Some(e) = &rec.last_error {
                v["error"] = e.clone().into();
            }
            if let Some(d) = rec.duration_ms {
                v["duration_ms"] = d.into();
            }
            if let Some(t) = rec.finished_at.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }) {
                v["finished_at"] = t.into();
            }
            if let Some(x) = rec.outputs.get("summary") {
                v["summary"] = x.clone();
            }
            if let Some(x) = rec.outputs.get("last_round_trip") {
                v["last_round_trip"] = x.clone();
            }
            v
        })
        .collect();
    let webhook = crate::webhook::status(&settings, &state).await;
    let drift = drift(&settings, &state, h.healthy).await;
    let restarting: Vec<String> = Runtime::load(&settings.layout)
        .filter(|_| h.supervisor_alive)
        .map(|r| {
            r.nodes
                .iter()
                .filter_map(|n| {
                    n.restarting
                        .as_ref()
                        .map(|x| format!("{}: {}", n.name, x.describe()))
                })
                .collect()
        })
        .unwrap_or_default();
    let uptime = rt
        .as_ref()
        .and_then(|r| r.started_at)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds());
    let out = serde_json::json!({
        "state_dir": settings.layout.root(),
        "mode": settings.mode,
        "nats_type": settings.nats_type,
        "org": settings.org,
        "stages": stages,
        "target": target.name(),
        "nats": {
            "url": h.url, "monitor_url": h.monitor_url, "healthy": h.healthy, "pid": h.pid, "nodes": h.nodes,
            "meta_leader": h.meta_leader, "jetstream_domain": h.jetstream_domain, "remote": h.remote,
            "replicas": target.replicas(&settings), "jetstream": details,
        },
        "supervisor": {
            "pid": h.supervisor_pid, "alive": h.supervisor_alive, "uptime_s": uptime,
            "responsive": rt.as_ref().map(|r| r.supervisor_responsive()),
            "heartbeat_age_s": rt.as_ref().and_then(|r| r.heartbeat_age()),
            "restart_budget_exceeded": rt.as_ref().and_then(|r| r.budget_exceeded.clone()),
        },
        "healthy": drift.is_empty(),
        "drift": drift,
        "restarting": restarting,
        "components": rt.as_ref().map(|r| r.components.clone()).unwrap_or_default(),
        "webhook": webhook,
    });
    if g.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!(
        "ghboot instance in {} ({} mode, org {})",
        settings.layout.root().display(),
        settings.mode,
        settings.org
    );
    println!();
    println!("{:<17} {:<8} DETAIL", "STAGE", "STATUS");
    for s in &stages {
        let detail = s
            .get("error")
            .or(s.get("reason"))
            .or(s.get("summary"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        println!(
            "{:<17} {:<8} {}",
            s["name"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            first_line(detail)
        );
    }
    println!();
    let yes = |b: bool| if b { "healthy" } else { "DOWN" };
    println!("{:<17} {}", "nats", yes(h.healthy));
    for r in &restarting {
        println!("  {r}");
    }
    for n in &h.nodes {
        println!(
            "  {:<15} pid {} {} {} (restarts {})",
            n.name,
            n.pid,
            n.url,
            if n.healthy { "healthy" } else { "down" },
            n.restarts
        );
    }
    if let Some(m) = &h.monitor_url {
        println!("  {:<15} {m}", "monitoring");
    }
    if let Some(l) = &h.meta_leader {
        println!("  {:<15} {l}", "meta leader");
    }
    if let Some(d) = &h.jetstream_domain {
        println!("  {:<15} {d}", "js domain");
    }
    if let Some(r) = &h.remote {
        println!("  {:<15} {}", "remote", r);
    }
    for st in details
        .as_ref()
        .and_then(|d| d.get("streams"))
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        println!(
            "  stream {:<8} R{} leader {} messages {}",
            st["name"].as_str().unwrap_or(""),
            st["replicas"].as_u64().unwrap_or(1),
            st["leader"].as_str().unwrap_or("-"),
            st["messages"].as_u64().unwrap_or(0)
        );
    }
    let stale = rt
        .as_ref()
        .filter(|r| !r.supervisor_responsive())
        .and_then(|r| r.heartbeat_age());
    match h.supervisor_pid {
        Some(p) if stale.is_some() => println!(
            "{:<17} pid {p} NOT RESPONDING (heartbeat {}s old: stopped or hung?)",
            "supervisor",
            stale.unwrap_or_default()
        ),
        Some(p) if h.supervisor_alive => {
            println!(
                "{:<17} pid {p}, up {}",
                "supervisor",
                uptime.map(|s| format!("{s}s")).unwrap_or_default()
            )
        }
        _ if !crate::deploy::for_settings(&settings).supervises() => {
            println!(
                "{:<17} none: the {} deployment keeps itself running (`ghboot down` removes it)",
                "supervisor", settings.mode
            )
        }
        _ => println!(
            "{:<17} not running (start with `ghboot up --detach`)",
            "supervisor"
        ),
    }
    let wh = &out["webhook"];
    if let Some(url) = wh["url"].as_str() {
        let ready = if wh["ready"] == true {
            "ready"
        } else {
            "NOT READY"
        };
        println!("{:<17} {ready} {url}", "webhook receiver");
    }
    let ctl = &out["components"]["controller"];
    if let Some(hb) = ctl["heartbeat"].as_str() {
        let age = time::OffsetDateTime::parse(hb, &time::format_description::well_known::Rfc3339)
            .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
            .unwrap_or(-1);
        println!(
            "{:<17} heartbeat {age}s ago; {} regeneration(s), {} own push(es) ignored, {} dead-lettered",
            "controller",
            ctl["regenerations"].as_u64().unwrap_or(0),
            ctl["ignored_self"].as_u64().unwrap_or(0),
            ctl["dead_lettered"].as_u64().unwrap_or(0)
        );
    }
    if let Some(b) = out["supervisor"]["restart_budget_exceeded"].as_str() {
        println!("{:<17} {b}", "warning");
    }
    println!();
    if drift.is_empty() {
        println!("healthy: `ghboot plan` would change nothing");
    } else {
        println!("NOT HEALTHY: {}", drift.join("; "));
    }
    Ok(0)
}

/// Why the instance is not what `up` made: empty exactly when NATS is healthy and the nats and controller
/// stages would plan no change (streams, buckets and the controller's consumer all exist).
async fn drift(
    settings: &crate::config::Settings,
    state: &crate::state::StateFile,
    nats_healthy: bool,
) -> Vec<String> {
    if !nats_healthy {
        return vec!["nats is not healthy".into()];
    }
    let mut ctx = crate::engine::Ctx {
        settings: settings.clone(),
        state: state.clone(),
        role: crate::engine::Role::Client,
        reporter: crate::ui::Reporter::quiet(),
        nats: None,
    };
    let stages: Vec<Box<dyn crate::engine::Stage>> = crate::stages::all()
        .into_iter()
        .filter(|s| matches!(s.name(), "nats" | "controller"))
        .collect();
    let plans = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::engine::plan(&mut ctx, &stages),
    )
    .await;
    match plans {
        Err(_) => vec!["NATS did not answer within 10s".into()],
        Ok(Err(e)) => vec![format!("{e:#}")],
        Ok(Ok(plans)) => plans
            .into_iter()
            .flat_map(|(stage, p)| {
                p.unwrap_or_default()
                    .into_iter()
                    .map(move |c| format!("{stage}: {} {}", c.action, c.resource))
            })
            .collect(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
