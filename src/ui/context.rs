//! The NATS CLI context (ADR-21), so that `nats --context <name> ...` works at once:
//! `$XDG_CONFIG_HOME/nats/context/<name>.json` (default `~/.config`, on every OS), dir 0700, file 0600.

use crate::layout::Layout;
use anyhow::Result;
use std::path::PathBuf;

pub fn context_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".config")))?;
    Some(base.join("nats").join("context"))
}

/// `ghboot` for the default state dir; other instances get a name derived from their dir, so two never
/// overwrite each other's context.
pub fn context_name(layout: &Layout) -> String {
    let default = crate::config::default_state_dir().ok();
    if default.as_deref() == Some(layout.root()) {
        return "ghboot".into();
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(layout.root().to_string_lossy().as_bytes());
    format!("ghboot-{}", &hex::encode(h)[..8])
}

fn description(layout: &Layout) -> String {
    format!("ghboot instance in {}", layout.root().display())
}

pub fn write(layout: &Layout, url: &str, user: &str, password: &str) -> Result<PathBuf> {
    let dir =
        context_dir().ok_or_else(|| anyhow::anyhow!("no config dir for the NATS CLI context"))?;
    crate::fsutil::create_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", context_name(layout)));
    let ctx = serde_json::json!({
        "description": description(layout),
        "url": url,
        "user": user,
        "password": password,
    });
    crate::secret::write_private(&path, &serde_json::to_vec_pretty(&ctx)?)?;
    Ok(path)
}

/// Remove this instance's context, and only if it is still this instance's.
pub fn remove_for(layout: &Layout) {
    let Some(dir) = context_dir() else { return };
    let path = dir.join(format!("{}.json", context_name(layout)));
    let mine = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| {
            v.get("description").and_then(|d| d.as_str()) == Some(&description(layout))
        });
    if mine {
        let _ = std::fs::remove_file(&path);
    }
}

/// The context of one product repository's identity: `<instance context>-<repo>` (`ghboot-web` for the
/// default instance), with its inbox prefix (its permissions allow no other) and JetStream domain.
pub fn repo_context_name(layout: &Layout, repo: &str) -> String {
    format!("{}-{repo}", context_name(layout))
}

pub fn write_repo(
    layout: &Layout,
    repo: &str,
    url: &str,
    user: &str,
    password: &str,
    inbox_prefix: &str,
    domain: Option<&str>,
) -> Result<PathBuf> {
    let dir =
        context_dir().ok_or_else(|| anyhow::anyhow!("no config dir for the NATS CLI context"))?;
    crate::fsutil::create_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", repo_context_name(layout, repo)));
    let ctx = serde_json::json!({
        "description": format!("repository {repo} of the {}", description(layout)),
        "url": url,
        "user": user,
        "password": password,
        "inbox_prefix": inbox_prefix,
        "jetstream_domain": domain.unwrap_or_default(),
    });
    crate::secret::write_private(&path, &serde_json::to_vec_pretty(&ctx)?)?;
    Ok(path)
}

/// Remove a repository's context, if it is this instance's.
pub fn remove_repo(layout: &Layout, repo: &str) {
    let Some(dir) = context_dir() else { return };
    let path = dir.join(format!("{}.json", repo_context_name(layout, repo)));
    let want = format!("repository {repo} of the {}", description(layout));
    let mine = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("description").and_then(|d| d.as_str()) == Some(&want));
    if mine {
        let _ = std::fs::remove_file(&path);
    }
}
