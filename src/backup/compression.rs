//! The compression of a backup: what pgkeep applies itself (plain dumps), what pg_dump applies
//! inside a custom archive, what the manifest records, and whether the chosen pg_dump can write
//! a zstd archive at all (asked before anything is written).

use crate::config::Settings;
use crate::model::{Compression, Format};
use crate::pg::passfile;
use crate::pg::tools::Tool;
use crate::process::Spec;

/// The compression pgkeep applies: the configured one for plain dumps; none for custom
/// archives, which pg_dump compresses itself.
/// Why a backup cannot have the compression asked for.
pub(super) enum Refused {
    /// The chosen pg_dump cannot write it (exit 2, before anything is written).
    Unsupported(String),
    /// pg_dump could not be started to ask it.
    Io(std::io::Error),
}

pub(super) fn stored_compression(s: &Settings) -> Compression {
    match s.format {
        Format::Plain => s.compression,
        Format::Custom => Compression::None,
    }
}

/// The compression the manifest records: pgkeep's own for plain dumps, the one pg_dump applies
/// inside a custom archive (gzip level 0 is none).
pub(super) fn recorded_compression(s: &Settings) -> Compression {
    match (s.format, s.compression) {
        (Format::Custom, Compression::Gzip) if s.level == 0 => Compression::None,
        _ => s.compression,
    }
}

/// pg_dump's `--compress` value for a custom archive.
pub(super) fn custom_compress_arg(s: &Settings) -> String {
    match recorded_compression(s) {
        Compression::Gzip => format!("--compress={}", s.level),
        Compression::Zstd => format!("--compress=zstd:{}", s.level),
        Compression::None => "--compress=0".into(),
    }
}

/// First pg_dump major that compresses custom archives with zstd (`--compress=zstd:N`).
pub const ZSTD_PG_DUMP_MAJOR: u32 = 16;

/// A custom archive compressed with zstd needs a pg_dump 16 or newer built with zstd. The pg_dump
/// is the one chosen for the server: an older one is refused, never replaced by a newer one.
/// Whether the build has zstd is asked of pg_dump itself: it checks the compression before it
/// connects, so it runs against a socket directory that cannot exist and writes nothing.
pub(super) fn check_compression(
    pg_dump: &Tool,
    server_version: &str,
    s: &Settings,
    base_env: &[(String, String)],
) -> Result<(), Refused> {
    if s.format != Format::Custom || s.compression != Compression::Zstd {
        return Ok(());
    }
    if pg_dump.major < ZSTD_PG_DUMP_MAJOR {
        return Err(Refused::Unsupported(format!(
            "--format custom --compression zstd needs pg_dump {ZSTD_PG_DUMP_MAJOR} or newer; the \
             server is PostgreSQL {} and its pg_dump is {} ({}): use --compression gzip, or \
             --format plain --compression zstd",
            server_version,
            pg_dump.version,
            pg_dump.path.display()
        )));
    }
    let mut env: Vec<(String, String)> = base_env.to_vec();
    env.push(("PGPASSFILE".into(), passfile::NONE.into()));
    let spec = Spec::new(&pg_dump.path)
        .envs(env)
        .arg("--no-password")
        .arg("--format=custom")
        .arg(custom_compress_arg(s))
        .arg("--file=/dev/null")
        .arg("--dbname=host=/nonexistent/pgkeep-probe port=1");
    let (outcome, _) = crate::process::output(&spec, None).map_err(Refused::Io)?;
    let said = outcome.stderr_tail.to_lowercase();
    if said.contains("compress") {
        return Err(Refused::Unsupported(format!(
            "pg_dump {} ({}) cannot write zstd archives: {}",
            pg_dump.version,
            pg_dump.path.display(),
            outcome.stderr_tail
        )));
    }
    Ok(())
}
