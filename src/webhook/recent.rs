//! The last deliveries the receiver saw (stored, duplicate or refused), newest last, for the status page.
//! In memory only and bounded: a supervisor restart starts an empty list (JetStream keeps the events).
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many deliveries are kept.
pub const KEEP: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub at: String,
    pub event: Option<String>,
    pub repo: Option<String>,
    pub delivery: Option<String>,
    pub subject: Option<String>,
    /// `stored`, `duplicate`, or the refusal reason (`signature_invalid`, ...).
    pub outcome: String,
    pub duplicate: bool,
}

#[derive(Default)]
pub struct Recent(Mutex<VecDeque<Delivery>>);

impl Recent {
    fn push(&self, d: Delivery) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() >= KEEP {
                q.pop_front();
            }
            q.push_back(d);
        }
    }
    pub fn stored(
        &self,
        event: &str,
        repo: Option<&str>,
        delivery: &str,
        subject: &str,
        duplicate: bool,
    ) {
        self.push(Delivery {
            at: now(),
            event: Some(event.into()),
            repo: repo.map(str::to_string),
            delivery: Some(delivery.into()),
            subject: Some(subject.into()),
            outcome: if duplicate { "duplicate" } else { "stored" }.into(),
            duplicate,
        });
    }
    pub fn refused(&self, event: Option<&str>, delivery: Option<&str>, reason: &str) {
        self.push(Delivery {
            at: now(),
            event: event.map(str::to_string),
            repo: None,
            delivery: delivery.map(str::to_string),
            subject: None,
            outcome: reason.into(),
            duplicate: false,
        });
    }
    /// Newest first.
    pub fn list(&self) -> Vec<Delivery> {
        self.0
            .lock()
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifty_newest_first() {
        let r = Recent::default();
        for i in 0..(KEEP + 5) {
            r.stored(
                "push",
                Some("r"),
                &format!("d{i}"),
                "github.o.r.push",
                false,
            );
        }
        r.refused(Some("push"), None, "signature_invalid");
        let l = r.list();
        assert_eq!(l.len(), KEEP);
        assert_eq!(l[0].outcome, "signature_invalid");
        assert_eq!(l[1].delivery.as_deref(), Some(&*format!("d{}", KEEP + 4)));
        assert_eq!(l[KEEP - 1].delivery.as_deref(), Some("d6"));
    }
}
