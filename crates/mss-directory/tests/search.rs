//! End-to-end: generated files plus hand-written rows for the named
//! examples, imported through the real importer, searched through the real
//! index. Each test names the one right answer and checks it comes first.

use mss_directory::format::{ACTIVITY_COLUMNS, MAILBOX_COLUMNS, mss_line, ps_line, row};
use mss_directory::synth::{Options, Sinks, generate};
use mss_directory::{Directory, Filters, ImportOptions, import};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Person<'a> {
    nat: &'a str,
    nom: &'a str,
    prenom: &'a str,
    prof: (&'a str, &'a str),
    skill: (&'a str, &'a str),
    site: &'a str,
    street: (&'a str, &'a str, &'a str, &'a str),
    cp: &'a str,
    city: &'a str,
    dept: &'a str,
}

fn activity(p: &Person) -> String {
    let (id_type, idpp) = (&p.nat[..1], &p.nat[1..]);
    let cells = row(
        &ACTIVITY_COLUMNS,
        &[
            ("Type d'identifiant PP", id_type),
            ("Identifiant PP", idpp),
            ("Identification nationale PP", p.nat),
            ("Libellé civilité d'exercice", "Docteur"),
            ("Nom d'exercice", p.nom),
            ("Prénom d'exercice", p.prenom),
            ("Code profession", p.prof.0),
            ("Libellé profession", p.prof.1),
            (
                "Code type savoir-faire",
                if p.skill.0.is_empty() { "" } else { "S" },
            ),
            ("Code savoir-faire", p.skill.0),
            ("Libellé savoir-faire", p.skill.1),
            ("Identifiant technique de la structure", p.site),
            ("Raison sociale site", &format!("CABINET {}", p.nom)),
            ("Numéro Voie (coord. structure)", p.street.0),
            ("Code type de voie (coord. structure)", p.street.1),
            ("Libellé type de voie (coord. structure)", p.street.2),
            ("Libellé Voie (coord. structure)", p.street.3),
            ("Code postal (coord. structure)", p.cp),
            ("Libellé commune (coord. structure)", p.city),
            ("Code Département (structure)", p.dept),
        ],
    );
    ps_line(&cells.iter().map(String::as_str).collect::<Vec<_>>())
}

fn mailbox(values: &[(&str, &str)]) -> String {
    let cells = row(&MAILBOX_COLUMNS, values);
    mss_line(&cells.iter().map(String::as_str).collect::<Vec<_>>())
}

const CARDIO: (&str, &str) = ("SM04", "Cardiologie et maladies vasculaires");
const GP: (&str, &str) = ("SM53", "Spécialiste en Médecine Générale");
const GYN: (&str, &str) = ("SM20", "Gynécologie-obstétrique");
const MED: (&str, &str) = ("10", "Médecin");
const PLACE_EGLISE: (&str, &str, &str, &str) = ("3", "PL", "Place", "DE L'EGLISE");

