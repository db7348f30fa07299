//! From rows to index entries: consecutive rows of the same person and site
//! become one entry (the activity file repeats a site once per savoir-faire);
//! each mailbox is one entry; savoir-faire and diploma rows are kept per
//! person for the detail view. Grouping only looks at the previous row, so
//! memory stays flat whatever the file size; entries of one person that are
//! not consecutive still meet at query time through their shared key.

use crate::line::{FileKind, Header, get};
use crate::text::{departement_of_postcode, fold_into, stable_hash};

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
        let mut key = String::new();
        self.write_key(row, &mut key);
        key
    }

    /// [`Columns::key`] into `out` (cleared first): no string per row.
    fn write_key(&self, row: &[&str], out: &mut String) {
        out.clear();
        let nat = get(row, self.nat);
        if !nat.is_empty() {
            out.push_str(nat);
            return;
        }
        let structure = get(row, self.structure);
        if !structure.is_empty() {
            out.push_str(STRUCTURE_KEY);
            out.push_str(structure);
            return;
        }
        out.push_str(MAILBOX_KEY);
        let bal = get(row, self.bal);
        if bal.is_ascii() {
            out.extend(bal.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            out.push_str(&bal.to_lowercase());
        }
    }

    /// Besides the key, what makes two consecutive activity rows the same
    /// entry: the site, else the postcode.
    fn site_of<'a>(&self, row: &[&'a str]) -> &'a str {
        let site = get(row, self.site);
        if site.is_empty() {
            get(row, self.cp)
        } else {
            site
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

/// One document of the index. Words and tags are each one string, not a
/// string apiece: the import builds 2.3 million entries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// Person national id, `S:`structure or `B:`mailbox.
    pub key: String,
    /// The source lines, as decoded, joined by `\n`.
    pub lines: String,
    /// Index of the file header these lines follow.
    pub header: u64,
    /// Hash of the site (activity) or structure (mailbox) identifier, for
    /// counting structures.
    pub site: Option<u64>,
    /// Folded searchable words separated by spaces (deduplicated,
    /// abbreviations expanded).
    pub words: String,
    /// Exact tags separated by `\n`: `cp:`, `dep:`, `id:`, `code:`,
    /// `prof:`, `bal:`, `dom:`, `type:`, `fam:`.
    pub tags: String,
}

impl Entry {
    /// The searchable words.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words.split(' ').filter(|w| !w.is_empty())
    }

    /// The tags.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.split('\n').filter(|t| !t.is_empty())
    }
}

/// A row the grouper refused: no identifier at all, or an unknown file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Accumulates rows of one file into entries.
#[derive(Debug)]
pub struct Grouper {
    cols: Columns,
    header: u64,
    /// The entry being grown, and the site of its rows (activity).
    current: Option<Entry>,
    site: String,
    rows: usize,
    /// Reused between rows: the key of the row, the spans of `finish`.
    key: String,
    spans: Vec<Span>,
}

