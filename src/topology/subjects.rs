//! The one place subject and resource names are made. Org and repository names become subject tokens
//! here, escaped: a NATS token may not contain `.`, `*`, `>`, whitespace or be empty, but GitHub
//! repository names may contain `.` (and hostile input anything).
//!
//! Escaping is reversible and collision-free: `~` is the escape character; `.`->`~2E`, `*`->`~2A`,
//! `>`->`~3E`, `~`->`~7E`, whitespace and control characters -> `~XX` (hex of each UTF-8 byte); the empty
//! string becomes `~`. Everything else passes through, so ordinary names stay readable.

/// Token for events that belong to the org, not to one repository (GitHub sends no `repository` then).
/// `_` never starts a GitHub repository name... but it can; the escape makes `~org` unambiguous instead.
pub const ORG_TOKEN: &str = "~org";

pub fn escape_token(s: &str) -> String {
    if s.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '.' | '*' | '>' | '~' => push_hex(&mut out, ch),
            c if c.is_whitespace() || c.is_control() => push_hex(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

fn push_hex(out: &mut String, ch: char) {
    let mut buf = [0u8; 4];
    for b in ch.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("~{b:02X}"));
    }
}

/// Inverse of [`escape_token`]; `None` for input that escape_token never produces.
pub fn unescape_token(t: &str) -> Option<String> {
    if t == "~" {
        return Some(String::new());
    }
    let bytes = t.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = t.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `github.<org>.<repo>.<event>`: where a delivery is published.
pub fn event_subject(org: &str, repo: Option<&str>, event: &str) -> String {
    let repo = repo
        .map(escape_token)
        .unwrap_or_else(|| ORG_TOKEN.to_string());
    format!(
        "github.{}.{}.{}",
        escape_token(org),
        repo,
        escape_token(event)
    )
}

/// Everything the org's events stream captures. The events stream is the only one under `github.<org>.`.
pub fn events_filter(org: &str) -> String {
    format!("github.{}.>", escape_token(org))
}

/// Push events of one repository.
pub fn push_filter(org: &str, repo: &str) -> String {
    format!("github.{}.{}.push", escape_token(org), escape_token(repo))
}

/// Dead letters live outside `github.>` so the events stream never captures them.
pub fn dead_letter_subject(org: &str, repo: Option<&str>, event: &str) -> String {
    let repo = repo
        .map(escape_token)
        .unwrap_or_else(|| ORG_TOKEN.to_string());
    format!(
        "ghboot.dlq.{}.{}.{}",
        escape_token(org),
        repo,
        escape_token(event)
    )
}

pub fn dead_letter_filter(org: &str) -> String {
    format!("ghboot.dlq.{}.>", escape_token(org))
}

/// ghboot's own events (workflow transitions, round trips), also outside `github.>`.
pub fn ghboot_event_subject(org: &str, kind: &str) -> String {
    format!("ghboot.events.{}.{}", escape_token(org), escape_token(kind))
}

pub fn ghboot_events_filter(org: &str) -> String {
    format!("ghboot.events.{}.>", escape_token(org))
}

/// Stream names may not contain `.`, `*`, `>`, whitespace or path separators: map everything else to `_`.
pub fn stream_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub fn events_stream(org: &str) -> String {
    format!("GITHUB_EVENTS_{}", stream_safe(org))
}

pub fn dead_letter_stream(org: &str) -> String {
    format!("GHBOOT_DLQ_{}", stream_safe(org))
}

pub fn ghboot_events_stream(org: &str) -> String {
    format!("GHBOOT_EVENTS_{}", stream_safe(org))
}

/// Product repositories (`ghboot repo add`): their slice of the events stream, their outbound subjects on
/// the org's routing stream, and the names of their consumers, NATS users and inboxes. The repository name is
/// escaped like every other token, so `a.b` can never reach into `a`'s subjects.
pub mod repo {
    use super::{escape_token, stream_safe};

    /// Every event of one repository on the events stream.
    pub fn events_filter(org: &str, repo: &str) -> String {
        format!("github.{}.{}.>", escape_token(org), escape_token(repo))
    }
    /// One event type of one repository.
    pub fn event_filter(org: &str, repo: &str, event: &str) -> String {
        format!(
            "github.{}.{}.{}",
            escape_token(org),
            escape_token(repo),
            escape_token(event)
        )
    }
    /// What a repository may publish: `repo.<org>.<repo>.>` (its own prefix only).
    pub fn outbound_prefix(org: &str, repo: &str) -> String {
        format!("repo.{}.{}", escape_token(org), escape_token(repo))
    }
    pub fn outbound_filter(org: &str, repo: &str) -> String {
        format!("{}.>", outbound_prefix(org, repo))
    }
    /// `repo.<org>.<repo>.<topic>`; `topic` is one or more dot-separated tokens (wildcards allowed in a grant).
    pub fn topic_subject(org: &str, repo: &str, topic: &str) -> String {
        format!("{}.{topic}", outbound_prefix(org, repo))
    }
    /// The org's routing stream: everything repositories publish to each other.
    pub fn routes_stream(org: &str) -> String {
        format!("GHBOOT_ROUTES_{}", stream_safe(org))
    }
    pub fn routes_filter(org: &str) -> String {
        format!("repo.{}.>", escape_token(org))
    }
    /// The durable consumer on the events stream (also the repository's NATS user name).
    pub fn consumer(repo: &str) -> String {
        format!("repo-{}", escape_token(repo))
    }
    /// The durable consumer on the routing stream holding the topics the repository was granted.
    pub fn routes_consumer(repo: &str) -> String {
        format!("repo-{}-routes", escape_token(repo))
    }
    pub fn user(repo: &str) -> String {
        consumer(repo)
    }
    /// A per-identity inbox prefix, disjoint from `_INBOX.>`: one repository cannot read another's replies.
    pub fn inbox_prefix(repo: &str) -> String {
        format!("_INBOX_{}", consumer(repo))
    }
    /// JetStream API subjects one consumer's client needs: next message, its info; with a domain, the
    /// domain-prefixed form as well.
    pub fn consumer_api(stream: &str, consumer: &str, domain: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for api in ["$JS.API".to_string()]
            .into_iter()
            .chain(domain.map(|d| format!("$JS.{d}.API")))
        {
            out.push(format!("{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}"));
            out.push(format!("{api}.CONSUMER.INFO.{stream}.{consumer}"));
        }
        out
    }
    /// Acks of one consumer's messages: `$JS.ACK.<stream>.<consumer>.>`, and the newer form with domain and
    /// account hash in front.
    pub fn ack_filters(stream: &str, consumer: &str) -> Vec<String> {
        vec![
            format!("$JS.ACK.{stream}.{consumer}.>"),
            format!("$JS.ACK.*.*.{stream}.{consumer}.>"),
        ]
    }
}

pub const LOCKS_BUCKET: &str = "locks";
pub const STATE_BUCKET: &str = "state";
pub const WORKFLOWS_BUCKET: &str = "workflows";

/// KV keys: `[-/_=.a-zA-Z0-9]+`. Org and repo names are escaped to that alphabet (`.` kept as separator).
pub fn kv_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '='
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Key of the bootstrap state mirror in the `state` bucket: `bootstrap.<org>`.
pub fn state_key(org: &str) -> String {
    kv_key(&["bootstrap", org])
}

/// NATS headers the webhook receiver sets on every stored delivery (besides `Nats-Msg-Id` = the delivery id).
pub mod headers {
    /// GitHub's event name (`X-GitHub-Event`), e.g. `push`.
    pub const EVENT: &str = "X-GitHub-Event";
    /// GitHub's delivery GUID (`X-GitHub-Delivery`); also the message id.
    pub const DELIVERY: &str = "X-GitHub-Delivery";
    /// The hook that sent it (`X-GitHub-Hook-ID`), when GitHub says.
    pub const HOOK_ID: &str = "X-GitHub-Hook-ID";
    /// The payload's `action` field (`opened`, `completed`, ...), when it has one.
    pub const ACTION: &str = "X-GitHub-Action";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_single_valid_tokens() {
        for name in [
            "my.repo",
            "a*b",
            "x>y",
            "with space",
            "tab\there",
            "~tilde",
            "",
            "ünïcode.ok",
            "..",
            ">",
        ] {
            let t = escape_token(name);
            assert!(!t.is_empty(), "{name:?}");
            assert!(!t.contains(['.', '*', '>', ' ', '\t']), "{name:?} -> {t:?}");
            assert_eq!(
                unescape_token(&t).as_deref(),
                Some(name),
                "round trip of {name:?}"
            );
        }
    }

    #[test]
    fn escaping_is_injective_on_lookalikes() {
        let names = ["a.b", "a~2Eb", "a_b", "a-b", "a b"];
        let tokens: std::collections::HashSet<String> =
            names.iter().map(|n| escape_token(n)).collect();
        assert_eq!(tokens.len(), names.len());
    }

    #[test]
    fn subjects_have_fixed_shape() {
        assert_eq!(
            event_subject("acme", Some("my.repo"), "push"),
            "github.acme.my~2Erepo.push"
        );
        assert_eq!(
            event_subject("acme", None, "organization"),
            "github.acme.~org.organization"
        );
        assert_eq!(
            event_subject("acme", Some("r"), "push").split('.').count(),
            4
        );
        assert!(!dead_letter_subject("acme", Some("r"), "push").starts_with("github."));
    }

    #[test]
    fn repository_slices_do_not_overlap() {
        assert_eq!(repo::events_filter("acme", "web"), "github.acme.web.>");
        assert_eq!(repo::events_filter("acme", "a.b"), "github.acme.a~2Eb.>");
        assert_eq!(repo::outbound_filter("acme", "web"), "repo.acme.web.>");
        assert_ne!(repo::consumer("a.b"), repo::consumer("a_b"));
        assert!(!repo::consumer("a.b").contains('.'));
        assert!(!repo::inbox_prefix("web").starts_with("_INBOX."));
    }
}
