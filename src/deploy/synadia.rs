//! Target `synadia` (`--mode synadia` or `--nats-type synadia_cloud`): NATS is a Synadia Cloud account (or
//! any NATS in operator/JWT mode). ghboot runs no server: it validates the user's credentials, keeps a 0600
//! copy, connects to `--nats-url` (default Synadia's global endpoint), and uses JetStream in `--js-domain`.

use crate::check::Check;
use crate::config::Settings;
use crate::deploy::creds::{self, UserCreds};
use crate::deploy::{EnvVar, Health, Target};
use crate::engine::{Ctx, Outputs};
use crate::error::{fail, Kind};
use crate::state::Runtime;
use anyhow::Result;
use std::time::Duration;

pub struct Synadia;

pub fn url(s: &Settings) -> String {
    s.nats_url
        .clone()
        .unwrap_or_else(|| creds::SYNADIA_URL.to_string())
}

/// Connect with the stored (or given) credentials within a few seconds.
async fn try_connect(s: &Settings) -> Result<(async_nats::Client, UserCreds)> {
    let c = match creds::load_stored(s)? {
        Some(c) => c,
        None => creds::current(s)?,
    };
    let client = tokio::time::timeout(
        Duration::from_secs(8),
        creds::connect(&url(s), &c, "ghboot"),
    )
    .await
    .map_err(|_| {
        fail(
            Kind::Unavailable,
            format!("connecting to {} timed out", url(s)),
        )
        .help("check the network and --nats-url (SYNADIA_URL)")
    })??;
    Ok((client, c))
}

/// JetStream must be usable for the account (in the domain, when one is given).
async fn check_jetstream(s: &Settings, client: &async_nats::Client) -> Result<serde_json::Value> {
    let js = creds::jetstream(client.clone(), s.js_domain.as_deref());
    let acc = js.query_account().await.map_err(|e| {
        let domain = s.js_domain.as_deref().map(|d| format!(" in domain {d}")).unwrap_or_default();
        fail(Kind::Unavailable, format!("JetStream is not available to this account{domain}: {e}"))
            .help("enable JetStream for the account (Synadia Cloud: account settings, JetStream limits), or pass the right --js-domain")
    })?;
    Ok(
        serde_json::json!({"streams": acc.streams, "consumers": acc.consumers, "storage": acc.storage, "memory": acc.memory}),
    )
}

#[async_trait::async_trait]
impl Target for Synadia {
    fn name(&self) -> &'static str {
        "synadia"
    }

    fn describe(&self, s: &Settings) -> String {
        format!("NATS account at {}", url(s))
    }

    fn checks(&self, s: &Settings) -> Vec<Check> {
        vec![creds::creds_check(s, &url(s))]
    }

    async fn mismatch(&self, s: &Settings) -> Result<Option<String>> {
        if creds::changed(s)? {
            return Ok(Some("credentials changed".into()));
        }
        let Some(state) = crate::state::StateFile::load(&s.layout)? else {
            return Ok(Some("not connected yet".into()));
        };
        let rec = state
            .stage("nats")
            .map(|r| r.outputs.clone())
            .unwrap_or_default();
        if rec.get("url").and_then(|u| u.as_str()) != Some(url(s).as_str()) {
            return Ok(Some(format!("NATS URL -> {}", url(s))));
        }
        if rec.get("jetstream_domain").and_then(|d| d.as_str()) != s.js_domain.as_deref() {
            return Ok(Some("JetStream domain changed".into()));
        }
        if !Runtime::load(&s.layout).is_some_and(|r| r.supervisor_alive()) {
            return Ok(Some("the supervisor is not running".into()));
        }
        match try_connect(s).await {
            Ok(_) => Ok(None),
            Err(e) => Ok(Some(format!("{e:#}"))),
        }
    }

    async fn ensure(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let s = ctx.settings.clone();
        let c = creds::current(&s)?;
        let client = tokio::time::timeout(
            Duration::from_secs(15),
            creds::connect(&url(&s), &c, "ghboot"),
        )
        .await
        .map_err(|_| {
            fail(
                Kind::Unavailable,
                format!("connecting to {} timed out", url(&s)),
            )
            .help("check the network and --nats-url (SYNADIA_URL)")
        })??;
        let js = check_jetstream(&s, &client).await?;
        // Only credentials that worked are kept.
        creds::store(&s, &c)?;
        ctx.nats = Some(client);
        let mut out = Outputs::new();
        out.insert("url".into(), url(&s).into());
        out.insert("credentials".into(), serde_json::to_value(&c.info)?);
        out.insert("jetstream".into(), js);
        if let Some(d) = &s.js_domain {
            out.insert("jetstream_domain".into(), d.clone().into());
        }
        out.insert("replicas".into(), self.replicas(&s).into());
        Ok(out)
    }

    async fn health(&self, s: &Settings) -> Health {
        let rt = Runtime::load(&s.layout);
        let supervisor_alive = rt.as_ref().is_some_and(|r| r.supervisor_alive());
        let (healthy, remote) = match try_connect(s).await {
            Ok((client, c)) => {
                let rtt = client.flush().await.is_ok();
                (
                    rtt,
                    serde_json::json!({"user": c.info.name, "account": c.info.issuer_account.clone().unwrap_or(c.info.issuer.clone()), "connected": rtt}),
                )
            }
            Err(e) => (
                false,
                serde_json::json!({"connected": false, "error": format!("{e:#}")}),
            ),
        };
        Health {
            healthy,
            url: Some(url(s)),
            monitor_url: None,
            pid: None,
            supervisor_pid: rt.as_ref().map(|r| r.supervisor_pid),
            supervisor_alive,
            nodes: vec![],
            meta_leader: None,
            jetstream_domain: s.js_domain.clone(),
            remote: Some(remote),
        }
    }

    async fn connect(&self, s: &Settings) -> Result<async_nats::Client> {
        try_connect(s).await.map(|(c, _)| c)
    }

    async fn stop(&self, s: &Settings, _purge: bool) -> Result<bool> {
        // Nothing runs remotely on ghboot's behalf; stop the local supervisor (receiver, controller).
        crate::deploy::supervisor::stop(&s.layout).await
    }

    fn stores_locally(&self, _s: &Settings) -> bool {
        false
    }
    fn replicas(&self, _s: &Settings) -> usize {
        // Synadia Cloud places R1 on every plan; R3 is a plan limit the topology may raise explicitly.
        1
    }

    fn jetstream_domain(&self, s: &Settings) -> Option<String> {
        s.js_domain.clone()
    }

    async fn client_env(&self, s: &Settings) -> Result<Vec<EnvVar>> {
        let path = creds::stored_path(s);
        if !path.exists() {
            return Err(
                fail(Kind::NoInput, "this instance has no NATS credentials yet")
                    .help("run `ghboot up --mode synadia` with SYNADIA_CREDS_FILE set")
                    .into(),
            );
        }
        let mut v = vec![
            ("NATS_URL".to_string(), url(s), false),
            ("NATS_CREDS".to_string(), path.display().to_string(), false),
        ];
        if let Some(d) = &s.js_domain {
            v.push(("NATS_JS_DOMAIN".into(), d.clone(), false));
        }
        Ok(v)
    }
}
