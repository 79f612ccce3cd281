//! GitHub's Actions secrets REST API, org or repository scope, through the hook registration client
//! ([`crate::webhook::register::GitHub`]: token, `Retry-After`, primary and secondary rate limits, retries of
//! connection and server errors — PUT and DELETE of a secret are idempotent, so retrying them is safe).
//!
//! A value leaves this module only as a libsodium sealed box (`crypto_box_seal`: X25519 + XSalsa20-Poly1305)
//! for the scope's public key, base64-encoded, as GitHub requires.

use crate::error::{fail, Kind};
use crate::secret::Secret;
use crate::webhook::register::{next_link, same_origin, GitHub};
use anyhow::Result;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Whose secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Org(String),
    Repo { owner: String, name: String },
}

impl Scope {
    /// `--repo OWNER/NAME`.
    pub fn repo(spec: &str) -> Result<Scope> {
        let ok_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match spec.split_once('/') {
            Some((o, n)) if ok_part(o) && ok_part(n) => Ok(Scope::Repo {
                owner: o.into(),
                name: n.into(),
            }),
            _ => Err(
                fail(Kind::Usage, format!("--repo {spec:?} is not OWNER/NAME"))
                    .help("name the repository as on GitHub, e.g. --repo acme/web")
                    .into(),
            ),
        }
    }
    /// The stable key of the secrets store.
    pub fn key(&self) -> String {
        match self {
            Scope::Org(o) => format!("org:{o}"),
            Scope::Repo { owner, name } => format!("repo:{owner}/{name}"),
        }
    }
    pub fn label(&self) -> String {
        match self {
            Scope::Org(o) => format!("org {o}"),
            Scope::Repo { owner, name } => format!("repository {owner}/{name}"),
        }
    }
    pub fn is_org(&self) -> bool {
        matches!(self, Scope::Org(_))
    }
    fn path(&self) -> String {
        let seg =
            |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
        match self {
            Scope::Org(o) => format!("/orgs/{}/actions/secrets", seg(o)),
            Scope::Repo { owner, name } => {
                format!("/repos/{}/{}/actions/secrets", seg(owner), seg(name))
            }
        }
    }
    fn permission(&self) -> &'static str {
        match self {
            Scope::Org(_) => {
                "a classic token needs the admin:org scope; a fine-grained token needs the organization permission \
\"Secrets\" (read and write)"
            }
            Scope::Repo { .. } => {
                "a classic token needs the repo scope; a fine-grained token needs the repository permission \
\"Secrets\" (read and write)"
            }
        }
    }
}

/// A scope's public key, as GitHub serves it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub key_id: String,
    key: crypto_box::PublicKey,
}

