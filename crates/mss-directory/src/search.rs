//! The directory as users see it: open the live index, search free text,
//! show every field of one person or structure.

use crate::error::Error;
use crate::import::{CURRENT, INFO_FILE, ImportSummary};
use crate::index::{Reader, Stored, to_tantivy};
use crate::line::{Header, fields, get};
use crate::query::{Filters, Query, Word};
use crate::record::{EntryKind, MAILBOX_KEY, STRUCTURE_KEY};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Mailboxes and sites shown per result at most.
const MEMBERS: usize = 24;

/// The live directory index of a data directory.
#[derive(Debug)]
pub struct Directory {
    reader: Reader,
    index_dir: PathBuf,
    info: Option<ImportSummary>,
}

/// A mailbox in a result.
#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    pub adresse: String,
    /// `PER` or `ORG`.
    pub type_bal: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub structure: String,
}

/// A practice site in a result.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub nom: String,
    pub adresse: String,
    pub code_postal: String,
    pub commune: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub telephone: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode_exercice: String,
}

/// One person or structure found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// National id (`8`+RPPS, `0`+ADELI), `S:`structure or `B:`mailbox.
    pub id: String,
    /// `personne` or `structure`.
    pub kind: &'static str,
    pub score: f32,
    pub nom: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identifiant: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profession: String,
    pub specialites: Vec<String>,
    pub bal: Vec<Mailbox>,
    pub sites: Vec<Site>,
}

/// The answer to a query.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub query: String,
    pub took_us: u64,
    /// True when every hit matches every word; false when none did and
    /// the hits are the closest partial matches.
    pub all_words: bool,
    pub interpretation: Vec<Word>,
    pub hits: Vec<Hit>,
}

/// Every field of one person or structure.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub id: String,
    pub records: Vec<DetailRecord>,
}

/// One source line, every non-empty column with its published name.
#[derive(Debug, Clone, Serialize)]
pub struct DetailRecord {
    /// `activite`, `bal`, `savoir_faire` or `diplome`.
    pub source: &'static str,
    pub fields: FieldList,
}

/// Column name → value, in file order.
#[derive(Debug, Clone, Default)]
pub struct FieldList(pub Vec<(String, String)>);

impl Serialize for FieldList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Path of the live index named by `dir/current`.
pub fn current_index(dir: &Path) -> Result<PathBuf, Error> {
    let name =
        std::fs::read_to_string(dir.join(CURRENT)).map_err(|_| Error::NoIndex(dir.to_owned()))?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err(Error::Corrupt(format!("{CURRENT} names {name:?}")));
    }
    Ok(dir.join(name))
}

impl Directory {
    /// Opens the live index of `dir` (`<data-dir>/directory`).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let index_dir = current_index(dir)?;
        let reader = Reader::open(&index_dir)?;
        let info = std::fs::read(index_dir.join(INFO_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Self {
            reader,
            index_dir,
            info,
        })
    }

    /// The index directory in use.
    pub fn index_dir(&self) -> &Path {
        &self.index_dir
    }

    /// What the import that built this index reported.
    pub fn info(&self) -> Option<&ImportSummary> {
        self.info.as_ref()
    }

    /// Searches free text (plus explicit filters), at most `limit` groups.
    pub fn search(
        &self,
        text: &str,
        filters: &Filters,
        limit: usize,
    ) -> Result<SearchResult, Error> {
        let started = Instant::now();
        let limit = limit.clamp(1, 200);
        let query = Query::parse(text).with_filters(filters);
        let searcher = self.reader.searcher();
        let mut hits = Vec::new();
        let mut all_words = true;
        if !query.is_empty() {
            let f = &self.reader.fields;
            let mut groups =
                self.reader
                    .grouped(&searcher, &*to_tantivy(f, &searcher, &query, true), limit)?;
            if groups.is_empty() && query.words.len() > 1 {
                all_words = false;
                groups = self.reader.grouped(
                    &searcher,
                    &*to_tantivy(f, &searcher, &query, false),
                    limit,
                )?;
            }
            for g in groups {
                let first = self.reader.members(&searcher, "", &g.matched[..1], 1)?;
                let key = first.first().map(|s| s.key.clone()).unwrap_or_default();
                let members = self.reader.members(&searcher, &key, &g.matched, MEMBERS)?;
                hits.push(self.summarize(&key, g.score, &members));
            }
        }
        Ok(SearchResult {
            query: text.to_owned(),
            took_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            all_words,
            interpretation: query.words,
            hits,
        })
    }

