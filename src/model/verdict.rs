//! What a verification concluded about a backup: proven `good`, proven `bad` (the stored bytes
//! are not a restorable backup), or `inconclusive` (it could not be proven here). Only `bad`
//! takes protection away from a backup; the table of failure codes below is the one place that
//! decides which failure proves what.

use serde::{Deserialize, Serialize};

/// The conclusion of one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Proven restorable at the level verified.
    Good,
    /// Proven not a restorable backup: the stored bytes are wrong.
    Bad,
    /// Not proven either way here (no suitable server or tools, a missing privilege, resource
    /// limits of the test server, a failing check query): kept exactly like an unverified backup.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The verdict of a failure code (see [`FAILURE_CODES`]); an unknown code (a newer pgkeep's)
    /// proves nothing.
    pub fn of_failure(code: &str) -> Verdict {
        FAILURE_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(Verdict::Inconclusive, |(_, v)| *v)
    }

    /// The verdict of a record that predates verdicts: `ok`, else its failure code's.
    pub fn of_legacy(ok: bool, failure: Option<&str>) -> Verdict {
        match (ok, failure) {
            (true, _) => Verdict::Good,
            (false, Some(code)) => Verdict::of_failure(code),
            (false, None) => Verdict::Inconclusive,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure code a verification records, and what it proves (the README's table).
pub const FAILURE_CODES: &[(&str, Verdict)] = &[
    ("empty", Verdict::Bad),
    ("data-missing", Verdict::Bad),
    ("truncated", Verdict::Bad),
    ("grown", Verdict::Bad),
    ("checksum", Verdict::Bad),
    ("manifest-checksum", Verdict::Bad),
    ("manifest-missing", Verdict::Bad),
    ("manifest-unreadable", Verdict::Bad),
    ("signature", Verdict::Bad),
    ("corrupt", Verdict::Bad),
    ("cut-in-copy", Verdict::Bad),
    ("no-trailer", Verdict::Bad),
    ("row-count", Verdict::Bad),
    ("archive", Verdict::Bad),
    ("read-error", Verdict::Bad),
    ("restore-load", Verdict::Bad),
    ("restore-row-count", Verdict::Bad),
    ("restore-check", Verdict::Inconclusive),
    ("restore-resources", Verdict::Inconclusive),
    ("restore-privilege", Verdict::Inconclusive),
    ("restore-server", Verdict::Inconclusive),
    ("restore-version", Verdict::Inconclusive),
    ("restore-unproven", Verdict::Inconclusive),
    ("tools", Verdict::Inconclusive),
    ("staging", Verdict::Inconclusive),
    ("encrypted", Verdict::Inconclusive),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proof_of_wrong_bytes_is_bad() {
        assert_eq!(Verdict::of_failure("checksum"), Verdict::Bad);
        assert_eq!(Verdict::of_failure("restore-check"), Verdict::Inconclusive);
        assert_eq!(
            Verdict::of_failure("restore-privilege"),
            Verdict::Inconclusive
        );
        assert_eq!(
            Verdict::of_failure("from-a-newer-pgkeep"),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::of_legacy(true, None), Verdict::Good);
        assert_eq!(Verdict::of_legacy(false, Some("truncated")), Verdict::Bad);
    }
}
