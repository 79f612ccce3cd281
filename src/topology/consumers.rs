//! Durable consumers ghboot owns for product repositories (`repo-<name>` on the events stream,
//! `repo-<name>-routes` on the routing stream), reconciled like the streams: created when absent, updated in
//! place (filters, description, ack wait), replaced when the server refuses the change (deliver or ack
//! policy), and a `repo-*` consumer nobody registered is deleted.

use super::reconcile::STAGE;
use super::subjects::{self, repo as rs};
use crate::engine::{Change, FieldChange};
use crate::error::{fail, Kind};
use crate::repos::{Registry, Repo};
use anyhow::Result;
use async_nats::jetstream::consumer::{self, pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::Context;
use futures::TryStreamExt;
use std::time::Duration;

/// Unacked messages come back after this long.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Every consumer ghboot owns for repositories starts with this; others on the same streams are left alone.
const PREFIX: &str = "repo-";

#[derive(Debug, Clone)]
pub struct DesiredConsumer {
    pub stream: String,
    pub config: pull::Config,
}

impl DesiredConsumer {
    pub fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }
    fn label(&self) -> String {
        label(&self.stream, self.name())
    }
}

fn label(stream: &str, name: &str) -> String {
    format!("consumer {stream}/{name}")
}

fn pull_config(name: String, description: String, filters: Vec<String>) -> pull::Config {
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters[0].clone(), Vec::new())
    } else {
        (String::new(), filters)
    };
    pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some(description),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        filter_subject,
        filter_subjects,
        ..Default::default()
    }
}

/// The consumers of one repository.
pub fn for_repo(org: &str, r: &Repo) -> Vec<DesiredConsumer> {
    let mut out = vec![DesiredConsumer {
        stream: subjects::events_stream(org),
        config: pull_config(
            rs::consumer(&r.name),
            format!(
                "events of {org}/{} for that repository's own identity",
                r.name
            ),
            crate::repos::event_filters(org, r),
        ),
    }];
    let granted = crate::repos::granted_subjects(org, r);
    if !granted.is_empty() {
        out.push(DesiredConsumer {
            stream: rs::routes_stream(org),
            config: pull_config(
                rs::routes_consumer(&r.name),
                format!(
                    "topics other repositories of {org} publish that {} was granted",
                    r.name
                ),
                granted,
            ),
        });
    }
    out
}

pub fn desired(org: &str, reg: &Registry) -> Vec<DesiredConsumer> {
    reg.repos.values().flat_map(|r| for_repo(org, r)).collect()
}

fn filters(c: &consumer::Config) -> Vec<String> {
    let mut v = if c.filter_subjects.is_empty() {
        vec![c.filter_subject.clone()]
    } else {
        c.filter_subjects.clone()
    };
    v.retain(|s| !s.is_empty());
    v.sort();
    v
}

fn pfilters(c: &pull::Config) -> Vec<String> {
    let mut v = if c.filter_subjects.is_empty() {
        vec![c.filter_subject.clone()]
    } else {
        c.filter_subjects.clone()
    };
    v.retain(|s| !s.is_empty());
    v.sort();
    v
}

fn deliver_str(d: &DeliverPolicy) -> String {
    match d {
        DeliverPolicy::All => "all".into(),
        DeliverPolicy::Last => "last".into(),
        DeliverPolicy::New => "new".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn ack_str(a: &AckPolicy) -> &'static str {
    match a {
        AckPolicy::Explicit => "explicit",
        AckPolicy::None => "none",
        AckPolicy::All => "all",
    }
}

/// (field, from, to, immutable)
fn diff(live: &consumer::Config, want: &pull::Config) -> Vec<(&'static str, String, String, bool)> {
    let mut out = Vec::new();
    let mut cmp = |f: &'static str, a: String, b: String, imm: bool| {
        if a != b {
            out.push((f, a, b, imm));
        }
    };
    cmp(
        "filter_subjects",
        filters(live).join(","),
        pfilters(want).join(","),
        false,
    );
    cmp(
        "description",
        live.description.clone().unwrap_or_default(),
        want.description.clone().unwrap_or_default(),
        false,
    );
    cmp(
        "ack_wait",
        super::desired::fmt_duration(live.ack_wait),
        super::desired::fmt_duration(want.ack_wait),
        false,
    );
    cmp(
        "deliver_policy",
        deliver_str(&live.deliver_policy),
        deliver_str(&want.deliver_policy),
        true,
    );
    cmp(
        "ack_policy",
        ack_str(&live.ack_policy).into(),
        ack_str(&want.ack_policy).into(),
        true,
    );
    out
}

#[derive(Debug)]
enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

