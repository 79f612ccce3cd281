//! `ghboot secrets sync`: the org's (or repositories') GitHub Actions secrets from a `.env` file and from the
//! instance's own connection secrets, sealed for GitHub's public key, idempotently.
//!
//! - [`dotenv`]: the `.env` file (dotenvy).
//! - [`github`]: the Actions secrets REST API and the sealed box.
//! - [`store`]: keyed fingerprints of what was sent (never a value), so a rerun sends only changes.
//! - [`rotate`]: `secrets rotate webhook-secret` (old and new accepted for a grace period).
//! - [`nats_password`]: `secrets rotate nats-password` (nats-server reloads its users, no restart).
//!
//! Order: every name is checked before anything is sent (one bad name: exit 65, nothing sent); then per
//! scope the public key and the list of secrets are read, a plan is made (create / update / unchanged /
//! prune), and — unless `--dry-run` — carried out one secret at a time, the store written after each.

pub mod dotenv;
pub mod github;
pub mod nats_password;
pub mod rotate;
pub mod store;

use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use github::{Api, Scope};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use store::{Record, Store};

/// One secret to send: its name (upper case, as GitHub stores it) and where it came from.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    pub value: Secret,
    pub source: String,
}

/// Why a name is not a valid GitHub secret name; None when it is.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("only letters, digits and _ are allowed");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("starts with a digit");
    }
    if name.to_ascii_uppercase().starts_with("GITHUB_") {
        return Some("starts with GITHUB_ (reserved)");
    }
    None
}

/// Every problem with these names, or the wanted secrets (upper-cased). `refused` are dotenv lines that did
/// not parse: (file, line, the name before `=` if any).
pub fn check_names(
    entries: Vec<(String, Secret, String)>,
    refused: &[(String, usize, Option<String>)],
) -> Result<Vec<Wanted>> {
    let mut problems: Vec<String> = Vec::new();
    for (file, line, name) in refused {
        let at = if *line > 0 {
            format!("{file} line {line}")
        } else {
            file.clone()
        };
        match name {
            Some(n) => problems.push(format!(
                "{n} ({at}: {})",
                name_problem(n).unwrap_or("not a NAME=VALUE line")
            )),
            None => problems.push(format!("{at}: not a NAME=VALUE line")),
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, value, source) in entries {
        if let Some(why) = name_problem(&name) {
            problems.push(format!("{name} ({source}: {why})"));
            continue;
        }
        let upper = name.to_ascii_uppercase();
        if let Some(first) = seen.get(&upper) {
            problems.push(format!(
                "{name} ({source}: given twice, GitHub ignores case; first from {first})"
            ));
            continue;
        }
        seen.insert(upper.clone(), source.clone());
        out.push(Wanted {
            name: upper,
            value,
            source,
        });
    }
    if !problems.is_empty() {
        return Err(fail(
            Kind::Data,
            format!("bad secret name(s), nothing sent: {}", problems.join("; ")),
        )
        .help("GitHub secret names are letters, digits and _, not starting with a digit or GITHUB_, unique ignoring case: rename them")
        .into());
    }
    Ok(out)
}

/// `--visibility` of org secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    All,
    Private,
    Selected,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::All => "all",
            Visibility::Private => "private",
            Visibility::Selected => "selected",
        }
    }
}

pub struct SyncOpts {
    pub env_file: Option<PathBuf>,
    pub instance: bool,
    pub repos: Vec<String>,
    pub visibility: Visibility,
    pub dry_run: bool,
    pub prune: bool,
    /// Only the wanted names: every other secret of the scope (and its record) is left as it is, as when
    /// a NATS password rotation re-sends the instance's secrets.
    pub only_wanted: bool,
}

/// What sync does with one name in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Update(String),
    Unchanged,
    /// ghboot created it, it is no longer wanted: deleted with `--prune`.
    Prune,
    /// ghboot created it, it is no longer wanted, no `--prune`: kept.
    Stale,
    /// No longer wanted, but ghboot did not create it: forgotten (with `--prune`), never deleted.
    Forget,
}

