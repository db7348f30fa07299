//! A generator of extraction files in the exact published format (real
//! header lines, trailing `|` on PS_LibreAcces lines, optional BOM and
//! CRLF, DOM-TOM postcodes, ADELI rows, several savoir-faire per person,
//! PER and ORG mailboxes), deterministic from a seed, at any size up to the
//! real volumes. No real extraction may enter the repository (it holds
//! personal data), so tests and benchmarks use these files.
//!
//! Every name, address and number is invented; the vocabularies (codes and
//! labels of professions and specialties) follow the published ones.

use crate::format::{
    ACTIVITY_COLUMNS, ACTIVITY_COLUMNS_OLD, DIPLOMA_COLUMNS, MAILBOX_COLUMNS, SKILL_COLUMNS,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// People in the activity file; 1,450,000 gives the real volume
    /// (about 2.2 million activity rows and 540,000 mailboxes).
    pub people: usize,
    /// Start every file with a UTF-8 BOM.
    pub bom: bool,
    /// End lines with `\r\n`.
    pub crlf: bool,
    /// Use the 52-column activity header of 2021–2023.
    pub old_header: bool,
    /// Write one Windows-1252 line in every 1,000 (stray bytes).
    pub stray_bytes: bool,
    /// Queries to sample for benchmarks (0: none).
    pub queries: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            people: 1000,
            bom: false,
            crlf: false,
            old_header: false,
            stray_bytes: false,
            queries: 0,
        }
    }
}

/// The real volume, in people.
pub const FULL_PEOPLE: usize = 1_450_000;

/// What was written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub people: u64,
    pub activity_rows: u64,
    pub mailbox_rows: u64,
    pub per_mailboxes: u64,
    pub org_mailboxes: u64,
    pub skill_rows: u64,
    pub diploma_rows: u64,
    pub queries: u64,
}

/// SplitMix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn weighted<'a, T>(&mut self, items: &'a [(u32, T)]) -> &'a T {
        let total: u32 = items.iter().map(|(w, _)| w).sum();
        let mut r = (self.next_u64() % u64::from(total)) as u32;
        for (w, t) in items {
            if r < *w {
                return t;
            }
            r -= w;
        }
        &items[0].1
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next_u64() % 10) as u8))
            .collect()
    }
}

