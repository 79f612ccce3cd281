//! `ghboot secrets sync` and `secrets rotate`: see [`crate::secrets`]. Output names secrets and actions, never a value.
use crate::cli::{GlobalArgs, RotateWhat, SecretVisibility, SecretsCmd, SecretsSyncArgs};
use crate::error::{fail, Kind};
use crate::secrets::{self, SyncOpts, Visibility};
use anyhow::Result;
use std::path::PathBuf;

pub async fn run(g: &GlobalArgs, c: &SecretsCmd) -> Result<u8> {
    match c {
        SecretsCmd::Sync(a) => sync(g, a).await,
        SecretsCmd::Rotate { which, grace } => rotate(g, *which, (*grace).into()).await,
    }
}

async fn rotate(g: &GlobalArgs, which: RotateWhat, grace: std::time::Duration) -> Result<u8> {
    if which == RotateWhat::NatsPassword {
        // a server ghboot does not run is refused before the instance is looked at
        secrets::nats_password::supported(&super::maybe_instance(g)?.0)?;
    }
    let (settings, state) = super::existing_instance(g)?;
    match which {
        RotateWhat::WebhookSecret => {
            let r = secrets::rotate::webhook_secret(&settings, &state, grace).await?;
            if g.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "webhook secret rotated: {} -> {} (fingerprints); the old one is accepted until {}",
                    r.old_fingerprint, r.new_fingerprint, r.grace_until
                );
                if r.receiver_switched {
                    println!("receiver: verifies with the new secret (and the old one until then)");
                }
                for h in &r.hooks_updated {
                    println!("github: {h} now signs with the new secret");
                }
                for n in &r.notes {
                    println!("note: {n}");
                }
            }
            Ok(0)
        }
        RotateWhat::NatsPassword => {
            let r = secrets::nats_password::rotate(&settings).await?;
            if g.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                if r.nodes_reloaded > 0 {
                    println!(
                        "NATS password of user {} rotated: {} nats-server node(s) reloaded their users (no restart)",
                        r.user, r.nodes_reloaded
                    );
                } else {
                    println!("NATS password of user {} rotated", r.user);
                }
                for u in &r.internal_users_connected {
                    println!("{u}: still connected (own user, password unchanged)");
                }
                if let Some(p) = &r.nats_context {
                    println!("NATS CLI context rewritten: {p}");
                }
                for l in &r.actions_secrets {
                    println!("actions secret: {l}");
                }
                for n in &r.notes {
                    println!("note: {n}");
                }
                println!("clients with the old password are refused: rerun `ghboot env` (or `eval \"$(ghboot env)\"`) for the new one");
            }
            Ok(0)
        }
    }
}

async fn sync(g: &GlobalArgs, a: &SecretsSyncArgs) -> Result<u8> {
    let env_file = match (&a.env_file, a.instance) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) if PathBuf::from(".env").is_file() => Some(PathBuf::from(".env")),
        (None, false) => {
            return Err(fail(
                Kind::Usage,
                "nothing to sync: no --env-file, no --instance and no ./.env",
            )
            .help("pass --env-file PATH and/or --instance")
            .into())
        }
    };
    // only --instance needs a running instance; a .env alone needs just a state dir for the fingerprints
    let settings = if a.instance {
        super::existing_instance(g)?.0
    } else {
        super::maybe_instance(g)?.0
    };
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    if let Some(p) = &env_file {
        let parsed = secrets::dotenv::read(p)?;
        let shown = p.display().to_string();
        entries.extend(
            parsed
                .entries
                .into_iter()
                .map(|(k, v)| (k, v, shown.clone())),
        );
        refused.extend(
            parsed
                .refused
                .into_iter()
                .map(|(l, n)| (shown.clone(), l, n)),
        );
    }
    // names first: a bad .env is refused before the instance is even asked
    secrets::check_names(entries.clone(), &refused)?;
    if a.instance {
        for (k, v) in secrets::instance_secrets(&settings).await? {
            entries.push((k, v, "the instance".into()));
        }
    }
    let wanted = secrets::check_names(entries, &refused)?;
    let opts = SyncOpts {
        env_file,
        instance: a.instance,
        repos: a.repo.clone(),
        visibility: match a.visibility {
            SecretVisibility::All => Visibility::All,
            SecretVisibility::Private => Visibility::Private,
            SecretVisibility::Selected => Visibility::Selected,
        },
        dry_run: a.dry_run,
        prune: a.prune,
        only_wanted: false,
    };
    let report = secrets::sync(&settings, wanted, &opts).await?;
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for l in &report.lines {
            let why = l
                .why
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            println!("{:<9} {} {}{why}", l.action, l.scope, l.name);
        }
        for n in &report.notes {
            println!("note: {n}");
        }
        if report.dry_run {
            println!(
                "dry run: {} change(s) pending, nothing sent",
                report.changes
            );
        } else {
            println!("{} change(s) sent to GitHub", report.changes);
        }
    }
    Ok(if report.dry_run && report.changes > 0 {
        Kind::Changes.code()
    } else {
        0
    })
}
