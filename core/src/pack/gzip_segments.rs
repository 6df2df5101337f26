//! One gzip stream whose compression level changes between the entries of a tar stream.
//!
//! A pack is mostly chart archives (`.tgz`) and images, which are compressed already:
//! deflating them again costs most of an archive's time (0.6 to 1.2 s for 50 MB here, any
//! level from 1) and saves nothing (level 1 even grows them by 5 %). Their entries are
//! therefore stored (level 0, a copy and a CRC), and everything else is deflated at the
//! archive's level ([`super::archive::PACK_COMPRESSION`]).
//!
//! zlib cannot switch between stored and deflated mid-stream once it has started
//! (`deflateParams` needs an output buffer that zlib-rs' safe API does not hand it), so
//! each run of entries at one level is deflated by a compressor of its own and ended with a
//! sync flush (an empty stored block: byte-aligned, not final), as pigz joins its pieces.
//! Only the last piece is finished. The pieces form one valid deflate stream inside one
//! gzip member, which every gzip reader (tar, oras, Python) reads as usual. The last 32 KiB
//! before a switch are not used as a dictionary by the next piece: switches are few (at a
//! compressed file), so this costs a few bytes.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 255 ("unknown"):
/// nothing that depends on the machine or the time.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Whether `head` (a file's first bytes) starts like a compressed format: gzip (charts'
/// `.tgz`), zip (and jar), zstd, xz, bzip2, 7z, PNG, JPEG, GIF, WebP.
pub fn looks_compressed(head: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        &[0x1f, 0x8b],
        b"PK\x03\x04",
        &[0x28, 0xb5, 0x2f, 0xfd],
        &[0xfd, b'7', b'z', b'X', b'Z', 0],
        b"BZh",
        &[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c],
        &[0x89, b'P', b'N', b'G'],
        &[0xff, 0xd8, 0xff],
        b"GIF8",
    ];
    MAGICS.iter().any(|magic| head.starts_with(magic))
        || (head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP")
}

/// A gzip writer whose level can change between writes ([`GzipSegments::set_level`]).
pub struct GzipSegments<W: Write> {
    out: W,
    deflate: Compress,
    level: Compression,
    crc: Crc,
    buffer: Vec<u8>,
}

impl<W: Write> GzipSegments<W> {
    pub fn new(mut out: W, level: Compression) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(Self {
            out,
            deflate: Compress::new(level, false),
            level,
            crc: Crc::new(),
            buffer: vec![0; 256 * 1024],
        })
    }

    /// Deflates what follows at `level`; what came before is flushed at its own level.
    pub fn set_level(&mut self, level: Compression) -> io::Result<()> {
        if level == self.level {
            return Ok(());
        }
        if self.deflate.total_in() > 0 {
            self.drive(&[], FlushCompress::Sync)?;
        }
        self.deflate = Compress::new(level, false);
        self.level = level;
        Ok(())
    }

    /// Ends the deflate stream, writes gzip's trailer (CRC-32 and length), returns `out`.
    pub fn finish(mut self) -> io::Result<W> {
        self.drive(&[], FlushCompress::Finish)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }

    /// Feeds all of `input` to the compressor with `flush`, writing what it produces, until
    /// the input is consumed and (for a flush) the compressor has nothing left to give.
    fn drive(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            let (before_in, before_out) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress(input, &mut self.buffer, flush)
                .map_err(io::Error::other)?;
            let consumed = counted(self.deflate.total_in() - before_in)?;
            let produced = counted(self.deflate.total_out() - before_out)?;
            input = &input[consumed..];
            self.out.write_all(&self.buffer[..produced])?;
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                // The output buffer not filled: the compressor had nothing more to give.
                _ => input.is_empty() && produced < self.buffer.len(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

fn counted(bytes: u64) -> io::Result<usize> {
    usize::try_from(bytes).map_err(io::Error::other)
}

impl<W: Write> Write for GzipSegments<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        self.drive(buf, FlushCompress::None)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
