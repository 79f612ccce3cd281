//! What `secrets sync` sent, so that a rerun sends only what changed. GitHub never returns a secret's value,
//! so per scope and name the store keeps a keyed fingerprint (HMAC-SHA256 with a local random key, so that a
//! copied store does not allow guessing short values offline without the key file), the `key_id` the value
//! was sealed for, the org visibility, and whether ghboot created the secret (only those `--prune` deletes).
//! Both files are 0600 in the state dir's secrets dir, written atomically. Never a value.

use crate::error::{fail, Kind};
use crate::layout::Layout;
use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub fingerprint: String,
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// The secret did not exist on GitHub when ghboot first sent it.
    pub created_by_ghboot: bool,
    pub sent_at: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Store {
    pub version: u32,
    /// scope key (`org:ORG`, `repo:OWNER/NAME`) -> secret name (upper case) -> record
    pub scopes: BTreeMap<String, BTreeMap<String, Record>>,
}

impl Store {
    pub fn load(layout: &Layout) -> Result<Store> {
        let p = layout.actions_secrets_store();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Store {
                    version: VERSION,
                    ..Store::default()
                })
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot read {}", p.display())))
            }
        };
        let store: Store = serde_json::from_str(&text).map_err(|e| {
            fail(
                Kind::Data,
                format!("{} is not a secrets store ({e})", p.display()),
            )
            .help("remove it: the next `ghboot secrets sync` then sends every secret once more")
        })?;
        if store.version > VERSION {
            return Err(fail(
                Kind::Data,
                format!(
                    "{} was written by a newer ghboot (version {})",
                    p.display(),
                    store.version
                ),
            )
            .help("use that ghboot, or remove the file (every secret is then sent once more)")
            .into());
        }
        Ok(store)
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        crate::fsutil::create_private_dir(&layout.secrets_dir())
            .with_context(|| format!("cannot create {}", layout.secrets_dir().display()))?;
        let text = serde_json::to_vec_pretty(self)?;
        crate::secret::write_private(&layout.actions_secrets_store(), &text)
    }

    pub fn get(&self, scope: &str, name: &str) -> Option<&Record> {
        self.scopes.get(scope)?.get(name)
    }

    pub fn put(&mut self, scope: &str, name: &str, r: Record) {
        self.scopes
            .entry(scope.to_string())
            .or_default()
            .insert(name.to_string(), r);
    }

    pub fn remove(&mut self, scope: &str, name: &str) {
        if let Some(m) = self.scopes.get_mut(scope) {
            m.remove(name);
            if m.is_empty() {
                self.scopes.remove(scope);
            }
        }
    }
}

/// The fingerprint key: read, or (when `create`) made once. None: there is none and none was made.
pub fn key(layout: &Layout, create: bool) -> Result<Option<Vec<u8>>> {
    let p = layout.actions_secrets_key();
    match std::fs::read_to_string(&p) {
        Ok(t) => {
            let k = hex::decode(t.trim()).ok().filter(|k| k.len() >= 32).ok_or_else(|| {
                fail(Kind::Data, format!("{} is not a fingerprint key", p.display())).help(
                    "remove it and the secrets store beside it: the next sync then sends every secret once more",
                )
            })?;
            Ok(Some(k))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let k: [u8; 32] = rand::random();
            crate::fsutil::create_private_dir(&layout.secrets_dir())
                .with_context(|| format!("cannot create {}", layout.secrets_dir().display()))?;
            crate::secret::write_private(&p, hex::encode(k).as_bytes())?;
            Ok(Some(k.to_vec()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", p.display()))),
    }
}

/// HMAC-SHA256(key, scope NUL name NUL value), hex.
pub fn fingerprint(key: &[u8], scope: &str, name: &str, value: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in [
        scope.as_bytes(),
        b"\0",
        name.as_bytes(),
        b"\0",
        value.as_bytes(),
    ] {
        m.update(part);
    }
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_key_scope_name_and_value() {
        let k = [7u8; 32];
        let f = fingerprint(&k, "org:a", "X", "v");
        assert_eq!(f, fingerprint(&k, "org:a", "X", "v"));
        assert_ne!(f, fingerprint(&[8u8; 32], "org:a", "X", "v"));
        assert_ne!(f, fingerprint(&k, "org:b", "X", "v"));
        assert_ne!(f, fingerprint(&k, "org:a", "Y", "v"));
        assert_ne!(f, fingerprint(&k, "org:a", "X", "w"));
        assert!(!f.contains('v'));
    }

    #[test]
    fn store_round_trip_is_private() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path().to_path_buf());
        let mut s = Store::load(&l).unwrap();
        s.put(
            "org:a",
            "X",
            Record {
                fingerprint: "f".into(),
                key_id: "1".into(),
                visibility: Some("private".into()),
                created_by_ghboot: true,
                sent_at: "t".into(),
            },
        );
        s.save(&l).unwrap();
        assert_eq!(
            Store::load(&l).unwrap().get("org:a", "X"),
            s.get("org:a", "X")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(l.actions_secrets_store())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
        }
        assert!(key(&l, false).unwrap().is_none());
        let k = key(&l, true).unwrap().unwrap();
        assert_eq!(key(&l, false).unwrap(), Some(k));
    }
}
