//! The dev "GitHub": a local bare repository whose `post-receive` hook turns each ref update into a real,
//! GitHub-shaped push payload and delivers it — signed, through the webhook receiver
//! (`ghboot webhook send`), or (`nats:URL`, for module tests without a receiver) straight into the events
//! stream the way the receiver would.
use super::regenerate::run_git;
use crate::topology::subjects;
use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

const ZERO: &str = "0000000000000000000000000000000000000000";
/// GitHub puts at most this many commits in a push payload.
const MAX_COMMITS: usize = 20;

/// Create (if missing) a bare repository with `main` as its default branch and install the hook.
/// `deliver` is `webhook` or `nats:URL`.
pub async fn install(
    bare: &Path,
    org: &str,
    deliver: &str,
    state_dir: Option<&Path>,
) -> Result<()> {
    if !bare.join("HEAD").exists() {
        std::fs::create_dir_all(bare)?;
        run_git(
            None,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                &bare.to_string_lossy(),
            ],
        )
        .await?;
    }
    let name = bare
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
        .unwrap_or_default();
    run_git(Some(bare), &["config", "ghboot.org", org]).await?;
    run_git(Some(bare), &["config", "ghboot.repo", &name]).await?;
    run_git(Some(bare), &["config", "ghboot.deliver", deliver]).await?;
    let exe = std::env::current_exe().context("cannot find ghboot's own executable")?;
    let q = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"));
    let env = state_dir
        .map(|d| format!("GHBOOT_STATE_DIR={} ", q(d)))
        .unwrap_or_default();
    let script = format!(
        "#!/bin/sh\n# Installed by ghboot: delivers a GitHub-shaped push event for every ref update.\n{env}exec {} git-hook post-receive --git-dir \"$(pwd)\"\n",
        q(&exe)
    );
    let hook = bare.join("hooks").join("post-receive");
    std::fs::create_dir_all(bare.join("hooks"))?;
    crate::fsutil::write_atomic_mode(&hook, script.as_bytes(), 0o755)?;
    Ok(())
}

/// The post-receive hook: one push event per updated ref, read from stdin. (`install` is resolved by
/// `commands::git_hook`, which knows the instance.)
pub async fn run(hook: &str, git_dir: &Path) -> Result<u8> {
    if hook != "post-receive" {
        anyhow::bail!("unknown hook {hook}");
    }
    let mut lines = Vec::new();
    for line in std::io::stdin().lock().lines() {
        lines.push(line?);
    }
    let mut failed = false;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [old, new, r#ref] = parts[..] else {
            continue;
        };
        match deliver(git_dir, old, new, r#ref).await {
            Ok(()) => {}
            Err(e) => {
                eprintln!("ghboot: push event for {ref} not delivered: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

async fn commit_json(dir: &Path, sha: &str, org: &str, repo: &str) -> Result<serde_json::Value> {
    let raw = run_git(
        Some(dir),
        &[
            "show",
            "-s",
            "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B",
            sha,
        ],
    )
    .await?;
    let f: Vec<&str> = raw.splitn(7, '\0').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
    let status = run_git(
        Some(dir),
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-status",
            "-r",
            "--root",
            sha,
        ],
    )
    .await?;
    let (mut added, mut removed, mut modified) = (vec![], vec![], vec![]);
    for l in status.lines() {
        let mut it = l.splitn(2, '\t');
        let (s, path) = (it.next().unwrap_or(""), it.next().unwrap_or("").to_string());
        match s.chars().next() {
            Some('A') => added.push(path),
            Some('D') => removed.push(path),
            _ => modified.push(path),
        }
    }
    Ok(serde_json::json!({
        "id": get(0), "tree_id": "", "distinct": true, "message": get(6).trim_end(), "timestamp": get(5),
        "url": format!("https://github.com/{org}/{repo}/commit/{}", get(0)),
        "author": {"name": get(1), "email": get(2), "username": get(1)},
        "committer": {"name": get(3), "email": get(4), "username": get(3)},
        "added": added, "removed": removed, "modified": modified,
    }))
}

/// The push payload GitHub would send for one ref update.
pub async fn payload(
    dir: &Path,
    org: &str,
    repo: &str,
    old: &str,
    new: &str,
    r#ref: &str,
) -> Result<serde_json::Value> {
    let deleted = new == ZERO;
    let created = old == ZERO;
    let mut commits = Vec::new();
    if !deleted {
        let range = if created {
            new.to_string()
        } else {
            format!("{old}..{new}")
        };
        let revs = run_git(Some(dir), &["rev-list", "--reverse", &range]).await?;
        let revs: Vec<&str> = revs.lines().collect();
        for sha in revs.iter().skip(revs.len().saturating_sub(MAX_COMMITS)) {
            commits.push(commit_json(dir, sha, org, repo).await?);
        }
    }
    let head = commits.last().cloned().unwrap_or(serde_json::Value::Null);
    let pusher_name = head["committer"]["name"]
        .as_str()
        .unwrap_or("ghboot-dev")
        .to_string();
    let pusher_email = head["committer"]["email"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let clone_url = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .to_string();
    Ok(serde_json::json!({
        "ref": r#ref, "before": old, "after": new, "created": created, "deleted": deleted, "forced": false,
        "base_ref": null, "compare": format!("https://github.com/{org}/{repo}/compare/{old}...{new}"),
        "commits": commits, "head_commit": head,
        "repository": {
            "name": repo, "full_name": format!("{org}/{repo}"), "private": true, "default_branch": "main",
            "clone_url": clone_url, "owner": {"login": org, "name": org},
        },
        "pusher": {"name": pusher_name, "email": pusher_email},
        "organization": {"login": org},
        "sender": {"login": pusher_name, "type": "User"},
    }))
}

async fn deliver(dir: &Path, old: &str, new: &str, r#ref: &str) -> Result<()> {
    let org = run_git(Some(dir), &["config", "ghboot.org"]).await?;
    let repo = run_git(Some(dir), &["config", "ghboot.repo"]).await?;
    let how = run_git(Some(dir), &["config", "ghboot.deliver"])
        .await
        .unwrap_or_else(|_| "webhook".into());
    let body = payload(dir, &org, &repo, old, new, r#ref).await?;
    let delivery = uuid::Uuid::new_v4().to_string();
    if let Some(url) = how.strip_prefix("nats:") {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        let js = async_nats::jetstream::new(client.clone());
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", delivery.as_str());
        h.insert("X-GitHub-Event", "push");
        h.insert("X-GitHub-Delivery", delivery.as_str());
        let subject = subjects::event_subject(&org, Some(&repo), "push");
        js.publish_with_headers(subject, h, serde_json::to_vec(&body)?.into())
            .await?
            .await
            .context("the events stream did not store the push")?;
        client.flush().await?;
        return Ok(());
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&body)?)?;
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args([
            "webhook",
            "send",
            "--event",
            "push",
            "--delivery",
            &delivery,
            "--payload",
        ])
        .arg(file.path())
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "webhook send failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