impl Action {
    pub fn word(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update(_) => "update",
            Action::Unchanged => "unchanged",
            Action::Prune => "prune",
            Action::Stale => "stale",
            Action::Forget => "forget",
        }
    }
    pub fn changes_github(&self) -> bool {
        matches!(self, Action::Create | Action::Update(_) | Action::Prune)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    pub scope: String,
    pub name: String,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The outcome of a sync (or a dry run): one line per name and scope.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub lines: Vec<Line>,
    pub changes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What GitHub says about one scope, and what this run asks of it.
pub struct ScopeFacts<'a> {
    /// The names GitHub lists (upper case).
    pub remote: &'a BTreeSet<String>,
    /// The key id of the public key GitHub serves now.
    pub key_id: &'a str,
    /// The org visibility asked for (None for repositories).
    pub visibility: Option<&'a str>,
    pub prune: bool,
}

/// The plan for one scope, given what GitHub lists and what the store remembers.
pub fn plan_scope(
    scope: &Scope,
    wanted: &[Wanted],
    facts: &ScopeFacts,
    store: &Store,
    fp_key: Option<&[u8]>,
) -> Vec<(String, Action)> {
    let ScopeFacts {
        remote,
        key_id,
        visibility,
        prune,
    } = *facts;
    let sk = scope.key();
    let mut out = Vec::new();
    for w in wanted {
        let rec = store.get(&sk, &w.name);
        let action = if !remote.contains(&w.name) {
            Action::Create
        } else {
            match (rec, fp_key) {
                (Some(r), Some(k)) => {
                    let fp = store::fingerprint(k, &sk, &w.name, w.value.expose());
                    if r.fingerprint != fp {
                        Action::Update("value changed".into())
                    } else if r.key_id != key_id {
                        Action::Update("GitHub's public key changed".into())
                    } else if visibility.is_some() && r.visibility.as_deref() != visibility {
                        Action::Update(format!(
                            "visibility {} -> {}",
                            r.visibility.as_deref().unwrap_or("-"),
                            visibility.unwrap_or("-")
                        ))
                    } else {
                        Action::Unchanged
                    }
                }
                _ => Action::Update("not sent by ghboot before".into()),
            }
        };
        out.push((w.name.clone(), action));
    }
    let wanted_names: BTreeSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    for (name, rec) in store.scopes.get(&sk).into_iter().flatten() {
        if wanted_names.contains(name.as_str()) || !remote.contains(name) {
            continue;
        }
        let a = match (rec.created_by_ghboot, prune) {
            (true, true) => Action::Prune,
            (true, false) => Action::Stale,
            (false, _) => Action::Forget,
        };
        out.push((name.clone(), a));
    }
    out
}

/// The instance's own connection secrets, as `ghboot env` gives them (the creds file's content for NATS_CREDS).
pub async fn instance_secrets(s: &Settings) -> Result<Vec<(String, Secret)>> {
    let vars = crate::deploy::for_settings(s).client_env(s).await?;
    let mut out = Vec::new();
    for (k, v, _) in vars {
        match k.as_str() {
            "NATS_URL" | "NATS_USER" | "NATS_PASSWORD" => out.push((k, Secret::new(v))),
            "NATS_CREDS" => {
                let content = crate::secret::read_secret_file(std::path::Path::new(&v))?;
                out.push((k, content));
            }
            _ => {}
        }
    }
    if let Some((_, u)) = out.iter().find(|(k, _)| k == "NATS_URL") {
        let loopback = url::Url::parse(u.expose().split(',').next().unwrap_or_default())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
        if loopback {
            tracing::warn!("NATS_URL is a loopback address: only self-hosted runners on this machine can reach it");
        }
    }
    Ok(out)
}

