//! JetStream topology as code: the streams and KV buckets ghboot owns ([`desired`]), reconciled with the
//! server field by field ([`reconcile`]), and the distributed lock the rest of the system uses ([`lock`]).
//! Subject and resource names come from [`subjects`] only.
pub mod consumers;
pub mod desired;
pub mod heal;
pub mod lock;
pub mod reconcile;
pub mod subjects;

use crate::change::Change;
use crate::config::Settings;
use crate::state::StateFile;
use crate::ui::Reporter;
use anyhow::{Context as _, Result};

/// What `apply` would change in JetStream (reads each stream once, changes nothing).
pub async fn plan(s: &Settings, client: async_nats::Client) -> Result<Vec<Change>> {
    let want = desired::desired(s)?;
    let js = crate::deploy::jetstream(s, client);
    let items = reconcile::inspect(&js, &want).await?;
    let mut changes: Vec<Change> = items.iter().filter_map(|i| i.change()).collect();
    changes.extend(consumers::plan(&js, &want.org, &want.consumers).await?);
    Ok(changes)
}

/// Reconcile JetStream with the desired topology, then mirror the bootstrap state into the `state` bucket.
/// Returns `{"created": [..], "updated": [..], "replaced": [..], "unchanged": [..], "state_key": ..}`.
pub async fn apply(
    s: &Settings,
    client: async_nats::Client,
    reporter: &Reporter,
    state: &mut StateFile,
) -> Result<serde_json::Value> {
    let want = desired::desired(s)?;
    let js = crate::deploy::jetstream(s, client);
    let interactive = s.interactive();
    let reporter = reporter.clone();
    let warn = move |msg: &str| reporter.note(reconcile::STAGE, &format!("warning: {msg}"));
    let confirm = move |q: &str| -> Result<bool> {
        if !interactive {
            return Ok(true);
        }
        dialoguer::Confirm::new()
            .with_prompt(q)
            .default(false)
            .interact()
            .context("cannot ask for confirmation")
    };
    let sum = reconcile::reconcile(&js, &want, s.allow_replace, &warn, &confirm).await?;
    if desired::replicas_for(s) > 1 {
        wait_for_stream_leaders(&js).await?;
    }
    let consumers = consumers::reconcile(&js, &want.org, &want.consumers).await?;
    let key = mirror_state(s, state, &js).await?;
    let mut v = serde_json::to_value(&sum)?;
    if !consumers.is_empty() {
        v["consumers"] = consumers.into();
    }
    v["state_key"] = key.into();
    Ok(v)
}

/// On a cluster a stream just created (or recovered) answers only once its replicas elected a leader: wait
/// for that (with a deadline) so that the first read or write does not meet "no responders".
async fn wait_for_stream_leaders(js: &async_nats::jetstream::Context) -> Result<()> {
    use futures::TryStreamExt;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let infos: Vec<async_nats::jetstream::stream::Info> =
            js.streams().try_collect().await.unwrap_or_default();
        let waiting: Vec<String> = infos
            .iter()
            .filter(|i| i.cluster.as_ref().is_some_and(|c| c.leader.is_none()))
            .map(|i| i.config.name.clone())
            .collect();
        if !infos.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > until {
            return Err(crate::error::fail(
                crate::error::Kind::TempFail,
                format!("streams without a leader after 30s: {}", waiting.join(", ")),
            )
            .help("check `ghboot status` (are all nodes healthy?) and `ghboot logs nats`")
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Write the state file (local first: it is the source of truth and NATS may be what is failing), then put
/// it into the `state` bucket under `bootstrap.<org>`, unless the bucket already holds the same state
/// (`updated_at` aside): an unchanged rerun writes nothing.
pub async fn mirror_state(
    s: &Settings,
    state: &mut StateFile,
    js: &async_nats::jetstream::Context,
) -> Result<String> {
    state.save(&s.layout)?;
    let key = subjects::state_key(&s.org);
    let kv = js
        .get_key_value(subjects::STATE_BUCKET)
        .await
        .context("cannot open the state bucket")?;
    let body = serde_json::to_vec_pretty(state)?;
    let strip = |b: &[u8]| -> Option<serde_json::Value> {
        let mut v: serde_json::Value = serde_json::from_slice(b).ok()?;
        v.as_object_mut()?.remove("updated_at");
        Some(v)
    };
    let current = kv
        .get(key.as_str())
        .await
        .context("cannot read the state mirror")?;
    if current
        .as_deref()
        .and_then(strip)
        .is_some_and(|c| Some(c) == strip(&body))
    {
        return Ok(key);
    }
    kv.put(key.as_str(), body.into())
        .await
        .context("cannot mirror the state into NATS")?;
    Ok(key)
}
