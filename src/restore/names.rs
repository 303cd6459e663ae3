//! The names of a restore's databases: the scratch copy it loads and the previous copy it keeps,
//! both stamped with the restore's time and cut to PostgreSQL's 63-byte identifiers.

use jiff::Timestamp;

const MAX_IDENT: usize = 63;

/// `<db><suffix>`, the database part cut (at a character boundary) so the whole fits in 63 bytes.
pub fn suffixed(db: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len());
    let mut cut = db.len().min(room);
    while !db.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &db[..cut])
}

pub fn stamp(now: Timestamp) -> String {
    now.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d_%H%M%S")
        .to_string()
}

/// Name of the kept previous copy.
pub fn previous_name(db: &str, now: Timestamp) -> String {
    suffixed(db, &format!("_before_restore_{}", stamp(now)))
}

/// Name of the scratch database.
pub fn scratch_name(db: &str, now: Timestamp) -> String {
    suffixed(db, &format!("_restoring_{}", stamp(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_63_bytes() {
        let now: Timestamp = "2026-11-25T16:11:00Z".parse().unwrap();
        assert_eq!(
            previous_name("sbi", now),
            "sbi_before_restore_20261125_161100"
        );
        assert_eq!(scratch_name("sbi", now), "sbi_restoring_20261125_161100");
        let long = "é".repeat(40);
        let p = previous_name(&long, now);
        assert!(
            p.len() <= 63 && p.ends_with("_before_restore_20261125_161100"),
            "{p}"
        );
    }
}
