//! `ghboot git-hook`: install dev's post-receive hook into a bare repository, or run it.

use crate::cli::GlobalArgs;
use anyhow::Result;
use std::path::Path;

pub async fn run(g: &GlobalArgs, hook: &str, git_dir: &Path, deliver_to: &str) -> Result<u8> {
    if hook == "install" {
        let (settings, _) = super::maybe_instance(g)?;
        let state = settings
            .layout
            .root()
            .is_dir()
            .then(|| settings.layout.root().to_path_buf());
        crate::controller::hook::install(git_dir, &settings.org, deliver_to, state.as_deref())
            .await?;
        return Ok(0);
    }
    crate::controller::hook::run(hook, git_dir).await
}
