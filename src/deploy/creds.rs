//! Credentials for remote NATS (a Synadia Cloud account, the hub of a hybrid leaf node): NATS decentralized
//! auth — a user JWT signed by an account (or its signing key) plus the user's nkey seed. Loaded from
//! `SYNADIA_CREDS_FILE`, or `SYNADIA_JWT` + `SYNADIA_NKEY_SEED`, or `--hub-creds`; validated before any
//! connection (format, ed25519 signature, seed matches the JWT's subject, expiry); kept in a 0600 copy in
//! the state dir. No error message carries the seed (nor the JWT: it identifies the user).

use crate::check::Check;
use crate::config::NatsType;
use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::secret::Secret;
use anyhow::Result;
use base64::Engine;
use std::path::{Path, PathBuf};

/// Synadia Cloud's client endpoint.
pub const SYNADIA_URL: &str = "tls://connect.ngs.global";
/// Synadia Cloud's leaf-node endpoint (the hub of `hybrid` when no --hub-url is given).
pub const SYNADIA_LEAF_URL: &str = "tls://connect.ngs.global:7422";

/// A user JWT and its seed, validated.
#[derive(Clone)]
pub struct UserCreds {
    pub jwt: String,
    pub seed: Secret,
    pub info: CredsInfo,
}

/// What the JWT says (no secrets): shown by `status`, recorded in stage outputs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredsInfo {
    /// user public key (U...)
    pub user: String,
    pub name: Option<String>,
    /// the key that signed the JWT (the account, or one of its signing keys)
    pub issuer: String,
    /// the account when a signing key issued the JWT
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_account: Option<String>,
    /// unix seconds; None: never expires
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// where they came from (env var or file path)
    pub source: String,
}

fn bad(source: &str, why: impl std::fmt::Display) -> anyhow::Error {
    fail(Kind::Config, format!("NATS credentials from {source}: {why}"))
        .help("get fresh user credentials (Synadia Cloud: the user's \"Get Connected\" page; nsc: `nsc generate creds`) and point SYNADIA_CREDS_FILE at them")
        .into()
}

fn b64(s: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
}

/// Check a user JWT and seed. `now` is unix seconds.
pub fn validate(jwt: &str, seed: &Secret, source: &str, now: i64) -> Result<CredsInfo> {
    let jwt = jwt.trim();
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad(
            source,
            "the user JWT is malformed (want three base64url parts separated by dots)",
        ));
    }
    let header: serde_json::Value = b64(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad(source, "the user JWT header is not base64url JSON"))?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if alg != "ed25519-nkey" && alg != "ed25519" {
        return Err(bad(
            source,
            format!("the user JWT is signed with {alg:?}, not ed25519-nkey: not a NATS JWT"),
        ));
    }
    let claims: serde_json::Value = b64(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad(source, "the user JWT claims are not base64url JSON"))?;
    let sig = b64(parts[2]).map_err(|_| bad(source, "the user JWT signature is not base64url"))?;
    let str_claim = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let kind = claims
        .pointer("/nats/type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if kind != "user" {
        return Err(bad(
            source,
            format!(
                "the JWT is a {} JWT, not a user JWT",
                if kind.is_empty() {
                    "v1 or unknown"
                } else {
                    kind
                }
            ),
        ));
    }
    let user = str_claim("sub")
        .filter(|s| s.starts_with('U'))
        .ok_or_else(|| bad(source, "the user JWT has no user public key (sub)"))?;
    let issuer = str_claim("iss")
        .filter(|s| s.starts_with('A'))
        .ok_or_else(|| bad(source, "the user JWT is not issued by an account key (iss)"))?;
    let issuer_kp = nkeys::KeyPair::from_public_key(&issuer).map_err(|_| {
        bad(
            source,
            "the user JWT's issuer is not a valid account public key",
        )
    })?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    if issuer_kp.verify(signed.as_bytes(), &sig).is_err() {
        return Err(bad(source, format!("the user JWT's signature does not verify against its issuer {issuer} (tampered or wrongly signed)")));
    }
    let seed_text = seed.expose().trim();
    if !seed_text.starts_with("SU") {
        return Err(bad(
            source,
            "the nkey seed is not a user seed (it should start with SU)",
        ));
    }
    let kp = nkeys::KeyPair::from_seed(seed_text).map_err(|_| {
        bad(
            source,
            "the nkey seed is malformed (bad encoding or checksum)",
        )
    })?;
    if kp.public_key() != user {
        return Err(bad(
            source,
            format!(
                "the nkey seed belongs to {}, not to the JWT's user {user}",
                kp.public_key()
            ),
        ));
    }
    let expires = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .filter(|e| *e > 0);
    if let Some(exp) = expires {
        if exp <= now {
            return Err(bad(
                source,
                format!("the user JWT expired at {}", fmt_time(exp)),
            ));
        }
    }
    if let Some(nbf) = claims
        .get("nbf")
        .and_then(|v| v.as_i64())
        .filter(|n| *n > 0)
    {
        if nbf > now {
            return Err(bad(
                source,
                format!("the user JWT is not valid before {}", fmt_time(nbf)),
            ));
        }
    }
    Ok(CredsInfo {
        user,
        name: str_claim("name"),
        issuer,
        issuer_account: claims
            .pointer("/nats/issuer_account")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        expires,
        source: source.to_string(),
    })
}

fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Split a `.creds` file into JWT and seed.
pub fn parse_creds(text: &str, source: &str) -> Result<(String, Secret)> {
    fn block(text: &str, begin: &str) -> Option<String> {
        let mut lines = text
            .lines()
            .skip_while(|l| !(l.contains(begin) && l.trim_start().starts_with("---")));
        lines.next()?;
        lines
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("---"))
            .map(str::to_string)
    }
    let jwt = block(text, "BEGIN NATS USER JWT").ok_or_else(|| {
        bad(
            source,
            "no -----BEGIN NATS USER JWT----- block: not a NATS .creds file",
        )
    })?;
    let seed = block(text, "BEGIN USER NKEY SEED").ok_or_else(|| {
        bad(
            source,
            "no -----BEGIN USER NKEY SEED----- block: not a NATS .creds file",
        )
    })?;
    Ok((jwt, Secret::new(seed)))
}

/// A `.creds` file's text for a JWT and seed (the format nsc and Synadia Cloud produce).
pub fn format_creds(jwt: &str, seed: &Secret) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\n\
NKEY Seed printed below can be used to sign and prove identity.\nNKEYs are sensitive and should be treated as secrets.\n\n\
-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n*************************************************************\n",
        seed.expose()
    )
}

fn load_file(path: &Path) -> Result<UserCreds> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            Kind::NoInput,
            format!("cannot read NATS credentials {source}: {e}"),
        )
        .help("check the path in SYNADIA_CREDS_FILE / --hub-creds")
    })?;
    let (jwt, seed) = parse_creds(&text, &source)?;
    let info = validate(&jwt, &seed, &source, now())?;
    Ok(UserCreds { jwt, seed, info })
}