fn hand_rows() -> Vec<Person<'static>> {
    let p = |nat, nom, prenom, prof, skill, site, street, cp, city, dept| Person {
        nat,
        nom,
        prenom,
        prof,
        skill,
        site,
        street,
        cp,
        city,
        dept,
    };
    vec![
        p(
            "810000000001",
            "DUPONT",
            "JEAN",
            MED,
            CARDIO,
            "R9000000001",
            ("12", "R", "Rue", "DU BARACHOIS"),
            "97500",
            "SAINT-PIERRE",
            "975",
        ),
        p(
            "810000000002",
            "DUPONT",
            "MARIE",
            MED,
            CARDIO,
            "R9000000002",
            ("5", "AV", "Avenue", "DE SUFFREN"),
            "75015",
            "PARIS",
            "75",
        ),
        p(
            "810000000003",
            "DUPONT",
            "PAUL",
            MED,
            GP,
            "R9000000003",
            ("1", "R", "Rue", "BORDA"),
            "97500",
            "SAINT-PIERRE",
            "975",
        ),
        p(
            "810000000004",
            "DUPONTEL",
            "LUC",
            MED,
            CARDIO,
            "R9000000004",
            ("8", "R", "Rue", "BORDA"),
            "97500",
            "SAINT-PIERRE",
            "975",
        ),
        p(
            "810000000005",
            "DUPONT",
            "ANNE",
            ("60", "Infirmier"),
            ("", ""),
            "R9000000005",
            ("2", "R", "Rue", "BORDA"),
            "97500",
            "SAINT-PIERRE",
            "975",
        ),
        p(
            "810000000011",
            "FAURE",
            "CLAIRE",
            MED,
            GYN,
            "R9000000011",
            PLACE_EGLISE,
            "03100",
            "MONTLUÇON",
            "03",
        ),
        p(
            "810000000012",
            "BERTHON",
            "ALICE",
            MED,
            GYN,
            "R9000000012",
            ("40", "AV", "Avenue", "DE LA REPUBLIQUE"),
            "03100",
            "MONTLUCON",
            "03",
        ),
        p(
            "810000000013",
            "GIRAUD",
            "HENRI",
            MED,
            GP,
            "R9000000013",
            PLACE_EGLISE,
            "03100",
            "MONTLUCON",
            "03",
        ),
        p(
            "810000000014",
            "LACOUR",
            "EMMA",
            MED,
            GYN,
            "R9000000014",
            PLACE_EGLISE,
            "03000",
            "MOULINS",
            "03",
        ),
        // Street type only inside the label, as some real rows have it.
        p(
            "810000000021",
            "KERJEAN",
            "YVES",
            ("70", "Masseur-Kinésithérapeute"),
            ("", ""),
            "R9000000021",
            ("4", "", "", "R DENIS PAPIN"),
            "25300",
            "PONTARLIER",
            "25",
        ),
        p(
            "810000000031",
            "ORSINI",
            "ANTOINE",
            MED,
            GP,
            "R9000000031",
            ("2", "CRS", "Cours", "NAPOLEON"),
            "20000",
            "AJACCIO",
            "2A",
        ),
        p(
            "0031234567",
            "VALLÉE",
            "SOPHIE",
            ("91", "Orthophoniste"),
            ("", ""),
            "R9000000041",
            ("9", "BD", "Boulevard", "DE COURTAIS"),
            "03100",
            "MONTLUCON",
            "03",
        ),
    ]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// Writes 1,500 generated people plus the hand rows (with a BOM and CRLF),
