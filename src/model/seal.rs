//! Tamper evidence for manifests: with `manifest_keys` set, every manifest pgkeep writes carries
//! an HMAC-SHA256 of its own bytes, so a manifest changed after it was written (rows, checksum,
//! file name) is told apart from one pgkeep wrote. The first key signs; every key verifies, so a
//! key can be rotated by putting the new one first and dropping the old one later.
//!
//! The canonical form (what is signed): the manifest's JSON exactly as pgkeep writes it without
//! the signature, ending in `\n}`. The stored form is that text with its final `\n}` replaced
//! by `,\n  "signature": "hmac-sha256:<64 lowercase hex digits>"\n}`. A checker removes exactly
//! that last member to get the signed bytes back; anything else after it, or any other spelling,
//! does not verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// What marks the signature member, up to its hex digits.
const MEMBER: &[u8] = b",\n  \"signature\": \"hmac-sha256:";
/// What follows the hex digits.
const END: &[u8] = b"\"\n}";

/// Fewest bytes a key may have.
pub const MIN_KEY_BYTES: usize = 16;

/// The configured keys: the first signs, all verify.
#[derive(Debug, Clone)]
pub struct ManifestKeys {
    keys: Vec<Secret>,
    /// Refuse manifests without a signature (else they pass with a warning).
    pub required: bool,
}

/// What a stored manifest's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    /// Signed by one of the keys, and unchanged since.
    Valid,
    /// No signature (written before a key was set, or by a pgkeep without keys).
    Unsigned,
    /// A signature that no key verifies: the bytes changed, or another key signed them.
    Invalid,
}

impl ManifestKeys {
    /// `None` without keys; each key at least [`MIN_KEY_BYTES`] bytes (the caller says so).
    pub fn new(keys: Vec<Secret>, required: bool) -> Option<ManifestKeys> {
        (!keys.is_empty()).then_some(ManifestKeys { keys, required })
    }

    /// The stored form of `unsigned` (the manifest's JSON as pgkeep writes it).
    pub fn sign(&self, unsigned: &[u8]) -> Vec<u8> {
        let body = unsigned.strip_suffix(b"\n}").unwrap_or(unsigned);
        let tag = mac(&self.keys[0], body_with_end(body).as_slice());
        let mut out = Vec::with_capacity(body.len() + MEMBER.len() + 64 + END.len());
        out.extend_from_slice(body);
        out.extend_from_slice(MEMBER);
        out.extend_from_slice(hex::encode(tag).as_bytes());
        out.extend_from_slice(END);
        out
    }

    /// Whether `stored` (a manifest's bytes as read) carries a signature one of the keys made.
    pub fn check(&self, stored: &[u8]) -> Seal {
        let Some((signed, tag)) = split(stored) else {
            return if contains(stored, b"\"signature\"") {
                Seal::Invalid
            } else {
                Seal::Unsigned
            };
        };
        let valid = self.keys.iter().any(|k| {
            let mut m = HmacSha256::new_from_slice(k.expose().as_bytes())
                .expect("HMAC takes keys of any length");
            m.update(&signed);
            m.verify_slice(&tag).is_ok()
        });
        if valid { Seal::Valid } else { Seal::Invalid }
    }
}

fn body_with_end(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend_from_slice(b"\n}");
    v
}

fn mac(key: &Secret, data: &[u8]) -> [u8; 32] {
    let mut m =
        HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The signed bytes and the tag of a stored manifest, if it ends in a well-formed signature.
fn split(stored: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let stored = stored.strip_suffix(b"\n").unwrap_or(stored);
    let rest = stored.strip_suffix(END)?;
    let hex_start = rest.len().checked_sub(64)?;
    let (head, digits) = rest.split_at(hex_start);
    if !digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let body = head.strip_suffix(MEMBER)?;
    Some((body_with_end(body), hex::decode(digits).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> ManifestKeys {
        ManifestKeys::new(k.iter().map(|s| Secret::new(*s)).collect(), false).unwrap()
    }

    const JSON: &[u8] = b"{\n  \"id\": \"a\",\n  \"rows\": 3\n}";

    #[test]
    fn signed_manifests_verify_and_stay_json() {
        let k = keys(&["0123456789abcdef-one"]);
        let signed = k.sign(JSON);
        let v: serde_json::Value = serde_json::from_slice(&signed).unwrap();
        assert_eq!(v["rows"], 3);
        assert!(v["signature"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert_eq!(k.check(&signed), Seal::Valid);
        let mut with_newline = signed.clone();
        with_newline.push(b'\n');
        assert_eq!(k.check(&with_newline), Seal::Valid);
    }

    #[test]
    fn any_change_or_another_key_fails() {
        let k = keys(&["0123456789abcdef-one"]);
        let signed = k.sign(JSON);
        let changed = String::from_utf8(signed.clone())
            .unwrap()
            .replace("\"rows\": 3", "\"rows\": 4");
        assert_eq!(k.check(changed.as_bytes()), Seal::Invalid);
        assert_eq!(
            keys(&["another key, 16+ bytes"]).check(&signed),
            Seal::Invalid
        );
        let mut trailing = signed.clone();
        trailing.extend_from_slice(b" ");
        assert_eq!(
            k.check(&trailing),
            Seal::Invalid,
            "bytes after the signature"
        );
        assert_eq!(k.check(JSON), Seal::Unsigned);
    }

    #[test]
    fn every_key_verifies_and_the_first_signs() {
        let old = keys(&["the old key, 16+ bytes"]);
        let rotated = keys(&["the new key, 16+ bytes", "the old key, 16+ bytes"]);
        assert_eq!(rotated.check(&old.sign(JSON)), Seal::Valid);
        let by_new = rotated.sign(JSON);
        assert_eq!(
            keys(&["the new key, 16+ bytes"]).check(&by_new),
            Seal::Valid
        );
        assert_eq!(old.check(&by_new), Seal::Invalid);
    }
}
