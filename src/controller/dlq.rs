//! The dead-letter stream: events that failed `max_deliveries` times, with the reason in headers.
//! `ghboot dlq list` shows them; `ghboot dlq replay ID` publishes one to its original subject again.
use crate::error::{fail, Kind};
use crate::topology::subjects;
use anyhow::{Context, Result};
use async_nats::jetstream::{self, Message};
use async_nats::HeaderMap;
use serde::Serialize;

pub const H_REASON: &str = "Ghboot-Dlq-Reason";
pub const H_SUBJECT: &str = "Ghboot-Dlq-Subject";
pub const H_STREAM_SEQ: &str = "Ghboot-Dlq-Stream-Seq";
pub const H_DELIVERIES: &str = "Ghboot-Dlq-Deliveries";
pub const H_AT: &str = "Ghboot-Dlq-At";

/// Parse `github.<org>.<repo>.<event>` back into (repo, event) for the dead-letter subject.
fn parts(subject: &str) -> (Option<String>, String) {
    let t: Vec<&str> = subject.split('.').collect();
    if t.len() == 4 {
        let repo = if t[2] == subjects::ORG_TOKEN {
            None
        } else {
            subjects::unescape_token(t[2])
        };
        (
            repo,
            subjects::unescape_token(t[3]).unwrap_or_else(|| t[3].to_string()),
        )
    } else {
        (None, "unknown".into())
    }
}

pub async fn dead_letter(
    js: &jetstream::Context,
    org: &str,
    m: &Message,
    reason: &str,
    delivered: i64,
) -> Result<()> {
    let (repo, event) = parts(&m.subject);
    let subject = subjects::dead_letter_subject(org, repo.as_deref(), &event);
    let mut headers = HeaderMap::new();
    if let Some(h) = &m.headers {
        for (k, vs) in h.iter() {
            // a replay must not be dropped as a duplicate of the original
            if AsRef::<str>::as_ref(k) == "Nats-Msg-Id" {
                continue;
            }
            for v in vs {
                headers.append(k.clone(), v.clone());
            }
        }
    }
    let one_line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    headers.insert(H_REASON, one_line.as_str());
    headers.insert(H_SUBJECT, m.subject.as_str());
    headers.insert(H_DELIVERIES, delivered.to_string().as_str());
    headers.insert(H_AT, super::consume::now_rfc3339().as_str());
    if let Ok(info) = m.info() {
        headers.insert(H_STREAM_SEQ, info.stream_sequence.to_string().as_str());
    }
    js.publish_with_headers(subject, headers, m.payload.clone())
        .await?
        .await
        .context("the dead-letter stream did not store the event")?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Letter {
    pub id: u64,
    pub subject: String,
    pub original_subject: String,
    pub reason: String,
    pub deliveries: String,
    pub at: String,
    pub bytes: usize,
}

async fn dlq_stream(js: &jetstream::Context, org: &str) -> Result<jetstream::stream::Stream> {
    let name = subjects::dead_letter_stream(org);
    js.get_stream(&name).await.map_err(|e| {
        fail(
            Kind::NoInput,
            format!("dead-letter stream {name} not found: {e}"),
        )
        .help("run `ghboot up` (the nats stage creates the topology)")
        .into()
    })
}

pub async fn list(js: &jetstream::Context, org: &str) -> Result<Vec<Letter>> {
    let mut stream = dlq_stream(js, org).await?;
    let info = stream.info().await?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return Ok(out);
    }
    for seq in first..=last {
        let Ok(raw) = stream.get_raw_message(seq).await else {
            continue;
        };
        let h = |k: &str| {
            raw.headers
                .get(k)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        out.push(Letter {
            id: seq,
            subject: raw.subject.to_string(),
            original_subject: h(H_SUBJECT),
            reason: h(H_REASON),
            deliveries: h(H_DELIVERIES),
            at: h(H_AT),
            bytes: raw.payload.len(),
        });
    }
    Ok(out)
}

/// Publish dead letter `id` to its original subject (new message id, so it is not deduplicated away), then
/// remove it from the dead-letter stream. Returns the new sequence in the events stream.
pub async fn replay(js: &jetstream::Context, org: &str, id: u64) -> Result<u64> {
    let stream = dlq_stream(js, org).await?;
    let raw = stream.get_raw_message(id).await.map_err(|e| {
        fail(Kind::NoInput, format!("no dead letter {id}: {e}"))
            .help("`ghboot dlq list` shows the ids")
    })?;
    let original = raw
        .headers
        .get(H_SUBJECT)
        .map(|v| v.as_str().to_string())
        .ok_or_else(|| {
            fail(
                Kind::Data,
                format!("dead letter {id} has no {H_SUBJECT} header"),
            )
        })?;
    let mut headers = HeaderMap::new();
    for (k, vs) in raw.headers.iter() {
        let name: &str = k.as_ref();
        if name.starts_with("Ghboot-Dlq-") || name == "Nats-Msg-Id" {
            continue;
        }
        for v in vs {
            headers.append(k.clone(), v.clone());
        }
    }
    headers.insert("Ghboot-Replay-Of", id.to_string().as_str());
    let ack = js
        .publish_with_headers(original.clone(), headers, raw.payload.clone())
        .await?
        .await
        .with_context(|| format!("no stream stored the replay on {original}"))?;
    stream
        .delete_message(id)
        .await
        .context("replayed, but cannot remove the dead letter")?;
    Ok(ack.sequence)
}