/// imports them once for all tests of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let (mut act, mut bal) = (Vec::new(), Vec::new());
        let opts = Options {
            seed: 42,
            people: 1500,
            ..Options::default()
        };
        generate(
            &opts,
            Sinks {
                activity: &mut act,
                mailbox: &mut bal,
                skill: None,
                diploma: None,
                queries: None,
            },
        )
        .unwrap();
        let gen_act = tmp.path().join("PS_LibreAcces_Personne_activite_gen.txt");
        let gen_bal = tmp.path().join("Extraction_Correspondance_MSSante_gen.txt");
        std::fs::write(&gen_act, act).unwrap();
        std::fs::write(&gen_bal, bal).unwrap();
        let mut hand = String::from("\u{FEFF}");
        hand.push_str(&ps_line(&ACTIVITY_COLUMNS));
        hand.push_str("\r\n");
        for p in hand_rows() {
            hand.push_str(&activity(&p));
            hand.push_str("\r\n");
        }
        let hand_act = tmp.path().join("PS_LibreAcces_Personne_activite_hand.txt");
        std::fs::write(&hand_act, hand).unwrap();
        let mut mb = mss_line(&MAILBOX_COLUMNS);
        for line in [
            mailbox(&[
                ("Type de BAL", "PER"),
                ("Adresse BAL", "jean.dupont@medecin.mssante.fr"),
                ("Identifiant PP", "10000000001"),
                ("Identification nationale PP", "810000000001"),
                ("Nom d'exercice", "DUPONT"),
                ("Prénom d'exercice", "JEAN"),
                ("Code savoir-faire", "SM04"),
                (
                    "Libellé savoir-faire",
                    "Cardiologie et maladies vasculaires",
                ),
                ("Code postal structure BAL", "97500"),
            ]),
            mailbox(&[
                ("Type de BAL", "ORG"),
                ("Adresse BAL", "cardiologie@ch-montlucon.mssante.fr"),
                ("Type identifiant structure", "1"),
                ("Identification Structure", "1030780100"),
                ("Service de rattachement", "Service de cardiologie"),
                (
                    "Raison Sociale structure BAL",
                    "CENTRE HOSPITALIER DE MONTLUCON",
                ),
                ("L4NUMEROVOIE structure BAL", "18"),
                ("L4LIBELLEVOIE structure BAL", "AVENUE DU 8 MAI 1945"),
                ("L6LIGNEACHEMINEMENT structure BAL", "03100 MONTLUCON"),
                ("Code postal structure BAL", "03100"),
                ("Département structure BAL", "03"),
            ]),
        ] {
            mb.push('\n');
            mb.push_str(&line);
        }
        let hand_bal = tmp
            .path()
            .join("Extraction_Correspondance_MSSante_hand.txt");
        std::fs::write(&hand_bal, mb).unwrap();
        let dir = tmp.path().join("directory");
        let files = [gen_act, hand_act, gen_bal, hand_bal];
        let summary = import(
            &dir,
            &files,
            &ImportOptions {
                threads: 1,
                memory_bytes: 50 << 20,
                max_segments: 1,
            },
            &mut |_| {},
        )
        .unwrap();
        assert!(summary.mailboxes > 100, "{summary:?}");
        Fixture { _tmp: tmp, dir }
    })
}

fn first_ids(q: &str, n: usize) -> Vec<String> {
    let d = Directory::open(&fixture().dir).unwrap();
    let r = d.search(q, &Filters::default(), 10).unwrap();
    r.hits.into_iter().take(n).map(|h| h.id).collect()
}

fn assert_first(q: &str, id: &str) {
    let ids = first_ids(q, 5);
    assert_eq!(
        ids.first().map(String::as_str),
        Some(id),
        "query {q:?} gave {ids:?}"
    );
}

#[test]
fn dupont_97500_cardiologue() {
    assert_first("Dupont 97500 cardiologue", "810000000001");
    // Only Jean matches every word: Marie is in Paris, Paul is a GP, Anne a nurse.
    let ids = first_ids("Dupont 97500 cardiologue", 10);
    assert!(
        !ids.contains(&"810000000002".to_owned()) && !ids.contains(&"810000000003".to_owned()),
        "{ids:?}"
    );
}

#[test]
fn exact_name_ranks_above_longer_name() {
    // DUPONTEL also starts with « dupont », but DUPONT is the whole word.
    let ids = first_ids("cardiologue dupont 97500", 3);
    assert_eq!(ids[..2], ["810000000001", "810000000004"], "{ids:?}");
}

#[test]
fn gyneco_place_de_l_eglise_montlucon() {
    assert_first("gynéco place de l'église montluçon", "810000000011");
}

#[test]
fn accent_typos_abbreviations_partial_words_and_mixed_order() {
    assert_first("montlucon EGLISE gynecologue pl", "810000000011");
    assert_first("Montlùçon gyneco-obstétrique église claire", "810000000011");
    assert_first("gyné pl égl montl", "810000000011");
    assert_first("dupo 975 cardio", "810000000001");
    assert_first("st pierre cardiologie jean", "810000000001");
}

#[test]
fn street_type_written_inside_the_label() {
    assert_first("kiné rue denis papin pontarlier", "810000000021");
}

#[test]
fn corsica_departement() {
    assert_first("2A généraliste orsini", "810000000031");
    assert_first("orsini 2a", "810000000031");
}

#[test]
fn identifiers_and_addresses() {
    assert_first("10000000001", "810000000001");
    assert_first("810000000001", "810000000001");
    assert_first("jean.dupont@medecin.mssante.fr", "810000000001");
    // ADELI number of an orthophoniste (national id 0 + ADELI).
    assert_first("031234567", "0031234567");
    assert_first("orthophoniste vallee montluçon", "0031234567");
}

