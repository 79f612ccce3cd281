//! GitHub's delivery signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
//! Always computed over the raw bytes as received (a form-encoded body is verified before it is decoded)
//! and compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "x-hub-signature-256";
const PREFIX: &str = "sha256=";

fn mac(secret: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("{PREFIX}{}", hex::encode(mac(secret, body)))
}

/// Why a signature was refused (the reason is a metric label and a log field; it never carries the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Malformed,
    Mismatch,
}

/// Check a `X-Hub-Signature-256` value against `body`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), Refused> {
    let header = header.ok_or(Refused::Missing)?;
    let hex_part = header.strip_prefix(PREFIX.as_bytes()).ok_or(Refused::Malformed)?;
    let mut given = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut given).map_err(|_| Refused::Malformed)?;
    let expected = mac(secret, body);
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// A non-reversible fingerprint of a secret, for state files: lets a rerun notice that the secret changed
/// without ever storing it. Keyed so that it is not a plain SHA-256 of the secret.
pub fn fingerprint(secret: &[u8]) -> String {
    hex::encode(&mac(b"ghboot webhook secret fingerprint v1", secret)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented test vector (docs: "Validating webhook deliveries").
    #[test]
    fn github_test_vector() {
        let s = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(verify(b"It's a Secret to Everybody", b"Hello, World!", Some(s.as_bytes())), Ok(()));
    }

    #[test]
    fn refusals() {
        let k = b"k";
        assert_eq!(verify(k, b"x", None), Err(Refused::Missing));
        assert_eq!(verify(k, b"x", Some(b"sha1=abcd")), Err(Refused::Malformed));
        assert_eq!(verify(k, b"x", Some(b"sha256=zz")), Err(Refused::Malformed));
        let other = sign(b"other", b"x");
        assert_eq!(verify(k, b"x", Some(other.as_bytes())), Err(Refused::Mismatch));
        let good = sign(k, b"x");
        assert_eq!(verify(k, b"y", Some(good.as_bytes())), Err(Refused::Mismatch));
    }

    #[test]
    fn fingerprint_is_stable_and_not_the_secret() {
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        assert!(!fingerprint(b"abc").contains("abc"));
    }
}
