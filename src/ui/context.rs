//! The NATS CLI context (ADR-21), so that `nats --context <name> ...` works at once:
//! `$XDG_CONFIG_HOME/nats/context/<name>.json` (default `~/.config`, on every OS), dir 0700, file 0600.

use crate::layout::Layout;
use anyhow::Result;
use std::path::{Path, PathBuf};

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

/// What a context carries (natscli's field names); empty fields are left out.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub url: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    /// a .creds file (Synadia Cloud, a hybrid leaf's hub account)
    pub creds: &'a str,
    /// where JetStream answers when it is not the server's own (Synadia, a hybrid leaf)
    pub jetstream_domain: &'a str,
}

/// The context JSON: natscli reads `creds` and `jetstream_domain` alongside url/user/password.
pub fn json(layout: &Layout, f: &Fields) -> serde_json::Value {
    let mut ctx = serde_json::json!({"description": description(layout), "url": f.url});
    for (k, v) in [
        ("user", f.user),
        ("password", f.password),
        ("creds", f.creds),
        ("jetstream_domain", f.jetstream_domain),
    ] {
        if !v.is_empty() {
            ctx[k] = v.into();
        }
    }
    ctx
}

pub fn write(layout: &Layout, f: &Fields) -> Result<PathBuf> {
    let dir =
        context_dir().ok_or_else(|| anyhow::anyhow!("no config dir for the NATS CLI context"))?;
    crate::fsutil::create_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", context_name(layout)));
    let ctx = json(layout, f);
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

/// True when everything under `dir` is a NATS CLI context this instance wrote: where `XDG_CONFIG_HOME` lies
/// inside the state dir (CI jobs and tests do that), purging the instance may take its contexts along.
pub fn only_own_contexts_under(layout: &Layout, dir: &Path) -> bool {
    let Some(cd) = context_dir() else {
        return false;
    };
    if !cd.starts_with(dir) {
        return false;
    }
    let own = description(layout);
    let repo_suffix = format!(" of the {own}");
    fn walk(p: &Path, files: &mut Vec<PathBuf>) -> bool {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => rd.filter_map(|e| e.ok()).all(|e| walk(&e.path(), files)),
                Err(_) => false,
            },
            Ok(m) if m.is_file() => {
                files.push(p.to_path_buf());
                true
            }
            _ => false,
        }
    }
    let mut files = Vec::new();
    if !walk(dir, &mut files) {
        return false;
    }
    files.iter().all(|f| {
        f.parent() == Some(cd.as_path())
            && f.extension().is_some_and(|e| e == "json")
            && std::fs::read(f)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| {
                    v.get("description")
                        .and_then(|d| d.as_str())
                        .map(String::from)
                })
                .is_some_and(|d| {
                    d == own || (d.starts_with("repository ") && d.ends_with(&repo_suffix))
                })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_and_domain_are_carried_and_empty_fields_left_out() {
        let layout = Layout::new(std::path::PathBuf::from("/tmp/ghboot-ctx-test"));
        let v = json(
            &layout,
            &Fields {
                url: "tls://connect.ngs.global",
                creds: "/s/ngs.creds",
                jetstream_domain: "leaf",
                ..Default::default()
            },
        );
        assert_eq!(v["creds"], "/s/ngs.creds");
        assert_eq!(v["jetstream_domain"], "leaf");
        assert!(v.get("user").is_none() && v.get("password").is_none());
        let v = json(
            &layout,
            &Fields {
                url: "nats://127.0.0.1:4222",
                user: "u",
                password: "p",
                ..Default::default()
            },
        );
        assert_eq!(v["user"], "u");
        assert!(v.get("creds").is_none() && v.get("jetstream_domain").is_none());
    }
}
