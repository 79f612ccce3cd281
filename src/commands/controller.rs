//! `ghboot controller` (standalone, foreground) and `ghboot dlq list|replay`.
use crate::cli::{ControllerArgs, DlqCmd, GlobalArgs};
use crate::controller::consume::{self, Controller};
use crate::controller::default_instance;
use crate::controller::{dlq, Config};
use anyhow::Result;

pub async fn run(g: &GlobalArgs, args: &ControllerArgs) -> Result<u8> {
    let (settings, _) = super::maybe_instance(g)?;
    let cfg = Config::from_settings(&settings)?;
    let client = consume::connect(&settings, args.nats_url.as_deref()).await?;
    let instance = args.instance.clone().unwrap_or_else(default_instance);
    let vars = cfg.vars(&settings);
    let c = Controller::new(client.clone(), &settings.org, cfg, vars, &instance);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::platform::shutdown_signal().await;
        let _ = tx.send(true);
    });
    eprintln!(
        "controller {instance} watching pushes to {}/.github (Ctrl-C stops it)",
        settings.org
    );
    c.run(rx, |_| {}).await?;
    let _ = client.flush().await;
    let s = c.snapshot();
    eprintln!(
        "stopped: {} regeneration(s), {} commit(s), {} ignored as own, {} dead-lettered",
        s.regenerations, s.commits, s.ignored_self, s.dead_lettered
    );
    Ok(0)
}

pub async fn dlq(g: &GlobalArgs, cmd: &DlqCmd) -> Result<u8> {
    let (settings, _) = super::maybe_instance(g)?;
    let url = match cmd {
        DlqCmd::List { nats_url } | DlqCmd::Replay { nats_url, .. } => nats_url.clone(),
    };
    let client = consume::connect(&settings, url.as_deref()).await?;
    let js = async_nats::jetstream::new(client.clone());
    match cmd {
        DlqCmd::List { .. } => {
            let letters = dlq::list(&js, &settings.org).await?;
            if settings.json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else if letters.is_empty() {
                println!("the dead-letter stream of {} is empty", settings.org);
            } else {
                println!(
                    "{:<6} {:<22} {:<4} {:<40} REASON",
                    "ID", "AT", "TRY", "SUBJECT"
                );
                for l in &letters {
                    println!(
                        "{:<6} {:<22} {:<4} {:<40} {}",
                        l.id, l.at, l.deliveries, l.original_subject, l.reason
                    );
                }
            }
        }
        DlqCmd::Replay { id, .. } => {
            let seq = dlq::replay(&js, &settings.org, *id).await?;
            if settings.json {
                println!("{}", serde_json::json!({"replayed": id, "sequence": seq}));
            } else {
                println!("replayed dead letter {id} (events stream sequence {seq})");
            }
        }
    }
    let _ = client.flush().await;
    Ok(0)
}
