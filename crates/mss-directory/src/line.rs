//! Reading the extraction files line by line: BOM, per-line fallback to
//! Windows-1252 for stray bytes, `|` separated fields with no quoting,
//! `\n` or `\r\n`, and a bound on line length so a hostile file cannot make
//! memory grow.

use crate::text::fold;
use std::io::{self, BufRead};

/// A line longer than this is skipped and counted as malformed.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads one line into `buf` (without its end-of-line bytes). Returns the
/// number of bytes consumed from the input (0 at end of input) and whether
/// the line was too long (its content is then dropped).
pub fn read_line<R: BufRead + ?Sized>(
    input: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<(usize, bool)> {
    buf.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(take);
        consumed += take;
        if done {
            break;
        }
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok((consumed, too_long))
}

/// Decodes one line: UTF-8 (a leading BOM removed), or Windows-1252 when the
/// line is not valid UTF-8. Returns whether the fallback was used.
pub fn decode(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, bool) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.into(), false),
        Err(_) => (
            bytes.iter().map(|&b| cp1252(b)).collect::<String>().into(),
            true,
        ),
    }
}

/// One Windows-1252 byte as a char (the five undefined bytes become U+FFFD).
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{FFFD}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{FFFD}', 'Ž',
        '\u{FFFD}', '\u{FFFD}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ',
        '\u{FFFD}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// Splits a decoded line on `|`. Quotes are ordinary characters.
pub fn fields(line: &str) -> Vec<&str> {
    // The files have 31 to 56 columns: one allocation, not one per doubling.
    let mut row = Vec::with_capacity(64);
    // `|` is ASCII, so every cut is on a char boundary; memchr finds it
    // faster than `str::split`, which was 5 % of the import's main thread.
    let mut start = 0;
    for i in memchr::memchr_iter(b'|', line.as_bytes()) {
        row.push(&line[start..i]);
        start = i + 1;
    }
    row.push(&line[start..]);
    row
}

/// A header name reduced so that spelling variants meet: lower case, no
/// accents, apostrophes and punctuation as single spaces
/// (« Libellé civilité d'exercice » → `libelle civilite d exercice`).
pub fn normalize_header(name: &str) -> String {
    fold(name).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which extraction a header line belongs to, told by its columns rather
/// than by the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// `PS_LibreAcces_Personne_activite`
    Activity,
    /// `Extraction_Correspondance_MSSante`
    Mailbox,
    /// `PS_LibreAcces_SavoirFaire`
    Skill,
    /// `PS_LibreAcces_Dipl_AutExerc`
    Diploma,
}

impl FileKind {
    /// Recognises a header line from its normalised column names.
    pub fn detect(header: &Header) -> Option<Self> {
        if header.find(&["adresse bal"]).is_some() {
            Some(Self::Mailbox)
        } else if header.find(&["identification nationale pp"]).is_none() {
            None
        } else if header
            .find(&["raison sociale site", "code postal coord structure"])
            .is_some()
        {
            Some(Self::Activity)
        } else if header
            .find(&["code diplome obtenu", "code type autorisation"])
            .is_some()
        {
            Some(Self::Diploma)
        } else if header.find(&["code savoir faire"]).is_some() {
            Some(Self::Skill)
        } else {
            None
        }
    }
}

/// The column names of one file, as published and normalised.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Names as written in the file (trailing empty column removed).
    pub names: Vec<String>,
    #[serde(skip)]
    normalized: Vec<String>,
}

impl Header {
    /// Parses the first line of a file.
    pub fn parse(line: &str) -> Self {
        let mut names: Vec<String> = fields(line).iter().map(|s| s.trim().to_owned()).collect();
        while names.last().is_some_and(String::is_empty) {
            names.pop();
        }
        Self::from_names(names)
    }

    /// Rebuilds the normalised names (after deserialising).
    pub fn from_names(names: Vec<String>) -> Self {
        let normalized = names.iter().map(|n| normalize_header(n)).collect();
        Self { names, normalized }
    }

    /// Index of the first column whose normalised name is one of
    /// `candidates`, or starts with one followed by a space (the MSSanté
    /// address columns exist with and without their ` structure BAL` suffix).
    pub fn find(&self, candidates: &[&str]) -> Option<usize> {
        for c in candidates {
            if let Some(i) = self.normalized.iter().position(|n| n == c) {
                return Some(i);
            }
        }
        for c in candidates {
            if let Some(i) = self.normalized.iter().position(|n| {
                n.len() > c.len() && n.starts_with(c) && n.as_bytes()[c.len()] == b' '
            }) {
                return Some(i);
            }
        }
        None
    }
}

/// Value of column `idx` in `row`, trimmed; empty when absent.
pub fn get<'a>(row: &[&'a str], idx: Option<usize>) -> &'a str {
    idx.and_then(|i| row.get(i)).map_or("", |s| s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_lines_with_crlf_and_bounds_length() {
        let long = "x".repeat(MAX_LINE + 10);
        let data = format!("a|b|\r\n{long}\nlast");
        let mut r = Cursor::new(data.into_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), (6, false));
        assert_eq!(buf, b"a|b|");
        let (n, too_long) = read_line(&mut r, &mut buf).unwrap();
        assert_eq!((n, too_long), (MAX_LINE + 11, true));
        assert!(buf.is_empty());
        read_line(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf).unwrap().0, 0);
    }

    #[test]
    fn decodes_bom_and_stray_bytes() {
        assert_eq!(decode(b"\xEF\xBB\xBFType|").0, "Type|");
        let (s, fallback) = decode(b"MONTLU\xC7ON \x80");
        assert!(fallback);
        assert_eq!(s, "MONTLUÇON €");
    }

    #[test]
    fn header_matching_tolerates_variants() {
        let h = Header::parse("Type de BAL|Adresse BAL|L4LIBELLEVOIE|Libellé civilité exercice|");
        assert_eq!(h.names.len(), 4);
        assert_eq!(
            h.find(&["l4libellevoie structure bal", "l4libellevoie"]),
            Some(2)
        );
        assert_eq!(
            h.find(&["libelle civilite d exercice", "libelle civilite exercice"]),
            Some(3)
        );
        let h2 = Header::parse("Adresse BAL|L4LIBELLEVOIE structure BAL");
        assert_eq!(h2.find(&["l4libellevoie"]), Some(1));
        assert_eq!(FileKind::detect(&h), Some(FileKind::Mailbox));
    }
}
