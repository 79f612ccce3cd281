//! Compare live streams with the desired ones field by field, and make them match: create what is absent,
//! update in place what the server lets change, and delete+recreate what it does not (only when allowed).
//!
//! What nats-server 2.15 refuses to change in place (measured against it): `storage`; `retention` to or
//! from `workqueue` (limits <-> interest is allowed); turning `deny_delete`, `deny_purge`, `allow_msg_ttl`
//! or `sealed` off again; `mirror`. Everything else in the list below is updated in place.
//!
//! A run with nothing to change reads each stream once (`STREAM.INFO`) and makes no other API call.

use super::desired::{fmt_bytes, fmt_duration, Desired, Resource};
use crate::change::{Change, FieldChange};
use crate::error::{fail, Kind};
use anyhow::{Context as _, Result};
use async_nats::jetstream::stream::{
    Compression, Config, DiscardPolicy, Info, RetentionPolicy, StorageType,
};
use async_nats::jetstream::Context;
use serde::Serialize;
use std::time::Duration;

pub const STAGE: &str = "nats";

/// One differing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub from: String,
    pub to: String,
    /// The server refuses this change in place: the stream must be deleted and recreated.
    pub immutable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Unchanged,
}

/// A desired resource with what the server has for it.
#[derive(Debug, Clone)]
pub struct Item {
    pub resource: Resource,
    pub live: Option<Info>,
    pub diffs: Vec<FieldDiff>,
}

impl Item {
    pub fn action(&self) -> Action {
        match &self.live {
            None => Action::Create,
            Some(_) if self.diffs.iter().any(|d| d.immutable) => Action::Replace,
            Some(_) if !self.diffs.is_empty() => Action::Update,
            Some(_) => Action::Unchanged,
        }
    }

    pub fn change(&self) -> Option<Change> {
        let label = self.resource.label();
        let c = match self.action() {
            Action::Unchanged => return None,
            Action::Create => {
                Change::new(STAGE, label, "create").note(describe(&self.resource.config))
            }
            Action::Update => Change::new(STAGE, label, "update"),
            Action::Replace => {
                let fixed: Vec<&str> = self
                    .diffs
                    .iter()
                    .filter(|d| d.immutable)
                    .map(|d| d.field)
                    .collect();
                Change::new(STAGE, label, "replace").note(format!(
                    "replace required: {} cannot change in place; needs --allow-replace, and loses the stored messages",
                    fixed.join(", ")
                ))
            }
        };
        let mut c = c;
        c.fields = self
            .diffs
            .iter()
            .map(|d| FieldChange {
                field: d.field.to_string(),
                from: d.from.clone(),
                to: d.to.clone(),
            })
            .collect();
        Some(c)
    }
}

fn describe(c: &Config) -> String {
    format!(
        "{} on {}, {} storage, max_age {}, max_bytes {}",
        c.name,
        c.subjects.join(","),
        storage_str(&c.storage),
        if c.max_age.is_zero() {
            "unlimited".into()
        } else {
            fmt_duration(c.max_age)
        },
        if c.max_bytes < 0 {
            "unlimited".into()
        } else {
            fmt_bytes(c.max_bytes)
        }
    )
}

/// Read every desired resource's stream (one STREAM.INFO each) and diff it.
pub async fn inspect(js: &Context, desired: &Desired) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for r in &desired.resources {
        let live = stream_info(js, r.stream_name()).await?;
        let diffs = live
            .as_ref()
            .map(|i| diff(&i.config, &r.config))
            .unwrap_or_default();
        items.push(Item {
            resource: r.clone(),
            live,
            diffs,
        });
    }
    Ok(items)
}

/// The stream's info, `None` when it does not exist.
pub async fn stream_info(js: &Context, name: &str) -> Result<Option<Info>> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s.cached_info().clone())),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND => Ok(None),
            _ => Err(fail(Kind::Unavailable, format!("cannot read stream {name}: {e}"))
                .help("is JetStream enabled and the account allowed to use it? `ghboot status` shows the server")
                .into()),
        },
    }
}