const SURNAMES: &[&str] = &[
    "MARTIN",
    "BERNARD",
    "THOMAS",
    "PETIT",
    "ROBERT",
    "RICHARD",
    "DURAND",
    "DUBOIS",
    "MOREAU",
    "LAURENT",
    "SIMON",
    "MICHEL",
    "LEFEBVRE",
    "LEROY",
    "ROUX",
    "DAVID",
    "BERTRAND",
    "MOREL",
    "FOURNIER",
    "GIRARD",
    "BONNET",
    "DUPONT",
    "LAMBERT",
    "FONTAINE",
    "ROUSSEAU",
    "VINCENT",
    "MULLER",
    "LEFEVRE",
    "FAURE",
    "ANDRE",
    "MERCIER",
    "BLANC",
    "GUERIN",
    "BOYER",
    "GARNIER",
    "CHEVALIER",
    "FRANCOIS",
    "LEGRAND",
    "GAUTHIER",
    "GARCIA",
    "PERRIN",
    "ROBIN",
    "CLEMENT",
    "MORIN",
    "NICOLAS",
    "HENRY",
    "ROUSSEL",
    "MATHIEU",
    "GAUTIER",
    "MASSON",
    "MARCHAND",
    "DUVAL",
    "DENIS",
    "DUMONT",
    "MARIE",
    "LEMAIRE",
    "NOEL",
    "MEYER",
    "DUFOUR",
    "MEUNIER",
    "BRUN",
    "BLANCHARD",
    "GIRAUD",
    "JOLY",
    "RIVIERE",
    "LUCAS",
    "BRUNET",
    "GAILLARD",
    "BARBIER",
    "ARNAUD",
    "MARTINEZ",
    "GERARD",
    "ROCHE",
    "RENARD",
    "SCHMITT",
    "ROY",
    "LEROUX",
    "COLIN",
    "VIDAL",
    "CARON",
    "PICARD",
    "ROGER",
    "FABRE",
    "AUBERT",
    "LEMOINE",
    "RENAUD",
    "DUMAS",
    "LACROIX",
    "OLIVIER",
    "PHILIPPE",
    "BOURGEOIS",
    "PIERRE",
    "BENOIT",
    "REY",
    "LECLERC",
    "PAYET",
    "ROLLAND",
    "LECLERCQ",
    "GUILLAUME",
    "LECOMTE",
    "LOPEZ",
    "JEAN",
    "DUPUY",
    "GUILLOT",
    "HUBERT",
    "BERGER",
    "CARPENTIER",
    "SANCHEZ",
    "DUPUIS",
    "MOULIN",
    "LOUIS",
    "DESCHAMPS",
    "HUET",
    "VASSEUR",
    "PEREZ",
    "BOUCHER",
    "FLEURY",
    "ROYER",
    "KLEIN",
    "JACQUET",
    "ADAM",
    "PARIS",
    "POIRIER",
    "MARTY",
    "AUBRY",
    "GUYOT",
    "CARRE",
    "CHARLES",
    "RENAULT",
    "CHARPENTIER",
    "MÉNARD",
    "MAILLARD",
    "BARON",
    "BERTIN",
    "BAILLY",
    "HERVE",
    "SCHNEIDER",
    "FERNANDEZ",
    "LE GALL",
    "COLLET",
    "LÉGER",
    "BOUVIER",
    "JULIEN",
    "PRÉVOST",
    "MILLET",
    "PERROT",
    "DANIEL",
    "LE ROUX",
    "COUSIN",
    "GERMAIN",
    "N'DIAYE",
    "HOARAU",
    "GRONDIN",
    "FONTENEAU",
    "D'ALMEIDA",
    "SAINT-JEAN",
    "DE LA FONTAINE",
    "CÔTÉ",
    "LAFORÊT",
    "BÉNARD",
];
const SYLLABLES: &[&str] = &[
    "KER", "MAR", "LA", "BER", "TIN", "DU", "VAL", "MON", "ROC", "HE", "LOU", "GRA", "NOU", "VEL",
    "CHA", "RON", "BEL", "FON", "TAI", "NE", "SAU", "VAGE", "RIE", "GAL", "LAN", "DRE", "COR",
    "NIL", "BAS", "TIDE", "MO", "REL",
];
const FIRST_NAMES: &[&str] = &[
    "Jean",
    "Marie",
    "Pierre",
    "Nathalie",
    "Michel",
    "Isabelle",
    "Philippe",
    "Sylvie",
    "Alain",
    "Catherine",
    "Nicolas",
    "Christine",
    "Christophe",
    "Sophie",
    "Laurent",
    "Sandrine",
    "Éric",
    "Valérie",
    "Stéphane",
    "Céline",
    "Olivier",
    "Stéphanie",
    "Frédéric",
    "Véronique",
    "Julien",
    "Julie",
    "Sébastien",
    "Aurélie",
    "Thomas",
    "Émilie",
    "David",
    "Claire",
    "François",
    "Anne",
    "Patrick",
    "Hélène",
    "Guillaume",
    "Camille",
    "Antoine",
    "Laure",
    "Jean-Pierre",
    "Marie-Claude",
    "Jérôme",
    "Agnès",
    "Benoît",
    "Maëlle",
    "Noël",
    "Chloé",
    "Loïc",
    "Zoé",
    "Mathieu",
    "Pauline",
    "Vincent",
    "Élodie",
    "Hugo",
    "Léa",
    "Lucas",
    "Manon",
    "Yannick",
    "Gaëlle",
];

/// (commune, postcode, INSEE code, département code, département label)
const CITIES: &[(&str, &str, &str, &str, &str)] = &[
    ("PARIS", "75015", "75115", "75", "Paris"),
    ("PARIS", "75012", "75112", "75", "Paris"),
    ("PARIS", "75018", "75118", "75", "Paris"),
    ("LYON", "69003", "69383", "69", "Rhône"),
    ("MARSEILLE", "13005", "13205", "13", "Bouches-du-Rhône"),
    ("TOULOUSE", "31000", "31555", "31", "Haute-Garonne"),
    ("NANTES", "44000", "44109", "44", "Loire-Atlantique"),
    ("BORDEAUX", "33000", "33063", "33", "Gironde"),
    ("LILLE", "59000", "59350", "59", "Nord"),
    ("STRASBOURG", "67000", "67482", "67", "Bas-Rhin"),
    ("RENNES", "35000", "35238", "35", "Ille-et-Vilaine"),
    ("MONTPELLIER", "34000", "34172", "34", "Hérault"),
    ("NICE", "06000", "06088", "06", "Alpes-Maritimes"),
    ("MONTLUCON", "03100", "03185", "03", "Allier"),
    ("MOULINS", "03000", "03190", "03", "Allier"),
    ("VICHY", "03200", "03310", "03", "Allier"),
    ("CLERMONT-FERRAND", "63000", "63113", "63", "Puy-de-Dôme"),
    ("RIOM", "63200", "63300", "63", "Puy-de-Dôme"),
    ("PONTARLIER", "25300", "25462", "25", "Doubs"),
    ("BESANCON", "25000", "25056", "25", "Doubs"),
    ("AJACCIO", "20000", "2A004", "2A", "Corse-du-Sud"),
    ("BASTIA", "20200", "2B033", "2B", "Haute-Corse"),
    ("POINTE-A-PITRE", "97110", "97120", "971", "Guadeloupe"),
    ("FORT-DE-FRANCE", "97200", "97209", "972", "Martinique"),
    ("CAYENNE", "97300", "97302", "973", "Guyane"),
    ("SAINT-DENIS", "97400", "97411", "974", "La Réunion"),
    ("SAINT-PIERRE", "97410", "97416", "974", "La Réunion"),
    (
        "SAINT-PIERRE",
        "97500",
        "97502",
        "975",
        "Saint-Pierre-et-Miquelon",
    ),
    ("MAMOUDZOU", "97600", "97611", "976", "Mayotte"),
    ("SAINT-ETIENNE", "42000", "42218", "42", "Loire"),
    ("LE MANS", "72000", "72181", "72", "Sarthe"),
    ("LA ROCHELLE", "17000", "17300", "17", "Charente-Maritime"),
    ("SAINT-MALO", "35400", "35288", "35", "Ille-et-Vilaine"),
    ("L'ISLE-D'ABEAU", "38080", "38193", "38", "Isère"),
    ("GRENOBLE", "38000", "38185", "38", "Isère"),
    ("DIJON", "21000", "21231", "21", "Côte-d'Or"),
    ("BREST", "29200", "29019", "29", "Finistère"),
    ("QUIMPER", "29000", "29232", "29", "Finistère"),
    ("LIMOGES", "87000", "87085", "87", "Haute-Vienne"),
    ("ROUEN", "76000", "76540", "76", "Seine-Maritime"),
];

