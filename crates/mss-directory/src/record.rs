//! From rows to index entries: consecutive rows of the same person and site
//! become one entry (the activity file repeats a site once per savoir-faire);
//! each mailbox is one entry; savoir-faire and diploma rows are kept per
//! person for the detail view. Grouping only looks at the previous row, so
//! memory stays flat whatever the file size; entries of one person that are
//! not consecutive still meet at query time through their shared key.

use crate::line::{FileKind, Header, get};
use crate::text::{departement_of_postcode, fold};

/// At most this many rows per entry, so a hostile file of one person
/// repeated a million times cannot grow memory.
pub const MAX_ROWS_PER_ENTRY: usize = 256;

/// Prefix of the key of organisational mailboxes, grouped per structure.
pub const STRUCTURE_KEY: &str = "S:";
/// Prefix of the key of a mailbox with neither person nor structure.
pub const MAILBOX_KEY: &str = "B:";

/// Column positions used to build entries, resolved once per file.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub kind: Option<FileKind>,
    nat: Option<usize>,
    idpp: Option<usize>,
    nom: Option<usize>,
    prenom: Option<usize>,
    prof_code: Option<usize>,
    prof: Option<usize>,
    sf_code: Option<usize>,
    sf: Option<usize>,
    ids: Vec<usize>,
    site: Option<usize>,
    text: Vec<usize>,
    street_type_code: Option<usize>,
    street_type: Option<usize>,
    street: Option<usize>,
    cedex: Option<usize>,
    cp: Option<usize>,
    dept: Option<usize>,
    bal_type: Option<usize>,
    bal: Option<usize>,
    structure: Option<usize>,
}

impl Columns {
    /// Resolves the columns of a file from its header.
    pub fn new(header: &Header) -> Self {
        let kind = FileKind::detect(header);
        let f = |c: &[&str]| header.find(c);
        let all = |cs: &[&str]| {
            cs.iter()
                .filter_map(|c| header.find(&[c]))
                .collect::<Vec<_>>()
        };
        let mut cols = Columns {
            kind,
            nat: f(&["identification nationale pp"]),
            idpp: f(&["identifiant pp"]),
            nom: f(&["nom d exercice"]),
            prenom: f(&["prenom d exercice"]),
            prof_code: f(&["code profession"]),
            prof: f(&["libelle profession"]),
            sf_code: f(&["code savoir faire"]),
            sf: f(&["libelle savoir faire"]),
            ..Default::default()
        };
        match kind {
            Some(FileKind::Activity) => {
                cols.ids = all(&[
                    "numero siret site",
                    "numero siren site",
                    "numero finess site",
                    "numero finess etablissement juridique",
                    "identifiant technique de la structure",
                    "ancien identifiant de la structure",
                ]);
                cols.site = f(&["identifiant technique de la structure"]);
                cols.text = all(&[
                    "raison sociale site",
                    "enseigne commerciale site",
                    "complement destinataire coord structure",
                    "complement point geographique coord structure",
                    "numero voie coord structure",
                    "libelle commune coord structure",
                ]);
                cols.street_type_code = f(&["code type de voie coord structure"]);
                cols.street_type = f(&["libelle type de voie coord structure"]);
                cols.street = f(&["libelle voie coord structure"]);
                cols.cedex = f(&["bureau cedex coord structure"]);
                cols.cp = f(&["code postal coord structure"]);
                cols.dept = f(&[
                    "code departement structure",
                    "code departement coord structure",
                ]);
            }
            Some(FileKind::Mailbox) => {
                cols.bal_type = f(&["type de bal"]);
                cols.bal = f(&["adresse bal"]);
                cols.structure = f(&["identification structure"]);
                cols.ids = all(&["identification structure"]);
                cols.text = all(&[
                    "service de rattachement",
                    "raison sociale",
                    "enseigne commerciale",
                    "l2complementlocalisation",
                    "l3complementdistribution",
                    "l4numerovoie",
                    "l5lieuditmention",
                    "l6ligneacheminement",
                ]);
                cols.street_type = f(&["nl4typevoie"]);
                cols.street = f(&["l4libellevoie"]);
                cols.cp = f(&["code postal"]);
                cols.dept = f(&["departement"]);
            }
            _ => {}
        }
        cols
    }

