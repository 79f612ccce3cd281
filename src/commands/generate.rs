//! `ghboot generate | check | clean [--repo DIR]`: the org `.github` templates, rendered into a checkout.
use crate::cli::{GlobalArgs, RepoArgs};
use crate::controller::templates::{self, Source};
use crate::controller::Config;
use crate::error::{fail, Kind};
use anyhow::Result;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Generate,
    Check,
    Clean,
}

pub async fn run(g: &GlobalArgs, args: &RepoArgs, op: Op) -> Result<u8> {
    let (settings, _) = super::maybe_instance(g)?;
    let cfg = Config::from_settings(&settings)?;
    let repo = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    if !repo.is_dir() {
        return Err(fail(
            Kind::NoInput,
            format!("repository {} does not exist", repo.display()),
        )
        .help("pass --repo DIR, a checkout of the org's .github repository")
        .into());
    }
    let override_dir = args.templates.clone().or(cfg.templates.clone());
    let source = Source::resolve(&repo, override_dir.as_deref());
    let json = settings.json;
    match op {
        Op::Generate => {
            let rendered = templates::render(&source, &cfg.vars(&settings))?;
            let done = templates::write(&repo, &rendered, args.force)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"repo": repo, "templates": source.describe(), "written": done.written, "removed": done.removed, "kept": done.kept})
                );
            } else if done.written.is_empty() && done.removed.is_empty() {
                println!(
                    "{} is up to date ({} files from {})",
                    repo.display(),
                    rendered.len(),
                    source.describe()
                );
            } else {
                for p in &done.written {
                    println!("wrote   {p}");
                }
                for p in &done.removed {
                    println!("removed {p}");
                }
            }
            for p in &done.kept {
                eprintln!(
                    "warning: {p} is no longer generated but was edited by hand; left in place"
                );
            }
            Ok(0)
        }
        Op::Check => {
            let rendered = templates::render(&source, &cfg.vars(&settings))?;
            let diffs = templates::diff(&repo, &rendered)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"repo": repo, "templates": source.describe(), "clean": diffs.is_empty(), "differences": diffs})
                );
            } else {
                for d in &diffs {
                    let what = match d.kind {
                        templates::DiffKind::Missing => "missing",
                        templates::DiffKind::Differs => "differs",
                        templates::DiffKind::Stale => "stale  ",
                    };
                    println!("{what} {}", d.path);
                }
            }
            if diffs.is_empty() {
                if !json {
                    println!(
                        "{} matches the templates ({} files)",
                        repo.display(),
                        rendered.len()
                    );
                }
                Ok(0)
            } else {
                if !json {
                    eprintln!(
                        "{} file(s) differ from what the templates produce; `ghboot generate --repo {}` fixes them",
                        diffs.len(),
                        repo.display()
                    );
                }
                Ok(Kind::Changes.code())
            }
        }
        Op::Clean => {
            let done = templates::clean(&repo)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"repo": repo, "manifest_found": done.manifest_found, "removed": done.removed, "kept": done.kept})
                );
            } else if !done.manifest_found {
                println!(
                    "no {} in {}: nothing ghboot generated to remove",
                    templates::MANIFEST,
                    repo.display()
                );
            } else {
                for p in &done.removed {
                    println!("removed {p}");
                }
            }
            for p in &done.kept {
                eprintln!("warning: {p} was edited since it was generated; left in place");
            }
            Ok(0)
        }
    }
}