/// Credentials the user gave this run: `--hub-creds` (hybrid), `SYNADIA_CREDS_FILE`, or `SYNADIA_JWT` +
/// `SYNADIA_NKEY_SEED`. None: none given (the stored copy, if any, is used).
pub fn from_environment(s: &Settings) -> Result<Option<UserCreds>> {
    if s.nats_type == NatsType::Hybrid {
        if let Some(p) = &s.hub_creds {
            return load_file(p).map(Some);
        }
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(p) = var("SYNADIA_CREDS_FILE") {
        return load_file(Path::new(&p)).map(Some);
    }
    match (var("SYNADIA_JWT"), var("SYNADIA_NKEY_SEED")) {
        (Some(jwt), Some(seed)) => {
            let seed = Secret::new(seed.trim());
            let info = validate(&jwt, &seed, "SYNADIA_JWT/SYNADIA_NKEY_SEED", now())?;
            Ok(Some(UserCreds {
                jwt: jwt.trim().to_string(),
                seed,
                info,
            }))
        }
        (Some(_), None) => Err(fail(
            Kind::Config,
            "SYNADIA_JWT is set but SYNADIA_NKEY_SEED is not",
        )
        .help("set both, or SYNADIA_CREDS_FILE to a .creds file")
        .into()),
        (None, Some(_)) => Err(fail(
            Kind::Config,
            "SYNADIA_NKEY_SEED is set but SYNADIA_JWT is not",
        )
        .help("set both, or SYNADIA_CREDS_FILE to a .creds file")
        .into()),
        (None, None) => Ok(None),
    }
}

/// The 0600 copy in the state dir that servers (leaf remotes) and later commands use.
pub fn stored_path(s: &Settings) -> PathBuf {
    s.layout.remote_creds_file()
}

pub fn load_stored(s: &Settings) -> Result<Option<UserCreds>> {
    let p = stored_path(s);
    if !p.exists() {
        return Ok(None);
    }
    load_file(&p).map(Some)
}

/// Credentials to use now: what this run was given, else the stored copy. Errors name what to set.
pub fn current(s: &Settings) -> Result<UserCreds> {
    if let Some(c) = from_environment(s)? {
        return Ok(c);
    }
    load_stored(s)?.ok_or_else(|| {
        let what = if s.nats_type == NatsType::Hybrid { "the hub" } else { "Synadia Cloud" };
        fail(Kind::Config, format!("no NATS credentials for {what}"))
            .help("set SYNADIA_CREDS_FILE to a .creds file (or SYNADIA_JWT and SYNADIA_NKEY_SEED; for a hybrid hub also --hub-creds FILE)")
            .into()
    })
}

/// Store the credentials (0600); returns whether the stored copy changed.
pub fn store(s: &Settings, c: &UserCreds) -> Result<bool> {
    let p = stored_path(s);
    let text = format_creds(&c.jwt, &c.seed);
    if std::fs::read_to_string(&p).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    crate::fsutil::create_private_dir(&s.layout.secrets_dir())?;
    crate::secret::write_private(&p, text.as_bytes())?;
    Ok(true)
}

/// Credentials given on this run differ from the stored ones?
pub fn changed(s: &Settings) -> Result<bool> {
    let Some(given) = from_environment(s)? else {
        return Ok(false);
    };
    Ok(load_stored(s)?.map_or(true, |st| st.jwt != given.jwt || st.seed != given.seed))
}

/// Re-exported: validated with the settings (`config::check_url`).
pub use crate::config::check_url;

/// Connect with user credentials; map refusals to errors that say what to do (never printing the seed).
pub async fn connect(urls: &str, c: &UserCreds, name: &str) -> Result<async_nats::Client> {
    let opts = async_nats::ConnectOptions::with_credentials(&format_creds(&c.jwt, &c.seed))
        .map_err(|_| {
            fail(
                Kind::Config,
                "the credentials cannot be used by the NATS client",
            )
            .help("get fresh user credentials")
        })?
        .connection_timeout(std::time::Duration::from_secs(5))
        .name(name);
    let addrs: Vec<async_nats::ServerAddr> = urls
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            fail(Kind::Config, format!("bad NATS URL {urls}: {e}"))
                .help("fix --nats-url (SYNADIA_URL)")
        })?;
    opts.connect(addrs).await.map_err(|e| {
        use async_nats::ConnectErrorKind as K;
        match e.kind() {
            K::AuthorizationViolation | K::Authentication => fail(
                Kind::Config,
                format!("{urls} refused the credentials of user {} ({}): authorization violation", c.info.name.as_deref().unwrap_or("?"), c.info.user),
            )
            .help("the user may have been revoked, or expired on the server, or belong to an account this server does not know: get fresh credentials for this account")
            .into(),
            K::Tls => fail(Kind::Unavailable, format!("TLS to {urls} failed: {e}")).help("check the URL's scheme (tls:// for Synadia Cloud) and the system clock").into(),
            _ => fail(Kind::Unavailable, format!("cannot reach NATS at {urls}: {e}")).help("check the network and --nats-url (SYNADIA_URL); `ghboot up` retries").into(),
        }
    })
}

/// The JetStream context for a client: in `domain` when one is set.
pub fn jetstream(
    client: async_nats::Client,
    domain: Option<&str>,
) -> async_nats::jetstream::Context {
    match domain {
        Some(d) => async_nats::jetstream::with_domain(client, d),
        None => async_nats::jetstream::new(client),
    }
}

// ---- hybrid: the local leaf node's remote ----

/// The leafnode remote of a `hybrid` leaf server.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    /// JetStream domain of the local leaf (its own, so local JetStream survives a lost uplink)
    pub domain: String,
    pub hub_url: String,
    pub creds_file: PathBuf,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl LeafConfig {
    /// The leafnodes block appended to the leaf's nats-server.conf (users come from `natsd::users`).
    pub fn render(&self) -> String {
        format!(
            "leafnodes {{\n  reconnect: \"1s\"\n  remotes: [\n    {{ urls: [{}], credentials: {} }}\n  ]\n}}\n",
            self.hub_url.split(',').map(|u| q(u.trim())).collect::<Vec<_>>().join(", "),
            q(&self.creds_file.to_string_lossy())
        )
    }
}

pub fn leaf_domain(s: &Settings) -> String {
    s.js_domain
        .clone()
        .unwrap_or_else(|| format!("ghboot-{}", s.org))
}

pub fn hub_url(s: &Settings) -> String {
    s.hub_url
        .clone()
        .unwrap_or_else(|| SYNADIA_LEAF_URL.to_string())
}

/// The leaf's remote (for hybrid only).
pub fn leaf_config(s: &Settings) -> Result<Option<LeafConfig>> {
    if s.nats_type != NatsType::Hybrid {
        return Ok(None);
    }
    Ok(Some(LeafConfig {
        domain: leaf_domain(s),
        hub_url: hub_url(s),
        creds_file: stored_path(s),
    }))
}

/// Prerequisite check of hybrid: hub credentials given (or stored) and valid.
pub fn leaf_check(s: &Settings) -> Check {
    creds_check(s, &format!("hub {}", hub_url(s)))
}

