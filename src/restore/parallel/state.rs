//! The session state a plain dump sets as it goes (`SET search_path`, `client_encoding`,
//! `default_tablespace`, `default_table_access_method`, `standard_conforming_strings`, the
//! role, ...), so that every connection of a parallel load runs each statement under the state
//! the serial load would run it under: a worker replays what differs before each unit.

use std::sync::Arc;

/// The session-level `SET`s in effect, each parameter once, in the order they were last set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Bumped by `RESET ALL`, which forgets everything before it.
    generation: u64,
    sets: Vec<(String, Arc<[u8]>)>,
}

impl State {
    /// A statement that sets parameter `key` for the session (see [`session_key`]).
    pub fn apply(&mut self, key: &str, statement: &[u8]) {
        if key == RESET_ALL {
            self.generation += 1;
            self.sets.clear();
        } else {
            self.sets.retain(|(k, _)| k != key);
        }
        self.sets.push((key.to_string(), statement.into()));
    }

    /// The statements that bring a session in state `applied` to this one (each on a line).
    pub fn diff(&self, applied: &State) -> Vec<u8> {
        let mut out = Vec::new();
        let all = self.generation != applied.generation;
        for (k, s) in &self.sets {
            if all || !applied.sets.iter().any(|(ak, a)| ak == k && a == s) {
                out.extend_from_slice(s);
                out.push(b'\n');
            }
        }
        out
    }
}

const RESET_ALL: &str = "*all";

/// The parameter a statement sets for the whole session, from its text: `SET [SESSION] x ...`,
/// `RESET x`, `RESET ALL`, `SELECT [pg_catalog.]set_config('x', ..., false)`. `None` for
/// everything else, `SET LOCAL` and `SET TRANSACTION`/`CONSTRAINTS` included (they end with
/// their transaction, which a unit keeps whole).
pub fn session_key(statement: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(statement).to_ascii_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| c.is_ascii_whitespace() || c == '=' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["set", "local", ..] | ["set", "transaction", ..] | ["set", "constraints", ..] => None,
        ["set", "session", "characteristics", ..] => Some("session characteristics".into()),
        ["set", "session", "authorization", ..] | ["reset", "session", "authorization", ..] => {
            Some("session authorization".into())
        }
        ["reset", "all", ..] => Some(RESET_ALL.into()),
        ["set", "session", name, ..] | ["set", name, ..] | ["reset", name, ..] => {
            Some(normalize(name, &words))
        }
        ["select", f, ..] if is_set_config(f) => set_config_key(&text),
        _ => None,
    }
}

fn is_set_config(word: &str) -> bool {
    word.starts_with("set_config(") || word.starts_with("pg_catalog.set_config(")
}

fn normalize(name: &str, words: &[&str]) -> String {
    let name = name.trim_matches('"');
    match name {
        "names" => "client_encoding".into(),
        "schema" => "search_path".into(),
        "time" if words.contains(&"zone") => "timezone".into(),
        "xml" => "xmloption".into(),
        n => n.to_string(),
    }
}

/// `set_config('name', <value>, false)`: the name, when the call is session-level.
fn set_config_key(text: &str) -> Option<String> {
    let args = &text[text.find("set_config(")? + "set_config(".len()..];
    let name = args.strip_prefix('\'')?;
    let name = &name[..name.find('\'')?];
    let tail = text.trim_end().trim_end_matches(';').trim_end();
    tail.ends_with("false)")
        .then(|| name.to_string())
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_sets_are_recognized() {
        let k = |s: &str| session_key(s.as_bytes());
        assert_eq!(
            k("SET default_tablespace = '';").as_deref(),
            Some("default_tablespace")
        );
        assert_eq!(
            k("SET default_table_access_method = heap;").as_deref(),
            Some("default_table_access_method")
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', false);").as_deref(),
            Some("search_path")
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', true);"),
            None
        );
        assert_eq!(
            k("SET client_encoding = 'LATIN1';").as_deref(),
            Some("client_encoding")
        );
        assert_eq!(k("SET NAMES 'LATIN1';").as_deref(), Some("client_encoding"));
        assert_eq!(k("SET ROLE alice;").as_deref(), Some("role"));
        assert_eq!(k("RESET ROLE;").as_deref(), Some("role"));
        assert_eq!(
            k("SET SESSION AUTHORIZATION alice;").as_deref(),
            Some("session authorization")
        );
        assert_eq!(
            k("SET search_path TO a, b;").as_deref(),
            Some("search_path")
        );
        assert_eq!(k("SET LOCAL search_path = a;"), None);
        assert_eq!(k("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;"), None);
        assert_eq!(k("SELECT pg_catalog.setval('s', 3, true);"), None);
        assert_eq!(k("CREATE TABLE set_x (a int);"), None);
    }

    #[test]
    fn a_worker_replays_only_what_differs() {
        let mut s = State::default();
        s.apply("search_path", b"SET search_path = a;");
        s.apply("default_tablespace", b"SET default_tablespace = '';");
        let applied = s.clone();
        assert!(s.diff(&applied).is_empty());
        s.apply("default_tablespace", b"SET default_tablespace = ts;");
        assert_eq!(s.diff(&applied), b"SET default_tablespace = ts;\n");
        assert_eq!(
            s.diff(&State::default()),
            b"SET search_path = a;\nSET default_tablespace = ts;\n"
        );
        let mut r = s.clone();
        r.apply(RESET_ALL, b"RESET ALL;");
        r.apply("role", b"SET ROLE x;");
        assert_eq!(r.diff(&s), b"RESET ALL;\nSET ROLE x;\n");
    }
}