    /// The key that groups entries: the national id of the person, else
    /// the structure, else the mailbox.
    pub fn key(&self, row: &[&str]) -> String {
        let nat = get(row, self.nat);
        if !nat.is_empty() {
            return nat.to_owned();
        }
        let structure = get(row, self.structure);
        if !structure.is_empty() {
            return format!("{STRUCTURE_KEY}{structure}");
        }
        format!("{MAILBOX_KEY}{}", get(row, self.bal).to_lowercase())
    }

    /// What makes two consecutive rows the same entry.
    fn group_key(&self, row: &[&str]) -> Option<String> {
        match self.kind? {
            FileKind::Activity => {
                let site = get(row, self.site);
                let site = if site.is_empty() {
                    get(row, self.cp)
                } else {
                    site
                };
                Some(format!("{}|{site}", self.key(row)))
            }
            FileKind::Skill | FileKind::Diploma => Some(self.key(row)),
            // One mailbox, one entry.
            FileKind::Mailbox => None,
        }
    }
}

/// What an entry is, shown to the index and to the result builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Activity,
    Mailbox,
    Skill,
    Diploma,
}

impl EntryKind {
    pub fn tag(self) -> &'static str {
        match self {
            Self::Activity => "act",
            Self::Mailbox => "bal",
            Self::Skill => "sf",
            Self::Diploma => "dipl",
        }
    }
    pub fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "act" => Self::Activity,
            "bal" => Self::Mailbox,
            "sf" => Self::Skill,
            "dipl" => Self::Diploma,
            _ => return None,
        })
    }
}

/// One document of the index.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// Person national id, `S:`structure or `B:`mailbox.
    pub key: String,
    /// The source lines, as decoded, joined by `\n`.
    pub lines: String,
    /// Index of the file header these lines follow.
    pub header: u64,
    /// Site (activity) or structure (mailbox) identifier, for counting.
    pub site: String,
    /// Folded searchable words (deduplicated, abbreviations expanded).
    pub words: Vec<String>,
    /// Exact tags: `cp:`, `dep:`, `id:`, `code:`, `prof:`, `bal:`, `dom:`, `type:`.
    pub tags: Vec<String>,
}

/// A row the grouper refused: no identifier at all, or an unknown file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Accumulates rows of one file into entries.
#[derive(Debug)]
pub struct Grouper {
    cols: Columns,
    header: u64,
    current: Option<(String, Entry)>,
    rows: usize,
}

impl Grouper {
    pub fn new(cols: Columns, header: u64) -> Self {
        Self {
            cols,
            header,
            current: None,
            rows: 0,
        }
    }

    pub fn columns(&self) -> &Columns {
        &self.cols
    }

    /// Adds one row; completed entries go to `out`. Rows with no key at all
    /// (no national id, no structure, no mailbox) are refused.
    pub fn push(&mut self, line: &str, row: &[&str], out: &mut Vec<Entry>) -> Result<(), Refused> {
        let Some(kind) = self.cols.kind else {
            return Err(Refused);
        };
        let key = self.cols.key(row);
        if key == MAILBOX_KEY {
            return Err(Refused);
        }
        let group = self.cols.group_key(row);
        if let (Some(g), Some((cur, entry))) = (&group, &mut self.current)
            && g == cur
            && self.rows < MAX_ROWS_PER_ENTRY
        {
            entry.lines.push('\n');
            entry.lines.push_str(line);
            self.rows += 1;
            if kind == FileKind::Activity {
                add_skill(&self.cols, row, entry);
            }
            return Ok(());
        }
        if let Some((_, entry)) = self.current.take() {
            out.push(finish(entry));
        }
        let entry = self.start(kind, key, line, row);
        match group {
            Some(g) => {
                self.current = Some((g, entry));
                self.rows = 1;
            }
            None => out.push(finish(entry)),
        }
        Ok(())
    }

