//! The tantivy index: schema, documents, and the search that groups hits
//! per person or structure.
//!
//! Every folded word is indexed once, whole. A prefix typed in a query is
//! answered from the term dictionary: the few words starting with it, or
//! all of them at once as a bitset when there are many. Indexing prefixes
//! as tokens more than doubled the tokens of the import for no gain at
//! search time.
//! Identifiers, postcodes, départements and codes are exact tags in a
//! second field.

use crate::error::Error;
use crate::line::Header;
use crate::query::{Alt, Query};
use crate::record::{Entry, EntryKind, MAILBOX_KEY, STRUCTURE_KEY};
use crate::text::stable_hash;
use std::collections::HashMap;
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BitSetDocSet, BooleanQuery, ConstScoreQuery, ConstScorer, DisjunctionMaxQuery, EmptyQuery,
    EnableScoring, Explanation, Occur, PhrasePrefixQuery, Query as TQuery, Scorer, TermQuery,
    Weight,
};
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::WhitespaceTokenizer;
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, Index, IndexReader, ReloadPolicy, Score, Searcher,
    SegmentReader, TERMINATED, TantivyDocument, Term,
};

const WS: &str = "mss_ws";
/// A prefix matching at most this many words is the union of their
/// postings (cheap to intersect with the other words); beyond, every word
/// starting with it is read into one bitset.
const MAX_EXPANSION: usize = 8;
/// Matching documents scored per query at most (see `grouped`).
pub const MAX_MATCHES: usize = 5000;

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub word: Field,
    pub tag: Field,
    pub key: Field,
    pub xkey: Field,
    pub gid: Field,
    pub kind: Field,
    pub hdr: Field,
    pub lines: Field,
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WS)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let tags = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let fields = Fields {
            word: b.add_text_field("word", words),
            tag: b.add_text_field("tag", tags),
            // Stored only: a person's key is their national id, already the
            // tag `id:<key>` (one unique term less per document at import);
            // structure and mailbox keys are indexed in `xkey`.
            key: b.add_text_field("key", STORED),
            xkey: b.add_text_field("xkey", STRING),
            gid: b.add_u64_field("gid", FAST),
            // Stored only: searches use the `kind:` tag.
            kind: b.add_text_field("kind", STORED),
            hdr: b.add_u64_field("hdr", STORED),
            lines: b.add_text_field("lines", STORED),
        };
        (b.build(), fields)
    }

    pub fn from_schema(schema: &Schema) -> Result<Fields, Error> {
        let f = |n: &str| {
            schema
                .get_field(n)
                .map_err(|_| Error::Corrupt(format!("field {n} missing")))
        };
        Ok(Fields {
            word: f("word")?,
            tag: f("tag")?,
            key: f("key")?,
            xkey: f("xkey")?,
            gid: f("gid")?,
            kind: f("kind")?,
            hdr: f("hdr")?,
            lines: f("lines")?,
        })
    }
}

/// Registers the tokenizer the schema names (tantivy does not persist it).
pub fn register_tokenizers(index: &Index) {
    index
        .tokenizers()
        .register(WS, WhitespaceTokenizer::default());
}

/// An entry as tantivy indexes it. Its strings go to tantivy as they are:
/// building a `TantivyDocument` copied every word, tag and line once more.
pub struct IndexDoc {
    fields: Fields,
    entry: Entry,
    gid: u64,
}

impl IndexDoc {
    pub fn new(fields: Fields, entry: Entry) -> Self {
        Self {
            gid: stable_hash(&entry.key),
            fields,
            entry,
        }
    }
}

/// A value of an [`IndexDoc`]: a borrowed string or a number.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Str(&'a str),
    U64(u64),
}

impl<'a> tantivy::schema::Value<'a> for Val<'a> {
    type ArrayIter = std::iter::Empty<Self>;
    type ObjectIter = std::iter::Empty<(&'a str, Self)>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        ReferenceValue::Leaf(match *self {
            Val::Str(s) => ReferenceValueLeaf::Str(s),
            Val::U64(n) => ReferenceValueLeaf::U64(n),
        })
    }
}

