//! Stage: the end-to-end round trip that proves self-management. In dev the org's "GitHub" is a local bare
//! repository (`<state>/github/<org>/.github.git`) whose post-receive hook posts signed, GitHub-shaped push
//! events to the webhook receiver. The stage writes the generated files into it, then changes a template
//! and waits for the whole loop: push → hook → webhook → NATS → controller → regenerated commit with
//! `[skip-regen]` pushed → that commit's own push event arrives and is ignored.
use crate::config::Settings;
use crate::controller::regenerate::run_git;
use crate::controller::templates::{self, Source, SKIP_MARKER, TEMPLATES_DIR};
use crate::controller::{hook, Config};
use crate::engine::{Change, Ctx, NeedsRestart, Outputs, Stage, Verdict};
use crate::error::{fail, Kind};
use crate::state::{StageStatus, StateFile};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct SelfManagement;

/// The template the round trip changes (its rendered file only carries the probe's nonce).
pub const PROBE: &str = ".github/ghboot/roundtrip.txt.j2";
const DEADLINE: Duration = Duration::from_secs(90);
const NAME: &str = "user.name=ghboot self-management";
const EMAIL: &str = "user.email=self-management@ghboot.invalid";

pub fn bare_repo(s: &Settings) -> PathBuf {
    s.layout.local_github_repo(&s.org)
}

fn webhooks_done(s: &Settings) -> bool {
    StateFile::load(&s.layout)
        .ok()
        .flatten()
        .and_then(|st| st.stage("webhooks").map(|r| r.status))
        == Some(StageStatus::Done)
}

