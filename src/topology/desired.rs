//! The desired JetStream topology, computed from [`Settings`]: defaults, overridden by the `[topology]`
//! table of `ghboot.toml`. Every resource is described as the full stream configuration the server reports
//! back (server defaults filled in), so that a live stream can be compared with it field by field.
//!
//! ```toml
//! [topology.events]          # also: dead_letter, ghboot_events
//! max_age = "14d"            # humantime: 90s, 5m, 72h, 7d
//! max_bytes = "2GiB"         # or an integer number of bytes
//! duplicate_window = "72h"
//! storage = "file"           # file | memory (changing it needs --allow-replace)
//! [topology.locks]           # also: state, workflows
//! max_age = "5m"             # lock expiry
//! history = 1
//! ```

use super::subjects;
use crate::config::Settings;
use crate::error::{fail, Kind};
use anyhow::Result;
use async_nats::jetstream::stream::{
    Compression, Config, DiscardPolicy, RetentionPolicy, StorageType,
};
use serde::Deserialize;
use std::time::Duration;

/// Headers the controller sets on a dead letter (the original message's headers are copied as well, so
/// `Nats-Msg-Id` / `X-GitHub-Delivery` still identify the delivery).
pub const DLQ_REASON: &str = "Ghboot-Dlq-Reason";
/// How many deliveries were attempted before giving up.
pub const DLQ_ATTEMPTS: &str = "Ghboot-Dlq-Attempts";
/// Stream, sequence and subject the message came from.
pub const DLQ_STREAM: &str = "Ghboot-Dlq-Stream";
pub const DLQ_SEQUENCE: &str = "Ghboot-Dlq-Sequence";
pub const DLQ_SUBJECT: &str = "Ghboot-Dlq-Subject";
/// RFC 3339 time the controller gave up.
pub const DLQ_FAILED_AT: &str = "Ghboot-Dlq-Failed-At";

/// Events are kept a week by default: long enough to replay after a weekend outage of the controller.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 86400);
pub const EVENTS_MAX_BYTES: i64 = 1 << 30;
/// The receiver publishes each delivery with `Nats-Msg-Id` = `X-GitHub-Delivery`. GitHub never redelivers
/// on its own, but people redeliver by hand (UI or API) deliveries of the last 3 days on github.com — most
/// often one that GitHub counted as failed because our 2xx came after its 10 s timeout, i.e. one that *did*
/// reach the stream. A 72 h window makes the server drop every such redelivery for github.com; a
/// redelivery of a delivery that never reached the stream is not in the window and is accepted. The cost is
/// one in-memory entry per delivery of the last 72 h (about 100 bytes each). Enterprise Server allows 7 days
/// of redelivery: set `duplicate_window = "7d"` there. The server refuses a window longer than `max_age`.
pub const EVENTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(72 * 3600);
/// Dead letters wait for a human: a month.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(30 * 86400);
pub const DLQ_MAX_BYTES: i64 = 256 << 20;
/// The controller dead-letters with the delivery id as `Nats-Msg-Id`: a retried dead-lettering after a
/// crash within a day is dropped.
pub const DLQ_DUPLICATE_WINDOW: Duration = Duration::from_secs(86400);
pub const GHBOOT_EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 86400);
pub const GHBOOT_EVENTS_MAX_BYTES: i64 = 256 << 20;
pub const GHBOOT_EVENTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// A lock not refreshed for this long is gone (the bucket's max_age).
pub const LOCKS_TTL: Duration = Duration::from_secs(300);
pub const KV_MAX_BYTES: i64 = 64 << 20;

/// The server's default duplicate window (used when none is given, capped at max_age).
const SERVER_DEFAULT_DUPLICATES: Duration = Duration::from_secs(120);

/// Replicas of every stream and bucket: what the deployment target runs (1 single server, 3 on a cluster).
pub fn replicas_for(settings: &Settings) -> usize {
    crate::deploy::replicas(settings)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Stream,
    Bucket,
}

/// One stream (or KV bucket, which is the stream `KV_<bucket>`) ghboot owns.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: ResourceKind,
    /// The bucket name for a KV bucket, the stream name otherwise.
    pub name: String,
    pub config: Config,
}