/// The fields of an [`IndexDoc`]: the fixed ones, then one per tag.
pub struct DocValues<'a> {
    fixed: std::array::IntoIter<Option<(Field, Val<'a>)>, 8>,
    tag: Field,
    /// What is left of the `\n`-separated tags. Scanned by hand: tags are
    /// short, and `str::split` cost a memchr call apiece (tantivy walks
    /// every document four times).
    tags: &'a str,
}

impl<'a> Iterator for DocValues<'a> {
    type Item = (Field, Val<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(v) = self.fixed.by_ref().flatten().next() {
            return Some(v);
        }
        loop {
            if self.tags.is_empty() {
                return None;
            }
            let end = self
                .tags
                .bytes()
                .position(|b| b == b'\n')
                .unwrap_or(self.tags.len());
            let t = &self.tags[..end];
            self.tags = self.tags.get(end + 1..).unwrap_or("");
            if !t.is_empty() {
                return Some((self.tag, Val::Str(t)));
            }
        }
    }
}

impl tantivy::Document for IndexDoc {
    type Value<'a> = Val<'a>;
    type FieldsValuesIter<'a> = DocValues<'a>;

    fn iter_fields_and_values(&self) -> DocValues<'_> {
        let (f, e) = (&self.fields, &self.entry);
        // Savoir-faire and diplomas are only found through their key.
        let searched = matches!(e.kind, EntryKind::Activity | EntryKind::Mailbox);
        let kind_tag = match e.kind {
            EntryKind::Mailbox => "kind:bal",
            _ => "kind:act",
        };
        DocValues {
            fixed: [
                searched.then_some((f.word, Val::Str(&e.words))),
                searched.then_some((f.tag, Val::Str(kind_tag))),
                searched.then_some((f.key, Val::Str(&e.key))),
                (!searched || key_is_indexed(&e.key)).then_some((f.xkey, Val::Str(&e.key))),
                searched.then_some((f.gid, Val::U64(self.gid))),
                Some((f.kind, Val::Str(e.kind.tag()))),
                Some((f.hdr, Val::U64(e.header))),
                Some((f.lines, Val::Str(&e.lines))),
            ]
            .into_iter(),
            tag: f.tag,
            // Savoir-faire and diploma entries have no tags.
            tags: &e.tags,
        }
    }
}

/// The tantivy query of a parsed query: every required word must match one
/// of its alternatives (`all`), or any word may (`!all`, the fallback).
pub fn to_tantivy(f: &Fields, searcher: &Searcher, q: &Query, all: bool) -> Box<dyn TQuery> {
    let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
    let several = all
        && q.words
            .iter()
            .filter(|w| w.required && !w.alts.is_empty())
            .count()
            > 1;
    for w in &q.words {
        // Alternatives of one weight (tags, whole words) intersected with
        // other words: one bitset (see `AnyOf`). Alone, the union is
        // cheaper: it stops after MAX_MATCHES documents, the bitset reads all.
        if several && w.alts.len() > 1 && w.alts.iter().all(|a| !matches!(a, Alt::Prefix(_))) {
            let terms = w
                .alts
                .iter()
                .map(|a| match a {
                    Alt::Tag(t) => Term::from_field_text(f.tag, t),
                    Alt::Exact(x) | Alt::Prefix(x) => Term::from_field_text(f.word, x),
                })
                .collect();
            let word: Box<dyn TQuery> = Box::new(AnyOf { terms, score: 2.0 });
            let word: Box<dyn TQuery> = if w.bonus.is_empty() {
                word
            } else {
                let mut parts = vec![(Occur::Must, word)];
                parts.extend(w.bonus.iter().map(|b| (Occur::Should, bonus_query(f, b))));
                Box::new(BooleanQuery::new(parts))
            };
            let occur = if all && w.required {
                Occur::Must
            } else {
                Occur::Should
            };
            clauses.push((occur, word));
            continue;
        }
        let mut alts: Vec<Box<dyn TQuery>> =
            w.alts.iter().map(|a| alt_query(f, searcher, a)).collect();
        let word: Box<dyn TQuery> = match alts.len() {
            0 => continue,
            1 => alts.pop().expect("one alternative"),
            // A word scores its best alternative, not their sum.
            _ => Box::new(DisjunctionMaxQuery::new(alts)),
        };
        // The bonus sits inside the word's own clause: each word is one
        // scorer, and the top level a plain intersection.
        let word: Box<dyn TQuery> = if w.bonus.is_empty() {
            word
        } else {
            let mut parts = vec![(Occur::Must, word)];
            parts.extend(w.bonus.iter().map(|b| (Occur::Should, bonus_query(f, b))));
            Box::new(BooleanQuery::new(parts))
        };
        let occur = if all && w.required {
            Occur::Must
        } else {
            Occur::Should
        };
        clauses.push((occur, word));
    }
    // A mailbox is what users look for: it edges ahead at equal match.
    let bal = TermQuery::new(
        Term::from_field_text(f.tag, "kind:bal"),
        IndexRecordOption::Basic,
    );
    clauses.push((
        Occur::Should,
        Box::new(ConstScoreQuery::new(Box::new(bal), 0.3)),
    ));
    Box::new(BooleanQuery::new(clauses))
}