#[derive(Debug)]
struct Item {
    stream: String,
    name: String,
    want: Option<pull::Config>,
    action: Action,
    diffs: Vec<(&'static str, String, String, bool)>,
}

async fn get_stream(
    js: &Context,
    name: &str,
) -> Result<Option<async_nats::jetstream::stream::Stream>> {
    if super::reconcile::stream_info(js, name).await?.is_none() {
        return Ok(None);
    }
    js.get_stream(name)
        .await
        .map(Some)
        .map_err(|e| api_error("read", &format!("stream {name}"), e))
}

/// Compare the desired consumers with the server's. A stream that does not exist yet has no consumers:
/// everything on it is to be created (after the stream).
async fn inspect(js: &Context, want: &[DesiredConsumer], streams: &[String]) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for stream in streams {
        let st = get_stream(js, stream).await?;
        let mine: Vec<&DesiredConsumer> = want.iter().filter(|d| &d.stream == stream).collect();
        let live_names: Vec<String> = match &st {
            Some(s) => s
                .consumer_names()
                .try_collect()
                .await
                .map_err(|e| api_error("list consumers of", stream, e))?,
            None => Vec::new(),
        };
        for d in &mine {
            let live = match (&st, live_names.iter().any(|n| n == d.name())) {
                (Some(s), true) => Some(
                    s.consumer_info(d.name())
                        .await
                        .map_err(|e| api_error("read", &d.label(), e))?
                        .config,
                ),
                _ => None,
            };
            let (action, diffs) = match live {
                None => (Action::Create, Vec::new()),
                Some(l) => {
                    let diffs = diff(&l, &d.config);
                    if diffs.is_empty() {
                        continue;
                    }
                    if diffs.iter().any(|x| x.3) {
                        (Action::Replace, diffs)
                    } else {
                        (Action::Update, diffs)
                    }
                }
            };
            items.push(Item {
                stream: stream.clone(),
                name: d.name().to_string(),
                want: Some(d.config.clone()),
                action,
                diffs,
            });
        }
        for n in live_names {
            if n.starts_with(PREFIX) && !mine.iter().any(|d| d.name() == n) {
                items.push(Item {
                    stream: stream.clone(),
                    name: n,
                    want: None,
                    action: Action::Delete,
                    diffs: Vec::new(),
                });
            }
        }
    }
    Ok(items)
}

/// The streams whose `repo-*` consumers ghboot manages.
pub fn managed_streams(org: &str) -> Vec<String> {
    vec![subjects::events_stream(org), rs::routes_stream(org)]
}

/// What reconciling would change, as plan rows.
pub async fn plan(js: &Context, org: &str, want: &[DesiredConsumer]) -> Result<Vec<Change>> {
    let items = inspect(js, want, &managed_streams(org)).await?;
    Ok(items
        .iter()
        .map(|i| {
            let (verb, note) = match i.action {
                Action::Create => ("create", i.want.as_ref().map(|w| pfilters(w).join(","))),
                Action::Update => ("update", None),
                Action::Replace => (
                    "replace",
                    Some("deliver or ack policy cannot change in place; the consumer restarts from its deliver policy".into()),
                ),
                Action::Delete => ("delete", Some("no registered repository owns it".into())),
            };
            let mut c = Change::new(STAGE, label(&i.stream, &i.name), verb);
            if let Some(n) = note {
                c = c.note(n);
            }
            c.fields = i
                .diffs
                .iter()
                .map(|(f, a, b, _)| FieldChange {
                    field: f.to_string(),
                    from: a.clone(),
                    to: b.clone(),
                })
                .collect();
            c
        })
        .collect())
}

/// Make the server's repository consumers match `want`. Returns the labels of what changed.
pub async fn reconcile(js: &Context, org: &str, want: &[DesiredConsumer]) -> Result<Vec<String>> {
    let items = inspect(js, want, &managed_streams(org)).await?;
    let mut changed = Vec::new();
    for i in items {
        let l = label(&i.stream, &i.name);
        let Some(st) = get_stream(js, &i.stream).await? else {
            continue;
        };
        match (i.action, i.want) {
            (Action::Create, Some(w)) => {
                st.create_consumer(w)
                    .await
                    .map_err(|e| api_error("create", &l, e))?;
            }
            (Action::Update, Some(w)) => {
                st.update_consumer(w)
                    .await
                    .map_err(|e| api_error("update", &l, e))?;
            }
            (Action::Replace, Some(w)) => {
                st.delete_consumer(&i.name)
                    .await
                    .map_err(|e| api_error("delete", &l, e))?;
                st.create_consumer(w)
                    .await
                    .map_err(|e| api_error("recreate", &l, e))?;
            }
            (Action::Delete, _) => {
                st.delete_consumer(&i.name)
                    .await
                    .map_err(|e| api_error("delete", &l, e))?;
            }
            _ => continue,
        }
        changed.push(l);
    }
    Ok(changed)
}

fn api_error(what: &str, name: &str, e: impl std::fmt::Display) -> anyhow::Error {
    fail(Kind::Error, format!("cannot {what} {name}: {e}"))
        .help("check the server's log (`ghboot logs nats`)")
        .into()
}
