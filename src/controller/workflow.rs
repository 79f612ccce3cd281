//! The regeneration workflow of an org as a state machine — idle → pending → running → completed | failed —
//! kept in the `workflows` KV bucket, each transition also published to `ghboot.events.<org>.workflow`.
use crate::topology::subjects;
use anyhow::Result;
use async_nats::jetstream::{self, kv};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Pending,
    Running,
    Completed,
    Failed,
}

pub struct Workflow {
    js: jetstream::Context,
    kv: kv::Store,
    org: String,
    instance: String,
    phase: Phase,
}

/// Open a bucket the topology made, or make it (history 1) when a controller runs before the topology.
pub async fn open_bucket(js: &jetstream::Context, name: &str) -> Result<kv::Store> {
    match js.get_key_value(name).await {
        Ok(kv) => Ok(kv),
        Err(_) => Ok(js
            .create_key_value(kv::Config {
                bucket: name.into(),
                history: 1,
                ..Default::default()
            })
            .await?),
    }
}

impl Workflow {
    pub async fn open(js: &jetstream::Context, org: &str, instance: &str) -> Result<Workflow> {
        let kv = open_bucket(js, subjects::WORKFLOWS_BUCKET).await?;
        Ok(Workflow {
            js: js.clone(),
            kv,
            org: org.into(),
            instance: instance.into(),
            phase: Phase::Idle,
        })
    }
    pub fn key(org: &str) -> String {
        subjects::kv_key(&[org, "regenerate"])
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// Record and announce a transition. Failing to announce is logged, never fatal.
    pub async fn to(&mut self, phase: Phase, detail: serde_json::Value) {
        let from = self.phase;
        self.phase = phase;
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "workflow": "regenerate", "org": self.org, "state": phase, "from": from, "instance": self.instance, "at": at,
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (v.as_object_mut(), detail) {
            obj.extend(extra);
        }
        let bytes: bytes::Bytes = v.to_string().into();
        if let Err(e) = self.kv.put(Self::key(&self.org), bytes.clone()).await {
            tracing::warn!("cannot record workflow state: {e}");
        }
        let subject = subjects::ghboot_event_subject(&self.org, "workflow");
        match self.js.publish(subject.clone(), bytes.clone()).await {
            Ok(ack) => {
                if ack.await.is_err() {
                    tracing::debug!("no stream captures {subject}");
                }
            }
            Err(e) => tracing::warn!("cannot publish workflow event: {e}"),
        }
    }
}
