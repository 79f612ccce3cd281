//! Product repositories (`ghboot repo add|list|remove|env`): which repositories of the org have their own
//! slice of the events stream and their own NATS identity, recorded in the state dir (`repos.json`, no
//! secrets; passwords in `secrets/repo-passwords.json`, 0600). What each may do is decided here, once:
//! fetch and ack from its own consumers, publish under its own `repo.<org>.<repo>.>`, read replies on its
//! own inbox prefix, nothing else.

use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::natsd::users::{Permissions, User};
use crate::secret::Secret;
use crate::topology::subjects::{self, repo as rs};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Repo {
    pub name: String,
    /// Event names the consumer is filtered to; empty: every event of the repository.
    #[serde(default)]
    pub events: Vec<String>,
    /// Granted topics of other repositories, `OTHER.topic` (the topic may end in `*` or `>`).
    #[serde(default)]
    pub subscribe: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    pub version: u32,
    pub repos: BTreeMap<String, Repo>,
}

impl Registry {
    pub fn load(layout: &Layout) -> Result<Registry> {
        let path = layout.repos_file();
        // a state dir that is not there (or not a directory) has no repositories; whoever writes to it
        // reports that problem with its own exit code
        if !layout.root().is_dir() {
            return Ok(Registry {
                version: 1,
                ..Default::default()
            });
        }
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                fail(Kind::Data, format!("{} is corrupt: {e}", path.display()))
                    .help("fix or remove it (then `ghboot repo add` each repository again)")
                    .into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry {
                version: 1,
                ..Default::default()
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    pub fn save(&self, layout: &Layout) -> Result<()> {
        let path = layout.repos_file();
        crate::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Passwords by repository name (0600, atomic).
pub fn load_passwords(layout: &Layout) -> Result<BTreeMap<String, Secret>> {
    let path = layout.repo_passwords_file();
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            fail(Kind::Data, format!("{} is corrupt: {e}", path.display()))
                .help("remove it, then `ghboot repo add` each repository again (new passwords)")
                .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn save_passwords(layout: &Layout, p: &BTreeMap<String, Secret>) -> Result<()> {
    crate::fsutil::create_private_dir(&layout.secrets_dir())?;
    crate::secret::write_private(
        &layout.repo_passwords_file(),
        &serde_json::to_vec_pretty(p)?,
    )
}

fn usage(msg: String, help: &str) -> anyhow::Error {
    fail(Kind::Usage, msg).help(help).into()
}

/// A GitHub repository name (`web`, or `ORG/web` with this org): letters, digits, `-`, `_`, `.`.
pub fn validate_name(org: &str, raw: &str) -> Result<String> {
    let name = match raw.split_once('/') {
        Some((o, n)) if o.eq_ignore_ascii_case(org) => n,
        Some((o, _)) => return Err(usage(
            format!("repository {raw:?} belongs to {o:?}, not to this instance's org {org:?}"),
            "give the repository name alone (`web`), or pass --org for the other org's instance",
        )),
        None => raw,
    };
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(usage(
            format!("{raw:?} is not a GitHub repository name"),
            "use the repository's name: letters, digits, '-', '_' and '.', at most 100 characters",
        ));
    }
    Ok(name.to_string())
}

/// `push,pull_request` -> validated event names (GitHub's are lowercase words with `_`).
pub fn validate_events(raw: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for e in raw.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if e.is_empty() {
            continue;
        }
        if !e.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(usage(
                format!("{e:?} is not a GitHub event name"),
                "name events as GitHub's X-GitHub-Event does: push, pull_request, workflow_run, ...",
            ));
        }
        if !out.iter().any(|x| x == e) {
            out.push(e.to_string());
        }
    }
    Ok(out)
}

/// `api.deploy` -> (api, deploy): another repository's topic. Topic tokens are plain words; a grant may end
/// in `*` or `>` to cover several topics.
pub fn validate_grant(org: &str, raw: &str) -> Result<(String, String)> {
    let help = "grant another repository's topic as OTHER.TOPIC, e.g. --subscribe api.deploy (or api.deploy.>)";
    let Some((other, topic)) = raw.split_once('.') else {
        return Err(usage(format!("--subscribe {raw:?} names no topic"), help));
    };
    let other = validate_name(org, other)?;
    let tokens: Vec<&str> = topic.split('.').collect();
    let last = tokens.len() - 1;
    let ok = tokens.iter().enumerate().all(|(i, t)| {
        (*t == ">" && i == last)
            || *t == "*"
            || (!t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    });
    if !ok {
        return Err(usage(
            format!("--subscribe {raw:?}: {topic:?} is not a topic"),
            help,
        ));
    }
    Ok((other, topic.to_string()))
}

/// The routing-stream subjects a repository's grants cover.
pub fn granted_subjects(org: &str, r: &Repo) -> Vec<String> {
    r.subscribe
        .iter()
        .filter_map(|g| validate_grant(org, g).ok())
        .map(|(other, topic)| rs::topic_subject(org, &other, &topic))
        .collect()
}

/// The events-stream filters of a repository's consumer.
pub fn event_filters(org: &str, r: &Repo) -> Vec<String> {
    if r.events.is_empty() {
        vec![rs::events_filter(org, &r.name)]
    } else {
        r.events
            .iter()
            .map(|e| rs::event_filter(org, &r.name, e))
            .collect()
    }
}

/// What a repository's identity may do, and nothing else.
pub fn permissions(org: &str, r: &Repo, domain: Option<&str>) -> Permissions {
    let events = subjects::events_stream(org);
    let consumer = rs::consumer(&r.name);
    let mut publish = rs::consumer_api(&events, &consumer, domain);
    publish.extend(rs::ack_filters(&events, &consumer));
    if !r.subscribe.is_empty() {
        let routes = rs::routes_stream(org);
        let rc = rs::routes_consumer(&r.name);
        publish.extend(rs::consumer_api(&routes, &rc, domain));
        publish.extend(rs::ack_filters(&routes, &rc));
    }
    publish.push(rs::outbound_filter(org, &r.name));
    Permissions {
        publish,
        subscribe: vec![format!("{}.>", rs::inbox_prefix(&r.name))],
    }
}

/// The NATS users of every registered repository (for `natsd::users`).
pub fn users(s: &Settings) -> Result<Vec<User>> {
    let reg = Registry::load(&s.layout)?;
    if reg.repos.is_empty() {
        return Ok(Vec::new());
    }
    let pw = load_passwords(&s.layout)?;
    let domain = crate::deploy::for_settings(s).jetstream_domain(s);
    Ok(reg
        .repos
        .values()
        // a repository without a password (lost secrets file) gets no user rather than an empty password
        .filter_map(|r| {
            pw.get(&r.name).map(|p| User {
                name: rs::user(&r.name),
                password: p.clone(),
                permissions: Some(permissions(&s.org, r, domain.as_deref())),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_grants_are_checked() {
        assert_eq!(validate_name("acme", "web").unwrap(), "web");
        assert_eq!(validate_name("acme", "ACME/web.site").unwrap(), "web.site");
        for bad in ["", "..", "a b", "a>b", "x/web", "a*"] {
            assert!(validate_name("acme", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_grant("acme", "api.deploy.>").unwrap(),
            ("api".into(), "deploy.>".into())
        );
        for bad in ["api", "api.", "api.>.x", "api.de ploy"] {
            assert!(validate_grant("acme", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_events(&["push, pull_request".into(), "push".into()]).unwrap(),
            vec!["push", "pull_request"]
        );
        assert!(validate_events(&["push.>".into()]).is_err());
    }

    #[test]
    fn a_repository_may_touch_only_its_own_subjects() {
        let r = Repo {
            name: "web".into(),
            events: vec![],
            subscribe: vec!["api.deploy".into()],
        };
        let p = permissions("acme", &r, None);
        assert!(p
            .publish
            .contains(&"$JS.API.CONSUMER.MSG.NEXT.GITHUB_EVENTS_ACME.repo-web".into()));
        assert!(p.publish.contains(&"repo.acme.web.>".into()));
        assert!(p.publish.iter().all(|s| !s.starts_with("github.")
            && !s.contains("STREAM.")
            && !s.contains("repo-api")));
        assert_eq!(p.subscribe, vec!["_INBOX_repo-web.>".to_string()]);
        assert_eq!(granted_subjects("acme", &r), vec!["repo.acme.api.deploy"]);
    }
}
