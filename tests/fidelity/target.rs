//! The server a fidelity run talks to: its socket, port and binaries, psql runs that keep the
//! database's bytes as they are (names need not be UTF-8), and `pgkeep` commands configured
//! like the old backup pod. Any running cluster can be a target, so the corpus runs on other
//! PostgreSQL majors as well.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The password of every role the corpus creates.
pub const PASSWORD: &str = "fidelity-pw";

/// A running PostgreSQL cluster: superuser `postgres` over the Unix socket without password.
#[derive(Debug, Clone)]
pub struct Target {
    pub socket_dir: PathBuf,
    pub port: u16,
    /// Server and client programs of the cluster's major version.
    pub bindir: PathBuf,
    pub version_num: u32,
}

/// Who a psql run connects as.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Superuser,
    Role(&'a str),
}

impl Target {
    pub fn new(socket_dir: &Path, port: u16, bindir: &Path) -> Target {
        let mut t = Target {
            socket_dir: socket_dir.to_path_buf(),
            port,
            bindir: bindir.to_path_buf(),
            version_num: 0,
        };
        t.version_num = t
            .query("postgres", "SHOW server_version_num")
            .trim()
            .parse()
            .expect("server_version_num");
        t
    }

    pub fn major(&self) -> u32 {
        self.version_num / 10000
    }

    /// A client program of the cluster (psql, pg_dump) with the connection set and a clean
    /// libpq environment.
    pub fn client(&self, program: &str, who: As<'_>) -> Command {
        let mut c = Command::new(self.bindir.join(program));
        c.arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string());
        for v in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGOPTIONS",
        ] {
            c.env_remove(v);
        }
        match who {
            As::Superuser => c.args(["-U", "postgres"]),
            As::Role(r) => c.args(["-U", r]).env("PGPASSWORD", PASSWORD),
        };
        c
    }

    /// psql with `ON_ERROR_STOP`, unaligned tuples-only output separated by 0x1f (fields) and
    /// 0x1e (records); `encoding` is the client encoding (`SQL_ASCII`: the bytes as stored).
    pub fn psql_cmd(&self, who: As<'_>, db: &OsStr, encoding: &str) -> Command {
        let mut c = self.client("psql", who);
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-F", "\x1f", "-R", "\x1e"])
            .arg("-d")
            .arg(db)
            .env("PGCLIENTENCODING", encoding);
        c
    }

    /// Run SQL; the raw output, or the error text.
    pub fn try_sql(
        &self,
        who: As<'_>,
        db: &OsStr,
        encoding: &str,
        sql: &[u8],
    ) -> Result<Vec<u8>, String> {
        let out = feed(self.psql_cmd(who, db, encoding), sql);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(one_line(&out.stderr))
        }
    }

    /// Run SQL as superuser in a UTF-8 session; panics on failure.
    pub fn query(&self, db: impl AsRef<OsStr>, sql: &str) -> String {
        let db = db.as_ref();
        let out = self
            .try_sql(As::Superuser, db, "UTF8", sql.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", db.display()));
        String::from_utf8_lossy(&out).replace('\x1e', "\n")
    }

    /// Records of a query (fields split), raw bytes.
    pub fn rows(&self, db: &OsStr, encoding: &str, sql: &str) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let out = self.try_sql(As::Superuser, db, encoding, sql.as_bytes())?;
        Ok(out
            .split(|b| *b == 0x1e)
            .map(|r| r.strip_suffix(b"\n").unwrap_or(r))
            .filter(|r| !r.is_empty())
            .map(|r| r.split(|b| *b == 0x1f).map(<[u8]>::to_vec).collect())
            .collect())
    }

    /// Run a corpus file as superuser on `postgres`, with psql variables.
    pub fn run_file(&self, file: &Path, vars: &[(&str, OsString)]) -> Result<(), String> {
        let mut c = self.client("psql", As::Superuser);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f"])
            .arg(file)
            .env("PGCLIENTENCODING", "UTF8");
        for (k, v) in vars {
            let mut a = OsString::from(format!("{k}="));
            a.push(v);
            c.arg("-v").arg(a);
        }
        let out = c.stdin(Stdio::null()).output().expect("run psql");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}", file.display(), one_line(&out.stderr)))
        }
    }

    /// Every database name on the server, as bytes.
    pub fn databases(&self) -> Vec<OsString> {
        self.rows(
            OsStr::new("postgres"),
            "SQL_ASCII",
            "SELECT datname FROM pg_database ORDER BY 1",
        )
        .expect("list databases")
        .into_iter()
        .map(|mut r| OsString::from_vec(r.remove(0)))
        .collect()
    }

    /// The server encoding of a database (`None` if it does not exist). Names are matched as
    /// bytes: a name that is not valid in the maintenance database's encoding cannot be spelled
    /// in a query there, but is listed unconverted to an SQL_ASCII client.
    pub fn encoding_of(&self, db: &OsStr) -> Option<String> {
        self.rows(
            OsStr::new("postgres"),
            "SQL_ASCII",
            "SELECT datname, pg_encoding_to_char(encoding) FROM pg_database",
        )
        .expect("list databases")
        .into_iter()
        .find(|r| r[0] == db.as_bytes())
        .map(|r| String::from_utf8_lossy(&r[1]).into_owned())
    }

    /// Drop a database whatever it holds: subscriptions are disabled and detached from their
    /// slots first (a database with a subscription cannot be dropped), a blocked database is
    /// opened again, sessions are ended.
    pub fn drop_database(&self, db: &OsStr) {
        if self.encoding_of(db).is_none() {
            return;
        }
        // From a database of the same encoding, so that any name can be spelled.
        let mut c = self.psql_cmd(As::Superuser, OsStr::new("template1"), "SQL_ASCII");
        c.arg("-v").arg(var("name", db));
        let out = feed(
            c,
            b"ALTER DATABASE :\"name\" WITH ALLOW_CONNECTIONS true; ALTER DATABASE :\"name\" IS_TEMPLATE false;",
        );
        assert!(out.status.success(), "{}", one_line(&out.stderr));
        let subs = "SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid \
                    WHERE d.datname = current_database()";
        let names = if self.version_num >= 100000 {
            self.rows(db, "SQL_ASCII", subs).unwrap_or_default()
        } else {
            Vec::new()
        };
        for n in names {
            let mut c = self.psql_cmd(As::Superuser, db, "SQL_ASCII");
            c.arg("-v").arg(var("sub", OsStr::from_bytes(&n[0])));
            let out = feed(
                c,
                b"ALTER SUBSCRIPTION :\"sub\" DISABLE; ALTER SUBSCRIPTION :\"sub\" SET (slot_name = NONE); DROP SUBSCRIPTION :\"sub\";",
            );
            assert!(out.status.success(), "{}", one_line(&out.stderr));
        }
        let mut c = self.psql_cmd(As::Superuser, OsStr::new("template1"), "SQL_ASCII");
        c.arg("-v").arg(var("name", db));
        let sql: &[u8] = if self.version_num >= 130000 {
            b"DROP DATABASE :\"name\" WITH (FORCE)"
        } else {
            b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'name'; DROP DATABASE :\"name\""
        };
        let out = feed(c, sql);
        assert!(out.status.success(), "{}", one_line(&out.stderr));
    }

    /// `pgkeep` configured like the old backup pod: `user` backs up `db` into `backup_dir`; the
    /// admin role of restores is the superuser.
    pub fn pgkeep(&self, user: &str, db: &OsStr, backup_dir: &Path) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .env("DATABASE_SERVICE_NAME", &self.socket_dir)
            .env("PGPORT", self.port.to_string())
            .env("POSTGRESQL_USER", user)
            .env("POSTGRESQL_PASSWORD", PASSWORD)
            .env("POSTGRESQL_DATABASE", db)
            .env("BACKUP_DIR", backup_dir)
            .env("PGKEEP_PG_BINDIR", &self.bindir)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .stdin(Stdio::null());
        cmd
    }
}