async fn commit_push(dir: &Path, msg: &str) -> Result<String> {
    run_git(Some(dir), &["add", "-A"]).await?;
    run_git(
        Some(dir),
        &["-c", NAME, "-c", EMAIL, "commit", "-q", "-m", msg],
    )
    .await?;
    // The controller may move main between our clone and our push (it regenerates on template pushes):
    // then fetch, replay our commit on top, and push again, a few times.
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match run_git(Some(dir), &["push", "-q", "origin", "HEAD:refs/heads/main"]).await {
            Ok(_) => break,
            Err(e) if attempt < ATTEMPTS => {
                tracing::info!("push refused (attempt {attempt}: {e:#}); fetching and rebasing");
                run_git(Some(dir), &["fetch", "-q", "origin", "main"]).await?;
                if let Err(e) = run_git(
                    Some(dir),
                    &["-c", NAME, "-c", EMAIL, "rebase", "-q", "FETCH_HEAD"],
                )
                .await
                {
                    let _ = run_git(Some(dir), &["rebase", "--abort"]).await;
                    return Err(e.context("cannot replay the commit on the moved branch"));
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    run_git(Some(dir), &["rev-parse", "HEAD"]).await
}

fn controller_stats(ctx: &mut Ctx) -> serde_json::Value {
    ctx.host()
        .map(|h| {
            h.runtime
                .get()
                .components
                .get("controller")
                .cloned()
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Stage for SelfManagement {
    fn name(&self) -> &'static str {
        "self-management"
    }
    fn summary(&self) -> &'static str {
        "the end-to-end round trip that proves self-management"
    }
    fn skip_reason(&self, s: &Settings) -> Option<String> {
        if let Some(why) = crate::deploy::for_settings(s).round_trip_skip(s) {
            return Some(why);
        }
        if s.ephemeral {
            // CI instances want NATS in seconds; the git round trip proves nothing about them
            return Some("not run with --ephemeral (the round trip takes about a second of git work; run without --ephemeral to prove the loop)".into());
        }
        if !webhooks_done(s) {
            return Some(
                "waits for the webhooks stage: the round trip goes through the webhook receiver"
                    .into(),
            );
        }
        None
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        let bare = bare_repo(&ctx.settings);
        let done = ctx.state.stage("self-management").map(|r| r.status) == Some(StageStatus::Done);
        if done && matches!(self.verify(ctx).await?, Verdict::Holds) {
            return Ok(vec![]);
        }
        let mut v = vec![];
        if !bare.join("HEAD").exists() {
            v.push(
                Change::new("self-management", bare.display().to_string(), "create")
                    .note("local bare repository standing in for GitHub"),
            );
        }
        v.push(
            Change::new("self-management", "round trip", "start")
                .note("template push → webhook → NATS → controller → regenerated commit"),
        );
        Ok(v)
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        let bare = bare_repo(&ctx.settings);
        if !bare.join("hooks/post-receive").exists() {
            return Ok(Verdict::Drift(format!(
                "{} or its hook is missing",
                bare.display()
            )));
        }
        if run_git(
            Some(&bare),
            &["rev-parse", "--verify", "-q", "refs/heads/main"],
        )
        .await
        .is_err()
        {
            return Ok(Verdict::Drift(
                "the .github repository has no main branch".into(),
            ));
        }
        Ok(Verdict::Holds)
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        if ctx.host().is_none() {
            return Err(
                NeedsRestart("the round trip needs the supervisor's controller".into()).into(),
            );
        }
        let settings = ctx.settings.clone();
        let cfg = Config::from_settings(&settings)?;
        let bare = bare_repo(&settings);
        hook::install(
            &bare,
            &settings.org,
            "webhook",
            Some(settings.layout.root()),
        )
        .await?;
        let tmp = tempfile::Builder::new()
            .prefix("ghboot-selfmgmt-")
            .tempdir()?;
        let work = tmp.path().join("work");
        run_git(
            None,
            &[
                "clone",
                "-q",
                &bare.to_string_lossy(),
                &work.to_string_lossy(),
            ],
        )
        .await?;
        let empty = run_git(Some(&work), &["rev-parse", "--verify", "-q", "HEAD"])
            .await
            .is_err();
        if empty {
            run_git(Some(&work), &["symbolic-ref", "HEAD", "refs/heads/main"]).await?;
        }
        // 1. the templates and the files they produce, in the repository
        let tdir = work.join(TEMPLATES_DIR);
        let mut seeded = false;
        if !tdir.is_dir() {
            for (rel, text) in templates::EMBEDDED {
                let p = tdir.join(rel);
                std::fs::create_dir_all(p.parent().unwrap_or(&tdir))?;
                std::fs::write(&p, text)?;
            }
            seeded = true;
        }
        let probe = tdir.join(PROBE);
        if !probe.exists() {
            std::fs::create_dir_all(probe.parent().unwrap_or(&tdir))?;
            std::fs::write(
                &probe,
                "Self-management round trip probe for {{ org }}: seed\n",
            )?;
            seeded = true;
        }
        let rendered = templates::render(
            &Source::resolve(&work, cfg.templates.as_deref()),
            &cfg.vars(&settings),
        )?;
        let written = templates::write(&work, &rendered, false)?;
        if seeded || !written.written.is_empty() {
            commit_push(
                &work,
                &format!("Add the org's .github templates and generated files {SKIP_MARKER}"),
            )
            .await?;
        }
        // 2. the round trip
        let nonce = uuid::Uuid::new_v4().to_string();
        std::fs::write(
            &probe,
            format!("Self-management round trip probe for {{{{ org }}}}: {nonce}\n"),
        )?;
        let t0 = Instant::now();
        let pushed = commit_push(&work, "Round trip probe: change a template").await?;
        let until = t0 + DEADLINE;
        let rendered_probe = PROBE.trim_end_matches(".j2");
        let regenerated = loop {
            let log = run_git(
                Some(&bare),
                &["log", "--format=%H %ae", &format!("{pushed}..main")],
            )
            .await
            .unwrap_or_default();
            let bot = log
                .lines()
                .find(|l| l.ends_with(&format!(" {}", cfg.bot_email)))
                .map(|l| l.split(' ').next().unwrap_or("").to_string());
            if let Some(b) = bot {
                let content = run_git(Some(&bare), &["show", &format!("{b}:{rendered_probe}")])
                    .await
                    .unwrap_or_default();
                if content.contains(&nonce) {
                    break b;
                }
            }
            if Instant::now() > until {
                let s = controller_stats(ctx);
                return Err(fail(
                    Kind::TempFail,
                    format!(
                        "no regenerated commit within {}s of the template push",
                        DEADLINE.as_secs()
                    ),
                )
                .help(format!(
                    "see `ghboot logs supervisor` and `ghboot dlq list`; controller: {s}"
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let regenerated_ms = t0.elapsed().as_millis() as u64;
        let message = run_git(Some(&bare), &["log", "-1", "--format=%B", &regenerated]).await?;
        if !message.contains(SKIP_MARKER) {
            anyhow::bail!("the controller's commit {regenerated} does not carry {SKIP_MARKER}");
        }
        // 3. its own push event arrives and is ignored
        loop {
            let s = controller_stats(ctx);
            if s["recent_ignored"]
                .as_array()
                .is_some_and(|a| a.iter().any(|h| h.as_str() == Some(regenerated.as_str())))
            {
                break;
            }
            if Instant::now() > until {
                return Err(fail(
                    Kind::TempFail,
                    "the controller's own push event was not seen (and ignored) in time",
                )
                .help("see `ghboot logs supervisor`")
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let total_ms = t0.elapsed().as_millis() as u64;
        let at = crate::controller::consume::now_rfc3339();
        let round_trip = serde_json::json!({
            "duration_ms": total_ms, "regenerated_ms": regenerated_ms, "pushed": pushed, "regenerated": regenerated, "at": at,
        });
        if let Some(h) = ctx.host() {
            let rt = round_trip.clone();
            h.runtime.update(|r| {
                r.components.insert(
                    "self-management".into(),
                    serde_json::json!({"repo": bare, "last_round_trip": rt}),
                );
            });
        }
        let mut out = Outputs::new();
        out.insert(
            "summary".into(),
            format!("round trip in {total_ms} ms (regenerated commit after {regenerated_ms} ms)")
                .into(),
        );
        out.insert("repo".into(), bare.display().to_string().into());
        out.insert("last_round_trip".into(), round_trip);
        let _ = tmp.close().context("cannot remove the work dir");
        Ok(out)
    }
}