impl PublicKey {
    /// Seal `value` for this key, base64 (`encrypted_value`).
    pub fn seal(&self, value: &Secret) -> Result<String> {
        let sealed = self
            .key
            .seal(&mut crypto_box::aead::OsRng, value.expose().as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot seal a secret for GitHub's public key"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }
}

const RETRY: &str =
    "wait and run `ghboot secrets sync` again; it sends only what GitHub does not have yet";

pub struct Api<'a> {
    pub gh: &'a GitHub,
}

impl Api<'_> {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        scope: &Scope,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value)> {
        self.gh.send(method, url, body, &scope.label(), RETRY).await
    }

    fn refused(
        &self,
        status: StatusCode,
        body: &Value,
        scope: &Scope,
        what: &str,
    ) -> anyhow::Error {
        // GitHub's message describes the request; ours carry no value, and the token is never echoed
        let said = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        let t = scope.label();
        let f = match status.as_u16() {
            401 => fail(
                Kind::Config,
                format!("GitHub rejected the token (401 {said})"),
            )
            .help(format!(
                "set GITHUB_TOKEN to a valid token for {t}: {}",
                scope.permission()
            )),
            403 => fail(
                Kind::Config,
                format!("the token may not manage the Actions secrets of {t} (403 {said})"),
            )
            .help(scope.permission()),
            404 => fail(
                Kind::Config,
                format!("{t} not found, or the token cannot see its Actions secrets (404)"),
            )
            .help(format!(
                "check --org / --repo; GitHub also answers 404 when {}",
                scope.permission()
            )),
            422 => fail(
                Kind::Data,
                format!("GitHub refused {what} on {t} (422 {said})"),
            )
            .help("check the secret's name; for --visibility selected the org must allow it"),
            s => fail(
                Kind::Error,
                format!("GitHub API error on {t} while {what} ({s} {said})"),
            )
            .help("retry later; see https://www.githubstatus.com"),
        };
        f.into()
    }

    pub async fn public_key(&self, scope: &Scope) -> Result<PublicKey> {
        let url = format!("{}{}/public-key", self.gh.base(), scope.path());
        let (status, _, v) = self.call(Method::GET, &url, None, scope).await?;
        if !status.is_success() {
            return Err(self.refused(status, &v, scope, "reading the public key"));
        }
        let bad = || -> anyhow::Error {
            fail(
                Kind::Data,
                format!("GitHub served no usable public key for {}", scope.label()),
            )
            .help("check --github-api-url: it must be GitHub's REST API")
            .into()
        };
        let key_id = match v.get("key_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad()),
        };
        let raw = v
            .get("key")
            .and_then(|k| k.as_str())
            .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
            .ok_or_else(bad)?;
        let key = crypto_box::PublicKey::from_slice(&raw).map_err(|_| bad())?;
        Ok(PublicKey { key_id, key })
    }

    /// The names of the scope's secrets (upper case), every page.
    pub async fn list(&self, scope: &Scope) -> Result<BTreeSet<String>> {
        let mut url = format!("{}{}?per_page=100", self.gh.base(), scope.path());
        let mut out = BTreeSet::new();
        for _ in 0..1000 {
            let (status, headers, v) = self.call(Method::GET, &url, None, scope).await?;
            if !status.is_success() {
                return Err(self.refused(status, &v, scope, "listing the secrets"));
            }
            let items = v.get("secrets").and_then(|s| s.as_array()).ok_or_else(|| {
                fail(
                    Kind::Data,
                    format!(
                        "GitHub answered the secret list of {} without `secrets`",
                        scope.label()
                    ),
                )
                .help("check --github-api-url: it must be GitHub's REST API")
            })?;
            out.extend(
                items
                    .iter()
                    .filter_map(|s| s.get("name").and_then(|n| n.as_str()))
                    .map(str::to_ascii_uppercase),
            );
            match next_link(&headers).filter(|n| same_origin(n, self.gh.base())) {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// Create or update one secret; true when GitHub created it (201).
    pub async fn put(
        &self,
        scope: &Scope,
        name: &str,
        encrypted_value: &str,
        key_id: &str,
        visibility: Option<&str>,
    ) -> Result<bool> {
        let url = format!("{}{}/{}", self.gh.base(), scope.path(), name);
        let mut body = json!({"encrypted_value": encrypted_value, "key_id": key_id});
        if let Some(v) = visibility {
            body["visibility"] = v.into();
        }
        let (status, _, v) = self.call(Method::PUT, &url, Some(&body), scope).await?;
        if !status.is_success() {
            return Err(self.refused(status, &v, scope, &format!("the secret {name}")));
        }
        Ok(status == StatusCode::CREATED)
    }

    /// Delete one secret; false when it was already gone (404).
    pub async fn delete(&self, scope: &Scope, name: &str) -> Result<bool> {
        let url = format!("{}{}/{}", self.gh.base(), scope.path(), name);
        let (status, _, v) = self.call(Method::DELETE, &url, None, scope).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(self.refused(status, &v, scope, &format!("deleting the secret {name}")));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_boxes_open_with_the_private_key() {
        let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let pk = PublicKey {
            key_id: "1".into(),
            key: sk.public_key(),
        };
        let sealed = pk.seal(&Secret::new("line1\nline2")).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .unwrap();
        assert_eq!(sk.unseal(&raw).unwrap(), b"line1\nline2");
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::repo("a/b").unwrap().key(), "repo:a/b");
        assert_eq!(
            Scope::repo("a/b").unwrap().path(),
            "/repos/a/b/actions/secrets"
        );
        assert_eq!(
            Scope::Org("acme".into()).path(),
            "/orgs/acme/actions/secrets"
        );
        for bad in ["a", "a/", "/b", "a/b/c", "a/..", "a b/c"] {
            assert!(Scope::repo(bad).is_err(), "{bad}");
        }
    }
}
