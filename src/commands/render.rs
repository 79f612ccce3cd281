use crate::cli::GlobalArgs;
use anyhow::Result;
use std::path::Path;

/// `ghboot render --mode kubernetes|docker --out DIR`: write the deployment files, apply nothing.
pub async fn run(g: &GlobalArgs, out: &Path) -> Result<u8> {
    let (mut settings, _) = super::maybe_instance(g)?;
    if settings.mode == crate::cli::Mode::Auto {
        crate::deploy::auto::resolve(&mut settings).await;
        eprintln!("{}", settings.mode_reason.as_deref().unwrap_or_default());
    }
    // A Compose file runs as rendered only with images that exist: build them now, named as docker mode
    // names them (no registry here or anywhere on the way).
    let images = if settings.mode == crate::cli::Mode::Docker {
        Some(crate::deploy::docker::images::build_for_render(&settings).await?)
    } else {
        None
    };
    let written = crate::deploy::docker::render::write_with(&settings, out, images.as_ref())?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"mode": settings.mode, "files": written})
        );
    } else {
        for f in &written {
            println!("{f}");
        }
        eprintln!(
            "rendered {} file(s) for --mode {}; nothing applied",
            written.len(),
            settings.mode
        );
    }
    Ok(0)
}
