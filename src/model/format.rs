//! What a backup file is: the dump format and the compression of a plain dump.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Plain,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// gzip 6 is gzip's own default (libdeflate's 6 compresses a little better, at well under
    /// half the CPU). zstd is the fast choice: on a plain dump its level 1 comes within about 1%
    /// of level 3's size (and below `gzip -6`'s) at half the CPU, which keeps a backup close to
    /// what pg_dump alone takes (see bench/backup.sh and the README's Benchmark section).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 1,
            Compression::None => 0,
        }
    }
}
