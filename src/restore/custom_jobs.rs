//! A parallel pg_restore of a custom archive in two passes, so that it gives the database the
//! serial load gives. pg_restore's workers run a table's `ROW SECURITY` entry (`ALTER TABLE ..
//! ENABLE / FORCE ROW LEVEL SECURITY`) as soon as the table exists, which may be before a foreign
//! key on it is added; the key's check, run as the owner with `row_security = off`, is then
//! refused ("query would be affected by row-level security policy") when the security is
//! forced. The first pass (`--jobs N -L`) restores everything but those entries, the second
//! (one job) only them, after every constraint.

use std::path::{Path, PathBuf};

use super::load_error::{Input, LoadError};
use crate::process::{Outcome, Spec};

/// The table-of-contents entries a second pass runs, by their type as `pg_restore --list`
/// prints it.
const LATE: &[&str] = &["ROW SECURITY"];

/// The two `--use-list` lists of an archive's table of contents (`pg_restore --list`): every
/// entry but the late ones, then only those (the others commented out, as `-L` takes them).
/// `None` when there is no late entry: one pass does.
pub fn split_list(list: &str) -> Option<(String, String)> {
    let mut first = String::with_capacity(list.len());
    let mut second = String::new();
    let mut late_seen = false;
    for line in list.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            for l in [&mut first, &mut second] {
                l.push_str(line);
                l.push('\n');
            }
            continue;
        }
        let late = is_late(line);
        late_seen |= late;
        let (keep, skip) = if late {
            (&mut second, &mut first)
        } else {
            (&mut first, &mut second)
        };
        keep.push_str(line);
        keep.push('\n');
        skip.push(';');
        skip.push_str(line);
        skip.push('\n');
    }
    late_seen.then_some((first, second))
}

