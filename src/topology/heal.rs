//! Self-repair by the supervisor: after a nats-server node restarted (its JetStream store may be empty, e.g.
//! lost with its disk), reconcile the topology again without waiting for an operator's rerun. Only creates
//! and in-place updates: a replacement (which loses messages) stays the operator's decision.

use super::{desired, reconcile};
use crate::config::Settings;
use anyhow::Result;
use std::time::Duration;
use tokio::sync::watch;

/// Reconcile after every restart the supervisor reports, retrying (with a capped backoff) until it holds.
pub fn spawn(
    settings: Settings,
    mut restarts: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = restarts.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                match once(&settings).await {
                    Ok(made) if made.is_empty() => {
                        tracing::info!(
                            "topology checked after a nats-server restart: nothing missing"
                        );
                        break;
                    }
                    Ok(made) => {
                        tracing::warn!(
                            "topology repaired after a nats-server restart: {}",
                            made.join(", ")
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "cannot reconcile the topology after a restart (attempt {attempt}): {e:#}"
                        )
                    }
                }
                let delay = crate::natsd::supervise::backoff(attempt + 2, false)
                    .min(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    })
}

/// One reconciliation; returns the streams and buckets it created or updated.
pub async fn once(settings: &Settings) -> Result<Vec<String>> {
    let want = desired::desired(settings)?;
    let client = crate::deploy::for_settings(settings)
        .connect(settings)
        .await?;
    let js = crate::deploy::jetstream(settings, client.clone());
    let warn = |m: &str| tracing::warn!("topology: {m}");
    let sum = reconcile::reconcile(&js, &want, false, &warn, &|_| Ok(false)).await?;
    let made = sum.created.iter().map(|n| format!("created {n}"));
    Ok(made
        .chain(sum.updated.iter().map(|n| format!("updated {n}")))
        .collect())
}
