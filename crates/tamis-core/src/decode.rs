//! Byte-level decoding: decompression (by extension or magic bytes) and text
//! encoding detection (UTF-8, UTF-8 BOM, UTF-16 BOM, Windows-1252 fallback).
//!
//! Compressed input is recognised by its magic bytes first and its extension
//! second, so a mislabelled file still reads. The text encoding is decided
//! from a BOM if there is one, otherwise from whether the first block of the
//! decompressed bytes is valid UTF-8: if not, the file is read as
//! Windows-1252 (a superset of Latin-1 for printable text). A UTF-8 file with
//! a few undecodable bytes later on is still read as UTF-8 and the rows that
//! hold those bytes are quarantined by the reader.

use std::io::{self, BufRead, BufReader, Read};

/// Compression of an input stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard.
    Zstd,
    /// bzip2.
    Bzip2,
}

/// Text encoding of a (decompressed) input stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8 without BOM.
    Utf8,
    /// UTF-8 with a byte-order mark (stripped).
    Utf8Bom,
    /// UTF-16 little endian with BOM.
    Utf16Le,
    /// UTF-16 big endian with BOM.
    Utf16Be,
    /// Windows-1252 (Latin-1 superset), chosen when the start is not valid UTF-8.
    Windows1252,
}

/// Detects compression from the first bytes, falling back on the file name.
pub fn detect_compression(head: &[u8], name: &str) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Compression::Gzip;
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Compression::Zstd;
    }
    if head.starts_with(b"BZh") && head.len() > 3 && head[3].is_ascii_digit() {
        return Compression::Bzip2;
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".gzip") {
        Compression::Gzip
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        Compression::Zstd
    } else if lower.ends_with(".bz2") {
        Compression::Bzip2
    } else {
        Compression::None
    }
}

/// The file name without a compression extension (`a.csv.gz` -> `a.csv`).
pub fn strip_compression_ext(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    for ext in [".gz", ".gzip", ".zst", ".zstd", ".bz2"] {
        if lower.ends_with(ext) {
            return &name[..name.len() - ext.len()];
        }
    }
    name
}

/// Wraps `input` in the decompressor for `compression`.
pub fn decompress(
    input: Box<dyn Read + Send>,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::None => input,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(input))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
    })
}

/// How many decompressed bytes are looked at to decide the encoding.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// Detects the text encoding from the head of the decompressed stream.
pub fn detect_encoding(head: &[u8]) -> TextEncoding {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8Bom;
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return TextEncoding::Utf16Le;
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return TextEncoding::Utf16Be;
    }
    match std::str::from_utf8(head) {
        Ok(_) => TextEncoding::Utf8,
        // A multi-byte character cut at the end of the sniffed block is fine.
        Err(e) if e.error_len().is_none() => TextEncoding::Utf8,
        Err(_) => TextEncoding::Windows1252,
    }
}

/// Returns a reader of UTF-8 bytes (BOM stripped) for a decompressed stream,
/// with the encoding that was detected. UTF-8 input is passed through
/// untouched (invalid sequences later in the file reach the CSV reader, which
/// quarantines their rows); other encodings are transcoded.
pub fn to_utf8(
    mut input: Box<dyn Read + Send>,
) -> io::Result<(Box<dyn BufRead + Send>, TextEncoding)> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut input)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    let enc = detect_encoding(&head);
    let skip = if enc == TextEncoding::Utf8Bom { 3 } else { 0 };
    let mut cursor = io::Cursor::new(head);
    cursor.set_position(skip);
    let joined = cursor.chain(input);
    let out: Box<dyn BufRead + Send> = match enc {
        TextEncoding::Utf8 | TextEncoding::Utf8Bom => {
            Box::new(BufReader::with_capacity(256 * 1024, joined))
        }
        TextEncoding::Utf16Le | TextEncoding::Utf16Be | TextEncoding::Windows1252 => {
            let label = match enc {
                TextEncoding::Utf16Le => encoding_rs::UTF_16LE,
                TextEncoding::Utf16Be => encoding_rs::UTF_16BE,
                _ => encoding_rs::WINDOWS_1252,
            };
            let dec = encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(label))
                .bom_override(true)
                .build(joined);
            Box::new(BufReader::with_capacity(256 * 1024, dec))
        }
    };
    Ok((out, enc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> (String, TextEncoding) {
        let (mut r, enc) = to_utf8(Box::new(io::Cursor::new(bytes.to_vec()))).expect("decode");
        let mut s = String::new();
        r.read_to_string(&mut s).expect("utf8");
        (s, enc)
    }

    #[test]
    fn bom_and_latin1_are_detected() {
        assert_eq!(
            read_all(b"\xEF\xBB\xBFa,b\n"),
            ("a,b\n".into(), TextEncoding::Utf8Bom)
        );
        assert_eq!(
            read_all(b"caf\xE9\n"),
            ("caf\u{e9}\n".into(), TextEncoding::Windows1252)
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("x,y\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(read_all(&utf16), ("x,y\n".into(), TextEncoding::Utf16Le));
        assert_eq!(read_all("é".as_bytes()).1, TextEncoding::Utf8);
    }

    #[test]
    fn compression_by_magic_beats_extension() {
        assert_eq!(
            detect_compression(&[0x1f, 0x8b, 8], "x.csv"),
            Compression::Gzip
        );
        assert_eq!(detect_compression(b"a,b", "x.csv.zst"), Compression::Zstd);
        assert_eq!(detect_compression(b"BZh9", "x"), Compression::Bzip2);
        assert_eq!(strip_compression_ext("a.csv.gz"), "a.csv");
    }
}
