//! TEMPORARY stand-in for `crate::topology::lock` (issue #4), same API, until that lands on main.
//! A lease in the `locks` KV bucket: created with `create` (fails when held), taken over only by a CAS
//! update once expired; the fencing token is the KV revision (monotonic).
use anyhow::Result;
use async_nats::jetstream::{self, kv};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LEASE: Duration = Duration::from_secs(15);

pub struct Lock {
    kv: kv::Store,
    key: String,
    owner: String,
    revision: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn value(owner: &str) -> bytes::Bytes {
    serde_json::json!({"owner": owner, "expires_ms": now_ms() + LEASE.as_millis() as u64})
        .to_string()
        .into()
}

impl Lock {
    pub async fn acquire(kv: &kv::Store, key: &str, owner: &str) -> Result<Option<Lock>> {
        let mk = |revision| Lock {
            kv: kv.clone(),
            key: key.to_string(),
            owner: owner.to_string(),
            revision,
        };
        if let Ok(rev) = kv.create(key, value(owner)).await {
            return Ok(Some(mk(rev)));
        }
        let Some(entry) = kv.entry(key).await? else {
            return Ok(None);
        };
        let expired = match entry.operation {
            kv::Operation::Put => serde_json::from_slice::<serde_json::Value>(&entry.value)
                .ok()
                .and_then(|v| v["expires_ms"].as_u64())
                .is_none_or(|e| e < now_ms()),
            _ => true,
        };
        if expired {
            if let Ok(rev) = kv.update(key, value(owner), entry.revision).await {
                return Ok(Some(mk(rev)));
            }
        }
        Ok(None)
    }
    pub async fn acquire_wait(
        kv: &kv::Store,
        key: &str,
        owner: &str,
        deadline: Duration,
    ) -> Result<Option<Lock>> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(l) = Self::acquire(kv, key, owner).await? {
                return Ok(Some(l));
            }
            if tokio::time::Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    pub fn fencing_token(&self) -> u64 {
        self.revision
    }
    pub async fn refresh(&mut self) -> Result<()> {
        self.revision = self
            .kv
            .update(&self.key, value(&self.owner), self.revision)
            .await?;
        Ok(())
    }
    pub async fn release(self) -> Result<()> {
        self.kv
            .delete_expect_revision(&self.key, Some(self.revision))
            .await?;
        Ok(())
    }
}

pub async fn open_locks(js: &jetstream::Context) -> Result<kv::Store> {
    Ok(js
        .create_key_value(kv::Config {
            bucket: crate::topology::subjects::LOCKS_BUCKET.into(),
            history: 1,
            ..Default::default()
        })
        .await?)
}
