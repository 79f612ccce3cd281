//! Stopping a supervised instance (dev, hybrid, synadia): the ghboot supervisor process, then any of its
//! nats-server children that outlived it.

use crate::layout::Layout;
use crate::state::Runtime;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Stop the supervisor and everything it runs. Returns whether anything was running.
pub async fn stop(layout: &Layout) -> Result<bool> {
    let Some(rt) = Runtime::load(layout) else {
        return Ok(false);
    };
    let mut stopped = false;
    if rt.supervisor_alive() && rt.supervisor_pid != std::process::id() {
        crate::platform::terminate(rt.supervisor_pid);
        // The supervisor stops its children within its own grace period; give it that and a little more.
        stopped = wait_gone(
            rt.supervisor_pid,
            crate::natsd::supervise::STOP_GRACE + Duration::from_secs(5),
        )
        .await;
        if !stopped {
            tracing::warn!(
                "supervisor pid {} ignored SIGTERM; killing it",
                rt.supervisor_pid
            );
            crate::platform::kill(rt.supervisor_pid);
            wait_gone(rt.supervisor_pid, Duration::from_secs(5)).await;
        }
        stopped = true;
    }
    for n in &rt.nodes {
        let ours = crate::platform::exe_of(n.pid)
            .map(|e| e.to_string_lossy().contains("nats-server"))
            .unwrap_or(false);
        if ours && crate::platform::is_alive(n.pid) {
            crate::platform::terminate(n.pid);
            if !wait_gone(n.pid, crate::natsd::supervise::STOP_GRACE).await {
                crate::platform::kill(n.pid);
                wait_gone(n.pid, Duration::from_secs(5)).await;
            }
            stopped = true;
        }
    }
    Runtime::remove(layout);
    Ok(stopped)
}

async fn wait_gone(pid: u32, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if !crate::platform::is_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !crate::platform::is_alive(pid)
}