/// (type code, type label, street name)
const STREET_TYPES: &[(&str, &str)] = &[
    ("R", "Rue"),
    ("AV", "Avenue"),
    ("BD", "Boulevard"),
    ("PL", "Place"),
    ("CHE", "Chemin"),
    ("ALL", "Allée"),
    ("IMP", "Impasse"),
    ("RTE", "Route"),
    ("FG", "Faubourg"),
    ("QU", "Quai"),
];
const STREET_NAMES: &[&str] = &[
    "DE L'EGLISE",
    "VICTOR HUGO",
    "JEAN JAURES",
    "DU GENERAL DE GAULLE",
    "DE LA REPUBLIQUE",
    "PASTEUR",
    "DES LILAS",
    "SAINT-MARTIN",
    "DU MARECHAL FOCH",
    "GAMBETTA",
    "DE LA GARE",
    "DU 8 MAI 1945",
    "DES ECOLES",
    "NATIONALE",
    "DE PARIS",
    "DU MOULIN",
    "DES TILLEULS",
    "CARNOT",
    "DE VERDUN",
    "DU CHATEAU",
    "DE LA MAIRIE",
    "DES ACACIAS",
    "JEAN MOULIN",
    "ANATOLE FRANCE",
    "ARISTIDE BRIAND",
    "DU MARECHAL LECLERC",
    "DE LA LIBERATION",
    "EMILE ZOLA",
    "DES PRES",
    "DU STADE",
    "DENIS PAPIN",
    "DES ROSIERS",
    "ST EXUPERY",
    "DU DOCTEUR ROUX",
    "DE LA PAIX",
    "DE L'HOPITAL",
    "DES CERISIERS",
    "LOUIS PASTEUR",
    "ALSACE LORRAINE",
    "DU COMMERCE",
];

