//! `ghboot webhook serve | send | secret`.

use crate::cli::{GlobalArgs, WebhookCmd};
use crate::config;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use crate::webhook::{self, receive, send, WebhookConfig};
use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub async fn run(g: &GlobalArgs, cmd: &WebhookCmd) -> Result<u8> {
    match cmd {
        WebhookCmd::Serve { nats_url, nats_creds, listen, secret_file, path } => {
            serve(g, nats_url, nats_creds.as_deref(), listen, secret_file.as_deref(), path).await
        }
        WebhookCmd::Send { event, payload, delivery, url, form } => send_cmd(g, event, payload, delivery.as_deref(), url.as_deref(), *form).await,
        WebhookCmd::Secret => secret(g),
    }
}

/// The standalone receiver (containers): everything from flags and environment, no state dir.
async fn serve(g: &GlobalArgs, nats_url: &str, creds: Option<&Path>, listen: &str, secret_file: Option<&Path>, path: &str) -> Result<u8> {
    let org = g.org.clone().filter(|o| !o.is_empty()).unwrap_or_else(|| config::LOCAL_ORG.to_string());
    config::validate_org(&org)?;
    webhook::validate_path(path)?;
    let secret = match (secret_file, std::env::var("GHBOOT_WEBHOOK_SECRET").ok().filter(|s| !s.is_empty())) {
        (Some(f), _) => crate::secret::read_secret_file(f)
            .map_err(|e| fail(Kind::Config, format!("cannot read the webhook secret file {}: {e:#}", f.display())).help("check --secret-file"))?,
        (None, Some(s)) => Secret::new(s),
        (None, None) => {
            return Err(fail(Kind::Config, "no webhook secret").help("set GHBOOT_WEBHOOK_SECRET or pass --secret-file FILE").into());
        }
    };
    if secret.expose().is_empty() {
        return Err(fail(Kind::Config, "the webhook secret is empty").help("put the secret in GHBOOT_WEBHOOK_SECRET or the --secret-file").into());
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| fail(Kind::Usage, format!("--listen {listen:?} is not an address:port")).help("e.g. --listen 127.0.0.1:8080 or 0.0.0.0:8080"))?;
    let mut opts = match creds {
        Some(f) => async_nats::ConnectOptions::with_credentials_file(f)
            .await
            .map_err(|e| fail(Kind::Config, format!("cannot read NATS credentials {}: {e}", f.display())).help("check --nats-creds (NATS_CREDS)"))?,
        None => match (std::env::var("NATS_USER").ok(), std::env::var("NATS_PASSWORD").ok()) {
            (Some(u), Some(p)) => async_nats::ConnectOptions::with_user_and_password(u, p),
            _ => async_nats::ConnectOptions::new(),
        },
    };
    opts = opts.name("ghboot-webhook").retry_on_initial_connect().connection_timeout(Duration::from_secs(5));
    let addrs: Vec<async_nats::ServerAddr> = nats_url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|_| fail(Kind::Usage, "--nats-url is not a list of NATS URLs").help("e.g. nats://nats:4222"))?;
    let client = opts
        .connect(addrs)
        .await
        .map_err(|e| fail(Kind::Unavailable, format!("cannot connect to NATS: {e}")).help("check --nats-url and the credentials"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        fail(Kind::Unavailable, format!("cannot listen on {addr}: {e}")).help("pass another --listen address, or stop what uses this one")
    })?;
    let shared = receive::Shared::new(receive::ReceiverConfig::new(&org, path, secret), client, None);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = receive::spawn(listener, shared, stop_rx)?;
    eprintln!("ghboot webhook receiver on http://{}{path} (org {org}); Ctrl-C or SIGTERM stops it", running.addr);
    crate::platform::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), running.task).await;
    Ok(0)
}

async fn send_cmd(g: &GlobalArgs, event: &str, payload: &PathBuf, delivery: Option<&str>, url: Option<&str>, form: bool) -> Result<u8> {
    let (settings, state) = super::maybe_instance(g)?;
    let cfg = WebhookConfig::from_settings(&settings)?;
    let (secret, _) = webhook::load_secret(&settings, &cfg)?.ok_or_else(|| {
        fail(Kind::NoInput, format!("no webhook secret for the instance in {}", settings.layout.root().display()))
            .help("run `ghboot up` first (it generates one), or set GHBOOT_WEBHOOK_SECRET")
    })?;
    let url = match url {
        Some(u) => u.to_string(),
        None => webhook::recorded_url(&settings)
            .or_else(|| {
                state.as_ref().and_then(|s| s.stage("webhooks")).and_then(|r| r.outputs.get("url")).and_then(|u| u.as_str()).map(str::to_string)
            })
            .ok_or_else(|| fail(Kind::NoInput, "this instance has no webhook receiver").help("run `ghboot up` first, or pass --url"))?,
    };
    let body = if payload.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("cannot read the payload from stdin")?;
        b
    } else {
        std::fs::read(payload)
            .map_err(|e| fail(Kind::NoInput, format!("cannot read payload {}: {e}", payload.display())).help("pass a JSON file with --payload"))?
    };
    let id = delivery.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let d = send::Delivery { event, id: &id, payload: &body, form };
    let answer = send::send(&send::client(), &url, &secret, &d).await?;
    let ok = (200..300).contains(&answer.status);
    if g.json {
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_else(|_| answer.body.trim().into());
        println!("{}", serde_json::json!({"status": answer.status, "ok": ok, "delivery": id, "url": url, "response": body}));
    } else {
        println!("{} {}", answer.status, answer.body.trim());
    }
    if ok {
        Ok(0)
    } else {
        eprintln!("error: the receiver answered {} for delivery {id}", answer.status);
        Ok(Kind::Error.code())
    }
}

/// Print the secret: only ever on this explicit request.
fn secret(g: &GlobalArgs) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    let cfg = WebhookConfig::from_settings(&settings)?;
    let (secret, _) = webhook::load_secret(&settings, &cfg)?
        .ok_or_else(|| fail(Kind::NoInput, "this instance has no webhook secret yet").help("run `ghboot up` first (it generates one)"))?;
    println!("{}", secret.expose());
    Ok(0)
}
