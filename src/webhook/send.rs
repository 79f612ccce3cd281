//! Sign a payload the way GitHub does and post it to a receiver (`ghboot webhook send`), for local testing
//! and CI smoke tests.

use super::verify;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use std::time::Duration;

/// One delivery to send.
pub struct Delivery<'a> {
    pub event: &'a str,
    pub id: &'a str,
    pub payload: &'a [u8],
    /// `application/x-www-form-urlencoded` with the JSON in `payload=`, instead of raw JSON.
    pub form: bool,
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// The body and content type as GitHub would send them.
pub fn encode(d: &Delivery) -> (Vec<u8>, &'static str) {
    if d.form {
        let p = String::from_utf8_lossy(d.payload);
        let body = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &p).finish();
        (body.into_bytes(), "application/x-www-form-urlencoded")
    } else {
        (d.payload.to_vec(), "application/json")
    }
}

pub async fn send(client: &reqwest::Client, url: &str, secret: &Secret, d: &Delivery<'_>) -> Result<Answer> {
    let (body, content_type) = encode(d);
    let sig = verify::sign(secret.expose().as_bytes(), &body);
    let resp = client
        .post(url)
        .header("Content-Type", content_type)
        .header("User-Agent", concat!("ghboot/", env!("CARGO_PKG_VERSION"), " (webhook send)"))
        .header("X-GitHub-Event", d.event)
        .header("X-GitHub-Delivery", d.id)
        .header(verify::HEADER, sig)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            fail(Kind::Unavailable, format!("cannot post to {url}: {}", without_url(&e)))
                .help("is the receiver running? `ghboot status` shows its URL; `ghboot up` starts it")
        })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).no_proxy().build().unwrap_or_default()
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "URL");
    }
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}