/// (profession code, label, weight, per cent with an ADELI number, mailbox domain)
/// (code, label, per cent with an ADELI number, mailbox domain)
type Profession = (&'static str, &'static str, u64, &'static str);
const PROFESSIONS: &[(u32, Profession)] = &[
    (45, ("10", "Médecin", 0, "medecin.mssante.fr")),
    (22, ("60", "Infirmier", 30, "infirmier.mssante.fr")),
    (7, ("21", "Pharmacien", 0, "pharmacien.mssante.fr")),
    (8, ("70", "Masseur-Kinésithérapeute", 0, "kine.mssante.fr")),
    (
        4,
        (
            "40",
            "Chirurgien-Dentiste",
            0,
            "chirurgien-dentiste.mssante.fr",
        ),
    ),
    (2, ("50", "Sage-Femme", 0, "sagefemme.mssante.fr")),
    (2, ("91", "Orthophoniste", 100, "mssante.fr")),
    (2, ("28", "Opticien-Lunetier", 100, "mssante.fr")),
    (1, ("26", "Audioprothésiste", 100, "mssante.fr")),
    (2, ("80", "Pédicure-Podologue", 0, "podologue.mssante.fr")),
    (1, ("92", "Orthoptiste", 100, "mssante.fr")),
    (1, ("96", "Psychomotricien", 100, "mssante.fr")),
    (1, ("94", "Ergothérapeute", 100, "mssante.fr")),
    (1, ("95", "Diététicien", 100, "mssante.fr")),
    (1, ("98", "Manipulateur ERM", 100, "mssante.fr")),
];

/// Medical specialties as the files label them: (weight, (code, label)).
pub const SPECIALTIES: &[(u32, (&str, &str))] = &[
    (30, ("SM53", "Spécialiste en Médecine Générale")),
    (15, ("SM26", "Qualifié en Médecine Générale")),
    (5, ("SM54", "Médecine Générale")),
    (4, ("SM04", "Cardiologie et maladies vasculaires")),
    (1, ("SM73", "Médecine cardiovasculaire")),
    (3, ("SM20", "Gynécologie-obstétrique")),
    (2, ("SM19", "Gynécologie médicale")),
    (4, ("SM40", "Pédiatrie")),
    (5, ("SM42", "Psychiatrie")),
    (4, ("SM44", "Radio-diagnostic")),
    (5, ("SM02", "Anesthésie-réanimation")),
    (2, ("SM15", "Dermatologie et vénéréologie")),
    (3, ("SM38", "Ophtalmologie")),
    (2, ("SM34", "O.R.L et chirurgie cervico faciale")),
    (2, ("SM41", "Pneumologie")),
    (2, ("SM32", "Neurologie")),
    (2, ("SM24", "Gastro-entérologie et hépatologie")),
    (1, ("SM48", "Rhumatologie")),
    (2, ("SM08", "Chirurgie orthopédique et traumatologie")),
    (1, ("SM12", "Chirurgie urologique")),
    (1, ("SM16", "Endocrinologie et métabolismes")),
    (1, ("SM30", "Néphrologie")),
    (1, ("SM18", "Gériatrie")),
    (2, ("SM59", "Médecine d'urgence")),
    (1, ("SM35", "Oncologie option médicale")),
];
const EXTRA_SKILLS: &[(&str, &str, &str, &str)] = &[
    ("CAPA", "Capacité", "CAPA03", "Gérontologie"),
    ("CAPA", "Capacité", "CAPA06", "Médecine d'urgence"),
    ("C", "Compétence", "CM01", "Echographie"),
    (
        "DEC",
        "Droit d'exercice complémentaire",
        "DEC02",
        "Addictologie",
    ),
];
const SERVICES: &[&str] = &[
    "Cardiologie",
    "Urgences",
    "Maternité",
    "Radiologie",
    "Secrétariat médical",
    "Pharmacie",
    "Pédiatrie",
    "Bloc opératoire",
];

/// A practice site shared by several people (hospital, group practice,
/// pharmacy) or owned by one.
#[derive(Debug, Clone)]
struct Structure {
    tech_id: String,
    old_id: String,
    siret: String,
    finess: String,
    finess_ej: String,
    name: String,
    sector: (&'static str, &'static str),
    city: usize,
    number: String,
    street_type: usize,
    street: usize,
    phone: String,
    domain: String,
    /// Drop the type label and write the abbreviation into the street label.
    type_in_label: bool,
}

struct Out<'a> {
    w: &'a mut dyn Write,
    eol: &'static str,
    trailing: bool,
    stray: bool,
    lines: u64,
}

impl Out<'_> {
    fn line(&mut self, fields: &[&str]) -> io::Result<()> {
        self.lines += 1;
        let mut s = String::with_capacity(400);
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                s.push('|');
            }
            s.push_str(f);
        }
        if self.trailing {
            s.push('|');
        }
        s.push_str(self.eol);
        if self.stray && self.lines.is_multiple_of(1000) {
            // Re-encode the line as Windows-1252, as some tools do.
            let bytes: Vec<u8> = s
                .chars()
                .map(|c| {
                    if (c as u32) < 256 {
                        c as u32 as u8
                    } else {
                        b'?'
                    }
                })
                .collect();
            return self.w.write_all(&bytes);
        }
        self.w.write_all(s.as_bytes())
    }
}

/// Where each file goes; any of them may be skipped.
pub struct Sinks<'a> {
    pub activity: &'a mut dyn Write,
    pub mailbox: &'a mut dyn Write,
    pub skill: Option<&'a mut dyn Write>,
    pub diploma: Option<&'a mut dyn Write>,
    pub queries: Option<&'a mut dyn Write>,
}

