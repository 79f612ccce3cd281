//! `ghboot secrets rotate nats-password`: a new password for ghboot's NATS admin user, without a restart.
//!
//! 1. The new password replaces `secrets/nats-auth.json` (0600, atomic).
//! 2. [`crate::natsd::users::apply`] renders every node's `users.conf` and has each running node reload it
//!    (waiting until `/varz` says it did). nats-server then closes the connections that used the old
//!    password; a client that comes back with it gets "Authorization Violation" (ghboot's own commands say
//!    the password was rotated and to rerun `ghboot env`). If the reload fails, the old password is put
//!    back (file and servers), so the instance is never left with a password its servers do not know.
//! 3. The in-process receiver and controller connect as their own users (ghboot-receiver,
//!    ghboot-controller) whose passwords do not change: they stay connected, which is checked on `/connz`.
//! 4. The NATS CLI context is rewritten, and the Actions secrets that `secrets sync --instance` sent are
//!    sent again for the scopes that hold NATS_PASSWORD (or the command to do it is printed).
//!
//! Only where ghboot runs the server (dev, cluster, hybrid's leaf): a container's or Synadia's server is
//! not ghboot's to reconfigure.

use crate::config::Settings;
use crate::deploy::dev::{load_auth, Auth};
use crate::error::{fail, Kind};
use crate::natsd::users::{CONTROLLER_USER, RECEIVER_USER};
use crate::secret::Secret;
use crate::state::{Runtime, StateLock};
use anyhow::Result;

/// What a rotation did (names and counts, never a password).
#[derive(Debug, Default, serde::Serialize)]
pub struct Rotated {
    pub user: String,
    /// Running nodes that reloaded their users (0: nothing runs, the next start reads the new password).
    pub nodes_reloaded: usize,
    /// nats-server pids before and after (equal: no restart).
    pub server_pids: Vec<u32>,
    /// ghboot's own users still connected after the reload.
    pub internal_users_connected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_context: Option<String>,
    /// `scope name action` of the re-sent Actions secrets.
    pub actions_secrets: Vec<String>,
    pub notes: Vec<String>,
}

fn write_auth(s: &Settings, a: &Auth) -> Result<()> {
    crate::fsutil::create_private_dir(&s.layout.secrets_dir())?;
    crate::secret::write_private(&s.layout.nats_auth_file(), &serde_json::to_vec_pretty(a)?)
}

/// Refused (exit 78) where ghboot does not run the nats-server.
pub fn supported(s: &Settings) -> Result<()> {
    let target = crate::deploy::for_settings(s);
    if target.name() != "dev" {
        return Err(fail(
            Kind::Config,
            format!(
                "rotating the NATS password of a {} deployment is not supported: ghboot does not run its nats-server",
                target.name()
            ),
        )
        .help(match target.name() {
            "synadia" => "get new user credentials from Synadia Cloud and point SYNADIA_CREDS_FILE at them",
            _ => "set a new NATS_PASSWORD for the deployment and run `ghboot up` (its server restarts)",
        })
        .into());
    }
    Ok(())
}

pub async fn rotate(s: &Settings) -> Result<Rotated> {
    supported(s)?;
    let old = load_auth(s)?.ok_or_else(|| {
        fail(Kind::NoInput, "this instance has no NATS credentials yet")
            .help("run `ghboot up` first")
    })?;
    let _lock = StateLock::acquire(&s.layout)?;
    let rt = Runtime::load(&s.layout).filter(|r| r.supervisor_alive());
    let pids_before: Vec<u32> = rt
        .as_ref()
        .map(|r| r.nodes.iter().map(|n| n.pid).collect())
        .unwrap_or_default();

    let new = Auth {
        user: old.user.clone(),
        password: Secret::generate(32),
    };
    write_auth(s, &new)?;
    let nodes_reloaded = match crate::natsd::users::apply(s).await {
        Ok(n) => n,
        Err(e) => {
            // servers that did not reload still know only the old password: keep it everywhere
            write_auth(s, &old)?;
            if let Err(e2) = crate::natsd::users::apply(s).await {
                tracing::warn!("putting the old NATS password back did not reload: {e2:#}");
            }
            return Err(e.context("the NATS password was not rotated (the old one still works)"));
        }
    };

    let mut out = Rotated {
        user: new.user.clone(),
        nodes_reloaded,
        ..Rotated::default()
    };
    if let Some(rt) = Runtime::load(&s.layout).filter(|r| r.supervisor_alive()) {
        out.server_pids = rt.nodes.iter().map(|n| n.pid).collect();
        if !pids_before.is_empty() && out.server_pids != pids_before {
            out.notes.push(
                "a nats-server was restarted meanwhile by its supervisor (not by this rotation)"
                    .into(),
            );
        }
        out.internal_users_connected = internal_users_connected(s, &rt).await;
        // the new password must work before anyone is told to use it
        crate::stages::nats::connect(s).await?.flush().await.ok();
    } else {
        out.notes.push(
            "no supervisor running: the servers read the new password when `ghboot up` starts them"
                .into(),
        );
    }

    match nats_context(s).await {
        Ok(p) => out.nats_context = Some(p),
        Err(e) => out
            .notes
            .push(format!("the NATS CLI context was not rewritten: {e:#}")),
    }
    resync(s, &mut out).await?;
    Ok(out)
}

