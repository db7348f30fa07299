//! French-aware folding shared by the index and the query: one function
//! decides what a "word" is, so both sides always agree.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest prefix indexed for a word; longer query words are cut to it.
pub const MAX_PREFIX: usize = 16;

/// Lower-cases, strips accents, expands ligatures and turns every
/// non-alphanumeric character (apostrophes, hyphens, dots) into a space:
/// « L'Église Saint-Œuf » → `l eglise saint oeuf`.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    fold_into(&mut out, text);
    out
}

/// [`fold`], appended to `out` (the import folds every column into one
/// buffer, without a string per column).
pub fn fold_into(out: &mut String, text: &str) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b.to_ascii_lowercase())
            } else {
                ' '
            }
        }));
        return;
    }
    for ch in text.chars() {
        // Most characters of the files are ASCII: no Unicode tables needed.
        if ch.is_ascii() {
            out.push(if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                ' '
            });
            continue;
        }
        // Marks are dropped, so decomposing one character at a time gives
        // the same result as decomposing the whole text.
        for c in std::iter::once(ch).nfd() {
            fold_char(c, out);
        }
    }
}

fn fold_char(c: char, out: &mut String) {
    if is_combining_mark(c) {
        return;
    }
    match c {
        'œ' | 'Œ' => out.push_str("oe"),
        'æ' | 'Æ' => out.push_str("ae"),
        'ß' => out.push_str("ss"),
        c if c.is_alphanumeric() => {
            for l in c.to_lowercase() {
                out.push(l);
            }
        }
        _ => out.push(' '),
    }
}

/// The folded words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    fold(text).split_whitespace().map(str::to_owned).collect()
}

/// Words too common to help (articles, prepositions): dropped from the index
/// and from queries. « place de l'église » searches `place eglise`.
pub fn is_stopword(word: &str) -> bool {
    matches!(
        word,
        "a" | "au"
            | "aux"
            | "d"
            | "de"
            | "des"
            | "du"
            | "en"
            | "et"
            | "l"
            | "la"
            | "le"
            | "les"
            | "sur"
            | "sous"
    )
}

/// Cuts `word` to at most [`MAX_PREFIX`] characters (on a char boundary).
pub fn cap(word: &str) -> &str {
    match word.char_indices().nth(MAX_PREFIX) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

/// FNV-1a: a stable 64-bit hash, the same on every machine and release.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a as a `Hasher`, for the small tables the import consults for
/// every word and tag (SipHash cost more than the lookup).
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Builds [`Fnv`] hashers.
pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// Département of a French postcode: 2 digits, `2A`/`2B` for Corsica,
/// 3 digits overseas (971–989). Empty when the text is not a postcode.
pub fn departement_of_postcode(cp: &str) -> String {
    let b = cp.as_bytes();
    if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
        return String::new();
    }
    if cp.starts_with("20") {
        // Corse-du-Sud: 200xx–201xx; Haute-Corse: 202xx–206xx.
        return if b[2] < b'2' {
            "2A".into()
        } else {
            "2B".into()
        };
    }
    if cp.starts_with("97") || cp.starts_with("98") {
        return cp[..3].to_owned();
    }
    cp[..2].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_french() {
        assert_eq!(fold("L'Église Saint-Œuf"), "l eglise saint oeuf");
        assert_eq!(fold("MONTLUÇON"), "montlucon");
        // The ASCII fast path agrees with the Unicode one.
        assert_eq!(fold("Dr. JEAN-Pierre 12B"), "dr  jean pierre 12b");
        assert_eq!(fold("Dr. JEAN-Pierre 12B é"), "dr  jean pierre 12b e");
        assert_eq!(
            words("Gynéco-Obstétrique  (SM20)"),
            ["gyneco", "obstetrique", "sm20"]
        );
    }

    #[test]
    fn departements() {
        assert_eq!(departement_of_postcode("03100"), "03");
        assert_eq!(departement_of_postcode("20000"), "2A");
        assert_eq!(departement_of_postcode("20200"), "2B");
        assert_eq!(departement_of_postcode("97500"), "975");
        assert_eq!(departement_of_postcode("9750"), "");
    }

    #[test]
    fn cap_keeps_char_boundaries() {
        assert_eq!(cap("éééééééééééééééééééé").chars().count(), MAX_PREFIX);
        assert_eq!(cap("abc"), "abc");
    }
}