/// Generates all files into `sinks`.
pub fn generate(opts: &Options, sinks: Sinks<'_>) -> io::Result<Stats> {
    let mut rng = Rng::new(opts.seed);
    let eol = if opts.crlf { "\r\n" } else { "\n" };
    let mk = |w: &mut dyn Write| -> io::Result<()> {
        if opts.bom {
            w.write_all(b"\xEF\xBB\xBF")?;
        }
        Ok(())
    };
    mk(sinks.activity)?;
    mk(sinks.mailbox)?;
    let mut act = Out {
        w: sinks.activity,
        eol,
        trailing: true,
        stray: opts.stray_bytes,
        lines: 0,
    };
    let mut bal = Out {
        w: sinks.mailbox,
        eol,
        trailing: false,
        stray: opts.stray_bytes,
        lines: 0,
    };
    let act_cols: &[&str] = if opts.old_header {
        &ACTIVITY_COLUMNS[..ACTIVITY_COLUMNS_OLD]
    } else {
        &ACTIVITY_COLUMNS
    };
    act.line(act_cols)?;
    bal.line(&MAILBOX_COLUMNS)?;
    let mut skill = match sinks.skill {
        Some(w) => {
            mk(w)?;
            let mut o = Out {
                w,
                eol,
                trailing: true,
                stray: false,
                lines: 0,
            };
            o.line(&SKILL_COLUMNS)?;
            Some(o)
        }
        None => None,
    };
    let mut dipl = match sinks.diploma {
        Some(w) => {
            mk(w)?;
            let mut o = Out {
                w,
                eol,
                trailing: true,
                stray: false,
                lines: 0,
            };
            o.line(&DIPLOMA_COLUMNS)?;
            Some(o)
        }
        None => None,
    };
    let mut queries = sinks.queries;
    let mut stats = Stats::default();
    let shared: Vec<Structure> = (0..(opts.people / 8).max(4))
        .map(|i| structure(&mut rng, i, true))
        .collect();
    // Organisational mailboxes of the shared structures.
    for (i, s) in shared.iter().enumerate() {
        let n = match (s.finess.is_empty(), s.siret.is_empty()) {
            (false, _) => usize::from(rng.pct(60)) + usize::from(i % 10 == 0),
            (true, false) => usize::from(rng.pct(40)),
            (true, true) => usize::from(rng.pct(15)),
        };
        for k in 0..n {
            let service = if s.finess.is_empty() {
                "Secrétariat médical"
            } else {
                rng.pick(SERVICES)
            };
            let local = format!(
                "{}{}",
                crate::text::fold(service).replace(' ', "."),
                if k > 0 {
                    format!(".{k}")
                } else {
                    String::new()
                }
            );
            let address = format!("{local}@{}", s.domain);
            write_mailbox(&mut bal, &mut rng, "ORG", &address, None, s, service)?;
            stats.org_mailboxes += 1;
        }
    }
    let query_every = opts
        .people
        .checked_div(opts.queries)
        .map_or(usize::MAX, |n| n.max(1));
    for p in 0..opts.people {
        let person = person(&mut rng, p);
        stats.people += 1;
        // Sites: none (locum, retired), one, or several.
        let n_sites = *rng.weighted(&[(12, 0usize), (68, 1), (15, 2), (5, 3)]);
        let mut sites = Vec::new();
        for k in 0..n_sites {
            if rng.pct(50) {
                sites.push(shared[rng.below(shared.len())].clone());
            } else {
                sites.push(structure(&mut rng, 1_000_000_000 + p * 4 + k, false));
            }
        }
        let mode = if sites.iter().any(|s| !s.finess.is_empty()) {
            ("S", "Salarié")
        } else {
            ("L", "Libéral, indépendant, artisan, commerçant")
        };
        let site_rows: Vec<Option<&Structure>> = if sites.is_empty() {
            vec![None]
        } else {
            sites.iter().map(Some).collect()
        };
        for site in &site_rows {
            for sk in &person.skills {
                write_activity(&mut act, act_cols.len(), &person, *site, sk, mode)?;
                stats.activity_rows += 1;
            }
        }
        for sk in person.skills.iter().filter(|s| !s.2.is_empty()) {
            if let Some(o) = skill.as_mut()
                && rng.pct(45)
            {
                o.line(&[
                    person.id_type,
                    &person.idpp,
                    &person.nat,
                    &person.nom,
                    &person.prenom,
                    person.prof.0,
                    person.prof.1,
                    "C",
                    "Civil",
                    sk.0,
                    sk.1,
                    sk.2,
                    sk.3,
                ])?;
                stats.skill_rows += 1;
            }
        }
        if let Some(o) = dipl.as_mut() {
            for d in 0..(1 + rng.below(2)) {
                let (code, label) = if d == 0 {
                    ("DE", "Diplôme d'Etat français")
                } else {
                    ("DU", "Diplôme universitaire")
                };
                o.line(&[
                    person.id_type,
                    &person.idpp,
                    &person.nat,
                    &person.nom,
                    &person.prenom,
                    code,
                    label,
                    &format!("{code}{:02}", person.prof.0.len() + d),
                    &format!("{label} de {}", person.prof.1),
                    "",
                    "",
                    "",
                    "",
                ])?;
                stats.diploma_rows += 1;
            }
        }
        // Personal mailbox: most doctors, fewer others.
        let p_bal = if person.prof.0 == "10" { 45 } else { 20 };
        let mut address = None;
        if rng.pct(p_bal) {
            let site = sites.first();
            let domain = match site {
                Some(s) if !s.finess.is_empty() => s.domain.clone(),
                _ => person.prof.3.to_owned(),
            };
            let local = crate::text::fold(&format!("{} {}", person.prenom, person.nom))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(".");
            let a = if p % 3 == 0 {
                format!("{local}@{domain}")
            } else {
                format!("{local}.{}@{domain}", p % 997)
            };
            let blank = structure(&mut rng, 0, false);
            let s = site.unwrap_or(&blank);
            write_mailbox(&mut bal, &mut rng, "PER", &a, Some(&person), s, "")?;
            stats.per_mailboxes += 1;
            address = Some(a);
        }
        if let Some(q) = queries.as_mut()
            && p % query_every == query_every / 2
        {
            writeln!(
                q,
                "{}",
                sample_query(&mut rng, &person, sites.first(), address.as_deref())
            )?;
            stats.queries += 1;
        }
    }
    stats.mailbox_rows = stats.per_mailboxes + stats.org_mailboxes;
    Ok(stats)
}