    /// The last pending entry, at end of file.
    pub fn finish(&mut self) -> Option<Entry> {
        self.current.take().map(|(_, e)| finish(e))
    }

    fn start(&self, kind: FileKind, key: String, line: &str, row: &[&str]) -> Entry {
        let c = &self.cols;
        let mut e = Entry {
            kind: match kind {
                FileKind::Activity => EntryKind::Activity,
                FileKind::Mailbox => EntryKind::Mailbox,
                FileKind::Skill => EntryKind::Skill,
                FileKind::Diploma => EntryKind::Diploma,
            },
            key,
            lines: line.to_owned(),
            header: self.header,
            site: get(row, c.site.or(c.structure)).to_owned(),
            words: Vec::new(),
            tags: Vec::new(),
        };
        if matches!(kind, FileKind::Skill | FileKind::Diploma) {
            return e;
        }
        let mut text = String::new();
        for idx in [c.nom, c.prenom, c.prof]
            .into_iter()
            .chain(c.text.iter().map(|&i| Some(i)))
        {
            push_text(&mut text, get(row, idx));
        }
        let cedex = get(row, c.cedex);
        // « 25304 PONTARLIER CEDEX »: the city is searchable, the code a postcode.
        if let Some((code, city)) = cedex.split_once(' ') {
            push_text(&mut text, city);
            tag(&mut e.tags, "cp:", code);
        }
        let street = get(row, c.street);
        push_text(&mut text, street);
        push_text(&mut text, get(row, c.street_type));
        push_text(&mut text, get(row, c.street_type_code));
        e.words = fold(&text).split_whitespace().map(str::to_owned).collect();
        expand_abbreviations(&mut e.words);
        let nat = get(row, c.nat);
        tag(&mut e.tags, "id:", nat);
        // The national id is the RPPS or ADELI number behind its type digit
        // (8, 0): the query looks for both forms, one tag is enough.
        let idpp = get(row, c.idpp);
        if !crate::query::NATIONAL_ID_TYPES
            .iter()
            .any(|t| nat.len() == idpp.len() + 1 && nat.starts_with(*t) && nat.ends_with(idpp))
        {
            tag(&mut e.tags, "id:", idpp);
        }
        for &i in &c.ids {
            let v = get(row, Some(i));
            tag(&mut e.tags, "id:", v);
            // Structure ids carry a type prefix (`F250000700`, `1250000700`):
            // the bare FINESS or SIREN (9 digits) or SIRET (14) is searchable
            // too. Other bare numbers are nobody's identifier.
            if v.len() > 9 && v.as_bytes()[0].is_ascii_alphanumeric() {
                let bare = &v[1..];
                if matches!(bare.len(), 9 | 14) && bare.bytes().all(|b| b.is_ascii_digit()) {
                    tag(&mut e.tags, "id:", bare);
                }
            }
        }
        let cp = get(row, c.cp);
        tag(&mut e.tags, "cp:", cp);
        let dept = get(row, c.dept);
        tag(&mut e.tags, "dep:", &dept.to_ascii_lowercase());
        let derived = departement_of_postcode(cp);
        tag(&mut e.tags, "dep:", &derived.to_ascii_lowercase());
        tag(&mut e.tags, "prof:", get(row, c.prof_code));
        add_skill(c, row, &mut e);
        if kind == FileKind::Mailbox {
            let bal = get(row, c.bal).to_lowercase();
            tag(&mut e.tags, "bal:", &bal);
            if let Some((local, domain)) = bal.split_once('@') {
                tag(&mut e.tags, "dom:", domain);
                e.words
                    .extend(fold(local).split_whitespace().map(str::to_owned));
                e.words
                    .extend(fold(domain).split_whitespace().map(str::to_owned));
            }
            tag(
                &mut e.tags,
                "type:",
                &get(row, c.bal_type).to_ascii_lowercase(),
            );
        }
        e
    }
}