/// An entry line is `ID; TABLEOID OID TYPE SCHEMA NAME OWNER`.
fn is_late(line: &str) -> bool {
    let Some((id, rest)) = line.split_once("; ") else {
        return false;
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut fields = rest.splitn(3, ' ');
    let (Some(_), Some(_), Some(desc)) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    LATE.iter()
        .any(|t| desc.strip_prefix(t).is_some_and(|r| r.starts_with(' ')))
}

/// The lists of a parallel restore, written to a private directory that is removed with it.
pub struct Lists {
    _dir: tempfile::TempDir,
    pub first: PathBuf,
    pub second: PathBuf,
}

/// The archive's table of contents as `pg_restore --list` prints it.
pub fn read_toc(
    pg_restore: &Path,
    path: &Path,
    env: &[(String, String)],
) -> Result<String, LoadError> {
    let spec = Spec::new(pg_restore)
        .envs(env.iter().cloned())
        .arg("--list")
        .arg(path);
    let (outcome, out) = crate::process::output(&spec, None).map_err(|source| LoadError::Io {
        context: format!("cannot run {}", pg_restore.display()),
        source,
    })?;
    if !outcome.success() {
        return Err(LoadError::Io {
            context: "cannot read the archive's table of contents".into(),
            source: std::io::Error::other(outcome.describe()),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Write the two lists of the archive's table of contents (the one the check read, else read
/// now); `None` when one pass does.
pub fn lists(
    pg_restore: &Path,
    input: &Input,
    env: &[(String, String)],
) -> Result<Option<Lists>, LoadError> {
    let io = |context: String| move |source| LoadError::Io { context, source };
    let split = match &input.toc {
        Some(toc) => split_list(toc),
        None => split_list(&read_toc(pg_restore, &input.path, env)?),
    };
    let Some((first, second)) = split else {
        return Ok(None);
    };
    let dir = tempfile::Builder::new()
        .prefix("pgkeep-restore-list-")
        .tempdir()
        .map_err(io("cannot make a directory for pg_restore's lists".into()))?;
    let (a, b) = (
        dir.path().join("first.list"),
        dir.path().join("second.list"),
    );
    std::fs::write(&a, first).map_err(io(format!("cannot write {}", a.display())))?;
    std::fs::write(&b, second).map_err(io(format!("cannot write {}", b.display())))?;
    Ok(Some(Lists {
        _dir: dir,
        first: a,
        second: b,
    }))
}

/// The second pass: the late entries, one job, stopping at the first error.
pub fn second_pass(spec: Spec, list: &Path, input: &Input) -> Result<Outcome, LoadError> {
    let spec = spec
        .arg("--exit-on-error")
        .arg("--use-list")
        .arg(list)
        .arg(&input.path);
    let (outcome, _) = crate::process::output(&spec, None).map_err(|source| LoadError::Io {
        context: format!("cannot start {}", spec.name()),
        source,
    })?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = ";\n; Archive created at 2026-12-01\n;\n\
        215; 1259 16390 TABLE public documents alice\n\
        3352; 0 16390 TABLE DATA public documents alice\n\
        3201; 2606 16400 CONSTRAINT public documents documents_pkey alice\n\
        3205; 2606 16410 FK CONSTRAINT public documents documents_owner_fkey alice\n\
        3360; 0 0 ROW SECURITY public documents alice\n\
        3361; 3256 16420 POLICY public documents docs_read alice\n\
        3362; 0 0 ROW SECURITY public \"ROW SECURITY x\" alice\n";

    #[test]
    fn row_security_entries_go_to_the_second_pass() {
        let (first, second) = split_list(LIST).unwrap();
        assert!(first.contains("\n3205; 2606 16410 FK CONSTRAINT"));
        assert!(first.contains("\n3361; 3256 16420 POLICY"));
        assert!(first.contains("\n;3360; 0 0 ROW SECURITY public documents alice\n"));
        assert!(first.contains("\n;3362; 0 0 ROW SECURITY"));
        assert!(second.contains("\n3360; 0 0 ROW SECURITY public documents alice\n"));
        assert!(second.contains("\n3362; 0 0 ROW SECURITY"));
        assert!(second.contains("\n;3205; 2606 16410 FK CONSTRAINT"));
        assert!(second.contains("\n;215; 1259 16390 TABLE public documents alice\n"));
        // Comments stay comments in both, and nothing else is active in the second.
        assert!(second.starts_with(";\n; Archive created"));
        let active = |l: &str| l.lines().filter(|x| !x.starts_with(';')).count();
        assert_eq!(active(&second), 2);
        assert_eq!(active(&first), 5);
    }

    #[test]
    fn the_checked_table_of_contents_spares_the_load_a_read() {
        // No pg_restore to run: the lists come from the table of contents the check read.
        let missing = Path::new("/nonexistent/pg_restore");
        let input = |toc: &str| Input {
            path: PathBuf::from("/nonexistent/archive.dump"),
            format: crate::model::Format::Custom,
            compression: crate::model::Compression::None,
            sha256: None,
            toc: Some(toc.into()),
            rows: None,
        };
        let two = lists(missing, &input(LIST), &[])
            .unwrap()
            .expect("two passes");
        let (first, second) = split_list(LIST).unwrap();
        assert_eq!(std::fs::read_to_string(&two.first).unwrap(), first);
        assert_eq!(std::fs::read_to_string(&two.second).unwrap(), second);
        let plain = "215; 1259 16390 TABLE public documents alice\n";
        assert!(lists(missing, &input(plain), &[]).unwrap().is_none());
        // Without one, the archive is listed (here: the missing program is the error).
        let unlisted = Input {
            toc: None,
            ..input(plain)
        };
        assert!(lists(missing, &unlisted, &[]).is_err());
    }

    #[test]
    fn without_row_security_one_pass_does() {
        let plain: String = LIST
            .lines()
            .filter(|l| !l.contains("ROW SECURITY"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(split_list(&plain).is_none());
        // A table named like the type is not an entry of that type.
        assert!(split_list("12; 1259 1 TABLE public ROW SECURITY alice\n").is_none());
    }
}