/// The whole sync: names checked, plan per scope, then (unless dry run) PUT / DELETE and the store updated.
pub async fn sync(s: &Settings, wanted: Vec<Wanted>, opts: &SyncOpts) -> Result<Report> {
    let token = s.github_token.clone().ok_or_else(|| {
        fail(Kind::Config, "GITHUB_TOKEN is not set")
            .help("export GITHUB_TOKEN with a token that may manage the org's (or repository's) Actions secrets")
    })?;
    let scopes: Vec<Scope> = if opts.repos.is_empty() {
        if s.org_defaulted || s.org == crate::config::LOCAL_ORG {
            return Err(fail(Kind::Config, "syncing org secrets needs a GitHub org")
                .help("pass --org ORG (or GITHUB_ORG), or --repo OWNER/NAME for a repository's secrets")
                .into());
        }
        vec![Scope::Org(s.org.clone())]
    } else {
        opts.repos
            .iter()
            .map(|r| Scope::repo(r))
            .collect::<Result<Vec<_>>>()?
    };
    let gh = crate::webhook::register::GitHub::new(s.github_api_url.as_deref(), token)?;
    let api = Api { gh: &gh };
    let layout = &s.layout;
    let mut store = Store::load(layout)?;
    let fp_key = store::key(layout, !opts.dry_run)?;
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    for scope in &scopes {
        let key = api.public_key(scope).await?;
        let remote = api.list(scope).await?;
        let vis = scope.is_org().then(|| opts.visibility.as_str());
        let facts = ScopeFacts {
            remote: &remote,
            key_id: &key.key_id,
            visibility: vis,
            prune: opts.prune,
        };
        let mut plan = plan_scope(scope, &wanted, &facts, &store, fp_key.as_deref());
        if opts.only_wanted {
            plan.retain(|(n, _)| wanted.iter().any(|w| &w.name == n));
        }
        let sk = scope.key();
        for (name, action) in &plan {
            let why = match action {
                Action::Update(w) => Some(w.clone()),
                Action::Stale => Some("no longer wanted; --prune deletes it".into()),
                Action::Forget => {
                    Some("no longer wanted; not created by ghboot, so left on GitHub".into())
                }
                _ => None,
            };
            if action.changes_github() {
                report.changes += 1;
            }
            report.lines.push(Line {
                scope: sk.clone(),
                name: name.clone(),
                action: action.word(),
                why,
            });
            if opts.dry_run {
                continue;
            }
            match action {
                Action::Create | Action::Update(_) => {
                    let Some(w) = wanted.iter().find(|w| &w.name == name) else {
                        continue;
                    };
                    let Some(k) = fp_key.as_deref() else {
                        continue;
                    };
                    let sealed = key.seal(&w.value)?;
                    let created = api.put(scope, name, &sealed, &key.key_id, vis).await?;
                    let created_by_ghboot = match store.get(&sk, name) {
                        Some(r) if !matches!(action, Action::Create) => r.created_by_ghboot,
                        _ => created || matches!(action, Action::Create),
                    };
                    store.put(
                        &sk,
                        name,
                        Record {
                            fingerprint: store::fingerprint(k, &sk, name, w.value.expose()),
                            key_id: key.key_id.clone(),
                            visibility: vis.map(str::to_string),
                            created_by_ghboot,
                            sent_at: now(),
                        },
                    );
                    store.save(layout)?;
                }
                Action::Prune => {
                    api.delete(scope, name).await?;
                    store.remove(&sk, name);
                    store.save(layout)?;
                }
                Action::Forget => {
                    store.remove(&sk, name);
                    store.save(layout)?;
                }
                Action::Unchanged | Action::Stale => {}
            }
        }
        if !opts.dry_run && !opts.only_wanted {
            // records of secrets someone deleted on GitHub: nothing to remember about them any more
            let gone: Vec<String> = store
                .scopes
                .get(&sk)
                .into_iter()
                .flatten()
                .filter(|(n, _)| !remote.contains(*n) && !wanted.iter().any(|w| &w.name == *n))
                .map(|(n, _)| n.clone())
                .collect();
            if !gone.is_empty() {
                for n in &gone {
                    store.remove(&sk, n);
                }
                store.save(layout)?;
            }
        }
    }
    if opts.visibility == Visibility::Selected && scopes.iter().any(Scope::is_org) {
        report.notes.push(
            "visibility selected: choose the repositories for each secret on GitHub (org settings > Secrets and variables > Actions)".into(),
        );
    }
    Ok(report)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: &str) -> (String, Secret, String) {
        (n.into(), Secret::new("v"), ".env".into())
    }

    #[test]
    fn github_name_rules() {
        for ok in ["A", "a_b", "_X", "X9", "NATS_URL"] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
        for bad in ["", "9X", "GITHUB_BAD", "github_x", "MY-VAR", "A.B", "Ä"] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn every_bad_name_is_listed_and_no_value() {
        let err = check_names(
            vec![e("A"), e("GITHUB_BAD"), e("a"), e("B")],
            &[(".env".into(), 7, Some("9X".into()))],
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("GITHUB_BAD") && msg.contains("9X") && msg.contains("given twice"));
        assert!(msg.contains("line 7"));
        assert_eq!(crate::error::exit_code_of(&err), 65);
        assert_eq!(check_names(vec![e("a"), e("B")], &[]).unwrap()[0].name, "A");
    }

    #[test]
    fn plan_create_update_unchanged_prune() {
        let scope = Scope::Org("acme".into());
        let k = [1u8; 32];
        let w = |n: &str, v: &str| Wanted {
            name: n.into(),
            value: Secret::new(v),
            source: ".env".into(),
        };
        let rec = |n: &str, v: &str, created| Record {
            fingerprint: store::fingerprint(&k, "org:acme", n, v),
            key_id: "K1".into(),
            visibility: Some("private".into()),
            created_by_ghboot: created,
            sent_at: String::new(),
        };
        let mut st = Store::default();
        st.put("org:acme", "SAME", rec("SAME", "1", true));
        st.put("org:acme", "CHANGED", rec("CHANGED", "old", true));
        st.put("org:acme", "OLD_MINE", rec("OLD_MINE", "x", true));
        st.put("org:acme", "OLD_THEIRS", rec("OLD_THEIRS", "x", false));
        let remote: BTreeSet<String> = ["SAME", "CHANGED", "OLD_MINE", "OLD_THEIRS", "FOREIGN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let wanted = vec![w("SAME", "1"), w("CHANGED", "new"), w("NEW", "n")];
        let facts = ScopeFacts {
            remote: &remote,
            key_id: "K1",
            visibility: Some("private"),
            prune: true,
        };
        let p = plan_scope(&scope, &wanted, &facts, &st, Some(&k));
        let get = |n: &str| p.iter().find(|(x, _)| x == n).map(|(_, a)| a.clone());
        assert_eq!(get("SAME"), Some(Action::Unchanged));
        assert_eq!(get("CHANGED"), Some(Action::Update("value changed".into())));
        assert_eq!(get("NEW"), Some(Action::Create));
        assert_eq!(get("OLD_MINE"), Some(Action::Prune));
        assert_eq!(get("OLD_THEIRS"), Some(Action::Forget));
        assert_eq!(
            get("FOREIGN"),
            None,
            "never touches a secret ghboot does not know"
        );
        let facts = ScopeFacts {
            remote: &remote,
            key_id: "K2",
            visibility: Some("private"),
            prune: false,
        };
        let p = plan_scope(&scope, &wanted, &facts, &st, Some(&k));
        assert!(matches!(p[0].1, Action::Update(ref w) if w.contains("public key")));
        assert!(p
            .iter()
            .any(|(n, a)| n == "OLD_MINE" && *a == Action::Stale));
    }
}