fn add_skill(c: &Columns, row: &[&str], e: &mut Entry) {
    let code = get(row, c.sf_code);
    if !code.is_empty() {
        tag(&mut e.tags, "code:", &code.to_ascii_lowercase());
        let mut text = String::new();
        push_text(&mut text, get(row, c.sf));
        e.words
            .extend(fold(&text).split_whitespace().map(str::to_owned));
    }
}

fn push_text(text: &mut String, value: &str) {
    if !value.is_empty() {
        text.push_str(value);
        text.push(' ');
    }
}

fn tag(tags: &mut Vec<String>, prefix: &str, value: &str) {
    if !value.is_empty() && value.len() <= 128 {
        let mut t = String::with_capacity(prefix.len() + value.len());
        t.push_str(prefix);
        // Ids and codes are ASCII: no Unicode tables, no second string.
        if value.is_ascii() {
            t.extend(value.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            t.push_str(&value.to_lowercase());
        }
        tags.push(t);
    }
}

/// Deduplicates words and tags, drops stop words and overlong words, adds
/// the synonym family of each code.
fn finish(mut e: Entry) -> Entry {
    let families: Vec<String> = e
        .tags
        .iter()
        .flat_map(|t| crate::synonyms::family_tags_of(t))
        .cloned()
        .collect();
    e.tags.extend(families);
    e.words
        .retain(|w| !crate::text::is_stopword(w) && w.len() <= 64);
    e.words.sort_unstable();
    e.words.dedup();
    e.tags.sort_unstable();
    e.tags.dedup();
    e
}

/// Street and place abbreviations of the files and of people typing, with
/// their full form (both ways: the index holds both, the query accepts both).
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("all", "allee"),
    ("av", "avenue"),
    ("ave", "avenue"),
    ("bd", "boulevard"),
    ("bld", "boulevard"),
    ("bvd", "boulevard"),
    ("brg", "bourg"),
    ("ch", "chemin"),
    ("che", "chemin"),
    ("chem", "chemin"),
    ("crs", "cours"),
    ("fg", "faubourg"),
    ("fbg", "faubourg"),
    ("imp", "impasse"),
    ("lot", "lotissement"),
    ("pl", "place"),
    ("pte", "porte"),
    ("qu", "quai"),
    ("qua", "quartier"),
    ("r", "rue"),
    ("res", "residence"),
    ("rpt", "rond point"),
    ("rte", "route"),
    ("sq", "square"),
    ("st", "saint"),
    ("ste", "sainte"),
    ("mal", "marechal"),
    ("gal", "general"),
    ("pr", "professeur"),
    ("dr", "docteur"),
    ("ch", "centre hospitalier"),
    ("chu", "centre hospitalier universitaire"),
];

/// Full forms of an abbreviation (`ch` is both chemin and centre hospitalier).
pub fn expansions(word: &str) -> impl Iterator<Item = &'static str> + '_ {
    ABBREVIATIONS
        .iter()
        .filter(move |(a, _)| *a == word)
        .map(|(_, full)| *full)
}

/// Words added to the index for a word: the full forms of an abbreviation,
/// and the abbreviations of a full form (« saint » → `st`), so a query
/// abbreviation is one prefix lookup. Built once: the import asks for
/// every word of every row.
fn abbreviation_words(word: &str) -> &'static [&'static str] {
    static TABLE: std::sync::LazyLock<std::collections::HashMap<&'static str, Vec<&'static str>>> =
        std::sync::LazyLock::new(|| {
            let mut m: std::collections::HashMap<&'static str, Vec<&'static str>> =
                std::collections::HashMap::new();
            for (abbr, full) in ABBREVIATIONS {
                m.entry(abbr).or_default().extend(full.split(' '));
                m.entry(full).or_default().push(abbr);
            }
            m
        });
    TABLE.get(word).map_or(&[], Vec::as_slice)
}

fn expand_abbreviations(words: &mut Vec<String>) {
    let extra: Vec<String> = words
        .iter()
        .flat_map(|w| abbreviation_words(w))
        .map(|w| (*w).to_owned())
        .collect();
    words.extend(extra);
}