struct Person {
    id_type: &'static str,
    idpp: String,
    nat: String,
    civ: (&'static str, &'static str),
    gender: (&'static str, &'static str),
    nom: String,
    prenom: String,
    prof: Profession,
    /// (type code, type label, code, label); one empty entry when none.
    skills: Vec<(&'static str, &'static str, &'static str, &'static str)>,
}

fn surname(rng: &mut Rng) -> String {
    if rng.pct(60) {
        (*rng.pick(SURNAMES)).to_owned()
    } else {
        let n = 2 + rng.below(2);
        (0..n).map(|_| *rng.pick(SYLLABLES)).collect()
    }
}

fn person(rng: &mut Rng, p: usize) -> Person {
    let prof = *rng.weighted(PROFESSIONS);
    let adeli = rng.pct(prof.2);
    let (id_type, idpp, nat) = if adeli {
        let city = rng.pick(CITIES);
        let dep = if city.3.len() == 2 {
            city.3.to_owned()
        } else {
            "97".to_owned()
        };
        let id = format!("{dep}{}{:05}", &prof.0[..2], p % 100_000);
        ("0", id.clone(), format!("0{id}"))
    } else {
        let id = format!("10{:09}", (p as u64).wrapping_mul(7919) % 1_000_000_000);
        ("8", id.clone(), format!("8{id}"))
    };
    let woman = rng.pct(55);
    let gender = if woman {
        ("MME", "Madame")
    } else {
        ("M", "Monsieur")
    };
    let civ = if prof.0 == "10" || prof.0 == "40" {
        ("DR", "Docteur")
    } else {
        ("", "")
    };
    let mut skills = Vec::new();
    if prof.0 == "10" {
        let s = rng.weighted(SPECIALTIES);
        skills.push(("S", "Spécialité ordinale", s.0, s.1));
        if rng.pct(35) {
            let e = rng.pick(EXTRA_SKILLS);
            skills.push(*e);
        }
        if rng.pct(15) {
            let s2 = rng.weighted(SPECIALTIES);
            if s2.0 != s.0 {
                skills.push(("S", "Spécialité ordinale", s2.0, s2.1));
            }
        }
    } else {
        skills.push(("", "", "", ""));
    }
    Person {
        id_type,
        idpp,
        nat,
        civ,
        gender,
        nom: surname(rng),
        prenom: rng.pick(FIRST_NAMES).to_uppercase(),
        prof,
        skills,
    }
}

fn structure(rng: &mut Rng, i: usize, shared: bool) -> Structure {
    let city = rng.below(CITIES.len());
    let c = CITIES[city];
    let kind = if shared { rng.below(4) } else { 3 };
    let dep = c.3.to_owned();
    let dep2 = if dep.len() == 3 {
        dep[..2].to_owned()
    } else {
        dep.clone()
    };
    let finess = format!("{dep2}{:07}", (i * 31) % 10_000_000);
    let siret = format!("{}{:05}", rng.digits(9), i % 100_000);
    let cityname = crate::text::fold(c.0)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-");
    let (tech, old, name, sector, fin, fin_ej, domain) = match kind {
        0 => (
            format!("F{finess}"),
            format!("1{finess}"),
            format!("CENTRE HOSPITALIER DE {}", c.0),
            ("SA01", "Etablissement public de santé"),
            finess.clone(),
            format!("{dep2}{:07}", (i * 37) % 10_000_000),
            format!("ch-{cityname}.mssante.fr"),
        ),
        1 => (
            format!("F{finess}"),
            format!("1{finess}"),
            format!(
                "CLINIQUE {} {}",
                rng.pick(&["SAINT-JOSEPH", "DES CEDRES", "DU PARC", "SAINTE-ANNE"]),
                i % 50
            ),
            ("SA02", "Etablissement privé non PSPH"),
            finess.clone(),
            String::new(),
            format!("clinique-{i}.mssante.fr"),
        ),
        2 => (
            format!("C{siret}"),
            format!("3{siret}"),
            format!("PHARMACIE {}", rng.pick(STREET_NAMES)),
            ("SA33", "Pharmacie d'officine"),
            String::new(),
            String::new(),
            "pharmacien.mssante.fr".to_owned(),
        ),
        _ => (
            format!("R{:010}", i),
            format!("4{:010}", i),
            format!("CABINET {}", surname(rng)),
            ("SA07", "Cabinet individuel"),
            String::new(),
            String::new(),
            "mssante.fr".to_owned(),
        ),
    };
    Structure {
        tech_id: tech,
        old_id: old,
        siret: if kind == 2 {
            siret.clone()
        } else {
            String::new()
        },
        finess: fin,
        finess_ej: fin_ej,
        name,
        sector,
        city,
        number: (1 + rng.below(120)).to_string(),
        street_type: rng.below(STREET_TYPES.len()),
        street: rng.below(STREET_NAMES.len()),
        phone: format!("0{}{}", 1 + rng.below(5), rng.digits(8)),
        domain,
        type_in_label: rng.pct(5),
    }
}