#[test]
fn person_is_grouped_with_mailbox_and_site() {
    let d = Directory::open(&fixture().dir).unwrap();
    let r = d
        .search("dupont jean saint-pierre", &Filters::default(), 5)
        .unwrap();
    let h = &r.hits[0];
    assert_eq!(h.id, "810000000001");
    assert_eq!(h.bal.len(), 1);
    assert_eq!(h.bal[0].adresse, "jean.dupont@medecin.mssante.fr");
    assert_eq!(h.sites.len(), 1);
    assert_eq!(h.sites[0].code_postal, "97500");
    assert_eq!(h.nom, "Docteur JEAN DUPONT");
}

#[test]
fn organisational_mailbox_by_service_and_city() {
    let d = Directory::open(&fixture().dir).unwrap();
    // Cardiologists practising at that hospital match too; the service's
    // mailbox is among the first answers, grouped as a structure.
    let r = d
        .search(
            "cardiologie centre hospitalier montluçon",
            &Filters::default(),
            5,
        )
        .unwrap();
    let h = r
        .hits
        .iter()
        .find(|h| h.kind == "structure")
        .expect("the hospital's mailbox");
    // With the ORG type filter it comes first.
    let f = Filters {
        mailbox_type: Some("ORG".into()),
        ..Filters::default()
    };
    let first = &d.search("cardiologie montluçon", &f, 5).unwrap().hits[0];
    assert_eq!(first.id, h.id);
    assert_eq!(h.bal[0].adresse, "cardiologie@ch-montlucon.mssante.fr");
    assert_eq!(h.bal[0].type_bal, "ORG");
}

#[test]
fn filters_narrow_results() {
    let d = Directory::open(&fixture().dir).unwrap();
    let f = Filters {
        postcode: Some("75015".into()),
        ..Filters::default()
    };
    let r = d.search("dupont", &f, 10).unwrap();
    assert!(
        r.hits.iter().any(|h| h.id == "810000000002"),
        "{:?}",
        r.hits
    );
    assert!(
        r.hits
            .iter()
            .all(|h| h.sites.iter().any(|s| s.code_postal == "75015")),
        "{:?}",
        r.hits
    );
    let f = Filters {
        specialty: Some("SM20".into()),
        city: Some("Moulins".into()),
        ..Filters::default()
    };
    let r = d.search("", &f, 10).unwrap();
    assert_eq!(r.hits[0].id, "810000000014");
}

#[test]
fn nothing_matches_everything_falls_back_to_partial_matches() {
    let d = Directory::open(&fixture().dir).unwrap();
    let r = d
        .search("claire faure zzzzqx", &Filters::default(), 5)
        .unwrap();
    assert!(!r.all_words);
    assert!(
        r.hits.iter().any(|h| h.id == "810000000011"),
        "{:?}",
        r.hits
    );
    let r = d.search("zzzzqx", &Filters::default(), 5).unwrap();
    assert!(r.hits.is_empty());
}

#[test]
fn show_gives_every_field() {
    let d = Directory::open(&fixture().dir).unwrap();
    for id in [
        "810000000001",
        "10000000001",
        "jean.dupont@medecin.mssante.fr",
    ] {
        let detail = d.show(id).unwrap().unwrap();
        assert_eq!(detail.id, "810000000001");
        let act = detail
            .records
            .iter()
            .find(|r| r.source == "activite")
            .unwrap();
        let get = |k: &str| {
            act.fields
                .0
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("Libellé savoir-faire"),
            Some("Cardiologie et maladies vasculaires")
        );
        assert_eq!(get("Libellé Voie (coord. structure)"), Some("DU BARACHOIS"));
        assert!(detail.records.iter().any(|r| r.source == "bal"));
    }
    assert!(d.show("99999999999").unwrap().is_none());
}

fn _unused(_: &Path) {}