/// Server defaults filled in, so that configs that mean the same compare equal.
pub fn normalize(c: &Config) -> Config {
    let mut c = c.clone();
    let unlimited = |v: i64| if v <= 0 { -1 } else { v };
    c.max_bytes = unlimited(c.max_bytes);
    c.max_messages = unlimited(c.max_messages);
    c.max_messages_per_subject = unlimited(c.max_messages_per_subject);
    c.max_consumers = if c.max_consumers <= 0 {
        -1
    } else {
        c.max_consumers
    };
    c.max_message_size = if c.max_message_size <= 0 {
        -1
    } else {
        c.max_message_size
    };
    if c.num_replicas == 0 {
        c.num_replicas = 1;
    }
    if c.duplicate_window.is_zero() && c.mirror.is_none() {
        let def = Duration::from_secs(120);
        c.duplicate_window = if !c.max_age.is_zero() && c.max_age < def {
            c.max_age
        } else {
            def
        };
    }
    if c.description.as_deref() == Some("") {
        c.description = None;
    }
    if c.compression.is_none() {
        c.compression = Some(Compression::None);
    }
    c.subjects.sort();
    c
}

fn storage_str(s: &StorageType) -> &'static str {
    match s {
        StorageType::File => "file",
        StorageType::Memory => "memory",
    }
}
fn retention_str(r: &RetentionPolicy) -> &'static str {
    match r {
        RetentionPolicy::Limits => "limits",
        RetentionPolicy::Interest => "interest",
        RetentionPolicy::WorkQueue => "workqueue",
    }
}
fn discard_str(d: &DiscardPolicy) -> &'static str {
    match d {
        DiscardPolicy::Old => "old",
        DiscardPolicy::New => "new",
    }
}
fn age(d: Duration) -> String {
    if d.is_zero() {
        "unlimited".into()
    } else {
        fmt_duration(d)
    }
}
fn limit(v: i64) -> String {
    if v < 0 {
        "unlimited".into()
    } else {
        v.to_string()
    }
}
fn bytes(v: i64) -> String {
    if v < 0 {
        "unlimited".into()
    } else {
        fmt_bytes(v)
    }
}

/// A field ghboot manages: how it is shown, and whether a change from `from` to `to` needs a replace.
struct Field {
    name: &'static str,
    show: fn(&Config) -> String,
    immutable: fn(&Config, &Config) -> bool,
    /// Copy the desired value onto the live config (for an in-place update).
    set: fn(&mut Config, &Config),
}

fn never(_: &Config, _: &Config) -> bool {
    false
}