fn write_activity(
    out: &mut Out<'_>,
    ncols: usize,
    p: &Person,
    site: Option<&Structure>,
    sk: &(&str, &str, &str, &str),
    mode: (&str, &str),
) -> io::Result<()> {
    let mut v: Vec<String> = vec![String::new(); ACTIVITY_COLUMNS.len()];
    let mut set = |i: usize, s: &str| v[i] = s.to_owned();
    set(0, p.id_type);
    set(1, &p.idpp);
    set(2, &p.nat);
    set(3, p.civ.0);
    set(4, p.civ.1);
    set(5, p.gender.0);
    set(6, p.gender.1);
    set(7, &p.nom);
    set(8, &p.prenom);
    set(9, p.prof.0);
    set(10, p.prof.1);
    set(11, "C");
    set(12, "Civil");
    set(13, sk.0);
    set(14, sk.1);
    set(15, sk.2);
    set(16, sk.3);
    set(
        47,
        if p.id_type == "8" {
            "CNOM/CNOM/ARS"
        } else {
            "ARS/Variable/Variable"
        },
    );
    if let Some(s) = site {
        let c = CITIES[s.city];
        let (tcode, tlabel) = STREET_TYPES[s.street_type];
        set(17, mode.0);
        set(18, mode.1);
        set(19, &s.siret);
        set(
            20,
            if s.siret.len() >= 9 {
                &s.siret[..9]
            } else {
                ""
            },
        );
        set(21, &s.finess);
        set(22, &s.finess_ej);
        set(23, &s.tech_id);
        set(24, &s.name);
        set(28, &s.number);
        if s.type_in_label {
            set(32, &format!("{tcode} {}", STREET_NAMES[s.street]));
        } else {
            set(30, tcode);
            set(31, tlabel);
            set(32, STREET_NAMES[s.street]);
        }
        set(35, c.1);
        set(36, c.2);
        set(37, c.0);
        set(38, "99000");
        set(39, "France");
        set(40, &s.phone);
        set(44, c.3);
        set(45, c.4);
        set(46, &s.old_id);
        set(48, s.sector.0);
        set(49, s.sector.1);
        set(52, "FON-AU");
        set(53, "Autre fonction");
        set(54, "GENR01");
        set(55, "Activité standard");
    }
    let refs: Vec<&str> = v.iter().take(ncols).map(String::as_str).collect();
    out.line(&refs)
}

fn write_mailbox(
    out: &mut Out<'_>,
    rng: &mut Rng,
    kind: &str,
    address: &str,
    p: Option<&Person>,
    s: &Structure,
    service: &str,
) -> io::Result<()> {
    let c = CITIES[s.city];
    let (tcode, _) = STREET_TYPES[s.street_type];
    let empty = ("", "", "", "");
    let sk = p.and_then(|p| p.skills.first()).unwrap_or(&empty);
    let has_site = !s.tech_id.is_empty() && !s.name.is_empty();
    let l6 = format!("{} {}", c.1, c.0);
    let struct_id = if has_site && kind == "ORG" {
        s.old_id.clone()
    } else {
        String::new()
    };
    let fields: [&str; 31] = [
        kind,
        address,
        p.map_or("", |p| p.id_type),
        p.map_or("", |p| &p.idpp),
        p.map_or("", |p| &p.nat),
        if struct_id.is_empty() {
            ""
        } else {
            &struct_id[..1]
        },
        &struct_id,
        service,
        p.map_or("", |p| p.civ.1),
        p.map_or("", |p| &p.nom),
        p.map_or("", |p| &p.prenom),
        if p.is_some() { "C" } else { "" },
        if p.is_some() { "Civil" } else { "" },
        p.map_or("", |p| p.prof.0),
        p.map_or("", |p| p.prof.1),
        sk.2,
        sk.3,
        if rng.pct(70) { "true" } else { "false" },
        &s.name,
        "",
        "",
        "",
        &s.number,
        "",
        tcode,
        STREET_NAMES[s.street],
        "",
        &l6,
        c.1,
        c.3,
        "France",
    ];
    out.line(&fields)
}