impl Grouper {
    pub fn new(cols: Columns, header: u64) -> Self {
        Self {
            cols,
            header,
            current: None,
            site: String::new(),
            rows: 0,
            key: String::new(),
            spans: Vec::new(),
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
        self.cols.write_key(row, &mut self.key);
        if self.key == MAILBOX_KEY {
            return Err(Refused);
        }
        // Activity rows of one person and site make one entry (one row per
        // savoir-faire); savoir-faire and diploma rows, one per person; a
        // mailbox is alone.
        let site = match kind {
            FileKind::Activity => self.cols.site_of(row),
            _ => "",
        };
        let grouped = kind != FileKind::Mailbox;
        if grouped
            && let Some(entry) = &mut self.current
            && entry.key == self.key
            && self.site == site
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
        if let Some(entry) = self.current.take() {
            out.push(finish(entry, &mut self.spans));
        }
        let entry = self.start(kind, self.key.clone(), line, row);
        if grouped {
            self.site.clear();
            self.site.push_str(site);
            self.current = Some(entry);
            self.rows = 1;
        } else {
            out.push(finish(entry, &mut self.spans));
        }
        Ok(())
    }

    /// The last pending entry, at end of file.
    pub fn finish(&mut self) -> Option<Entry> {
        self.current.take().map(|e| finish(e, &mut self.spans))
    }

    fn start(&self, kind: FileKind, key: String, line: &str, row: &[&str]) -> Entry {
        let c = &self.cols;
        let site = get(row, c.site.or(c.structure));
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
            site: (!site.is_empty()).then(|| stable_hash(site)),
            words: String::new(),
            tags: String::new(),
        };
        if matches!(kind, FileKind::Skill | FileKind::Diploma) {
            return e;
        }
        e.words.reserve(line.len());
        e.tags.reserve(256);
        for idx in [c.nom, c.prenom, c.prof]
            .into_iter()
            .chain(c.text.iter().map(|&i| Some(i)))
        {
            push_words(&mut e.words, get(row, idx));
        }
        let cedex = get(row, c.cedex);
        // « 25304 PONTARLIER CEDEX »: the city is searchable, the code a postcode.
        if let Some((code, city)) = cedex.split_once(' ') {
            push_words(&mut e.words, city);
            tag(&mut e.tags, "cp:", code);
        }
        let street = get(row, c.street);
        push_words(&mut e.words, street);
        push_words(&mut e.words, get(row, c.street_type));
        push_words(&mut e.words, get(row, c.street_type_code));
        // Only the words so far: names, address, structure (as always).
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
        tag(&mut e.tags, "dep:", dept);
        let derived = departement_of_postcode(cp);
        tag(&mut e.tags, "dep:", &derived);
        tag(&mut e.tags, "prof:", get(row, c.prof_code));
        add_skill(c, row, &mut e);
        if kind == FileKind::Mailbox {
            let bal = get(row, c.bal).to_lowercase();
            tag(&mut e.tags, "bal:", &bal);
            if let Some((local, domain)) = bal.split_once('@') {
                tag(&mut e.tags, "dom:", domain);
                push_words(&mut e.words, local);
                push_words(&mut e.words, domain);
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
        tag(&mut e.tags, "code:", code);
        push_words(&mut e.words, get(row, c.sf));
    }
}

/// Appends the folded words of `value` to `words`, space separated.
fn push_words(words: &mut String, value: &str) {
    if !value.is_empty() {
        fold_into(words, value);
        words.push(' ');
    }
}

/// Appends `prefix` + `value` lower-cased, as one tag.
fn tag(tags: &mut String, prefix: &str, value: &str) {
    if !value.is_empty() && value.len() <= 128 {
        tags.push_str(prefix);
        // Ids and codes are ASCII: no Unicode tables, no second string.
        if value.is_ascii() {
            tags.extend(value.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            tags.push_str(&value.to_lowercase());
        }
        tags.push('\n');
    }
}

/// A piece of a word or tag string: its hash, start and length.
type Span = (u64, usize, usize);

/// Fills `spans` with the non-empty pieces of `text` between `sep` that
/// `keep` accepts.
fn split_spans(text: &str, sep: u8, spans: &mut Vec<Span>, keep: impl Fn(&str) -> bool) {
    spans.clear();
    let mut start = 0;
    let bytes = text.as_bytes();
    for end in memchr::memchr_iter(sep, bytes).chain(std::iter::once(bytes.len())) {
        let piece = &text[start..end];
        if !piece.is_empty() && keep(piece) {
            spans.push((stable_hash(piece), start, piece.len()));
        }
        start = end + 1;
    }
}

/// `text`'s pieces in `spans`, each once, joined by `sep`. Sorting hashes
/// rather than strings: sorting the words themselves was a tenth of the
/// import's main thread.
fn dedup(text: &str, spans: &mut [Span], sep: char) -> String {
    let piece = |s: &Span| &text[s.1..s.1 + s.2];
    spans.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| piece(a).cmp(piece(b))));
    let mut out = String::with_capacity(text.len());
    let mut last: Option<&Span> = None;
    for s in spans.iter() {
        if last.is_some_and(|l| l.0 == s.0 && piece(l) == piece(s)) {
            continue;
        }
        if !out.is_empty() {
            out.push(sep);
        }
        out.push_str(piece(s));
        last = Some(s);
    }
    out
}

/// Deduplicates words and tags, drops stop words and overlong words, adds
/// the synonym family of each code.
fn finish(mut e: Entry, spans: &mut Vec<Span>) -> Entry {
    split_spans(&e.tags, b'\n', spans, |_| true);
    for i in 0..spans.len() {
        let (_, start, len) = spans[i];
        let t = &e.tags[start..len + start];
        // Only codes have families: no table lookup for the other tags.
        if !(t.starts_with("code:") || t.starts_with("prof:")) {
            continue;
        }
        for fam in crate::synonyms::family_tags_of(t) {
            let at = e.tags.len();
            e.tags.push_str(fam);
            e.tags.push('\n');
            spans.push((stable_hash(fam), at, fam.len()));
        }
    }
    e.tags = dedup(&e.tags, spans, '\n');
    split_spans(&e.words, b' ', spans, |w| {
        w.len() <= 64 && !crate::text::is_stopword(w)
    });
    e.words = dedup(&e.words, spans, ' ');
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
    type Table = std::collections::HashMap<&'static str, Vec<&'static str>, crate::text::FnvBuild>;
    static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| {
        let mut m = Table::default();
        for (abbr, full) in ABBREVIATIONS {
            m.entry(abbr).or_default().extend(full.split(' '));
            m.entry(full).or_default().push(abbr);
        }
        m
    });
    TABLE.get(word).map_or(&[], Vec::as_slice)
}