/// Documents holding any of `terms`, read into one bitset per segment:
/// a union scorer re-reads a window of every alternative at each far seek,
/// which is what made « général lemaire » slow (family tag ∪ word).
#[derive(Clone, Debug)]
struct AnyOf {
    terms: Vec<Term>,
    score: Score,
}

impl TQuery for AnyOf {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let plain = EnableScoring::disabled_from_schema(scoring.schema());
        let alts = self
            .terms
            .iter()
            .map(|t| TermQuery::new(t.clone(), IndexRecordOption::Basic).weight(plain))
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Box::new(AnyOfWeight {
            alts,
            score: self.score,
        }))
    }
}

struct AnyOfWeight {
    alts: Vec<Box<dyn Weight>>,
    score: Score,
}

impl Weight for AnyOfWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut bits = BitSet::with_max_value(reader.max_doc());
        for w in &self.alts {
            w.for_each_no_score(reader, &mut |docs| {
                for &d in docs {
                    bits.insert(d);
                }
            })?;
        }
        Ok(Box::new(ConstScorer::new(
            BitSetDocSet::from(bits),
            self.score * boost,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut s = self.scorer(reader, 1.0)?;
        if s.seek(doc) == doc {
            Ok(Explanation::new("any of", self.score))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            )))
        }
    }
}

fn alt_query(f: &Fields, searcher: &Searcher, a: &Alt) -> Box<dyn TQuery> {
    // Constant scores: how a word matched matters (whole word 2, prefix 1,
    // tag 2), not how rare the matching word is, so DUPONT ranks above
    // DUPONTEL for « dupont » although DUPONTEL is rarer.
    let c =
        |q: Box<dyn TQuery>, s: Score| -> Box<dyn TQuery> { Box::new(ConstScoreQuery::new(q, s)) };
    match a {
        Alt::Prefix(p) => match expand(f, searcher, p) {
            Some(words) if words.is_empty() => Box::new(EmptyQuery),
            Some(mut words) if words.len() == 1 => {
                let t = words.pop().expect("one word");
                c(Box::new(TermQuery::new(t, IndexRecordOption::Basic)), 1.0)
            }
            Some(words) => {
                let clauses = words
                    .into_iter()
                    .map(|t| -> (Occur, Box<dyn TQuery>) {
                        (
                            Occur::Should,
                            Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
                        )
                    })
                    .collect();
                c(Box::new(BooleanQuery::new(clauses)), 1.0)
            }
            // Many words start with it: all of them, read once into a
            // bitset per segment (a term-range scan, no expansion limit;
            // its cost is bounded by the postings of the index).
            None => {
                let mut q = PhrasePrefixQuery::new(vec![Term::from_field_text(f.word, p)]);
                q.set_max_expansions(u32::MAX);
                c(Box::new(q), 1.0)
            }
        },
        Alt::Exact(w) => c(term(f.word, w), 2.0),
        Alt::Tag(t) => c(term(f.tag, t), 2.0),
    }
}

/// A whole-word match only adds to the score, it never decides a match.
fn bonus_query(f: &Fields, a: &Alt) -> Box<dyn TQuery> {
    match a {
        Alt::Exact(w) | Alt::Prefix(w) => Box::new(ConstScoreQuery::new(term(f.word, w), 1.0)),
        Alt::Tag(t) => Box::new(ConstScoreQuery::new(term(f.tag, t), 1.0)),
    }
}

