use crate::cli::GlobalArgs;
use crate::error::{fail, Kind};
use crate::layout::Layout;
use anyhow::Result;

pub async fn run(g: &GlobalArgs, yes: bool, force: bool) -> Result<u8> {
    let dir = crate::config::state_dir(g, false)?;
    if !dir.exists() {
        eprintln!("nothing to reset: {} does not exist", dir.display());
        return Ok(0);
    }
    let layout = Layout::new(dir.clone());
    // Refuse a dir that is not ghboot's before asking or stopping anything.
    crate::purge::owned_paths(&layout, force)?;
    if !yes {
        use std::io::IsTerminal;
        if g.non_interactive || std::env::var_os("CI").is_some() || !std::io::stdin().is_terminal()
        {
            return Err(fail(
                Kind::Usage,
                format!(
                    "reset deletes everything in {}, JetStream data included",
                    dir.display()
                ),
            )
            .help("pass --yes to confirm")
            .into());
        }
    }
    if !super::confirm::purge_confirmed(g, &layout, yes, "reset").await? {
        eprintln!("nothing changed");
        return Ok(1);
    }
    super::down::stop(&layout).await?;
    if let Ok((settings, _)) = super::existing_instance(g) {
        // what runs outside the supervisor (containers, volumes) goes too
        crate::deploy::for_settings(&settings)
            .stop(&settings, true)
            .await?;
    }
    super::down::purge_dir(&layout, force)?;
    eprintln!("reset: removed {}", dir.display());
    Ok(0)
}