/// Which of ghboot's own users have a connection on any running node.
async fn internal_users_connected(s: &Settings, rt: &Runtime) -> Vec<String> {
    let client = crate::natsd::supervise::http_client();
    let mut seen = std::collections::BTreeSet::new();
    for n in &rt.nodes {
        let Some(v) = crate::deploy::dev::monitor_json(
            &client,
            &s.bind,
            n.monitor_port,
            "/connz?auth=true&limit=1024",
        )
        .await
        else {
            continue;
        };
        for c in v
            .get("connections")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(u) = c.get("authorized_user").and_then(|u| u.as_str()) {
                if u == RECEIVER_USER || u == CONTROLLER_USER {
                    seen.insert(u.to_string());
                }
            }
        }
    }
    seen.into_iter().collect()
}

async fn nats_context(s: &Settings) -> Result<String> {
    let vars = crate::deploy::for_settings(s).client_env(s).await?;
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _, _)| n == k)
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default()
    };
    let (url, user, password) = (get("NATS_URL"), get("NATS_USER"), get("NATS_PASSWORD"));
    let (creds, domain) = (get("NATS_CREDS"), get("NATS_JS_DOMAIN"));
    let p = crate::ui::context::write(
        &s.layout,
        &crate::ui::context::Fields {
            url: &url,
            user: &user,
            password: &password,
            creds: &creds,
            jetstream_domain: &domain,
        },
    )?;
    Ok(p.display().to_string())
}

/// Send the instance's secrets again to every scope where `secrets sync --instance` put NATS_PASSWORD.
async fn resync(s: &Settings, out: &mut Rotated) -> Result<()> {
    let store = super::store::Store::load(&s.layout)?;
    let scopes: Vec<(String, Option<String>)> = store
        .scopes
        .iter()
        .filter_map(|(sk, names)| {
            names
                .get("NATS_PASSWORD")
                .map(|r| (sk.clone(), r.visibility.clone()))
        })
        .collect();
    if scopes.is_empty() {
        return Ok(());
    }
    let command = |sk: &str| match sk.split_once(':') {
        Some(("repo", r)) => format!("ghboot secrets sync --instance --repo {r}"),
        _ => "ghboot secrets sync --instance".to_string(),
    };
    if s.github_token.is_none() {
        for (sk, _) in &scopes {
            out.notes.push(format!(
                "GITHUB_TOKEN is not set: {sk} still holds the old NATS_PASSWORD; run `{}` with it",
                command(sk)
            ));
        }
        return Ok(());
    }
    let mut wanted = Vec::new();
    for (k, v) in super::instance_secrets(s).await? {
        wanted.push((k, v, "the instance".to_string()));
    }
    let wanted = super::check_names(wanted, &[])?;
    for (sk, visibility) in scopes {
        let (repos, vis) = match sk.split_once(':') {
            Some(("repo", r)) => (vec![r.to_string()], super::Visibility::Private),
            Some(("org", o)) if o == s.org => (
                Vec::new(),
                match visibility.as_deref() {
                    Some("all") => super::Visibility::All,
                    Some("selected") => super::Visibility::Selected,
                    _ => super::Visibility::Private,
                },
            ),
            _ => {
                out.notes.push(format!(
                    "{sk} is not this instance's org ({}): run `{}` with --org there",
                    s.org,
                    command(&sk)
                ));
                continue;
            }
        };
        let opts = super::SyncOpts {
            env_file: None,
            instance: true,
            repos,
            visibility: vis,
            dry_run: false,
            prune: false,
            only_wanted: true,
        };
        match super::sync(s, wanted.clone(), &opts).await {
            Ok(r) => out.actions_secrets.extend(
                r.lines
                    .iter()
                    .map(|l| format!("{} {} {}", l.scope, l.name, l.action)),
            ),
            Err(e) => out.notes.push(format!(
                "{sk} still holds the old NATS_PASSWORD ({e:#}): run `{}`",
                command(&sk)
            )),
        }
    }
    Ok(())
}