    /// Every field of a person (national id, RPPS, ADELI), a structure
    /// (`S:`id, FINESS, SIRET) or a mailbox address.
    pub fn show(&self, id: &str) -> Result<Option<Detail>, Error> {
        let searcher = self.reader.searcher();
        let id = id.trim();
        let mut keys = Vec::new();
        if id.contains('@') {
            keys =
                self.reader
                    .keys_with_tag(&searcher, &format!("bal:{}", id.to_lowercase()), 10)?;
        }
        if keys.is_empty() {
            let direct = self.reader.all_of(&searcher, id, 1)?;
            if !direct.is_empty() {
                keys.push(id.to_owned());
            }
        }
        for tag in crate::query::id_tags(id) {
            if !keys.is_empty() {
                break;
            }
            keys = self.reader.keys_with_tag(&searcher, &tag, 10)?;
        }
        let Some(key) = keys.into_iter().next() else {
            return Ok(None);
        };
        let stored = self.reader.all_of(&searcher, &key, 2000)?;
        let mut records = Vec::new();
        for s in &stored {
            let Some(h) = self.reader.headers.get(s.header) else {
                continue;
            };
            for line in s.lines.split('\n') {
                let row = fields(line);
                let list = h
                    .names
                    .iter()
                    .zip(row.iter())
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(k, v)| (k.clone(), v.trim().to_owned()))
                    .collect();
                records.push(DetailRecord {
                    source: source_name(s.kind),
                    fields: FieldList(list),
                });
            }
        }
        Ok(Some(Detail { id: key, records }))
    }

    fn summarize(&self, key: &str, score: f32, members: &[Stored]) -> Hit {
        let kind = if key.starts_with(STRUCTURE_KEY) || key.starts_with(MAILBOX_KEY) {
            "structure"
        } else {
            "personne"
        };
        let mut hit = Hit {
            id: key.to_owned(),
            kind,
            score,
            nom: String::new(),
            identifiant: String::new(),
            profession: String::new(),
            specialites: Vec::new(),
            bal: Vec::new(),
            sites: Vec::new(),
        };
        for s in members {
            let Some(h) = self.reader.headers.get(s.header) else {
                continue;
            };
            let v = View::new(h);
            for line in s.lines.split('\n') {
                let row = fields(line);
                let g = |i: Option<usize>| get(&row, i).to_owned();
                if hit.nom.is_empty() {
                    let name = [g(v.civ), g(v.prenom), g(v.nom)]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    hit.nom = if name.is_empty() {
                        first_non_empty(&[g(v.rs), g(v.enseigne)])
                    } else {
                        name
                    };
                }
                if hit.identifiant.is_empty() {
                    hit.identifiant = g(v.idpp);
                }
                if hit.profession.is_empty() {
                    hit.profession = g(v.prof);
                }
                let sf = g(v.sf);
                if !sf.is_empty() && !hit.specialites.contains(&sf) {
                    hit.specialites.push(sf);
                }
                match s.kind {
                    EntryKind::Mailbox => {
                        let adresse = g(v.bal);
                        if !hit.bal.iter().any(|m| m.adresse == adresse) {
                            hit.bal.push(Mailbox {
                                adresse,
                                type_bal: g(v.bal_type),
                                service: g(v.service),
                                structure: first_non_empty(&[g(v.rs), g(v.enseigne)]),
                            });
                        }
                    }
                    EntryKind::Activity => {
                        let site = Site {
                            nom: first_non_empty(&[g(v.rs), g(v.enseigne)]),
                            adresse: [g(v.num), g(v.ind), g(v.street_type), g(v.street)]
                                .into_iter()
                                .filter(|s| !s.is_empty())
                                .collect::<Vec<_>>()
                                .join(" "),
                            code_postal: g(v.cp),
                            commune: g(v.city),
                            telephone: g(v.phone),
                            mode_exercice: g(v.mode),
                        };
                        if !hit.sites.iter().any(|x| {
                            x.nom == site.nom
                                && x.adresse == site.adresse
                                && x.code_postal == site.code_postal
                        }) {
                            hit.sites.push(site);
                        }
                    }
                    EntryKind::Skill | EntryKind::Diploma => {}
                }
            }
        }
        hit
    }
}

fn first_non_empty(values: &[String]) -> String {
    values
        .iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default()
}

fn source_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Activity => "activite",
        EntryKind::Mailbox => "bal",
        EntryKind::Skill => "savoir_faire",
        EntryKind::Diploma => "diplome",
    }
}

/// Column positions for summaries, valid for both the activity and the
/// mailbox files.
struct View {
    civ: Option<usize>,
    nom: Option<usize>,
    prenom: Option<usize>,
    idpp: Option<usize>,
    prof: Option<usize>,
    sf: Option<usize>,
    rs: Option<usize>,
    enseigne: Option<usize>,
    num: Option<usize>,
    ind: Option<usize>,
    street_type: Option<usize>,
    street: Option<usize>,
    cp: Option<usize>,
    city: Option<usize>,
    phone: Option<usize>,
    mode: Option<usize>,
    bal: Option<usize>,
    bal_type: Option<usize>,
    service: Option<usize>,
}

impl View {
    fn new(h: &Header) -> Self {
        let f = |c: &[&str]| h.find(c);
        Self {
            civ: f(&[
                "libelle civilite d exercice",
                "libelle civilite exercice",
                "civilite d exercice",
            ]),
            nom: f(&["nom d exercice"]),
            prenom: f(&["prenom d exercice"]),
            idpp: f(&["identifiant pp"]),
            prof: f(&["libelle profession"]),
            sf: f(&["libelle savoir faire"]),
            rs: f(&["raison sociale site", "raison sociale"]),
            enseigne: f(&["enseigne commerciale site", "enseigne commerciale"]),
            num: f(&["numero voie coord structure", "l4numerovoie"]),
            ind: f(&[
                "indice repetition voie coord structure",
                "l4complementnumerovoie",
            ]),
            street_type: f(&["libelle type de voie coord structure", "nl4typevoie"]),
            street: f(&["libelle voie coord structure", "l4libellevoie"]),
            cp: f(&["code postal coord structure", "code postal"]),
            city: f(&["libelle commune coord structure", "l6ligneacheminement"]),
            phone: f(&["telephone coord structure"]),
            mode: f(&["libelle mode exercice"]),
            bal: f(&["adresse bal"]),
            bal_type: f(&["type de bal"]),
            service: f(&["service de rattachement"]),
        }
    }
}
