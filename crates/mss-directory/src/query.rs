//! The free-text query language: each word is classified (postcode,
//! département, identifier, MSSanté address, profession or specialty,
//! street abbreviation, plain word) and turned into alternatives that the
//! index can match. Pure: no index needed, fuzzed.

use crate::record::expansions;
use crate::synonyms;
use crate::text::{MAX_PREFIX, cap, fold, is_stopword};
use serde::Serialize;

/// Longest query accepted, in bytes; the rest is ignored.
pub const MAX_QUERY: usize = 512;
/// At most this many words are used.
pub const MAX_WORDS: usize = 12;

/// One way a word can match a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum Alt {
    /// A folded word of the document starts with this.
    Prefix(String),
    /// A folded word of the document is exactly this.
    Exact(String),
    /// An exact tag (`cp:03100`, `code:sm04`, `bal:…`).
    Tag(String),
}

/// What a word was understood as (shown to the user, in French).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CodePostal,
    Departement,
    Rpps,
    Identifiant,
    AdresseMssante,
    DomaineMssante,
    Specialite,
    Profession,
    Voie,
    Mot,
    Filtre,
}

/// One word of the query and how it may match.
#[derive(Debug, Clone, Serialize)]
pub struct Word {
    pub text: String,
    pub role: Role,
    /// A document must match one alternative of every required word.
    pub required: bool,
    pub alts: Vec<Alt>,
    /// Matches that only add to the score (a whole word beats a prefix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bonus: Vec<Alt>,
    /// What the synonym table read (« cardiologie »), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
}

/// A parsed query.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Query {
    pub words: Vec<Word>,
}

/// Explicit filters for programs (each is one more required word).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub postcode: Option<String>,
    pub departement: Option<String>,
    /// TRE_G15 profession code (`10`, `60`…).
    pub profession: Option<String>,
    /// Savoir-faire code (`SM04`…).
    pub specialty: Option<String>,
    /// `PER` or `ORG`.
    pub mailbox_type: Option<String>,
    pub city: Option<String>,
}

const CIVILITIES: &[&str] = &[
    "dr",
    "docteur",
    "pr",
    "professeur",
    "mme",
    "madame",
    "m",
    "mr",
    "monsieur",
    "mlle",
];

impl Query {
    /// Parses free text; never fails, never panics, bounded work.
    pub fn parse(text: &str) -> Self {
        let mut end = text.len().min(MAX_QUERY);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut words = Vec::new();
        for raw in text[..end].split_whitespace() {
            if let Some((field, value)) = raw.split_once(':')
                && let Some(w) = filter_word(field, value)
            {
                words.push(w);
                continue;
            }
            if raw.contains('@') {
                words.push(mailbox_word(raw));
                continue;
            }
            for w in fold(raw).split_whitespace() {
                words.push(classify(w));
            }
        }
        // Articles and civilities help nobody, unless they are all there is.
        let useful = |w: &Word| {
            !(w.role == Role::Mot
                && (is_stopword(&w.text) || CIVILITIES.contains(&w.text.as_str())))
        };
        if words.iter().any(useful) {
            words.retain(useful);
        }
        words.truncate(MAX_WORDS);
        Self { words }
    }

    /// Adds the explicit filters as required words.
    pub fn with_filters(mut self, f: &Filters) -> Self {
        let mut add = |tag: String, text: &str| {
            self.words.push(Word {
                text: text.to_owned(),
                role: Role::Filtre,
                required: true,
                alts: vec![Alt::Tag(tag)],
                meaning: None,
                bonus: Vec::new(),
            })
        };
        if let Some(v) = &f.postcode {
            add(format!("cp:{}", v.trim()), v);
        }
        if let Some(v) = &f.departement {
            add(format!("dep:{}", v.trim().to_ascii_lowercase()), v);
        }
        if let Some(v) = &f.profession {
            add(format!("prof:{}", v.trim()), v);
        }
        if let Some(v) = &f.specialty {
            add(format!("code:{}", v.trim().to_ascii_lowercase()), v);
        }
        if let Some(v) = &f.mailbox_type {
            add(format!("type:{}", v.trim().to_ascii_lowercase()), v);
        }
        if let Some(city) = &f.city {
            for w in fold(city).split_whitespace().filter(|w| !is_stopword(w)) {
                self.words.push(Word {
                    text: w.to_owned(),
                    role: Role::Filtre,
                    required: true,
                    alts: vec![Alt::Exact(w.to_owned())],
                    meaning: None,
                    bonus: Vec::new(),
                });
            }
        }
        self
    }

    /// True when no word can match anything.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.alts.is_empty())
    }
}

/// Type digits of a national id: 8 + RPPS, 0 + ADELI. The index tags
/// only the national id when the RPPS or ADELI number is its rest.
pub const NATIONAL_ID_TYPES: &[&str] = &["8", "0"];