impl Resource {
    pub fn stream_name(&self) -> &str {
        &self.config.name
    }
    /// `stream GITHUB_EVENTS_ACME` / `kv locks`: how plan and errors name it.
    pub fn label(&self) -> String {
        match self.kind {
            ResourceKind::Stream => format!("stream {}", self.name),
            ResourceKind::Bucket => format!("kv {}", self.name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub org: String,
    pub replicas: usize,
    pub resources: Vec<Resource>,
    /// Consumers of the product repositories (`ghboot repo add`), on the events and routing streams.
    pub consumers: Vec<super::consumers::DesiredConsumer>,
}

// ---- the [topology] table ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    #[serde(default)]
    pub events: StreamOverrides,
    #[serde(default)]
    pub dead_letter: StreamOverrides,
    #[serde(default)]
    pub ghboot_events: StreamOverrides,
    #[serde(default)]
    pub locks: BucketOverrides,
    #[serde(default)]
    pub state: BucketOverrides,
    #[serde(default)]
    pub workflows: BucketOverrides,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOverrides {
    pub max_age: Option<HumanDuration>,
    pub max_bytes: Option<ByteSize>,
    pub duplicate_window: Option<HumanDuration>,
    pub storage: Option<Storage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketOverrides {
    pub max_age: Option<HumanDuration>,
    pub max_bytes: Option<ByteSize>,
    pub history: Option<i64>,
    pub storage: Option<Storage>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    File,
    Memory,
}

impl From<Storage> for StorageType {
    fn from(s: Storage) -> Self {
        match s {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        }
    }
}

/// `"7d"`, `"90s"`, `"1h 30m"`, or an integer number of seconds.
#[derive(Debug, Clone, Copy)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(HumanDuration(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(t.trim())
                .map(HumanDuration)
                .map_err(|e| serde::de::Error::custom(format!("{t:?} is not a duration ({e}); write e.g. \"90s\", \"5m\", \"72h\", \"7d\""))),
        }
    }
}

/// `"1GiB"`, `"512MB"`, `"1048576"`, or an integer number of bytes.
#[derive(Debug, Clone, Copy)]
pub struct ByteSize(pub i64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) if b > 0 => Ok(ByteSize(b)),
            Raw::Bytes(b) => Err(serde::de::Error::custom(format!(
                "{b} is not a positive size"
            ))),
            Raw::Text(t) => parse_bytes(&t).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a size; write e.g. \"512MiB\", \"1GiB\" or 1048576"
                ))
            }),
        }
    }
}

pub fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

/// Parse the `[topology]` table of ghboot.toml.
pub fn parse_file(settings: &Settings) -> Result<TopologyFile> {
    let where_ = settings
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "ghboot.toml".into());
    parse_table(&settings.file.topology, &where_)
}

/// Parse a `[topology]` table; `where_` names the file in errors.
pub fn parse_table(table: &toml::Table, where_: &str) -> Result<TopologyFile> {
    toml::Value::Table(table.clone()).try_into::<TopologyFile>().map_err(|e| {
        fail(Kind::Config, format!("invalid [topology] in {where_}: {}", e.message().trim()))
            .help("[topology] takes the tables events, dead_letter, ghboot_events (max_age, max_bytes, duplicate_window, storage) and locks, state, workflows (max_age, max_bytes, history, storage)")
            .into()
    })
}

// ---- building the desired topology ----

struct StreamDefaults {
    name: String,
    description: String,
    subject: String,
    max_age: Duration,
    max_bytes: i64,
    duplicate_window: Duration,
}

fn stream(
    label: &str,
    d: StreamDefaults,
    o: &StreamOverrides,
    replicas: usize,
) -> Result<Resource> {
    let max_age = o.max_age.map(|v| v.0).unwrap_or(d.max_age);
    let duplicate_window = o
        .duplicate_window
        .map(|v| v.0)
        .unwrap_or(d.duplicate_window);
    if max_age.is_zero() || duplicate_window.is_zero() {
        return Err(fail(
            Kind::Config,
            format!("[topology.{label}]: max_age and duplicate_window must be longer than 0"),
        )
        .help("events streams are bounded: give a positive duration such as \"7d\"")
        .into());
    }
    if duplicate_window > max_age {
        return Err(fail(
            Kind::Config,
            format!("[topology.{label}]: duplicate_window {} is longer than max_age {}", fmt_duration(duplicate_window), fmt_duration(max_age)),
        )
        .help("nats-server refuses a duplicate window longer than the stream's max_age: shorten duplicate_window or lengthen max_age")
        .into());
    }
    let config = Config {
        name: d.name.clone(),
        description: Some(d.description),
        subjects: vec![d.subject],
        retention: RetentionPolicy::Limits,
        storage: o.storage.unwrap_or(Storage::File).into(),
        discard: DiscardPolicy::Old,
        max_age,
        max_bytes: o.max_bytes.map(|b| b.0).unwrap_or(d.max_bytes),
        max_messages: -1,
        max_messages_per_subject: -1,
        max_message_size: -1,
        max_consumers: -1,
        duplicate_window,
        num_replicas: replicas,
        compression: Some(Compression::None),
        ..Default::default()
    };
    Ok(Resource {
        kind: ResourceKind::Stream,
        name: d.name,
        config,
    })
}

