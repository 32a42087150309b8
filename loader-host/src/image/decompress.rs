//! Bounded decompression of kernel payloads: gzip (RFC 1952, via `flate2`)
//! and zstd (RFC 8878, via the pure-Rust `ruzstd`). Output is capped so a
//! hostile or corrupt file cannot exhaust memory.

use std::fmt;
use std::io::Read;

use super::{Host, ImageError, KernelFormat, KernelImage};
use crate::input::Blob;

/// Largest decompressed kernel we accept. arm64 `image_size` (text + bss)
/// of distribution kernels is ~40-80 MiB; 512 MiB leaves a wide margin.
pub const MAX_DECOMPRESSED: u64 = 512 << 20;

/// RFC 1952 §2.3.1: ID1 = 0x1f, ID2 = 0x8b.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// RFC 8878 §3.1.1: frame magic 0xFD2FB528, little-endian.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A compression format a kernel payload may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// gzip, one member (RFC 1952): Image.gz, and EFI zboot's `gzip`.
    Gzip,
    /// zstd, one frame (RFC 8878): EFI zboot's `zstd22` (or `zstd`).
    Zstd,
}

impl Codec {
    /// The name in messages: `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// Why a compressed payload was refused. `what` names the input
/// ("Image.gz", "EFI zboot payload").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// The stream is corrupt or truncated.
    Corrupt {
        /// The stream's codec.
        codec: Codec,
        /// The input.
        what: String,
        /// The decoder's error.
        why: String,
    },
    /// The output would exceed `limit` bytes.
    TooLarge {
        /// The stream's codec.
        codec: Codec,
        /// The input.
        what: String,
        /// The cap in bytes ([`MAX_DECOMPRESSED`] when loading).
        limit: u64,
    },
    /// Non-zero bytes follow the compressed stream (a truncated-then-
    /// appended or concatenated file: not what the kernel build writes).
    Trailing {
        /// The stream's codec.
        codec: Codec,
        /// The input.
        what: String,
        /// Bytes after the end of the stream.
        bytes: usize,
    },
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { codec, what, why } => {
                write!(f, "{what}: {} stream does not decompress: {why}", codec.name())
            }
            Self::TooLarge { codec, what, limit } => write!(
                f,
                "{what}: {} stream decompresses to more than {} MiB (the loader's cap on a kernel image)",
                codec.name(),
                limit >> 20
            ),
            Self::Trailing { codec, what, bytes } => write!(
                f,
                "{what}: {bytes} bytes of data follow the end of the {} stream (the file is not one compressed kernel)",
                codec.name()
            ),
        }
    }
}

impl std::error::Error for DecompressError {}

/// Decompress `input` (one gzip member or one zstd frame) into at most
/// `limit` bytes. `what` names the input in errors ("Image.gz", ...).
/// Anything but zero padding after the stream is refused.
pub fn decompress(codec: Codec, input: &[u8], limit: u64, what: &str) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |why: String| DecompressError::Corrupt { codec, what: what.to_string(), why };
    let (out, rest) = match codec {
        Codec::Gzip => {
            let mut dec = flate2::bufread::GzDecoder::new(input);
            let out = read_capped(&mut dec, limit);
            (out, dec.into_inner())
        }
        Codec::Zstd => {
            // The kernel's zstd22 (scripts/Makefile.lib: `zstd -22 --ultra`)
            // uses a 128 MiB window, ruzstd's default maximum.
            let mut dec = ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| corrupt(e.to_string()))?;
            let out = read_capped(&mut dec, limit);
            (out, dec.into_inner())
        }
    };
    let out = match out {
        Ok(Some(v)) => v,
        Ok(None) => return Err(DecompressError::TooLarge { codec, what: what.to_string(), limit }),
        Err(e) => return Err(corrupt(e.to_string())),
    };
    // Zero padding (a file rounded up to a block) is harmless; other bytes
    // mean the file is not what it claims.
    if rest.iter().any(|&b| b != 0) {
        return Err(DecompressError::Trailing { codec, what: what.to_string(), bytes: rest.len() });
    }
    Ok(out)
}

/// Read everything, or None if there is more than `limit` bytes.
fn read_capped(r: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

/// The format: a gzip'd arm64 or riscv64 Image (booting.rst §3: "The
/// AArch64 kernel does not currently provide a decompressor and therefore
/// requires decompression (gzip etc.) to be performed by the boot loader";
/// riscv's `Image.gz` target is the same: arch/riscv/boot/Makefile).
pub struct ImageGz;

impl KernelFormat for ImageGz {
    fn names(&self) -> &'static [&'static str] {
        // "zImage": kexec-tools 2.0.25's arm64 name for a gzip'd Image.
        &["Image.gz", "image-gz", "vmlinuz", "zImage"]
    }
    fn describe(&self) -> &'static str {
        "gzip'd Image (1f 8b at 0)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        file.starts_with(&GZIP_MAGIC)
    }
    fn machine_hint(&self, _head: &[u8]) -> Option<u16> {
        // Only decompression tells what the payload is.
        None
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        let image = decompress(Codec::Gzip, &file, MAX_DECOMPRESSED, "Image.gz").map_err(ImageError::Decompress)?;
        super::raw_image(Blob::new(image), "Image.gz", host)
            .map_err(|e| ImageError::Payload { format: "Image.gz", inner: Box::new(e) })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(decompress(Codec::Gzip, &gzip(&data), MAX_DECOMPRESSED, "t").unwrap(), data);
        assert_eq!(decompress(Codec::Zstd, &zstd(&data), MAX_DECOMPRESSED, "t").unwrap(), data);
        assert_eq!(gzip(&data)[..2], GZIP_MAGIC);
        assert_eq!(zstd(&data)[..4], ZSTD_MAGIC);
    }

    #[test]
    fn cap_is_enforced_exactly() {
        let data = vec![0u8; 4096];
        assert!(decompress(Codec::Gzip, &gzip(&data), 4096, "t").is_ok());
        let err = decompress(Codec::Gzip, &gzip(&data), 4095, "Image.gz").unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }));
        let err = decompress(Codec::Zstd, &zstd(&data), 1 << 10, "zboot").unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn corrupt_streams_are_reported() {
        let mut gz = gzip(&[7u8; 1000]);
        let n = gz.len();
        gz.truncate(n - 12);
        let err = decompress(Codec::Gzip, &gz, MAX_DECOMPRESSED, "Image.gz").unwrap_err();
        assert!(err.to_string().starts_with("Image.gz: gzip stream does not decompress"), "{err}");
        let err = decompress(Codec::Zstd, b"\x28\xb5\x2f\xfdjunk", MAX_DECOMPRESSED, "zboot").unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { codec: Codec::Zstd, .. }), "{err}");
    }

    #[test]
    fn trailing_data_is_refused_zero_padding_is_not() {
        let mut gz = gzip(&[7u8; 1000]);
        gz.extend_from_slice(&[0; 512]);
        assert_eq!(decompress(Codec::Gzip, &gz, MAX_DECOMPRESSED, "t").unwrap(), vec![7u8; 1000]);
        gz.extend_from_slice(b"garbage");
        let err = decompress(Codec::Gzip, &gz, MAX_DECOMPRESSED, "Image.gz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Image.gz: 519 bytes of data follow the end of the gzip stream (the file is not one compressed kernel)"
        );
        let mut zs = zstd(&[1u8; 300]);
        zs.extend_from_slice(b"x");
        assert!(matches!(decompress(Codec::Zstd, &zs, MAX_DECOMPRESSED, "z"), Err(DecompressError::Trailing { .. })));
    }
}
