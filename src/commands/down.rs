use crate::cli::GlobalArgs;
use crate::error::{fail, Kind};
use crate::layout::Layout;
use anyhow::Result;

/// Re-exported: `reset` and `up` stop a supervisor too.
pub use crate::deploy::supervisor::stop;

pub async fn run(g: &GlobalArgs, purge: bool) -> Result<u8> {
    let dir = crate::config::state_dir(g, false)?;
    let layout = Layout::new(dir.clone());
    if !dir.is_dir() {
        eprintln!("nothing to stop: {} does not exist", dir.display());
        return Ok(0);
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
        purge_dir(&layout)?;
        eprintln!("removed {}", dir.display());
    }
    Ok(0)
}

/// Remove a state dir, but only one that ghboot made.
pub fn purge_dir(layout: &Layout) -> Result<()> {
    let root = layout.root();
    let ours = layout.state_file().exists() || layout.lock_file().exists();
    let empty = std::fs::read_dir(root)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !ours && !empty {
        return Err(fail(
            Kind::Data,
            format!(
                "{} does not look like a ghboot state dir; not removing it",
                root.display()
            ),
        )
        .help("remove it yourself if you are sure")
        .into());
    }
    crate::ui::context::remove_for(layout);
    std::fs::remove_dir_all(root).map_err(|e| {
        fail(
            Kind::CantCreate,
            format!("cannot remove {}: {e}", root.display()),
        )
        .help("check its permissions")
    })?;
    Ok(())
}