/// Indexed words starting with `prefix`, or None when there are too many.
fn expand(f: &Fields, searcher: &Searcher, prefix: &str) -> Option<Vec<Term>> {
    let mut upper = prefix.as_bytes().to_vec();
    upper.push(0xFF);
    let mut out: Vec<Term> = Vec::new();
    for seg in searcher.segment_readers() {
        let inv = seg.inverted_index(f.word).ok()?;
        let mut stream = inv
            .terms()
            .range()
            .ge(prefix.as_bytes())
            .lt(&upper)
            .into_stream()
            .ok()?;
        while stream.advance() {
            let Ok(word) = std::str::from_utf8(stream.key()) else {
                continue;
            };
            let t = Term::from_field_text(f.word, word);
            if !out.contains(&t) {
                if out.len() == MAX_EXPANSION {
                    return None;
                }
                out.push(t);
            }
        }
    }
    Some(out)
}

/// Whether `xkey` indexes this key: structures (`S:`) and bare mailboxes
/// (`B:`); a person's key is found through its `id:` tag.
pub fn key_is_indexed(key: &str) -> bool {
    key.starts_with(STRUCTURE_KEY) || key.starts_with(MAILBOX_KEY)
}

/// The query finding every activity and mailbox document of `key`
/// (callers keep only the documents whose stored key is `key`).
fn key_query(f: &Fields, key: &str) -> Box<dyn TQuery> {
    if key_is_indexed(key) {
        term(f.xkey, key)
    } else {
        term(f.tag, &format!("id:{}", key.to_lowercase()))
    }
}

fn term(field: Field, text: &str) -> Box<dyn TQuery> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

/// An open index, ready to search.
pub struct Reader {
    pub(crate) reader: IndexReader,
    /// The group id column of each segment, read once: through `pread`,
    /// opening it per query would read it whole each time.
    gids: Vec<tantivy::columnar::Column<u64>>,
    pub(crate) fields: Fields,
    pub(crate) headers: Vec<Header>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// File beside the tantivy files with the header of every imported file.
pub const HEADERS_FILE: &str = "mss-headers.json";

impl Reader {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let files =
            crate::pread::PreadDirectory::open(dir).map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open(files).map_err(|e| Error::Index(e.to_string()))?;
        register_tokenizers(&index);
        let fields = Fields::from_schema(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| Error::Index(e.to_string()))?;
        let text =
            std::fs::read_to_string(dir.join(HEADERS_FILE)).map_err(|e| Error::io(dir, e))?;
        let names: Vec<Vec<String>> = serde_json::from_str(&text)
            .map_err(|e| Error::Corrupt(format!("{HEADERS_FILE}: {e}")))?;
        let headers = names.into_iter().map(Header::from_names).collect();
        let gids = reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("gid"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Index(e.to_string()))?;
        Ok(Self {
            reader,
            gids,
            fields,
            headers,
        })
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Top documents of `q`, then grouped by key in score order.
    pub fn grouped(
        &self,
        searcher: &Searcher,
        q: &dyn TQuery,
        groups: usize,
    ) -> Result<Vec<Group>, Error> {
        let limit = (groups * 6).max(30);
        let weight = q
            .weight(EnableScoring::enabled_from_searcher(searcher))
            .map_err(|e| Error::Index(e.to_string()))?;
        // Bounded work: at most MAX_MATCHES matching documents are scored.
        // A precise query has fewer and is ranked exactly; a broad one
        // (« infirmier 38 ») has thousands of equally good answers anyway.
        let mut found: Vec<(Score, DocAddress)> = Vec::new();
        for (ord, seg) in searcher.segment_readers().iter().enumerate() {
            let mut scorer = weight
                .scorer(seg, 1.0)
                .map_err(|e| Error::Index(e.to_string()))?;
            let mut doc = scorer.doc();
            while doc != TERMINATED && found.len() < MAX_MATCHES {
                found.push((scorer.score(), DocAddress::new(ord as u32, doc)));
                doc = scorer.advance();
            }
        }
        let by_score = |a: &(Score, DocAddress), b: &(Score, DocAddress)| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
        };
        if found.len() > limit {
            found.select_nth_unstable_by(limit, by_score);
            found.truncate(limit);
        }
        found.sort_unstable_by(by_score);
        let top = found;
        let mut order: Vec<Group> = Vec::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (score, addr) in top {
            let col = self
                .gids
                .get(addr.segment_ord as usize)
                .ok_or_else(|| Error::Corrupt("segment without group ids".into()))?;
            let gid = col.first(addr.doc_id).unwrap_or(0);
            match seen.get(&gid) {
                Some(&i) => order[i].matched.push(addr),
                None => {
                    if order.len() == groups {
                        continue;
                    }
                    seen.insert(gid, order.len());
                    order.push(Group {
                        score,
                        matched: vec![addr],
                    });
                }
            }
        }
        Ok(order)
    }

