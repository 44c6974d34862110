//! One streaming compressor per encoding, writing into a buffer that the
//! body takes from after each write, flush and finish.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};

use super::Encoding;

/// Levels that favour speed: the proxy compresses on the fly.
const DEFLATE_LEVEL: u32 = 5;
const BROTLI_QUALITY: u32 = 4;
/// 256 KiB of history for brotli and zstd: as good as their default
/// windows on web-sized bodies, and about 1.1-1.4 MiB of memory per
/// compressed response instead of 2.8 MiB (gzip takes 0.3 MiB).
const WINDOW_LOG: u32 = 18;
const BROTLI_BUFFER: usize = 16 * 1024;
const ZSTD_LEVEL: i32 = 3;

pub enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    /// `deflate` in HTTP is the zlib format (RFC 1950), not raw deflate.
    Deflate(ZlibEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub fn new(enc: Encoding) -> io::Result<Encoder> {
        Ok(match enc {
            Encoding::Gzip => {
                Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::new(DEFLATE_LEVEL)))
            }
            Encoding::Deflate => Encoder::Deflate(ZlibEncoder::new(
                Vec::new(),
                Compression::new(DEFLATE_LEVEL),
            )),
            Encoding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                WINDOW_LOG,
            ))),
            Encoding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
                e.window_log(WINDOW_LOG)?;
                Encoder::Zstd(e)
            }
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Gzip(e) => e,
            Encoder::Deflate(e) => e,
            Encoder::Br(e) => &mut **e,
            Encoder::Zstd(e) => e,
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Deflate(e) => e.get_mut(),
            Encoder::Br(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// Compresses `data`; what comes out may stay buffered until
    /// [`Encoder::flush`].
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer().write_all(data)
    }

    /// Makes everything written so far decodable by the client.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }

    /// The compressed bytes produced so far and not yet taken.
    pub fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.output()))
    }

    /// How many compressed bytes wait to be taken.
    pub fn pending(&mut self) -> usize {
        self.output().len()
    }

    /// Ends the encoded stream: the last bytes.
    pub fn finish(self) -> io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Deflate(e) => e.finish()?,
            Encoder::Br(mut e) => {
                // The brotli writer reports a failed finish only by
                // leaving the stream unterminated; a flush first surfaces
                // an error the compressor is in.
                e.flush()?;
                e.into_inner()
            }
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}
