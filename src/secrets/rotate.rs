//! `ghboot secrets rotate webhook-secret`: a new webhook secret without refusing a delivery.
//!
//! 1. The old secret goes to `secrets/webhook-secret.previous` with its deadline (now + grace), then the new
//!    one replaces `secrets/webhook-secret` (both 0600, atomic).
//! 2. The supervisor's receiver watches those two files ([`watch`]): it verifies with the new secret and,
//!    until the deadline, the old one, and publishes the new fingerprint in the runtime file — the command
//!    waits for that, so GitHub is switched only once the receiver accepts the new secret.
//! 3. The GitHub hooks ghboot registered get the new `config.secret` (one PATCH each) and the state
//!    records the new fingerprint. Deliveries GitHub already signed with the old secret still pass.
//! 4. After the deadline the receiver refuses the old secret and removes the file.
//!
//! Only a secret ghboot generated, and only for the in-process receiver (dev, cluster, hybrid, synadia): one
//! from GHBOOT_WEBHOOK_SECRET or `[webhook] secret_file` is the operator's to change, and a container's
//! receiver reads its secret once at start.

use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use crate::state::{Runtime, StateFile, StateLock};
use crate::webhook::{self, verify, SecretSource, WebhookConfig};
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(serde::Serialize, serde::Deserialize)]
struct Previous {
    secret: Secret,
    /// Unix seconds after which the old secret is refused.
    until: u64,
}

/// The previous secret and its deadline, when one is still valid.
pub fn load_previous(s: &Settings) -> Option<(Secret, SystemTime)> {
    let text = std::fs::read_to_string(s.layout.webhook_previous_secret_file()).ok()?;
    let p: Previous = serde_json::from_str(&text).ok()?;
    let until = UNIX_EPOCH + Duration::from_secs(p.until);
    (SystemTime::now() < until).then_some((p.secret, until))
}