    /// Documents of a group: those that matched first, then the others
    /// with the same key, at most `max`.
    pub fn members(
        &self,
        searcher: &Searcher,
        key: &str,
        first: &[DocAddress],
        max: usize,
    ) -> Result<Vec<Stored>, Error> {
        let mut out: Vec<Stored> = Vec::new();
        for &a in first.iter().take(max) {
            out.push(self.stored(searcher, a)?);
        }
        if out.len() < max && !key.is_empty() {
            let q = key_query(&self.fields, key);
            let more = searcher
                .search(
                    &*q,
                    &TopDocs::with_limit(max + first.len()).order_by_score(),
                )
                .map_err(|e| Error::Index(e.to_string()))?;
            let mut more: Vec<DocAddress> = more
                .into_iter()
                .map(|(_, a)| a)
                .filter(|a| !first.contains(a))
                .collect();
            more.sort();
            for a in more {
                if out.len() == max {
                    break;
                }
                let s = self.stored(searcher, a)?;
                if s.key == key {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// Every document of a key, including savoir-faire and diplomas.
    pub fn all_of(&self, searcher: &Searcher, key: &str, max: usize) -> Result<Vec<Stored>, Error> {
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let q = BooleanQuery::new(vec![
            (Occur::Should, key_query(&self.fields, key)),
            (Occur::Should, term(self.fields.xkey, key)),
        ]);
        let mut hits: Vec<DocAddress> = searcher
            .search(&q, &TopDocs::with_limit(max).order_by_score())
            .map_err(|e| Error::Index(e.to_string()))?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        hits.sort();
        let mut out = Vec::new();
        for a in hits {
            let s = self.stored(searcher, a)?;
            // Savoir-faire and diplomas match on `xkey` and store no key.
            if s.key == key || matches!(s.kind, EntryKind::Skill | EntryKind::Diploma) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Keys of the documents carrying tag `tag` (an identifier, a mailbox).
    pub fn keys_with_tag(
        &self,
        searcher: &Searcher,
        tag: &str,
        max: usize,
    ) -> Result<Vec<String>, Error> {
        let hits = searcher
            .search(
                &*term(self.fields.tag, tag),
                &TopDocs::with_limit(max).order_by_score(),
            )
            .map_err(|e| Error::Index(e.to_string()))?;
        let mut keys = Vec::new();
        for (_, a) in hits {
            let k = self.stored(searcher, a)?.key;
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        Ok(keys)
    }

    fn stored(&self, searcher: &Searcher, a: DocAddress) -> Result<Stored, Error> {
        let doc: TantivyDocument = searcher.doc(a).map_err(|e| Error::Index(e.to_string()))?;
        let s = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let header = doc
            .get_first(self.fields.hdr)
            .and_then(|v| v.as_u64())
            .unwrap_or(u64::MAX);
        Ok(Stored {
            key: s(self.fields.key),
            kind: EntryKind::from_tag(&s(self.fields.kind)).unwrap_or(EntryKind::Activity),
            header: usize::try_from(header).unwrap_or(usize::MAX),
            lines: s(self.fields.lines),
        })
    }
}

/// A group of hits sharing a key, with its best score.
#[derive(Debug)]
pub struct Group {
    pub score: f32,
    pub matched: Vec<DocAddress>,
}

/// A stored document.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub kind: EntryKind,
    pub header: usize,
    pub lines: String,
}
