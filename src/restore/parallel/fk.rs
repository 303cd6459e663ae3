//! The tables a post-data entry of a plain dump locks, read from its statements, so that the
//! foreign keys can be added on several connections at once (see `schedule`). Only what is
//! sure gets tables: pg_dump's `ALTER TABLE ONLY t ADD CONSTRAINT c FOREIGN KEY (...)
//! REFERENCES r(...) ...;`, alone in its entry (but for session `SET`s), with both tables
//! schema-qualified and neither a partitioned table (adding a key on or to one takes the locks
//! of its partitions too, which the text does not name). Everything else is a barrier.

use std::collections::HashSet;

use super::schedule::Locks;
use crate::model::name::parse_qualified_bytes;

/// A table, schema and name unquoted.
pub type Table = (Vec<u8>, Vec<u8>);

/// The partitioned tables of a dump, from its `CREATE TABLE ... PARTITION BY` statements.
#[derive(Debug, Default)]
pub struct Partitioned {
    tables: HashSet<Table>,
    /// A `CREATE TABLE` said `PARTITION BY` and its name could not be read: any table may be one.
    unknown: bool,
}

impl Partitioned {
    /// A statement of the pre-data section.
    pub fn statement(&mut self, stmt: &[u8]) {
        let w = words(stmt, 4);
        let name = match w.as_slice() {
            [c, t, name, ..] if eq(c, "create") && eq(t, "table") => name,
            [c, u, t, name] if eq(c, "create") && eq(u, "unlogged") && eq(t, "table") => name,
            _ => return,
        };
        if !contains_ci(stmt, b"partition by") {
            return;
        }
        let name = until_paren(name);
        match parse_qualified_bytes(name) {
            Some(t) => {
                self.tables.insert(t);
            }
            None => self.unknown = true,
        }
    }

    fn may_be(&self, t: &Table) -> bool {
        self.unknown || self.tables.contains(t)
    }
}

/// What a post-data entry of type `entry_type` with these statements (session `SET`s left
/// out) locks.
pub fn locks(entry_type: &str, statements: &[Vec<u8>], partitioned: &Partitioned) -> Locks {
    let [stmt] = statements else {
        return Locks::Barrier;
    };
    if entry_type != "FK CONSTRAINT" {
        return Locks::Barrier;
    }
    match foreign_key(stmt) {
        Some((t, r)) if !partitioned.may_be(&t) && !partitioned.may_be(&r) => {
            Locks::Tables(if t == r { vec![t] } else { vec![t, r] })
        }
        _ => Locks::Barrier,
    }
}

/// The table and the referenced table of pg_dump's foreign-key statement.
fn foreign_key(stmt: &[u8]) -> Option<(Table, Table)> {
    let w = words(stmt, usize::MAX);
    let head = ["alter", "table", "only"];
    if w.len() < 9 || !head.iter().zip(&w).all(|(k, x)| eq(x, k)) {
        return None;
    }
    if !(eq(w[4], "add") && eq(w[5], "constraint") && eq(w[7], "foreign")) {
        return None;
    }
    let table = parse_qualified_bytes(w[3])?;
    let at = w.iter().position(|x| eq(x, "references"))?;
    let target = w.get(at + 1)?;
    let name = until_paren(target);
    if name.len() == target.len() {
        // pg_dump always names the referenced columns: `REFERENCES s.t(id)`.
        return None;
    }
    Some((table, parse_qualified_bytes(name)?))
}

/// The words of a statement (split at whitespace outside double quotes), at most `n`.
fn words(stmt: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, &b) in stmt.iter().enumerate() {
        if out.len() == n {
            return out;
        }
        match b {
            b'"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            b if b.is_ascii_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push(&stmt[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start
        && out.len() < n
    {
        out.push(&stmt[s..]);
    }
    out
}

/// A word up to its first `(` outside double quotes.
fn until_paren(word: &[u8]) -> &[u8] {
    let mut quoted = false;
    for (i, &b) in word.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'(' if !quoted => return &word[..i],
            _ => {}
        }
    }
    word
}