const FIELDS: &[Field] = &[
    Field {
        name: "subjects",
        show: |c| c.subjects.join(","),
        immutable: never,
        set: |l, d| l.subjects = d.subjects.clone(),
    },
    Field {
        name: "description",
        show: |c| c.description.clone().unwrap_or_default(),
        immutable: never,
        set: |l, d| l.description = d.description.clone(),
    },
    Field {
        name: "storage",
        show: |c| storage_str(&c.storage).into(),
        immutable: |_, _| true,
        set: |l, d| l.storage = d.storage,
    },
    Field {
        name: "retention",
        show: |c| retention_str(&c.retention).into(),
        immutable: |f, t| {
            f.retention == RetentionPolicy::WorkQueue || t.retention == RetentionPolicy::WorkQueue
        },
        set: |l, d| l.retention = d.retention,
    },
    Field {
        name: "discard",
        show: |c| discard_str(&c.discard).into(),
        immutable: never,
        set: |l, d| l.discard = d.discard,
    },
    Field {
        name: "max_age",
        show: |c| age(c.max_age),
        immutable: never,
        set: |l, d| l.max_age = d.max_age,
    },
    Field {
        name: "max_bytes",
        show: |c| bytes(c.max_bytes),
        immutable: never,
        set: |l, d| l.max_bytes = d.max_bytes,
    },
    Field {
        name: "max_msgs",
        show: |c| limit(c.max_messages),
        immutable: never,
        set: |l, d| l.max_messages = d.max_messages,
    },
    Field {
        name: "max_msgs_per_subject",
        show: |c| limit(c.max_messages_per_subject),
        immutable: never,
        set: |l, d| l.max_messages_per_subject = d.max_messages_per_subject,
    },
    Field {
        name: "max_msg_size",
        show: |c| bytes(c.max_message_size as i64),
        immutable: never,
        set: |l, d| l.max_message_size = d.max_message_size,
    },
    Field {
        name: "max_consumers",
        show: |c| limit(c.max_consumers as i64),
        immutable: never,
        set: |l, d| l.max_consumers = d.max_consumers,
    },
    Field {
        name: "duplicate_window",
        show: |c| fmt_duration(c.duplicate_window),
        immutable: never,
        set: |l, d| l.duplicate_window = d.duplicate_window,
    },
    Field {
        name: "replicas",
        show: |c| c.num_replicas.to_string(),
        immutable: never,
        set: |l, d| l.num_replicas = d.num_replicas,
    },
    Field {
        name: "allow_rollup_hdrs",
        show: |c| c.allow_rollup.to_string(),
        immutable: never,
        set: |l, d| l.allow_rollup = d.allow_rollup,
    },
    Field {
        name: "deny_delete",
        show: |c| c.deny_delete.to_string(),
        immutable: |f, t| f.deny_delete && !t.deny_delete,
        set: |l, d| l.deny_delete = d.deny_delete,
    },
    Field {
        name: "deny_purge",
        show: |c| c.deny_purge.to_string(),
        immutable: |f, t| f.deny_purge && !t.deny_purge,
        set: |l, d| l.deny_purge = d.deny_purge,
    },
    Field {
        name: "allow_direct",
        show: |c| c.allow_direct.to_string(),
        immutable: never,
        set: |l, d| l.allow_direct = d.allow_direct,
    },
    Field {
        name: "allow_msg_ttl",
        show: |c| c.allow_message_ttl.to_string(),
        immutable: |f, t| f.allow_message_ttl && !t.allow_message_ttl,
        set: |l, d| l.allow_message_ttl = d.allow_message_ttl,
    },
    Field {
        name: "sealed",
        show: |c| c.sealed.to_string(),
        immutable: |f, t| f.sealed && !t.sealed,
        set: |l, d| l.sealed = d.sealed,
    },
    Field {
        name: "no_ack",
        show: |c| c.no_ack.to_string(),
        immutable: never,
        set: |l, d| l.no_ack = d.no_ack,
    },
    Field {
        name: "mirror",
        show: |c| {
            c.mirror
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_else(|| "none".into())
        },
        immutable: |_, _| true,
        set: |l, d| l.mirror = d.mirror.clone(),
    },
    Field {
        name: "sources",
        show: |c| {
            c.sources
                .as_ref()
                .map(|s| {
                    s.iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "none".into())
        },
        immutable: never,
        set: |l, d| l.sources = d.sources.clone(),
    },
    Field {
        name: "compression",
        show: |c| match c.compression {
            Some(Compression::S2) => "s2".into(),
            _ => "none".into(),
        },
        immutable: never,
        set: |l, d| l.compression = d.compression.clone(),
    },
];

/// Field-by-field difference between a live config and the desired one (both normalized first).
pub fn diff(live: &Config, want: &Config) -> Vec<FieldDiff> {
    let (l, w) = (normalize(live), normalize(want));
    FIELDS
        .iter()
        .filter_map(|f| {
            let (from, to) = ((f.show)(&l), (f.show)(&w));
            (from != to).then(|| FieldDiff {
                field: f.name,
                from,
                to,
                immutable: (f.immutable)(&l, &w),
            })
        })
        .collect()
}

/// The live config with every managed field set to the desired value; unmanaged fields (metadata the
/// server adds, consumer limits, ...) are kept as they are.
pub fn merged(live: &Config, want: &Config) -> Config {
    let mut out = live.clone();
    for f in FIELDS {
        (f.set)(&mut out, want);
    }
    out
}

/// What apply did, for the stage outputs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub replaced: Vec<String>,
    pub unchanged: Vec<String>,
}

/// How a replace is confirmed: `Ok(true)` go ahead.
pub type Confirm<'a> = &'a (dyn Fn(&str) -> Result<bool> + Send + Sync);

