//! Measures the backup pipeline alone (inspector, compressor, sha256; no pg_dump, no server) on
//! a plain dump read from stdin, to tune compression settings without a database:
//! `pg_dump DB > dump.sql; cargo run --release --example pipeline -- gzip 6 2 < dump.sql`.

use std::io::{self, Write};
use std::time::Instant;

use pgkeep::config::Compression;
use pgkeep::pipeline::{self, Options};

/// A sink that only counts (the sha256 stage still sees every byte).
struct Null;
impl Write for Null {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let compression = match args.first().map(String::as_str).unwrap_or("gzip") {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        "none" => Compression::None,
        other => anyhow::bail!("unknown compression {other}: gzip, zstd or none"),
    };
    let level: i32 = args
        .get(1)
        .map_or(Ok(compression.default_level()), |s| s.parse())?;
    let threads: usize = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let opts = Options {
        compression,
        level,
        threads,
        inspect: true,
        // PGKEEP_AGE_RECIPIENTS=age1... measures the stream with age encryption.
        encrypt: match std::env::var("PGKEEP_AGE_RECIPIENTS") {
            Ok(keys) => {
                pgkeep::model::age::AgeRecipients::parse(&keys).map_err(anyhow::Error::msg)?
            }
            Err(_) => None,
        },
    };
    let t0 = Instant::now();
    let out = pipeline::run(io::stdin().lock(), Null, &opts, &mut |_| {})?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{compression:?} level {level} threads {threads}: {} -> {} bytes ({:.3}), {secs:.2} s, {:.0} MB/s",
        out.raw_bytes,
        out.stored_bytes,
        out.stored_bytes as f64 / out.raw_bytes as f64,
        out.raw_bytes as f64 / secs / 1e6
    );
    Ok(())
}
