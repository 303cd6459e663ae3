//! The keys of encryption at rest: the age public keys a backup is encrypted to (all a pod that
//! only backs up needs) and the age identities that decrypt it (needed by restore and by the
//! verifications that read the content). An identity never shows in `Debug`, messages or
//! manifests; only public keys are ever displayed or recorded.

use std::fmt;
use std::str::FromStr;

/// The recipients (age X25519 public keys, `age1…`) every backup is encrypted to.
#[derive(Clone)]
pub struct AgeRecipients {
    keys: Vec<age::x25519::Recipient>,
}

impl AgeRecipients {
    /// Parse public keys separated by white space, commas or lines; `#` starts a comment (the
    /// format of `age-keygen`'s output and of a recipients file). `None` when there is none.
    pub fn parse(text: &str) -> Result<Option<AgeRecipients>, String> {
        let mut keys = Vec::new();
        for (i, word) in words(text).enumerate() {
            if is_identity(word) {
                return Err(format!(
                    "recipient {} is an age identity (a private key), not a public key: give its \
                     public key (`age-keygen -y FILE`) and keep the identity off this pod",
                    i + 1
                ));
            }
            let key = age::x25519::Recipient::from_str(word).map_err(|_| {
                format!(
                    "recipient {} (`{}`) is not an age public key (age1…)",
                    i + 1,
                    shorten(word)
                )
            })?;
            keys.push(key);
        }
        Ok((!keys.is_empty()).then_some(AgeRecipients { keys }))
    }

    /// The public keys, as the manifest records them.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    pub fn keys(&self) -> &[age::x25519::Recipient] {
        &self.keys
    }
}

impl fmt::Debug for AgeRecipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.public_keys()).finish()
    }
}

/// The identities (age X25519 secret keys, `AGE-SECRET-KEY-1…`) that decrypt backups.
#[derive(Clone)]
pub struct AgeIdentities {
    keys: Vec<age::x25519::Identity>,
}

impl AgeIdentities {
    /// Parse an identity file's text (`age-keygen` output: comments and one key a line).
    /// The error never quotes the text.
    pub fn parse(text: &str) -> Result<AgeIdentities, String> {
        let mut keys = Vec::new();
        for (i, word) in words(text).enumerate() {
            let key = age::x25519::Identity::from_str(word).map_err(|_| {
                format!(
                    "entry {} is not an age identity (AGE-SECRET-KEY-1…; made by age-keygen)",
                    i + 1
                )
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("it holds no age identity (AGE-SECRET-KEY-1…)".into());
        }
        Ok(AgeIdentities { keys })
    }

    pub fn keys(&self) -> &[age::x25519::Identity] {
        &self.keys
    }

    /// The public keys of these identities (to tell which recipient they are).
    pub fn public_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys of a text: words separated by white space or commas, `#` comments dropped.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ','))
        .filter(|w| !w.is_empty())
}

/// Whether a text holds an age identity (a private key), which is never quoted.
pub fn is_identity(text: &str) -> bool {
    text.to_ascii_uppercase().contains("AGE-SECRET-KEY-")
}

/// A public value shortened for a message.
fn shorten(word: &str) -> String {
    match word.char_indices().nth(24) {
        Some((i, _)) => format!("{}…", &word[..i]),
        None => word.to_string(),
    }
}

/// What the manifest of an encrypted backup records: the scheme and the public keys it was
/// encrypted to, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    /// Always `age`.
    pub scheme: String,
    /// The recipients' public keys.
    pub recipients: Vec<String>,
}

impl Encryption {
    pub fn age(recipients: &AgeRecipients) -> Encryption {
        Encryption {
            scheme: "age".into(),
            recipients: recipients.public_keys(),
        }
    }

    /// The manifest's record of encryption to `recipients`, if any.
    pub fn of(recipients: Option<&AgeRecipients>) -> Option<Encryption> {
        recipients.map(Encryption::age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn keys_parse_from_lists_and_files_and_errors_never_quote_a_secret() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let (a, b) = (id.to_public().to_string(), other.to_public().to_string());
        let r = AgeRecipients::parse(&format!("# created: now\n{a},{b}\n"))
            .unwrap()
            .unwrap();
        assert_eq!(r.public_keys(), vec![a.clone(), b]);
        assert!(AgeRecipients::parse("  \n# none\n").unwrap().is_none());
        let e = AgeRecipients::parse(&format!("{a} nope")).unwrap_err();
        assert!(e.contains("recipient 2"), "{e}");

        let secret = id.to_string().expose_secret().to_string();
        let e = AgeRecipients::parse(&format!("{a} {secret}")).unwrap_err();
        assert!(e.contains("recipient 2 is an age identity"), "{e}");
        assert!(!e.contains(&secret[15..]), "{e}");
        let ids = AgeIdentities::parse(&format!("# public key: {a}\n{secret}\n")).unwrap();
        assert_eq!(ids.public_keys(), vec![a]);
        assert_eq!(format!("{ids:?}"), "<redacted>");
        // Another last character (a random key may end in X already) breaks the checksum.
        let last = if secret.ends_with('X') { 'Q' } else { 'X' };
        let broken = format!("{}{last}", &secret[..secret.len() - 1]);
        let e = AgeIdentities::parse(&broken).unwrap_err();
        assert!(!e.contains(&broken[15..]), "{e}");
        assert!(AgeIdentities::parse("# nothing").is_err());
    }
}
