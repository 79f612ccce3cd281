use crate::cli::GlobalArgs;
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

pub async fn run(g: &GlobalArgs, purge: bool, yes: bool, force: bool) -> Result<u8> {
    let dir = crate::config::state_dir(g, false)?;
    let layout = Layout::new(dir.clone());
    if !dir.is_dir() {
        eprintln!("nothing to stop: {} does not exist", dir.display());
        return Ok(0);
    }
    if purge {
        // Refuse before asking or stopping anything: a dir that is not ghboot's is left exactly as it was.
        crate::purge::owned_paths(&layout, force)?;
    }
    if purge && !super::confirm::purge_confirmed(g, &layout, yes, "down --purge").await? {
        eprintln!(
            "nothing changed: {} kept, the instance left as it was",
            dir.display()
        );
        return Ok(1);
    }
    // Ask the instance's target (it may run things outside the supervisor: containers, ...).
    let stopped = match super::maybe_instance(g) {
        Ok((mut settings, Some(state))) => {
            crate::containers::keep_recorded_mode(&mut settings, &state);
            crate::target::for_settings(&settings)
                .stop(&settings, purge)
                .await?
        }
        _ => stop(&layout).await?,
    };
    eprintln!(
        "{}",
        if stopped {
            format!("stopped the instance in {}", dir.display())
        } else {
            "nothing was running".to_string()
        }
    );
    if purge {
        purge_dir(&layout, force)?;
        eprintln!("removed {}", dir.display());
    }
    Ok(0)
}

/// Remove a state dir, but only one that ghboot made, and there only ghboot's paths (see `crate::purge`).
pub fn purge_dir(layout: &Layout, force: bool) -> Result<()> {
    // the product repositories' contexts go with the instance
    if let Ok(reg) = crate::repos::Registry::load(layout) {
        for name in reg.repos.keys() {
            crate::ui::context::remove_repo(layout, name);
        }
    }
    crate::purge::purge(layout, force)
}