/// The `id:` tags an identifier may be indexed under: itself, and for an
/// RPPS (11 characters) or ADELI (9, `2A`/`2B` in Corsica) number, the
/// national id.
pub fn id_tags(id: &str) -> Vec<String> {
    let id = id.trim().to_lowercase();
    let mut tags = vec![format!("id:{id}")];
    if id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        match id.len() {
            11 => tags.push(format!("id:8{id}")),
            9 => tags.push(format!("id:0{id}")),
            _ => {}
        }
    }
    tags
}

fn id_alts(id: &str) -> Vec<Alt> {
    id_tags(id).into_iter().map(Alt::Tag).collect()
}

/// `cp:03100`, `dep:2A`, `code:SM04`, `prof:10`, `type:ORG`, `id:…`.
fn filter_word(field: &str, value: &str) -> Option<Word> {
    let value = value.trim();
    if value.is_empty() || value.len() > 128 {
        return None;
    }
    if matches!(fold(field).trim(), "id" | "rpps" | "adeli" | "finess") {
        return Some(Word {
            text: format!("{field}:{value}"),
            role: Role::Filtre,
            required: true,
            alts: id_alts(value),
            meaning: None,
            bonus: Vec::new(),
        });
    }
    let tag = match fold(field).trim() {
        "cp" => format!("cp:{value}"),
        "dep" => format!("dep:{}", value.to_ascii_lowercase()),
        "code" => format!("code:{}", value.to_ascii_lowercase()),
        "prof" => format!("prof:{value}"),
        "type" => format!("type:{}", value.to_ascii_lowercase()),
        _ => return None,
    };
    Some(Word {
        text: format!("{field}:{value}"),
        role: Role::Filtre,
        required: true,
        alts: vec![Alt::Tag(tag)],
        meaning: None,
        bonus: Vec::new(),
    })
}

fn mailbox_word(raw: &str) -> Word {
    let lower = raw
        .trim_matches(|c: char| c == '<' || c == '>' || c == ',' || c == ';')
        .to_lowercase();
    match lower.split_once('@') {
        Some(("", domain)) => Word {
            text: lower.clone(),
            role: Role::DomaineMssante,
            required: true,
            alts: vec![Alt::Tag(format!("dom:{domain}"))],
            meaning: None,
            bonus: Vec::new(),
        },
        Some((local, "")) => {
            // « jean.dupont@ »: the start of an address; its words must match.
            let alts = fold(local)
                .split_whitespace()
                .next()
                .map(|w| vec![Alt::Prefix(cap(w).to_owned())]);
            Word {
                text: lower.clone(),
                role: Role::Mot,
                required: true,
                alts: alts.unwrap_or_default(),
                meaning: None,
                bonus: Vec::new(),
            }
        }
        _ => Word {
            text: lower.clone(),
            role: Role::AdresseMssante,
            required: true,
            alts: vec![Alt::Tag(format!("bal:{lower}"))],
            meaning: None,
            bonus: Vec::new(),
        },
    }
}

fn is_departement(w: &str) -> bool {
    match w.len() {
        2 => {
            w == "2a"
                || w == "2b"
                || (w.bytes().all(|b| b.is_ascii_digit()) && w != "00" && w != "20" && w <= "95")
        }
        3 => matches!(
            w,
            "971"
                | "972"
                | "973"
                | "974"
                | "975"
                | "976"
                | "977"
                | "978"
                | "984"
                | "986"
                | "987"
                | "988"
        ),
        _ => false,
    }
}