/// The stream behind a KV bucket, as async-nats' `create_key_value` makes it (and the server completes it).
pub fn bucket_config(
    bucket: &str,
    description: &str,
    history: i64,
    max_age: Duration,
    max_bytes: i64,
    storage: StorageType,
    replicas: usize,
) -> Config {
    let duplicate_window = if !max_age.is_zero() && max_age < SERVER_DEFAULT_DUPLICATES {
        max_age
    } else {
        SERVER_DEFAULT_DUPLICATES
    };
    Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        retention: RetentionPolicy::Limits,
        storage,
        discard: DiscardPolicy::New,
        max_age,
        max_bytes,
        max_messages: -1,
        max_messages_per_subject: history,
        max_message_size: -1,
        max_consumers: -1,
        duplicate_window,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        compression: Some(Compression::None),
        ..Default::default()
    }
}

fn bucket(
    label: &str,
    name: &str,
    description: &str,
    history: i64,
    max_age: Duration,
    o: &BucketOverrides,
    replicas: usize,
) -> Result<Resource> {
    let history = o.history.unwrap_or(history);
    if !(1..=64).contains(&history) {
        return Err(fail(
            Kind::Config,
            format!("[topology.{label}]: history {history} is out of range"),
        )
        .help("a KV bucket keeps 1 to 64 revisions per key")
        .into());
    }
    let max_age = o.max_age.map(|v| v.0).unwrap_or(max_age);
    let max_bytes = o.max_bytes.map(|b| b.0).unwrap_or(KV_MAX_BYTES);
    let config = bucket_config(
        name,
        description,
        history,
        max_age,
        max_bytes,
        o.storage.unwrap_or(Storage::File).into(),
        replicas,
    );
    Ok(Resource {
        kind: ResourceKind::Bucket,
        name: name.to_string(),
        config,
    })
}

/// The locks bucket with default settings (what `lock::open_locks` creates when the topology has not).
pub fn default_locks_config(replicas: usize) -> Config {
    bucket_config(
        subjects::LOCKS_BUCKET,
        "ghboot distributed locks (entries expire)",
        1,
        LOCKS_TTL,
        KV_MAX_BYTES,
        StorageType::File,
        replicas,
    )
}

/// Everything ghboot keeps in JetStream for `settings.org`.
pub fn desired(settings: &Settings) -> Result<Desired> {
    let mut d = build(
        &settings.org,
        &parse_file(settings)?,
        replicas_for(settings),
    )?;
    let reg = crate::repos::Registry::load(&settings.layout)?;
    if !reg.repos.is_empty() {
        d.resources.push(routes_stream(&d.org, d.replicas)?);
        d.consumers = super::consumers::desired(&d.org, &reg);
    }
    Ok(d)
}

/// Routing between product repositories: what each publishes under `repo.<org>.<repo>.>`. Only there
/// once a repository is registered.
pub fn routes_stream(org: &str, replicas: usize) -> Result<Resource> {
    stream(
        "routes",
        StreamDefaults {
            name: subjects::repo::routes_stream(org),
            description: format!("messages the repositories of {org} publish to each other"),
            subject: subjects::repo::routes_filter(org),
            max_age: GHBOOT_EVENTS_MAX_AGE,
            max_bytes: GHBOOT_EVENTS_MAX_BYTES,
            duplicate_window: GHBOOT_EVENTS_DUPLICATE_WINDOW,
        },
        &StreamOverrides::default(),
        replicas,
    )
}