/// Make the server match `desired`. Refuses (before changing anything) when a replace is needed and not
/// allowed; `confirm` is asked once per replace when allowed.
pub async fn reconcile(
    js: &Context,
    desired: &Desired,
    allow_replace: bool,
    warn: &(dyn Fn(&str) + Send + Sync),
    confirm: Confirm<'_>,
) -> Result<Summary> {
    let items = inspect(js, desired).await?;
    let replaces: Vec<&Item> = items
        .iter()
        .filter(|i| i.action() == Action::Replace)
        .collect();
    if !replaces.is_empty() && !allow_replace {
        let what: Vec<String> = replaces
            .iter()
            .map(|i| {
                let f: Vec<String> = i
                    .diffs
                    .iter()
                    .filter(|d| d.immutable)
                    .map(|d| format!("{} {} -> {}", d.field, d.from, d.to))
                    .collect();
                format!("{} ({})", i.resource.label(), f.join(", "))
            })
            .collect();
        return Err(fail(Kind::Config, format!("cannot change in place: {}", what.join("; ")))
            .help("rerun with --allow-replace to delete and recreate it (its stored messages are lost), or change the configuration back")
            .into());
    }
    for i in &replaces {
        let msgs = i.live.as_ref().map(|l| l.state.messages).unwrap_or(0);
        let q = format!(
            "{} must be deleted and recreated; its {msgs} stored message(s) will be lost",
            i.resource.label()
        );
        warn(&q);
        if !confirm(&format!("{q}. Go ahead?"))? {
            return Err(fail(
                Kind::Config,
                format!("replacing {} was declined", i.resource.label()),
            )
            .help("nothing was changed; rerun when you are ready, or change the configuration back")
            .into());
        }
    }
    let mut sum = Summary::default();
    for i in &items {
        let name = i.resource.label();
        let want = &i.resource.config;
        match i.action() {
            Action::Unchanged => sum.unchanged.push(name),
            Action::Create => match create_or_adopt(js, want).await? {
                Created::New => sum.created.push(name),
                Created::Adopted => sum.updated.push(name),
            },
            Action::Update => {
                let live = &i.live.as_ref().context("live config of an update")?.config;
                js.update_stream(merged(live, want))
                    .await
                    .map_err(|e| api_error("update", &name, e))?;
                sum.updated.push(name);
            }
            Action::Replace => {
                js.delete_stream(want.name.as_str())
                    .await
                    .map_err(|e| api_error("delete", &name, e))?;
                js.create_stream(want.clone())
                    .await
                    .map_err(|e| api_error("recreate", &name, e))?;
                sum.replaced.push(name);
            }
        }
    }
    Ok(sum)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// It appeared between inspection and creation and was updated in place instead.
    Adopted,
}

/// Create a stream; if someone created it since we looked (a controller container that started before the
/// topology, another ghboot), bring that one to the desired configuration in place instead of failing.
pub async fn create_or_adopt(js: &Context, want: &Config) -> Result<Created> {
    let name = format!("stream {}", want.name);
    match js.create_stream(want.clone()).await {
        Ok(_) => Ok(Created::New),
        Err(create_err) => {
            let Ok(mut existing) = js.get_stream(want.name.as_str()).await else {
                return Err(api_error("create", &name, create_err));
            };
            let live = existing
                .info()
                .await
                .map_err(|e| api_error("inspect", &name, e))?
                .config
                .clone();
            js.update_stream(merged(&live, want))
                .await
                .map_err(|e| api_error("update", &name, e))?;
            Ok(Created::Adopted)
        }
    }
}

fn api_error(what: &str, name: &str, e: impl std::fmt::Display) -> anyhow::Error {
    fail(Kind::Error, format!("cannot {what} {name}: {e}"))
        .help("check the server's log (`ghboot logs nats`); a setting the server refuses belongs in [topology] of ghboot.toml")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config {
            name: "S".into(),
            subjects: vec!["a.>".into()],
            max_age: Duration::from_secs(7 * 86400),
            duplicate_window: Duration::from_secs(3600),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_compare_equal_and_changes_read_in_human_units() {
        let mut server_view = normalize(&base());
        server_view.description = Some(String::new());
        assert!(diff(&server_view, &base()).is_empty());
        let mut changed = base();
        changed.max_age = Duration::from_secs(14 * 86400);
        let d = diff(&base(), &changed);
        assert_eq!(
            d,
            vec![FieldDiff {
                field: "max_age",
                from: "7d".into(),
                to: "14d".into(),
                immutable: false
            }]
        );
    }

    #[test]
    fn immutable_fields_are_the_ones_the_server_refuses() {
        let mut mem = base();
        mem.storage = StorageType::Memory;
        assert!(diff(&base(), &mem)[0].immutable);
        let mut interest = base();
        interest.retention = RetentionPolicy::Interest;
        assert!(!diff(&base(), &interest)[0].immutable);
        let mut wq = base();
        wq.retention = RetentionPolicy::WorkQueue;
        assert!(diff(&base(), &wq)[0].immutable);
        let mut deny = base();
        deny.deny_delete = true;
        assert!(
            !diff(&base(), &deny)[0].immutable,
            "turning deny_delete on is allowed"
        );
        assert!(diff(&deny, &base())[0].immutable, "turning it off is not");
    }
}
