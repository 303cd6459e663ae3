//! Throughput of the psql lexer and of the whole load guard (lexer + sha256 of the stored bytes)
//! on a plain dump, single-threaded, next to a bare newline count and a bare sha256:
//! `cargo run --release --example scan_speed -- FILE.sql`.

use std::time::Instant;

use pgkeep::config::Compression;
use pgkeep::pipeline::guard::{self, GuardOptions};
use pgkeep::pipeline::psql_scan::{ScanOptions, Scanner};

fn main() {
    let path = std::env::args().nth(1).expect("usage: scan_speed FILE.sql");
    let data = std::fs::read(&path).expect("read the dump");
    let mb = data.len() as f64 / 1e6;
    let rounds = 5;
    let best = |f: &mut dyn FnMut()| {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let lines = best(&mut || {
        std::hint::black_box(memchr::memchr_iter(b'\n', &data).count());
    });
    let sha = best(&mut || {
        std::hint::black_box(pgkeep::pipeline::hash_reader(&data[..]).unwrap());
    });
    let scan = best(&mut || {
        let mut s = Scanner::new(ScanOptions::default());
        for c in data.chunks(256 * 1024) {
            s.feed(c);
            std::hint::black_box(s.take_events());
        }
        std::hint::black_box(s.finish());
    });
    let guarded = best(&mut || {
        let feed = guard::feed_psql(
            &data[..],
            Compression::None,
            &mut std::io::sink(),
            GuardOptions::default(),
        );
        assert!(feed.is_ok(), "{:?}", feed.err());
    });
    println!("{:<34} {:>10}", format!("{path} ({mb:.1} MB)"), "MB/s");
    for (what, secs) in [
        ("newline count (memchr)", lines),
        ("sha256", sha),
        ("psql lexer", scan),
        ("guard: lexer + sha256 + copies", guarded),
    ] {
        println!("{what:<34} {:>10.0}", mb / secs);
    }
}
