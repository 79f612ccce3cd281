//! One regeneration on a git repository (local path or clone URL) with the `git` CLI: clone, render, commit
//! with `[skip-regen]` as the controller's identity, push; a push rejected because the branch moved is
//! retried on the new head. Rendering is idempotent, so a regeneration of an up-to-date head commits nothing
//! (that is what makes a retry after a crash safe: no duplicate commit).
use super::templates::{self, Source, Vars, SKIP_MARKER};
use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Job {
    pub repo: String,
    pub branch: String,
    pub templates: Option<PathBuf>,
    pub vars: Vars,
    pub fencing_token: u64,
    pub push_attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The branch head the files were rendered from.
    pub head: String,
    /// The commit pushed, if anything changed.
    pub commit: Option<String>,
    pub files: Vec<String>,
    pub attempts: u32,
    pub duration_ms: u64,
}

/// A `git` command with no GIT_* variables inherited (a hook's environment must not leak in).
pub fn git(dir: Option<&Path>) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            c.env_remove(k);
        }
    }
    c.env("GIT_TERMINAL_PROMPT", "0");
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    c.stdin(std::process::Stdio::null()).kill_on_drop(true);
    c
}

pub async fn run_git(dir: Option<&Path>, args: &[&str]) -> Result<String> {
    let out = git(dir)
        .args(args)
        .output()
        .await
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Test hook: `GHBOOT_CONTROLLER_TEST_PAUSE=before_push:FILE` (or `after_push:FILE`) creates FILE at that
/// point and waits forever, so that a test can kill the controller exactly there.
async fn test_pause(point: &str) {
    if let Ok(v) = std::env::var("GHBOOT_CONTROLLER_TEST_PAUSE") {
        if let Some((p, file)) = v.split_once(':') {
            if p == point {
                let _ = std::fs::write(file, std::process::id().to_string());
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Regenerate. `fence` is called right before each push: it must fail when this process no longer holds
/// the org's lock (so a stale holder never pushes).
pub async fn regenerate<F, Fut>(job: &Job, mut fence: F) -> Result<Outcome>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("ghboot-regen-")
        .tempdir()
        .context("cannot create a work dir")?;
    let dir = tmp.path().join("repo");
    let dir_s = dir.to_string_lossy().to_string();
    run_git(
        None,
        &[
            "clone",
            "-q",
            "--branch",
            &job.branch,
            "--single-branch",
            &job.repo,
            &dir_s,
        ],
    )
    .await
    .map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot clone {} (branch {}): {e:#}", job.repo, job.branch),
        )
    })?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let head = run_git(Some(&dir), &["rev-parse", "HEAD"]).await?;
        let source = Source::resolve(&dir, job.templates.as_deref());
        let rendered = templates::render(&source, &job.vars)?;
        let written = templates::write(&dir, &rendered, false)?;
        run_git(Some(&dir), &["add", "-A"]).await?;
        let unchanged = git(Some(&dir))
            .args(["diff", "--cached", "--quiet"])
            .status()
            .await?
            .success();
        if unchanged {
            return Ok(Outcome {
                head,
                commit: None,
                files: vec![],
                attempts,
                duration_ms: t0.elapsed().as_millis() as u64,
            });
        }
        let name = format!("user.name={}", job.vars.bot.name);
        let email = format!("user.email={}", job.vars.bot.email);
        let subject = format!("Regenerate .github files from templates {SKIP_MARKER}");
        let body = format!(
            "Rendered from {head}.\n\nGhboot-Fencing-Token: {}",
            job.fencing_token
        );
        run_git(
            Some(&dir),
            &[
                "-c", &name, "-c", &email, "commit", "-q", "-m", &subject, "-m", &body,
            ],
        )
        .await?;
        let commit = run_git(Some(&dir), &["rev-parse", "HEAD"]).await?;
        test_pause("before_push").await;
        fence()
            .await
            .context("lost the org's regeneration lock before pushing")?;
        let refspec = format!("HEAD:refs/heads/{}", job.branch);
        let out = git(Some(&dir))
            .args(["push", "-q", "--porcelain", "origin", &refspec])
            .output()
            .await?;
        if out.status.success() {
            test_pause("after_push").await;
            return Ok(Outcome {
                head,
                commit: Some(commit),
                files: written.written,
                attempts,
                duration_ms: t0.elapsed().as_millis() as u64,
            });
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let moved = [
            "rejected",
            "non-fast-forward",
            "fetch first",
            "stale info",
            "cannot lock ref",
        ]
        .iter()
        .any(|w| text.contains(w));
        if !moved || attempts >= job.push_attempts {
            anyhow::bail!(
                "push to {} failed after {attempts} attempt(s): {}",
                job.repo,
                text.trim()
            );
        }
        tracing::info!(
            "branch {} moved during regeneration; retrying on the new head",
            job.branch
        );
        run_git(Some(&dir), &["fetch", "-q", "origin", &job.branch]).await?;
        run_git(Some(&dir), &["reset", "-q", "--hard", "FETCH_HEAD"]).await?;
        run_git(Some(&dir), &["clean", "-qfd"]).await?;
    }
}
