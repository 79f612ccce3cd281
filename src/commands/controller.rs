//! `ghboot controller` (standalone, foreground) and `ghboot dlq list|replay`.
use crate::cli::{ControllerArgs, DlqCmd, GlobalArgs};
use crate::controller::consume::{self, Controller};
use crate::controller::default_instance;
use crate::controller::{dlq, Config};
use anyhow::Result;

pub use crate::controller::{APPLY_TOPOLOGY_ENV, HEARTBEAT_FILE_ENV};

/// Reconcile the topology through the controller's own connection, retrying while JetStream comes up
/// (a cluster may still be electing its meta leader). Never replaces a stream (that loses messages).
async fn apply_topology(
    settings: &crate::config::Settings,
    client: &async_nats::Client,
) -> Result<()> {
    use crate::topology::{desired, reconcile};
    let want = desired::desired(settings)?;
    let js = async_nats::jetstream::new(client.clone());
    let warn = |m: &str| tracing::warn!("topology: {m}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match reconcile::reconcile(&js, &want, false, &warn, &|_| Ok(false)).await {
            Ok(sum) => {
                for n in sum.created.iter().chain(sum.updated.iter()) {
                    eprintln!("topology: {n} ready");
                }
                return Ok(());
            }
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!("cannot apply the topology yet: {e:#}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context("cannot apply the topology")),
        }
    }
}

pub async fn run(g: &GlobalArgs, args: &ControllerArgs) -> Result<u8> {
    let (settings, _) = super::maybe_instance(g)?;
    let cfg = Config::from_settings(&settings)?;
    let client = consume::connect(&settings, args.nats_url.as_deref()).await?;
    if std::env::var_os(APPLY_TOPOLOGY_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        apply_topology(&settings, &client).await?;
    }
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
    // In a container, the health check reads this file's age: it is touched only when the heartbeat moves,
    // and the heartbeat moves only while the durable consumer answers (a stuck controller goes unhealthy).
    let beat_file = std::env::var_os(HEARTBEAT_FILE_ENV).map(std::path::PathBuf::from);
    let last_beat = std::sync::Mutex::new(String::new());
    c.run(rx, |st| {
        let Some(f) = &beat_file else { return };
        let mut last = last_beat.lock().unwrap_or_else(|e| e.into_inner());
        if st.heartbeat.is_empty() || *last == st.heartbeat {
            return;
        }
        *last = st.heartbeat.clone();
        if let Err(e) = crate::fsutil::write_atomic(f, st.heartbeat.as_bytes()) {
            tracing::warn!("cannot write the heartbeat file {}: {e}", f.display());
        }
    })
    .await?;
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