pub fn creds_check(s: &Settings, what: &str) -> Check {
    match current(s) {
        Ok(c) => Check::ok(
            "credentials",
            format!(
                "user {} for {what}{}",
                c.info.name.as_deref().unwrap_or(&c.info.user),
                c.info
                    .expires
                    .map(|e| format!(", expires {}", fmt_time(e)))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => {
            let f = crate::error::find_failure(&e);
            Check::bad(
                "credentials",
                f.map(|f| f.kind).unwrap_or(Kind::Config),
                f.map(|f| f.message.clone())
                    .unwrap_or_else(|| format!("{e:#}")),
                f.and_then(|f| f.help.clone()).unwrap_or_default(),
            )
        }
    }
}

/// Before the leaf starts: validate and store the hub credentials where its config points.
pub fn prepare_leaf(s: &Settings) -> Result<()> {
    let c = current(s)?;
    store(s, &c)?;
    Ok(())
}

/// The leaf's uplink as its monitoring endpoint sees it.
pub async fn leaf_remote_status(
    s: &Settings,
    rt: Option<&crate::state::Runtime>,
) -> Option<serde_json::Value> {
    let n = rt?.nodes.first()?;
    let client = crate::natsd::supervise::http_client();
    let v = crate::deploy::dev::monitor_json(&client, &s.bind, n.monitor_port, "/leafz").await;
    let connected = v
        .as_ref()
        .and_then(|v| v.get("leafnodes"))
        .and_then(|l| l.as_u64())
        .unwrap_or(0)
        > 0;
    Some(serde_json::json!({"hub_url": hub_url(s), "connected": connected}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn sign(claims: serde_json::Value, signer: &nkeys::KeyPair) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = signer.sign(format!("{h}.{p}").as_bytes()).expect("sign");
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn user_jwt(acc: &nkeys::KeyPair, user: &nkeys::KeyPair, exp: Option<i64>) -> String {
        let mut c = serde_json::json!({"sub": user.public_key(), "iss": acc.public_key(), "name": "u", "nats": {"type": "user", "version": 2}});
        if let Some(e) = exp {
            c["exp"] = e.into();
        }
        sign(c, acc)
    }

    fn err(r: Result<CredsInfo>) -> String {
        format!("{:#}", r.expect_err("must fail"))
    }

    #[test]
    fn validates_signature_seed_and_expiry_without_printing_the_seed() {
        let (acc, user) = (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_user());
        let seed = Secret::new(user.seed().expect("seed"));
        let jwt = user_jwt(&acc, &user, Some(2_000));
        let info = validate(&jwt, &seed, "test", 1_000).expect("valid");
        assert_eq!(info.user, user.public_key());
        assert_eq!(info.expires, Some(2_000));

        let e = err(validate(&jwt, &seed, "test", 3_000));
        assert!(e.contains("expired at"), "{e}");
        let forged = sign(
            serde_json::json!({"sub": user.public_key(), "iss": acc.public_key(), "nats": {"type": "user"}}),
            &nkeys::KeyPair::new_account(),
        );
        assert!(err(validate(&forged, &seed, "test", 1_000)).contains("signature does not verify"));
        let other = Secret::new(nkeys::KeyPair::new_user().seed().expect("seed"));
        let e = err(validate(&jwt, &other, "test", 1_000));
        assert!(
            e.contains("not to the JWT's user") && !e.contains(other.expose()),
            "{e}"
        );
        let broken = Secret::new(format!("{}x", &seed.expose()[..seed.expose().len() - 1]));
        let e = err(validate(&jwt, &broken, "test", 1_000));
        assert!(!e.contains(broken.expose()), "{e}");
        assert!(err(validate("abc", &seed, "test", 1_000)).contains("malformed"));
        let acc_seed = Secret::new(acc.seed().expect("seed"));
        let e = err(validate(&jwt, &acc_seed, "test", 1_000));
        assert!(
            e.contains("not a user seed") && !e.contains(acc_seed.expose()),
            "{e}"
        );
    }

    #[test]
    fn creds_files_round_trip() {
        let (acc, user) = (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_user());
        let seed = Secret::new(user.seed().expect("seed"));
        let jwt = user_jwt(&acc, &user, None);
        let (j, s) = parse_creds(&format_creds(&jwt, &seed), "f").expect("parse");
        assert_eq!((j.as_str(), s.expose()), (jwt.as_str(), seed.expose()));
        assert!(parse_creds("hello", "f").is_err());
    }

    #[test]
    fn remote_urls_must_be_nats_and_carry_no_credentials() {
        assert!(check_url("tls://connect.ngs.global").is_ok());
        assert!(check_url("nats://a:4222,nats://b:4222").is_ok());
        assert!(check_url("nats://u:p@host:4222").is_err());
        assert!(check_url("http://host").is_err());
    }
}
