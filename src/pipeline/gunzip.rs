//! Decompressing gzip files fast: pgkeep writes its `.sql.gz` as gzip members of at most one
//! MiB of text each (`pargz`), and each such member is decompressed whole by libdeflate (about
//! twice as fast as a streaming inflate, its CRC included), which also says where the member
//! ends. Anything else (a member too big for the window, header flags, damage, trailing bytes,
//! an empty file) goes, from the start of that member on, to the streaming decoder the restore
//! always used (`flate2::read::MultiGzDecoder`), so such files read and fail exactly as before.

use std::io::{self, Read};
use std::ptr::NonNull;

/// Compressed bytes held to decompress one member: a pgkeep member (at most [`OUT`] bytes of
/// text) compresses into less than this.
const WINDOW: usize = 2 << 20;
/// Decompressed bytes of one member, at most (pgkeep's members hold `pargz::CHUNK`).
const OUT: usize = super::pargz::CHUNK + (64 << 10);

/// A libdeflate decompressor.
struct Inflater(NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: allocation has no precondition; a null result is handled.
        NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() }).map(Inflater)
    }

    /// Decompress the gzip member at the start of `input` into `out`: the compressed bytes it
    /// took and the bytes it wrote, or `None` when it is not a whole sound member that fits.
    fn member(&mut self, input: &[u8], out: &mut [u8]) -> Option<(usize, usize)> {
        let (mut used, mut wrote) = (0usize, 0usize);
        // SAFETY: the pointers and lengths are those of live slices; libdeflate reads at most
        // `input.len()` bytes, writes at most `out.len()` bytes and sets the two counts.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut wrote,
            )
        };
        (r == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS
            && used <= input.len()
            && wrote <= out.len())
        .then_some((used, wrote))
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

type Streaming<R> = flate2::read::MultiGzDecoder<io::BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>>;

/// A reader of the decompressed bytes of a (multi-member) gzip stream.
pub struct Gunzip<R: Read> {
    src: Option<R>,
    /// Compressed bytes read and not yet used: `held[start..]`.
    held: Vec<u8>,
    start: usize,
    eof: bool,
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    inflater: Option<Inflater>,
    streaming: Option<Streaming<R>>,
    /// Members decompressed whole.
    members: u64,
}

impl<R: Read> Gunzip<R> {
    pub fn new(src: R) -> Gunzip<R> {
        Gunzip {
            src: Some(src),
            held: Vec::new(),
            start: 0,
            eof: false,
            out: Vec::new(),
            out_pos: 0,
            out_len: 0,
            inflater: Inflater::new(),
            streaming: None,
            members: 0,
        }
    }