/// A query a secretary could type to find this person.
fn sample_query(
    rng: &mut Rng,
    p: &Person,
    site: Option<&Structure>,
    address: Option<&str>,
) -> String {
    let nom = crate::text::fold(&p.nom);
    let prenom = crate::text::fold(&p.prenom);
    let spec = p.skills.first().map(|s| s.3).unwrap_or("");
    let spec_word = match p.skills.first().map(|s| s.2).unwrap_or("") {
        "SM04" | "SM73" => "cardiologue",
        "SM19" | "SM20" => "gynéco",
        "SM40" => "pédiatre",
        "SM42" => "psychiatre",
        "SM44" => "radiologue",
        "SM38" => "ophtalmo",
        "SM15" => "dermato",
        "SM34" => "orl",
        "SM53" | "SM26" | "SM54" => "généraliste",
        _ => match p.prof.0 {
            "60" => "infirmier",
            "70" => "kiné",
            "21" => "pharmacien",
            "40" => "dentiste",
            "50" => "sage-femme",
            _ => spec,
        },
    };
    let (cp, city, street) = site.map_or(("", "", String::new()), |s| {
        let c = CITIES[s.city];
        let (t, _) = STREET_TYPES[s.street_type];
        (
            c.1,
            c.0,
            format!(
                "{} {}",
                t.to_lowercase(),
                STREET_NAMES[s.street].to_lowercase()
            ),
        )
    });
    let short = |w: &str| {
        w.chars()
            .take(4.max(w.chars().count() * 2 / 3))
            .collect::<String>()
    };
    match rng.below(10) {
        0 => format!("{nom} {cp} {spec_word}"),
        1 => format!("{spec_word} {street} {}", city.to_lowercase()),
        2 => format!("{prenom} {nom}"),
        3 => format!("{} {}", short(&nom), short(&prenom)),
        4 => p.idpp.clone(),
        5 => address.map_or_else(|| format!("{nom} {}", city.to_lowercase()), str::to_owned),
        6 => format!("{nom} {}", city.to_lowercase()),
        7 => format!("{spec_word} {}", &cp.get(..2).unwrap_or("75")),
        8 => format!("{} {spec_word}", city.to_lowercase()),
        _ => format!("{} {nom}", short(spec_word)),
    }
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

/// Writes the four files (and `queries.txt` when asked) into `dir` under
/// their published names; returns their paths and what they hold.
pub fn write_dir(dir: &Path, opts: &Options, stamp: &str) -> io::Result<(Vec<PathBuf>, Stats)> {
    std::fs::create_dir_all(dir)?;
    let names = [
        format!("PS_LibreAcces_Personne_activite_{stamp}.txt"),
        format!("Extraction_Correspondance_MSSante_{stamp}.txt"),
        format!("PS_LibreAcces_SavoirFaire_{stamp}.txt"),
        format!("PS_LibreAcces_Dipl_AutExerc_{stamp}.txt"),
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let open = |p: &Path| -> io::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(1 << 20, File::create(p)?))
    };
    let (mut a, mut m, mut s, mut d) = (
        open(&paths[0])?,
        open(&paths[1])?,
        open(&paths[2])?,
        open(&paths[3])?,
    );
    let mut q = if opts.queries > 0 {
        Some(open(&dir.join("queries.txt"))?)
    } else {
        None
    };
    let stats = generate(
        opts,
        Sinks {
            activity: &mut a,
            mailbox: &mut m,
            skill: Some(&mut s),
            diploma: Some(&mut d),
            queries: q.as_mut().map(|w| w as &mut dyn Write),
        },
    )?;
    for w in [&mut a, &mut m, &mut s, &mut d] {
        w.flush()?;
    }
    if let Some(q) = q.as_mut() {
        q.flush()?;
    }
    Ok((paths, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_published_shape() {
        let run = |seed| {
            let (mut a, mut m) = (Vec::new(), Vec::new());
            let opts = Options {
                seed,
                people: 300,
                bom: true,
                ..Options::default()
            };
            generate(
                &opts,
                Sinks {
                    activity: &mut a,
                    mailbox: &mut m,
                    skill: None,
                    diploma: None,
                    queries: None,
                },
            )
            .unwrap();
            (a, m)
        };
        let (a1, m1) = run(7);
        assert_eq!((a1.clone(), m1.clone()), run(7));
        assert_ne!(a1, run(8).0);
        let text = String::from_utf8(a1).unwrap();
        assert!(text.starts_with("\u{FEFF}Type d'identifiant PP|Identifiant PP|"));
        for line in text.lines() {
            assert!(line.ends_with('|'), "{line}");
            assert_eq!(line.matches('|').count(), 56, "{line}");
        }
        let mail = String::from_utf8(m1).unwrap();
        assert!(mail.lines().skip(1).all(|l| l.matches('|').count() == 30));
        assert!(mail.contains("\nPER|") && mail.contains("\nORG|"));
        assert!(
            text.contains("|0|") || text.lines().any(|l| l.starts_with("0|")),
            "ADELI rows"
        );
    }
}
