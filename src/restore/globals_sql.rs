//! What each statement of a globals file (`pg_dumpall --globals-only`) does, so that a recovery
//! can leave alone the roles and tablespaces a server already has and refuse anything that is not
//! a role, membership, role setting or tablespace statement (the file runs as a superuser).

/// A statement of a globals file, by what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `SET name = value` of the file's session.
    Session { name: String, value: String },
    /// `CREATE ROLE r`.
    CreateRole { role: String },
    /// `ALTER ROLE r WITH ...`: its attributes.
    RoleAttributes {
        role: String,
        login: bool,
        password: bool,
    },
    /// `ALTER ROLE r SET|RESET ...`, `COMMENT ON ROLE r`, `SECURITY LABEL ... ON ROLE r`,
    /// `GRANT ... ON PARAMETER ... TO r`: something of role `r` only.
    OfRole { role: String },
    /// `GRANT granted TO member ...`.
    Membership { granted: String, member: String },
    /// `CREATE TABLESPACE t OWNER o LOCATION 'dir'`.
    CreateTablespace { name: String, location: String },
    /// `ALTER TABLESPACE t`, `GRANT|REVOKE ... ON TABLESPACE t`, `COMMENT ON TABLESPACE t`,
    /// `SECURITY LABEL ... ON TABLESPACE t`.
    OfTablespace { name: String },
}

/// A token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A bare word, as written (keywords are compared case-insensitively; as a name it folds
    /// to lower case).
    Word(String),
    /// A double-quoted identifier, unquoted.
    Quoted(String),
    /// A string literal, unquoted.
    Literal(String),
    Punct(char),
}

impl Tok {
    fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn name(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_lowercase()),
            Tok::Quoted(q) => Some(q.clone()),
            _ => None,
        }
    }
}