    /// Hold at least [`WINDOW`] compressed bytes, or all that is left.
    fn fill(&mut self) -> io::Result<()> {
        let Some(src) = self.src.as_mut() else {
            return Ok(());
        };
        if self.start > 0 {
            self.held.drain(..self.start);
            self.start = 0;
        }
        while !self.eof && self.held.len() < WINDOW {
            let len = self.held.len();
            self.held.resize(WINDOW.max(len + (256 << 10)), 0);
            match src.read(&mut self.held[len..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.held.truncate(len + n),
                Err(e) => {
                    self.held.truncate(len);
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
            if self.eof {
                self.held.truncate(len);
            }
        }
        Ok(())
    }

    /// From the start of the held bytes on, the streaming decoder decides.
    fn stream(&mut self) -> io::Result<&mut Streaming<R>> {
        if self.streaming.is_none() {
            let src = self
                .src
                .take()
                .expect("the source is there until streaming");
            let rest = self.held.split_off(self.start);
            self.held = Vec::new();
            self.out = Vec::new();
            self.streaming = Some(flate2::read::MultiGzDecoder::new(io::BufReader::new(
                io::Cursor::new(rest).chain(src),
            )));
        }
        Ok(self.streaming.as_mut().expect("just set"))
    }

    /// Decompress the next member whole; `false` when the streaming decoder must take over.
    fn next_member(&mut self) -> io::Result<Option<bool>> {
        self.fill()?;
        let avail = &self.held[self.start..];
        if avail.is_empty() && self.eof && self.members > 0 {
            return Ok(None);
        }
        // pgkeep's members: deflate, no header flags (no name, comment, extra field or CRC).
        if avail.len() < 18 || avail[..4] != [0x1f, 0x8b, 8, 0] {
            return Ok(Some(false));
        }
        let Some(inflater) = self.inflater.as_mut() else {
            return Ok(Some(false));
        };
        if self.out.len() < OUT {
            self.out.resize(OUT, 0);
        }
        match inflater.member(avail, &mut self.out) {
            Some((used, wrote)) => {
                self.start += used;
                self.out_pos = 0;
                self.out_len = wrote;
                self.members += 1;
                Ok(Some(true))
            }
            None => Ok(Some(false)),
        }
    }
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(s) = self.streaming.as_mut() {
                return s.read(buf);
            }
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            match self.next_member()? {
                None => return Ok(0),
                Some(true) => {}
                Some(false) => return self.stream()?.read(buf),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Text as a dump holds it, `n` bytes of it.
    fn text(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 64);
        let mut i = 0u64;
        while out.len() < n {
            out.extend_from_slice(
                format!("{i}\t{}\tnote {}\n", i * 7919 % 10007, i % 13).as_bytes(),
            );
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn pgkeep_gzip(data: &[u8]) -> Vec<u8> {
        let mut w = super::super::pargz::ParGzWriter::new(Vec::new(), 6, 2).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn streaming(gz: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Read all of `gz` through [`Gunzip`], `step` bytes at a time; how many members it took
    /// whole.
    fn fast(gz: &[u8], step: usize) -> (io::Result<Vec<u8>>, u64) {
        let mut g = Gunzip::new(gz);
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        let res = loop {
            match g.read(&mut buf) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        (res, g.members)
    }

    #[test]
    fn pgkeep_members_are_taken_whole_and_read_as_streamed() {
        // Several full members, and a last short one.
        let data = text(5 * super::super::pargz::CHUNK + 12345);
        let gz = pgkeep_gzip(&data);
        for step in [7, 4096, 1 << 20, 3 << 20] {
            let (out, members) = fast(&gz, step);
            assert_eq!(out.unwrap(), data, "step {step}");
            assert_eq!(members, 6, "step {step}");
        }
    }

    #[test]
    fn other_gzip_files_read_as_streamed() {
        let data = text(3 * super::super::pargz::CHUNK);
        // One member bigger than the window (`pg_dump | gzip`).
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap();
        // A member with a file name in its header, after a pgkeep one.
        let mut named = pgkeep_gzip(&data[..1000]);
        let mut b = flate2::GzBuilder::new()
            .filename("dump.sql")
            .write(Vec::new(), flate2::Compression::default());
        b.write_all(&data[1000..]).unwrap();
        named.extend_from_slice(&b.finish().unwrap());
        for (gz, whole) in [(one, 0), (named, 1)] {
            let (out, members) = fast(&gz, 64 << 10);
            assert_eq!(out.unwrap(), streaming(&gz).unwrap());
            assert_eq!(members, whole);
        }
        // Nothing at all reads as the streaming decoder reads it.
        let (out, _) = fast(&[], 100);
        assert_eq!(out.ok(), streaming(&[]).ok());
    }

    #[test]
    fn damage_anywhere_fails_as_streamed() {
        let data = text(3 * super::super::pargz::CHUNK + 999);
        let gz = pgkeep_gzip(&data);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Cut: in the first member, at a member's end, in the last member, in the trailer.
        for cut in [30, gz.len() / 3, gz.len() / 2, gz.len() - 20, gz.len() - 3] {
            cases.push(gz[..cut].to_vec());
        }
        // A flipped byte in the middle member, and one in the last member's CRC.
        for at in [gz.len() / 2, gz.len() - 6] {
            let mut bad = gz.clone();
            bad[at] ^= 0x55;
            cases.push(bad);
        }
        // Bytes after the last member.
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"not gzip at all, but long enough to look at");
        cases.push(trailing);
        for (i, bad) in cases.iter().enumerate() {
            let (out, _) = fast(bad, 1 << 16);
            let streamed = streaming(bad);
            assert!(
                streamed.is_err(),
                "case {i}: the streaming decoder accepts it"
            );
            assert!(out.is_err(), "case {i}: read without an error");
        }
        // A file whose members were all good ends where they end.
        let (out, _) = fast(&gz, 1 << 16);
        assert_eq!(out.unwrap(), data);
    }
}
