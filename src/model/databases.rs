//! Which databases of a server pgkeep works on: the `databases` setting (a list, or `all`), the
//! exclusions, and the pure selection from what the server holds and what the backup directory
//! already has backups of, so that a database that went away is reported, never silently lost.

use serde::Serialize;

/// The `databases` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSet {
    /// Every database that accepts connections, templates excluded.
    All,
    /// These databases, in this order.
    Named(Vec<String>),
}

impl DatabaseSet {
    /// `all`, or the names (at least one, none empty, none twice).
    pub fn parse(names: &[String]) -> Result<DatabaseSet, String> {
        if names.iter().any(|n| n == "all") {
            if names.len() > 1 {
                return Err("`all` stands alone; list names or write all".into());
            }
            return Ok(DatabaseSet::All);
        }
        if names.is_empty() {
            return Err("name at least one database, or all".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in names {
            if !seen.insert(n) {
                return Err(format!("database \"{n}\" is named twice"));
            }
        }
        Ok(DatabaseSet::Named(names.to_vec()))
    }
}

/// A database as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDatabase {
    pub name: String,
    pub is_template: bool,
    pub allows_connections: bool,
}

/// What the set means on a server right now (the JSON of `pgkeep databases --json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// The databases to work on, in order.
    pub databases: Vec<String>,
    /// Named in `databases` but not on the server: each is a failure of the run.
    pub missing: Vec<String>,
    /// Not on the server any more, but with backups in the backup directory: reported, their
    /// backups kept (never culled for the database being gone).
    pub gone: Vec<String>,
    /// Left out by `exclude_databases`.
    pub excluded: Vec<String>,
    /// Left out because they allow no connections (`datallowconn = false`).
    pub no_connections: Vec<String>,
    /// Left out because they are templates.
    pub templates: Vec<String>,
}

/// Select from the server's databases. `with_backups` are the databases the backup directory
/// holds backups of (for this host): those no longer on the server are `gone`.
pub fn select(
    set: &DatabaseSet,
    exclude: &[String],
    server: &[ServerDatabase],
    with_backups: &[String],
) -> Selection {
    let mut sel = Selection::default();
    let on_server = |n: &str| server.iter().find(|d| d.name == n);
    match set {
        DatabaseSet::All => {
            let mut names: Vec<&ServerDatabase> = server.iter().collect();
            names.sort_by(|a, b| a.name.cmp(&b.name));
            for d in names {
                if d.is_template {
                    sel.templates.push(d.name.clone());
                } else if !d.allows_connections {
                    sel.no_connections.push(d.name.clone());
                } else if exclude.contains(&d.name) {
                    sel.excluded.push(d.name.clone());
                } else {
                    sel.databases.push(d.name.clone());
                }
            }
        }
        DatabaseSet::Named(names) => {
            for n in names {
                match on_server(n) {
                    _ if exclude.contains(n) => sel.excluded.push(n.clone()),
                    None => sel.missing.push(n.clone()),
                    Some(d) if !d.allows_connections => sel.no_connections.push(n.clone()),
                    Some(_) => sel.databases.push(n.clone()),
                }
            }
        }
    }
    let mut gone: Vec<String> = with_backups
        .iter()
        .filter(|n| on_server(n).is_none() && !sel.missing.contains(n))
        .filter(|n| match set {
            DatabaseSet::All => !exclude.contains(n),
            DatabaseSet::Named(names) => names.contains(n),
        })
        .cloned()
        .collect();
    gone.sort();
    gone.dedup();
    sel.gone = gone;
    sel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str, is_template: bool, allows_connections: bool) -> ServerDatabase {
        ServerDatabase {
            name: name.into(),
            is_template,
            allows_connections,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn server() -> Vec<ServerDatabase> {
        vec![
            db("template0", true, false),
            db("template1", true, true),
            db("postgres", false, true),
            db("sbi", false, true),
            db("app", false, true),
            db("frozen", false, false),
        ]
    }

    #[test]
    fn all_takes_every_connectable_non_template_database_minus_exclusions() {
        let s = select(
            &DatabaseSet::All,
            &names(&["postgres"]),
            &server(),
            &names(&["sbi", "dropped"]),
        );
        assert_eq!(s.databases, names(&["app", "sbi"]));
        assert_eq!(s.excluded, names(&["postgres"]));
        assert_eq!(s.no_connections, names(&["frozen"]));
        assert_eq!(s.templates, names(&["template0", "template1"]));
        assert_eq!(s.gone, names(&["dropped"]));
        assert!(s.missing.is_empty());
    }

    #[test]
    fn a_list_keeps_its_order_and_names_what_is_missing() {
        let s = select(
            &DatabaseSet::Named(names(&["sbi", "nope", "frozen", "app", "postgres"])),
            &names(&["postgres"]),
            &server(),
            &names(&["nope", "other"]),
        );
        assert_eq!(s.databases, names(&["sbi", "app"]));
        assert_eq!(s.missing, names(&["nope"]));
        assert_eq!(s.no_connections, names(&["frozen"]));
        assert_eq!(s.excluded, names(&["postgres"]));
        // `other` is not in the list: none of this set's business.
        assert!(s.gone.is_empty());
    }

    #[test]
    fn parse_refuses_all_with_names_empty_lists_and_repeats() {
        assert_eq!(DatabaseSet::parse(&names(&["all"])), Ok(DatabaseSet::All));
        assert!(DatabaseSet::parse(&names(&["all", "x"])).is_err());
        assert!(DatabaseSet::parse(&[]).is_err());
        assert!(DatabaseSet::parse(&names(&["a", "a"])).is_err());
        assert_eq!(
            DatabaseSet::parse(&names(&["a", "b"])),
            Ok(DatabaseSet::Named(names(&["a", "b"])))
        );
    }
}