/// Classifies one folded word.
fn classify(w: &str) -> Word {
    let digits = w.bytes().all(|b| b.is_ascii_digit());
    let word = |role, alts| Word {
        text: w.to_owned(),
        role,
        required: true,
        alts,
        meaning: None,
        bonus: Vec::new(),
    };
    if is_departement(w) {
        let mut alts = vec![Alt::Tag(format!("dep:{w}"))];
        if digits {
            // Also a street number (« 12 rue … »).
            alts.push(Alt::Exact(w.to_owned()));
        }
        return word(Role::Departement, alts);
    }
    if digits {
        return match w.len() {
            5 => word(Role::CodePostal, vec![Alt::Tag(format!("cp:{w}"))]),
            11 => word(Role::Rpps, id_alts(w)),
            9 | 10 | 12 | 14 => word(Role::Identifiant, id_alts(w)),
            _ => word(Role::Mot, vec![Alt::Exact(w.to_owned())]),
        };
    }
    let bytes = w.as_bytes();
    // ADELI or FINESS of Corsica (2A/2B + 7 digits), structure ids (F…, R…, C…), codes (SM04).
    if w.len() >= 4
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..].iter().filter(|b| b.is_ascii_digit()).count() >= 2
    {
        let mut alts = id_alts(w);
        alts.push(Alt::Tag(format!("code:{w}")));
        alts.push(Alt::Prefix(cap(w).to_owned()));
        return word(Role::Identifiant, alts);
    }
    let syns = synonyms::lookup(w);
    if !syns.is_empty() {
        // One tag per family, set at import from the codes: a single
        // posting list instead of a union of codes and labels.
        let mut alts: Vec<Alt> = syns
            .iter()
            .map(|s| Alt::Tag(synonyms::family_tag(s.label)))
            .collect();
        let exact = syns.iter().any(|s| s.triggers.contains(&w));
        if exact {
            // The word itself may be in a text (« Service de cardiologie »).
            alts.push(Alt::Exact(w.to_owned()));
        } else {
            // « général » may also be a whole street word (« du général de
            // gaulle »); as a prefix it would match half the directory.
            alts.push(Alt::Exact(w.to_owned()));
        }
        let professional = syns
            .iter()
            .all(|s| s.tags.iter().all(|t| t.starts_with("prof:")));
        let meaning = syns.iter().map(|s| s.label).collect::<Vec<_>>().join(", ");
        let role = if professional {
            Role::Profession
        } else {
            Role::Specialite
        };
        return Word {
            meaning: Some(meaning),
            ..word(role, alts)
        };
    }
    let full: Vec<&str> = expansions(w).collect();
    if !full.is_empty() && !CIVILITIES.contains(&w) {
        // The index holds abbreviations and full forms both ways, so the
        // abbreviation as a prefix finds « pl », « place » and « PL ».
        let bonus = full
            .iter()
            .filter_map(|f| f.split(' ').next())
            .map(|f| Alt::Exact(f.to_owned()))
            .collect();
        return Word {
            meaning: Some(full.join(", ")),
            bonus,
            ..word(Role::Voie, vec![prefix_alt(w)])
        };
    }
    Word {
        bonus: vec![Alt::Exact(w.to_owned())],
        ..word(Role::Mot, vec![prefix_alt(w)])
    }
}

/// Words of one character are not indexed as prefixes: they must be whole.
fn prefix_alt(w: &str) -> Alt {
    if w.chars().count() < 2 {
        Alt::Exact(w.to_owned())
    } else if w.chars().count() > MAX_PREFIX {
        Alt::Prefix(cap(w).to_owned())
    } else {
        Alt::Prefix(w.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(q: &str) -> Vec<(String, Role)> {
        Query::parse(q)
            .words
            .into_iter()
            .map(|w| (w.text, w.role))
            .collect()
    }

    #[test]
    fn classifies_the_named_examples() {
        assert_eq!(
            roles("Dupont 97500 cardiologue"),
            [
                ("dupont".into(), Role::Mot),
                ("97500".into(), Role::CodePostal),
                ("cardiologue".into(), Role::Specialite)
            ]
        );
        assert_eq!(
            roles("gynéco place de l'église montluçon"),
            [
                ("gyneco".into(), Role::Specialite),
                ("place".into(), Role::Mot),
                ("eglise".into(), Role::Mot),
                ("montlucon".into(), Role::Mot)
            ]
        );
    }

    #[test]
    fn classifies_identifiers_and_places() {
        let r = roles(
            "10101234567 2A 974 63 jean.dupont@ch-x.mssante.fr @medecin.mssante.fr pl st kiné dr",
        );
        let kinds: Vec<Role> = r.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds,
            [
                Role::Rpps,
                Role::Departement,
                Role::Departement,
                Role::Departement,
                Role::AdresseMssante,
                Role::DomaineMssante,
                Role::Voie,
                Role::Voie,
                Role::Profession
            ]
        );
    }

    #[test]
    fn rpps_and_adeli_numbers_also_look_for_the_national_id() {
        assert_eq!(
            id_tags("10000000001"),
            ["id:10000000001", "id:810000000001"]
        );
        assert_eq!(id_tags("031234567"), ["id:031234567", "id:0031234567"]);
        assert_eq!(id_tags("F250000700"), ["id:f250000700"]);
        assert_eq!(id_tags("2A6060787"), ["id:2a6060787", "id:02a6060787"]);
    }

    #[test]
    fn stopwords_alone_are_kept() {
        assert_eq!(roles("de la").len(), 2);
        assert!(Query::parse("   ").is_empty());
    }

    #[test]
    fn long_hostile_input_is_bounded() {
        let q = Query::parse(&"é".repeat(10_000));
        assert!(q.words.len() <= 1);
        let q = Query::parse(&"a b ".repeat(10_000));
        assert_eq!(q.words.len(), MAX_WORDS);
    }
}
