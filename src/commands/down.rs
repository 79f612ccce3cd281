use crate::cli::GlobalArgs;
use crate::layout::Layout;
use anyhow::Result;

/// Re-exported: `reset` and `up` stop a supervisor too.
pub use crate::deploy::supervisor::stop;

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
            crate::deploy::containers::keep_recorded_mode(&mut settings, &state);
            crate::deploy::for_settings(&settings)
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
