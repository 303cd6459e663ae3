//! What pg_dump and pg_restore of a newer major write that an older server refuses, although the
//! backup came from a server of that older major: the session settings they set at the start of
//! every script (`SET transaction_timeout = 0;`, pg_dump and pg_restore 17+). A load into a
//! server older than the setting leaves such statements out (see `crate::pipeline::guard`), so
//! that a backup made with newer client tools restores into the server it came from.

/// Settings pg_dump and pg_restore write in their scripts' preamble, with the first server major
/// that knows them. Every supported server (13+) knows the others they write
/// (`statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`, `client_encoding`,
/// `standard_conforming_strings`, `check_function_bodies`, `xmloption`, `client_min_messages`,
/// `row_security`, `default_tablespace`, `default_table_access_method`).
const NEWER_SETTINGS: &[(&str, u32)] = &[("transaction_timeout", 17)];

/// The first server major that knows `setting` when it is one that newer client tools write
/// and older servers refuse; `None` for every other setting.
pub fn setting_since(setting: &str) -> Option<u32> {
    NEWER_SETTINGS
        .iter()
        .find(|(name, _)| *name == setting)
        .map(|&(_, major)| major)
}

/// Whether a server of `server_major` refuses `setting` (one that newer client tools write).
pub fn unknown_to(setting: &str, server_major: u32) -> bool {
    setting_since(setting).is_some_and(|since| server_major < since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_newer_than_the_server_are_unknown() {
        assert!(unknown_to("transaction_timeout", 13));
        assert!(unknown_to("transaction_timeout", 16));
        assert!(!unknown_to("transaction_timeout", 17));
        assert!(!unknown_to("transaction_timeout", 18));
        assert!(!unknown_to("statement_timeout", 13));
        assert!(!unknown_to("search_path", 13));
        assert_eq!(setting_since("transaction_timeout"), Some(17));
    }
}
