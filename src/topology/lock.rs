//! A distributed lock on JetStream KV, with fencing tokens.
//!
//! - **acquire** is a KV *create* (a publish that expects the key to have no live revision): of many
//!   contenders exactly one wins. The lock expires when the bucket's `max_age` passes without a
//!   [`Lock::refresh`] (the server removes the entry), so a crashed holder does not block forever.
//! - **fencing token**: the KV revision of the lock entry (the stream sequence), which only grows. A holder
//!   passes it along with every write it makes under the lock; [`fenced_write`] refuses a write whose token
//!   is lower than the highest token the resource has seen, so a holder whose lock expired (paused, cut off)
//!   cannot overwrite what the next holder wrote.
//! - **release** deletes the entry only if its revision is still ours.
//!
//! Publishing with a `Nats-Msg-Id` is deduplication, not mutual exclusion; it is not used here.

use super::{desired, subjects};
use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A held lock. Dropping it without [`Lock::release`] leaves the entry to expire.
#[derive(Debug)]
pub struct Lock {
    kv: Store,
    key: String,
    owner: String,
    revision: u64,
}

impl Lock {
    /// Try once: `Some` when this caller now holds `key`, `None` when someone else does.
    pub async fn acquire(kv: &Store, key: &str, owner: &str) -> Result<Option<Lock>> {
        match kv.create(key, Bytes::copy_from_slice(owner.as_bytes())).await {
            Ok(revision) => Ok(Some(Lock { kv: kv.clone(), key: key.to_string(), owner: owner.to_string(), revision })),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot acquire lock {key}")),
        }
    }

    /// Try until `deadline` has passed (polling with a jittered backoff, 5 ms growing to 200 ms);
    /// `None` if the lock was not free in time.
    pub async fn acquire_wait(kv: &Store, key: &str, owner: &str, deadline: Duration) -> Result<Option<Lock>> {
        use rand::Rng;
        let until = Instant::now() + deadline;
        let mut backoff = Duration::from_millis(5);
        loop {
            if let Some(l) = Self::acquire(kv, key, owner).await? {
                return Ok(Some(l));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
            tokio::time::sleep((backoff / 2 + Duration::from_millis(jitter / 2)).min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// The fencing token: the revision of the lock entry. It grows with every acquire and refresh.
    pub fn fencing_token(&self) -> u64 {
        self.revision
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Extend the lease (another `max_age` from now). Fails if the lock expired or was taken meanwhile;
    /// the token changes.
    pub async fn refresh(&mut self) -> Result<()> {
        match self.kv.update(&self.key, Bytes::copy_from_slice(self.owner.as_bytes()), self.revision).await {
            Ok(rev) => {
                self.revision = rev;
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => bail!("lock {} was lost (expired or taken by another holder)", self.key),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot refresh lock {}", self.key)),
        }
    }

    /// Give the lock up: deletes the entry only if it is still ours (a lost lock is left alone).
    pub async fn release(self) -> Result<()> {
        match self.kv.delete_expect_revision(&self.key, Some(self.revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot release lock {}", self.key)),
        }
    }
}

/// The `locks` bucket; created with the default settings if the topology has not made it yet.
pub async fn open_locks(js: &async_nats::jetstream::Context) -> Result<Store> {
    if let Ok(kv) = js.get_key_value(subjects::LOCKS_BUCKET).await {
        return Ok(kv);
    }
    match js.create_stream(desired::default_locks_config(1)).await {
        Ok(_) => {}
        // Someone else created it meanwhile: fine.
        Err(e) if e.to_string().contains("already in use") => {}
        Err(e) => return Err(anyhow!(e)).context("cannot create the locks bucket"),
    }
    js.get_key_value(subjects::LOCKS_BUCKET).await.context("cannot open the locks bucket")
}

/// A write refused because a newer lock holder has written to the resource already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleToken {
    pub token: u64,
    pub highest: u64,
}

impl std::fmt::Display for StaleToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stale fencing token {} (the resource has seen {}): the lock was lost", self.token, self.highest)
    }
}
impl std::error::Error for StaleToken {}

/// A value written under a fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The highest token that has written this resource.
    pub token: u64,
    pub value: Bytes,
    /// KV revision of the entry.
    pub revision: u64,
}

const FENCE_PREFIX: &[u8] = b"ghboot-fence ";

fn encode(token: u64, value: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(value.len() + 32);
    b.extend_from_slice(FENCE_PREFIX);
    b.extend_from_slice(token.to_string().as_bytes());
    b.push(b'\n');
    b.extend_from_slice(value);
    b.into()
}

fn decode(raw: &Bytes) -> Option<(u64, Bytes)> {
    let rest = raw.strip_prefix(FENCE_PREFIX)?;
    let nl = rest.iter().position(|c| *c == b'\n')?;
    let token = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let start = FENCE_PREFIX.len() + nl + 1;
    Some((token, raw.slice(start..)))
}

/// Read a resource written with [`fenced_write`].
pub async fn fenced_read(kv: &Store, key: &str) -> Result<Option<Fenced>> {
    let Some(e) = kv.entry(key).await.with_context(|| format!("cannot read {key}"))? else {
        return Ok(None);
    };
    if e.operation != Operation::Put {
        return Ok(None);
    }
    let (token, value) = decode(&e.value).ok_or_else(|| anyhow!("{key} holds a value that was not written with fenced_write"))?;
    Ok(Some(Fenced { token, value, revision: e.revision }))
}

/// Write `value` to `key` on behalf of the holder of fencing token `token`. The resource keeps the highest
/// token that wrote it, next to the value (`ghboot-fence <token>\n<value>`), and the write is a
/// compare-and-set on the entry's revision: a write with a token lower than the highest seen fails with
/// [`StaleToken`] (downcast the error to tell), however the writes interleave. Returns the new revision.
///
/// Do not delete a fenced key (the fence would go with it); write a tombstone value instead.
pub async fn fenced_write(kv: &Store, key: &str, token: u64, value: Bytes) -> Result<u64> {
    for _ in 0..1000 {
        let entry = kv.entry(key).await.with_context(|| format!("cannot read {key}"))?;
        let (expected, highest) = match &entry {
            None => (0, 0),
            Some(e) if e.operation != Operation::Put => (e.revision, 0),
            Some(e) => {
                let (t, _) = decode(&e.value).ok_or_else(|| anyhow!("{key} holds a value that was not written with fenced_write"))?;
                (e.revision, t)
            }
        };
        if token < highest {
            return Err(StaleToken { token, highest }.into());
        }
        match kv.update(key, encode(token, &value), expected).await {
            Ok(rev) => return Ok(rev),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(anyhow!(e)).with_context(|| format!("cannot write {key}")),
        }
    }
    bail!("cannot write {key}: too much contention")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_envelope_round_trips() {
        let b = encode(42, b"hello\nworld");
        assert_eq!(decode(&b), Some((42, Bytes::from_static(b"hello\nworld"))));
        assert_eq!(decode(&Bytes::from_static(b"plain")), None);
    }
}