/// Tokens of one statement (standard_conforming_strings on, as the file sets it); comments and
/// the final `;` left out. `None` for text this lexer does not take (an unterminated quote).
fn tokens(sql: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut it = sql.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() || c == ';' => {}
            '-' if it.peek() == Some(&'-') => {
                for c in it.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' => out.push(quoted(&mut it, c)?),
            'E' | 'e' if it.peek() == Some(&'\'') => {
                it.next();
                out.push(escaped(&mut it)?);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = c.to_string();
                while let Some(&n) = it.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '$' {
                        w.push(n);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            c => out.push(Tok::Punct(c)),
        }
    }
    Some(out)
}

/// The rest of a `"..."` or `'...'` token (a doubled quote is one).
fn quoted(it: &mut std::iter::Peekable<std::str::Chars<'_>>, q: char) -> Option<Tok> {
    let mut s = String::new();
    loop {
        let c = it.next()?;
        if c == q {
            if it.peek() == Some(&q) {
                it.next();
                s.push(q);
            } else {
                break;
            }
        } else {
            s.push(c);
        }
    }
    Some(if q == '"' {
        Tok::Quoted(s)
    } else {
        Tok::Literal(s)
    })
}

/// The rest of an `E'...'` literal (backslash escapes taken as the escaped character).
fn escaped(it: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Tok> {
    let mut s = String::new();
    loop {
        match it.next()? {
            '\\' => s.push(it.next()?),
            '\'' if it.peek() == Some(&'\'') => {
                it.next();
                s.push('\'');
            }
            '\'' => break,
            c => s.push(c),
        }
    }
    Some(Tok::Literal(s))
}

/// Position of the first keyword `kw` at or after `from`.
fn find(t: &[Tok], from: usize, kw: &str) -> Option<usize> {
    (from..t.len()).find(|&i| t[i].is(kw))
}

/// The name after keyword `kw` (the first `kw` at or after `from`).
fn name_after(t: &[Tok], from: usize, kw: &str) -> Option<String> {
    t.get(find(t, from, kw)? + 1)?.name()
}

/// What a statement of a globals file does; `None` for a statement a globals file does not hold.
pub fn classify(sql: &str) -> Option<Kind> {
    let t = tokens(sql)?;
    let w = |i: usize, kw: &str| t.get(i).is_some_and(|x| x.is(kw));
    if w(0, "SET") {
        let value = match t.get(3)? {
            Tok::Literal(v) | Tok::Word(v) => v.clone(),
            _ => return None,
        };
        let eq = matches!(t.get(2)?, Tok::Punct('=')) || w(2, "TO");
        let name = t.get(1)?.name()?;
        return (eq && t.len() == 4).then_some(Kind::Session { name, value });
    }
    if w(0, "CREATE") && w(1, "ROLE") && t.len() == 3 {
        return Some(Kind::CreateRole {
            role: t.get(2)?.name()?,
        });
    }
    if w(0, "ALTER") && w(1, "ROLE") {
        let role = t.get(2)?.name()?;
        if w(3, "WITH") {
            let rest = &t[4..];
            let password = rest
                .windows(2)
                .any(|p| p[0].is("PASSWORD") && matches!(p[1], Tok::Literal(_)));
            let login = rest.iter().any(|x| x.is("LOGIN"));
            return Some(Kind::RoleAttributes {
                role,
                login,
                password,
            });
        }
        return (w(3, "SET") || w(3, "RESET")).then_some(Kind::OfRole { role });
    }
    if w(0, "COMMENT") && w(1, "ON") || w(0, "SECURITY") && w(1, "LABEL") {
        let on = find(&t, 1, "ON")?;
        let name = t.get(on + 2)?.name()?;
        return if w(on + 1, "ROLE") {
            Some(Kind::OfRole { role: name })
        } else if w(on + 1, "TABLESPACE") {
            Some(Kind::OfTablespace { name })
        } else {
            None
        };
    }
    if w(0, "CREATE") && w(1, "TABLESPACE") {
        let name = t.get(2)?.name()?;
        let at = find(&t, 3, "LOCATION")?;
        let Some(Tok::Literal(location)) = t.get(at + 1) else {
            return None;
        };
        return Some(Kind::CreateTablespace {
            name,
            location: location.clone(),
        });
    }
    if w(0, "ALTER") && w(1, "TABLESPACE") {
        return Some(Kind::OfTablespace {
            name: t.get(2)?.name()?,
        });
    }
    if w(0, "GRANT") || w(0, "REVOKE") {
        return grant(&t);
    }
    None
}

/// `GRANT role TO member ...`, `GRANT|REVOKE ... ON TABLESPACE t ...`, `GRANT ... ON PARAMETER
/// ... TO r`.
fn grant(t: &[Tok]) -> Option<Kind> {
    match find(t, 1, "ON") {
        Some(on) if t.get(on + 1)?.is("TABLESPACE") => Some(Kind::OfTablespace {
            name: t.get(on + 2)?.name()?,
        }),
        Some(on) if t.get(on + 1)?.is("PARAMETER") && t[0].is("GRANT") => Some(Kind::OfRole {
            role: name_after(t, on, "TO")?,
        }),
        Some(_) => None,
        None if t[0].is("GRANT") && t.get(2)?.is("TO") => Some(Kind::Membership {
            granted: t.get(1)?.name()?,
            member: t.get(3)?.name()?,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(r: &str) -> String {
        r.to_string()
    }

    #[test]
    fn the_statements_of_pg_dumpall() {
        let cases = [
            (
                "SET default_transaction_read_only = off;",
                Some(Kind::Session {
                    name: role("default_transaction_read_only"),
                    value: role("off"),
                }),
            ),
            (
                "SET client_encoding = 'UTF8';",
                Some(Kind::Session {
                    name: role("client_encoding"),
                    value: role("UTF8"),
                }),
            ),
            (
                "CREATE ROLE \"We;ird \"\"x\"\"\";",
                Some(Kind::CreateRole {
                    role: role("We;ird \"x\""),
                }),
            ),
            (
                "CREATE ROLE app_owner;",
                Some(Kind::CreateRole {
                    role: role("app_owner"),
                }),
            ),
            (
                "ALTER ROLE ann WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x';",
                Some(Kind::RoleAttributes {
                    role: role("ann"),
                    login: true,
                    password: true,
                }),
            ),
            (
                "ALTER ROLE readers WITH NOSUPERUSER INHERIT NOLOGIN NOREPLICATION NOBYPASSRLS;",
                Some(Kind::RoleAttributes {
                    role: role("readers"),
                    login: false,
                    password: false,
                }),
            ),
            (
                "ALTER ROLE ann SET statement_timeout TO '5s';",
                Some(Kind::OfRole { role: role("ann") }),
            ),
            (
                "COMMENT ON ROLE \"Ann\" IS 'the -- analyst';",
                Some(Kind::OfRole { role: role("Ann") }),
            ),
            (
                "GRANT app_owner TO ann WITH ADMIN OPTION GRANTED BY postgres;",
                Some(Kind::Membership {
                    granted: role("app_owner"),
                    member: role("ann"),
                }),
            ),
            (
                "GRANT \"readers\" TO \"ann\" WITH INHERIT TRUE GRANTED BY \"postgres\";",
                Some(Kind::Membership {
                    granted: role("readers"),
                    member: role("ann"),
                }),
            ),
            (
                "GRANT SET ON PARAMETER work_mem TO ann;",
                Some(Kind::OfRole { role: role("ann") }),
            ),
            (
                "CREATE TABLESPACE fast OWNER app_owner LOCATION E'/srv/it''s\\\\x';",
                Some(Kind::CreateTablespace {
                    name: role("fast"),
                    location: role("/srv/it's\\x"),
                }),
            ),
            (
                "GRANT ALL ON TABLESPACE fast TO ann;",
                Some(Kind::OfTablespace { name: role("fast") }),
            ),
            (
                "ALTER TABLESPACE fast SET (random_page_cost='1.1');",
                Some(Kind::OfTablespace { name: role("fast") }),
            ),
            ("COPY t FROM PROGRAM 'id';", None),
            ("CREATE DATABASE x;", None),
            ("ALTER ROLE ann RENAME TO bob;", None),
            ("GRANT SELECT ON t TO ann;", None),
            ("CREATE ROLE a SUPERUSER;", None),
            ("SELECT pg_reload_conf();", None),
            ("DO $$ BEGIN END $$;", None),
            ("SET x = 1; SELECT 1;", None),
        ];
        for (sql, want) in cases {
            assert_eq!(classify(sql), want, "{sql}");
        }
    }
}