fn eq(word: &[u8], keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword.as_bytes())
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(s: &str, n: &str) -> Table {
        (s.as_bytes().to_vec(), n.as_bytes().to_vec())
    }

    fn fk(sql: &str) -> Locks {
        locks(
            "FK CONSTRAINT",
            &[sql.as_bytes().to_vec()],
            &Partitioned::default(),
        )
    }

    #[test]
    fn a_foreign_key_locks_its_table_and_the_referenced_one() {
        assert_eq!(
            fk(
                "ALTER TABLE ONLY public.t002\n    ADD CONSTRAINT t002_ref_id_fkey FOREIGN KEY (ref_id) REFERENCES public.t001(id);"
            ),
            Locks::Tables(vec![tab("public", "t002"), tab("public", "t001")])
        );
        assert_eq!(
            fk(
                "ALTER TABLE ONLY \"we ird\".\"T \"\"q\"\"\"\n    ADD CONSTRAINT \"a REFERENCES b\" FOREIGN KEY (\"x y\", z) REFERENCES \"we.ird\".\"p(k)\"(\"a b\", c) MATCH FULL ON DELETE CASCADE DEFERRABLE NOT VALID;"
            ),
            Locks::Tables(vec![tab("we ird", "T \"q\""), tab("we.ird", "p(k)")])
        );
        assert_eq!(
            fk(
                "ALTER TABLE ONLY public.t ADD CONSTRAINT self FOREIGN KEY (p) REFERENCES public.t(id);"
            ),
            Locks::Tables(vec![tab("public", "t")])
        );
    }

    #[test]
    fn anything_unsure_is_a_barrier() {
        // Without ONLY (a partitioned table: its partitions are locked too), unqualified, other
        // entry types, more than one statement.
        for sql in [
            "ALTER TABLE public.p\n    ADD CONSTRAINT p_fk FOREIGN KEY (a) REFERENCES public.t(id);",
            "ALTER TABLE ONLY t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.t(id);",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES u(id);",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.u;",
        ] {
            assert_eq!(fk(sql), Locks::Barrier, "{sql}");
        }
        let s =
            b"ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.u(id);"
                .to_vec();
        let none = Partitioned::default();
        assert_eq!(
            locks("TRIGGER", std::slice::from_ref(&s), &none),
            Locks::Barrier
        );
        assert_eq!(
            locks("FK CONSTRAINT", &[s.clone(), s.clone()], &none),
            Locks::Barrier
        );
        assert!(matches!(
            locks("FK CONSTRAINT", &[s], &none),
            Locks::Tables(_)
        ));
    }

    #[test]
    fn keys_on_or_to_partitioned_tables_are_barriers() {
        let mut p = Partitioned::default();
        p.statement(b"CREATE TABLE public.measure (\n    id bigint NOT NULL,\n    at date\n)\nPARTITION BY RANGE (at);");
        p.statement(b"CREATE TABLE public.plain (\n    note text DEFAULT 'x'\n);");
        p.statement(
            b"CREATE VIEW public.v AS\n SELECT rank() OVER (PARTITION BY a) FROM public.t;",
        );
        let to = b"ALTER TABLE ONLY public.plain ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.measure(id, at);".to_vec();
        assert_eq!(locks("FK CONSTRAINT", &[to], &p), Locks::Barrier);
        let other = b"ALTER TABLE ONLY public.plain ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES public.other(id);".to_vec();
        assert!(matches!(
            locks("FK CONSTRAINT", std::slice::from_ref(&other), &p),
            Locks::Tables(_)
        ));
        // A partitioned table whose name cannot be read: every key is a barrier.
        p.statement(b"CREATE TABLE (broken PARTITION BY LIST (a);");
        assert_eq!(locks("FK CONSTRAINT", &[other], &p), Locks::Barrier);
    }
}