/// The desired topology of `org` with these overrides and replicas.
pub fn build(org: &str, f: &TopologyFile, r: usize) -> Result<Desired> {
    let org = org.to_string();
    let resources = vec![
        stream(
            "events",
            StreamDefaults {
                name: subjects::events_stream(&org),
                description: format!("GitHub webhook deliveries of {org}"),
                subject: subjects::events_filter(&org),
                max_age: EVENTS_MAX_AGE,
                max_bytes: EVENTS_MAX_BYTES,
                duplicate_window: EVENTS_DUPLICATE_WINDOW,
            },
            &f.events,
            r,
        )?,
        stream(
            "dead_letter",
            StreamDefaults {
                name: subjects::dead_letter_stream(&org),
                description: format!(
                    "events of {org} the controller gave up on (reason in the {DLQ_REASON} header)"
                ),
                subject: subjects::dead_letter_filter(&org),
                max_age: DLQ_MAX_AGE,
                max_bytes: DLQ_MAX_BYTES,
                duplicate_window: DLQ_DUPLICATE_WINDOW,
            },
            &f.dead_letter,
            r,
        )?,
        stream(
            "ghboot_events",
            StreamDefaults {
                name: subjects::ghboot_events_stream(&org),
                description: format!(
                    "ghboot's own events for {org} (workflow transitions, round trips)"
                ),
                subject: subjects::ghboot_events_filter(&org),
                max_age: GHBOOT_EVENTS_MAX_AGE,
                max_bytes: GHBOOT_EVENTS_MAX_BYTES,
                duplicate_window: GHBOOT_EVENTS_DUPLICATE_WINDOW,
            },
            &f.ghboot_events,
            r,
        )?,
        bucket(
            "locks",
            subjects::LOCKS_BUCKET,
            "ghboot distributed locks (entries expire)",
            1,
            LOCKS_TTL,
            &f.locks,
            r,
        )?,
        bucket(
            "state",
            subjects::STATE_BUCKET,
            "mirror of ghboot's bootstrap state",
            10,
            Duration::ZERO,
            &f.state,
            r,
        )?,
        bucket(
            "workflows",
            subjects::WORKFLOWS_BUCKET,
            "workflow state machine (idle, pending, running, completed, failed)",
            10,
            Duration::ZERO,
            &f.workflows,
            r,
        )?,
    ];
    Ok(Desired {
        org,
        replicas: r,
        resources,
        consumers: Vec::new(),
    })
}

/// `7d`, `14d`, `72h`, `2m`, `1h30m`, `500ms`; `0s` for zero.
pub fn fmt_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    if out.is_empty() {
        out = format!("{}ns", d.as_nanos());
    }
    out
}

/// `1GiB`, `256MiB`, `1500B`.
pub fn fmt_bytes(b: i64) -> String {
    for (unit, n) in [
        ("TiB", 1i64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if b >= n && b % n == 0 {
            return format!("{}{unit}", b / n);
        }
    }
    if b >= 1 << 20 {
        return format!("{:.1}MiB ({b}B)", b as f64 / (1 << 20) as f64);
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_and_print_in_human_units() {
        assert_eq!(fmt_duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(fmt_duration(Duration::from_secs(72 * 3600)), "3d");
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(fmt_bytes(1 << 30), "1GiB");
        assert_eq!(fmt_bytes(256 << 20), "256MiB");
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("10 MB"), Some(10_000_000));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn topology_table_is_typed_and_strict() {
        let t: toml::Table =
            toml::from_str("[events]\nmax_age = \"14d\"\nmax_bytes = \"2GiB\"\nstorage = \"memory\"\n[locks]\nmax_age = 60").unwrap();
        let f: TopologyFile = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(
            f.events.max_age.map(|d| d.0),
            Some(Duration::from_secs(14 * 86400))
        );
        assert_eq!(f.events.max_bytes.map(|b| b.0), Some(2 << 30));
        assert_eq!(f.events.storage, Some(Storage::Memory));
        assert_eq!(f.locks.max_age.map(|d| d.0), Some(Duration::from_secs(60)));
        for bad in [
            "[events]\nmax_agee = \"1d\"",
            "[evnts]\nmax_age = \"1d\"",
            "[events]\nmax_age = \"soon\"",
            "[events]\nstorage = \"disk\"",
        ] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            assert!(
                toml::Value::Table(t).try_into::<TopologyFile>().is_err(),
                "{bad}"
            );
        }
    }
}