/// Appends the abbreviation words of every word of `words` (space
/// separated) to it.
fn expand_abbreviations(words: &mut String) {
    let end = words.len();
    let mut start = 0;
    while start < end {
        let stop = memchr::memchr(b' ', &words.as_bytes()[start..end]).map_or(end, |i| start + i);
        let extra = abbreviation_words(&words[start..stop]);
        for w in extra {
            words.push_str(w);
            words.push(' ');
        }
        start = stop + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Header, fields};

    fn entries(lines: &[&str]) -> Vec<Entry> {
        let header = Header::parse(
            "Identification nationale PP|Nom d'exercice|Libellé Voie (coord. structure)|\
             Code savoir-faire|Libellé savoir-faire|Code postal (coord. structure)|\
             Raison sociale site|Identifiant technique de la structure|",
        );
        let mut g = Grouper::new(Columns::new(&header), 0);
        let mut out = Vec::new();
        for l in lines {
            g.push(l, &fields(l), &mut out).expect("row accepted");
        }
        out.extend(g.finish());
        out
    }

    #[test]
    fn rows_of_one_site_make_one_entry_with_each_word_and_tag_once() {
        let out = entries(&[
            "810001|DUPONT|AV DE LA REPUBLIQUE|SM04|Cardiologie|03100|Cabinet Dupont|R1|",
            "810001|DUPONT|AV DE LA REPUBLIQUE|SM20|Gynéco-obstétrique|03100|Cabinet Dupont|R1|",
            "810001|DUPONT|PLACE DU MARCHE|SM04|Cardiologie|63000|Clinique|R2|",
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        let e = &out[0];
        assert_eq!(e.lines.lines().count(), 2);
        let words: Vec<&str> = e.words().collect();
        for w in [
            "dupont",
            "av",
            "avenue",
            "republique",
            "cardiologie",
            "obstetrique",
        ] {
            assert_eq!(
                words.iter().filter(|x| **x == w).count(),
                1,
                "{w} in {words:?}"
            );
        }
        assert!(
            !words.contains(&"de") && !words.contains(&"la"),
            "{words:?}"
        );
        let tags: Vec<&str> = e.tags().collect();
        for t in [
            "id:810001",
            "cp:03100",
            "dep:03",
            "code:sm04",
            "code:sm20",
            "id:r1",
        ] {
            assert_eq!(
                tags.iter().filter(|x| **x == t).count(),
                1,
                "{t} in {tags:?}"
            );
        }
        assert!(tags.iter().any(|t| t.starts_with("fam:")), "{tags:?}");
        // The second site is its own entry, with its own words only.
        assert!(out[1].words().any(|w| w == "marche"));
        assert!(!out[1].words().any(|w| w == "republique"));
        assert_eq!(out[0].site.map(|_| ()), Some(()));
        assert_ne!(out[0].site, out[1].site);
    }
}
