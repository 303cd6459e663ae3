//! The names of a restore's databases: the scratch copy it loads and the previous copy it keeps,
//! both stamped with the restore's time and cut to PostgreSQL's 63-byte identifiers. Two
//! restores within one second get distinct names: the second takes the next free `_<n>`.

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
    previous_name_n(db, now, 1)
}

/// Name of the scratch database.
pub fn scratch_name(db: &str, now: Timestamp) -> String {
    scratch_name_n(db, now, 1)
}

/// The `n`th candidate name of the kept copy: `n` = 1 is [`previous_name`], later ones end
/// in `_<n>`.
pub fn previous_name_n(db: &str, now: Timestamp, n: u32) -> String {
    suffixed(db, &format!("_before_restore_{}{}", stamp(now), seq(n)))
}

/// The `n`th candidate name of the scratch database.
pub fn scratch_name_n(db: &str, now: Timestamp, n: u32) -> String {
    suffixed(db, &format!("_restoring_{}{}", stamp(now), seq(n)))
}

fn seq(n: u32) -> String {
    if n <= 1 {
        String::new()
    } else {
        format!("_{n}")
    }
}

/// `name` without the `_<n>` of a later candidate (the stamp's own last part has 6 digits).
pub fn without_seq(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((head, tail))
            if !tail.is_empty() && tail.len() < 6 && tail.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => name,
    }
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
        assert_eq!(
            previous_name_n("sbi", now, 3),
            "sbi_before_restore_20261125_161100_3"
        );
        assert_eq!(
            without_seq("sbi_before_restore_20261125_161100_3"),
            "sbi_before_restore_20261125_161100"
        );
        assert_eq!(
            without_seq("sbi_before_restore_20261125_161100"),
            "sbi_before_restore_20261125_161100"
        );
        let long = "é".repeat(40);
        let p = previous_name(&long, now);
        assert!(
            p.len() <= 63 && p.ends_with("_before_restore_20261125_161100"),
            "{p}"
        );
    }
}