/// A psql `-v name=value` argument.
pub fn var(name: &str, value: &OsStr) -> OsString {
    let mut a = OsString::from(format!("{name}="));
    a.push(value);
    a
}

/// Run a command with `input` on its stdin.
pub fn feed(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    let _ = w.join();
    out
}

/// The first error line of a child's stderr (or its last line), lossy, for tables and messages.
pub fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines();
    if lines.any(|l| l.contains("panicked at")) {
        return format!("panic: {}", lines.next().unwrap_or("").trim());
    }
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL"))
        .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("");
    line.trim().to_string()
}

/// Whether `pgkeep <sub> --help` offers `flag` (a flag that later work adds, used when present).
pub fn pgkeep_offers(sub: &str, flag: &str) -> bool {
    static HELP: OnceLock<std::sync::Mutex<Vec<(String, String)>>> = OnceLock::new();
    let m = HELP.get_or_init(Default::default);
    let mut g = m.lock().unwrap();
    if !g.iter().any(|(s, _)| s == sub) {
        let out = Command::new(assert_cmd::cargo::cargo_bin!("pgkeep"))
            .args([sub, "--help"])
            .output()
            .expect("pgkeep --help");
        g.push((
            sub.into(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    g.iter()
        .find(|(s, _)| s == sub)
        .is_some_and(|(_, h)| h.contains(flag))
}

/// Bytes shown in a table cell or message: lossy, control characters escaped.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}