/// Keep a running receiver's secrets equal to the files: poll them (cheap stats), swap on change, drop the
/// previous secret after its deadline, and report the current fingerprint through `on_change`. Runs until
/// `stop` turns true. Only for generated secrets (the others do not change under a running receiver).
pub async fn watch(
    s: Settings,
    cfg: WebhookConfig,
    shared: Arc<webhook::receive::Shared>,
    on_change: Box<dyn Fn(&str) + Send + Sync>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let files = [
        s.layout.webhook_secret_file(),
        s.layout.webhook_previous_secret_file(),
    ];
    let stamp = || {
        files
            .iter()
            .map(|f| {
                std::fs::metadata(f)
                    .ok()
                    .map(|m| (m.modified().ok(), m.len()))
            })
            .collect::<Vec<_>>()
    };
    let mut seen = None;
    loop {
        let now = stamp();
        if seen.as_ref() != Some(&now) {
            if let Ok(Some((current, SecretSource::Generated))) = webhook::load_secret(&s, &cfg) {
                let previous = load_previous(&s);
                if previous.is_none() {
                    // expired or unreadable: the old secret is dropped for good
                    let _ = std::fs::remove_file(&files[1]);
                }
                on_change(&verify::fingerprint(current.expose().as_bytes()));
                shared.set_secrets(current, previous);
            }
            seen = Some(now);
        } else if std::fs::metadata(&files[1]).is_ok() && load_previous(&s).is_none() {
            // the grace period ended: make the next stamp differ so the swap above drops the old secret
            let _ = std::fs::remove_file(&files[1]);
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// What a rotation did (names and fingerprints, never a secret).
#[derive(Debug, serde::Serialize)]
pub struct Rotated {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub grace_until: String,
    pub receiver_switched: bool,
    pub hooks_updated: Vec<String>,
    pub notes: Vec<String>,
}

pub async fn webhook_secret(s: &Settings, state: &StateFile, grace: Duration) -> Result<Rotated> {
    if crate::deploy::containers::is_container_mode(s.mode) {
        // the container receiver reads one secret file at start: it would refuse the new secret
        return Err(fail(
            Kind::Config,
            format!("rotating the webhook secret of a --mode {} deployment is not supported yet", s.mode),
        )
        .help("set a new GHBOOT_WEBHOOK_SECRET, run `ghboot up` (the receiver restarts), and update the hook")
        .into());
    }
    let cfg = WebhookConfig::from_settings(s)?;
    let (old, source) = webhook::load_secret(s, &cfg)?.ok_or_else(|| {
        fail(Kind::NoInput, "this instance has no webhook secret yet").help("run `ghboot up` first")
    })?;
    if source != SecretSource::Generated {
        let from = match source {
            SecretSource::Env => "GHBOOT_WEBHOOK_SECRET",
            _ => "[webhook] secret_file",
        };
        return Err(fail(
            Kind::Config,
            format!("the webhook secret comes from {from}, not from ghboot"),
        )
        .help(format!(
            "change it in {from} and in the GitHub hook, then run `ghboot up`"
        ))
        .into());
    }
    let _lock = StateLock::acquire(&s.layout)?;
    let until = SystemTime::now() + grace;
    let until_secs = until
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let prev = serde_json::to_vec(&Previous {
        secret: old.clone(),
        until: until_secs,
    })?;
    crate::secret::write_private(&s.layout.webhook_previous_secret_file(), &prev)?;
    let new = Secret::generate(40);
    crate::secret::write_private(&s.layout.webhook_secret_file(), new.expose().as_bytes())?;
    let old_fp = verify::fingerprint(old.expose().as_bytes());
    let new_fp = verify::fingerprint(new.expose().as_bytes());
    let mut notes = Vec::new();

    // the live receiver must accept the new secret before GitHub signs with it
    let alive = Runtime::load(&s.layout).is_some_and(|r| r.supervisor_alive());
    let mut switched = false;
    if alive {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            let fp = Runtime::load(&s.layout).and_then(|r| {
                r.components
                    .get("webhook")?
                    .get("secret_fingerprint")?
                    .as_str()
                    .map(str::to_string)
            });
            if fp.as_deref() == Some(new_fp.as_str()) {
                switched = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !switched {
            return Err(fail(
                Kind::TempFail,
                "the running receiver did not take the new webhook secret within 15 s (GitHub not changed)",
            )
            .help("it still accepts the old one; restart it with `ghboot down && ghboot up`, then run the rotation again")
            .into());
        }
    } else {
        notes.push("no supervisor running: the receiver takes both secrets when it starts".into());
    }

    // the hooks ghboot registered: new config.secret, and the new fingerprint in the state
    let mut hooks_updated = Vec::new();
    let mut state = StateFile::load(&s.layout)?.unwrap_or_else(|| state.clone());
    let rec = state
        .stage("webhooks")
        .map(|r| r.outputs.clone())
        .unwrap_or_default();
    let regs: Vec<webhook::register::Registered> = rec
        .get("registrations")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if !regs.is_empty() {
        let Some(token) = s.github_token.clone() else {
            notes.push("GITHUB_TOKEN is not set: the GitHub hook keeps the old secret until `ghboot up` runs with it (before the grace period ends)".into());
            return Ok(Rotated {
                old_fingerprint: old_fp,
                new_fingerprint: new_fp,
                grace_until: rfc3339(until),
                receiver_switched: switched,
                hooks_updated,
                notes,
            });
        };
        let gh = webhook::register::GitHub::new(s.github_api_url.as_deref(), token)?;
        let mut done = Vec::new();
        for r in &regs {
            let target = match r.target.split_once(':') {
                Some(("org", o)) => webhook::register::Target::Org(o.into()),
                Some(("repo", spec)) => webhook::register::Target::repo(&s.org, spec),
                _ => continue,
            };
            let want = webhook::register::Desired {
                url: r.url.clone(),
                events: r.events.clone(),
                secret: new.clone(),
            };
            let out = gh
                .ensure(&target, &want, Some(&r.secret_fingerprint))
                .await?;
            hooks_updated.push(format!("hook {} on {}", out.hook_id, target.label()));
            done.push(out);
        }
        let st = state.stage_mut("webhooks");
        st.outputs
            .insert("registrations".into(), serde_json::to_value(&done)?);
        st.outputs
            .insert("secret_fingerprint".into(), new_fp.clone().into());
        state.save(&s.layout)?;
    } else {
        notes.push("no GitHub hook registered by ghboot: give the hook the new secret (`ghboot webhook secret`) before the grace period ends".into());
        if state.stage("webhooks").is_some() {
            state
                .stage_mut("webhooks")
                .outputs
                .insert("secret_fingerprint".into(), new_fp.clone().into());
            state.save(&s.layout)?;
        }
    }
    Ok(Rotated {
        old_fingerprint: old_fp,
        new_fingerprint: new_fp,
        grace_until: rfc3339(until),
        receiver_switched: switched,
        hooks_updated,
        notes,
    })
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
