//! How people name professions and specialties, mapped to the codes the
//! files carry (TRE_G15 professions, TRE_R38 specialties) and to label
//! prefixes. The extraction labels differ from the TRE displays, so codes
//! are the reliable join; prefixes catch labels of codes not listed here.

/// One family of words meaning the same profession or specialty.
#[derive(Debug)]
pub struct Synonym {
    /// What the family means, in French (shown in query explanations).
    pub label: &'static str,
    /// Folded words that name it.
    pub triggers: &'static [&'static str],
    /// Tags it matches: `code:` savoir-faire codes or `prof:` profession codes.
    pub tags: &'static [&'static str],
    /// Folded prefixes of the labels found in the files.
    pub prefixes: &'static [&'static str],
}

macro_rules! syn {
    ($label:expr, [$($t:expr),*], [$($c:expr),*], [$($p:expr),*]) => {
        Synonym { label: $label, triggers: &[$($t),*], tags: &[$($c),*], prefixes: &[$($p),*] }
    };
}

pub const SYNONYMS: &[Synonym] = &[
    syn!(
        "cardiologie",
        [
            "cardiologue",
            "cardiologie",
            "cardiologues",
            "cardio",
            "cardiovasculaire"
        ],
        [
            "code:sm04",
            "code:sm73",
            "code:sm79",
            "code:sm80",
            "code:sm81"
        ],
        ["cardio"]
    ),
    syn!(
        "gynécologie",
        [
            "gyneco",
            "gynecologue",
            "gynecologie",
            "gynecologique",
            "gyne",
            "obstetricien",
            "obstetricienne",
            "obstetrique"
        ],
        ["code:sm19", "code:sm20", "code:sm51", "code:sm52"],
        ["gyneco", "obstetri"]
    ),
    syn!(
        "médecine générale",
        ["generaliste", "generalistes", "omnipraticien", "mg"],
        ["code:sm26", "code:sm53", "code:sm54"],
        ["generale"]
    ),
    syn!(
        "pédiatrie",
        ["pediatre", "pediatrie", "pedia"],
        [
            "code:sm40",
            "code:sm87",
            "code:sm88",
            "code:sm89",
            "code:sm90"
        ],
        ["pediatr"]
    ),
    syn!(
        "dermatologie",
        ["dermato", "dermatologue", "dermatologie"],
        ["code:sm15"],
        ["dermato"]
    ),
    syn!(
        "ophtalmologie",
        [
            "ophtalmo",
            "ophtalmologue",
            "ophtalmologiste",
            "ophtalmologie",
            "ophta",
            "oculiste"
        ],
        ["code:sm38", "code:sm85"],
        ["ophtalmo"]
    ),
    syn!(
        "ORL",
        ["orl", "otorhino", "otorhinolaryngologiste", "oto"],
        ["code:sm34", "code:sm39", "code:sm86"],
        ["otorhino"]
    ),
    syn!(
        "psychiatrie",
        ["psychiatre", "psychiatrie", "pedopsychiatre", "psy"],
        ["code:sm42", "code:sm43", "code:sm92", "code:sm93"],
        ["psychiatr"]
    ),
    syn!(
        "radiologie",
        ["radiologue", "radiologie", "radio", "imagerie"],
        ["code:sm44", "code:sm55", "code:sm74"],
        ["radio"]
    ),
    syn!(
        "pneumologie",
        ["pneumologue", "pneumologie", "pneumo"],
        ["code:sm41", "code:sm91"],
        ["pneumo"]
    ),
    syn!(
        "neurologie",
        ["neurologue", "neurologie", "neuro"],
        ["code:sm32", "code:sm84"],
        ["neurolog"]
    ),
    syn!(
        "gastro-entérologie",
        [
            "gastro",
            "gastroenterologue",
            "gastroenterologie",
            "hepatologue"
        ],
        ["code:sm24"],
        ["gastro"]
    ),
    syn!(
        "rhumatologie",
        ["rhumato", "rhumatologue", "rhumatologie"],
        ["code:sm48"],
        ["rhumato"]
    ),
    syn!(
        "endocrinologie",
        ["endocrino", "endocrinologue", "diabetologue", "diabeto"],
        ["code:sm16", "code:sm62"],
        ["endocrino"]
    ),
    syn!(
        "néphrologie",
        ["nephrologue", "nephrologie", "nephro"],
        ["code:sm30", "code:sm83"],
        ["nephro"]
    ),
    syn!(
        "urologie",
        ["urologue", "urologie", "uro"],
        ["code:sm12"],
        ["urolog"]
    ),
    syn!(
        "anesthésie",
        ["anesthesiste", "anesthesie", "anesth", "reanimateur"],
        ["code:sm02", "code:sm76"],
        ["anesthes"]
    ),
    syn!(
        "oncologie",
        ["oncologue", "oncologie", "onco", "cancerologue"],
        ["code:sm35", "code:sm36", "code:sm37"],
        ["oncolog"]
    ),
    syn!(
        "gériatrie",
        ["geriatre", "geriatrie"],
        ["code:sm18"],
        ["geriatr"]
    ),
    syn!(
        "médecine d'urgence",
        ["urgentiste", "urgences"],
        ["code:sm59"],
        ["urgence"]
    ),
    syn!(
        "stomatologie",
        ["stomato", "stomatologue"],
        ["code:sm50"],
        ["stomato"]
    ),
    syn!(
        "chirurgie orthopédique",
        ["orthopediste", "orthopedie", "traumatologue"],
        ["code:sm08"],
        ["orthopedi"]
    ),
    syn!(
        "masseur-kinésithérapeute",
        [
            "kine",
            "kines",
            "kinesitherapeute",
            "kinesitherapie",
            "physiotherapeute"
        ],
        ["prof:70"],
        ["kinesi"]
    ),
    syn!(
        "infirmier",
        [
            "infirmier",
            "infirmiere",
            "infirmiers",
            "infirmieres",
            "ide"
        ],
        ["prof:60", "prof:69"],
        ["infirmi"]
    ),
    syn!(
        "sage-femme",
        ["sagefemme", "maieuticien", "maieuticienne"],
        ["prof:50"],
        ["sage"]
    ),
    syn!(
        "chirurgien-dentiste",
        ["dentiste", "dentistes", "dentaire"],
        ["prof:40"],
        ["dentist"]
    ),
    syn!(
        "pharmacien",
        ["pharmacien", "pharmacienne", "pharmacie", "pharma"],
        ["prof:21"],
        ["pharmac"]
    ),
    syn!(
        "orthophoniste",
        ["orthophoniste", "orthophonie"],
        ["prof:91"],
        ["orthophon"]
    ),
    syn!(
        "orthoptiste",
        ["orthoptiste", "orthoptie"],
        ["prof:92"],
        ["orthopti"]
    ),
    syn!(
        "pédicure-podologue",
        ["podologue", "pedicure", "podo"],
        ["prof:80"],
        ["podolog"]
    ),
    syn!(
        "opticien",
        ["opticien", "opticienne", "lunetier"],
        ["prof:28"],
        ["opticien"]
    ),
    syn!(
        "audioprothésiste",
        ["audioprothesiste", "audio"],
        ["prof:26"],
        ["audioprot"]
    ),
    syn!(
        "ergothérapeute",
        ["ergo", "ergotherapeute"],
        ["prof:94"],
        ["ergother"]
    ),
    syn!(
        "diététicien",
        ["dieteticien", "dieteticienne", "nutritionniste"],
        ["prof:95"],
        ["dieteti"]
    ),
    syn!(
        "psychomotricien",
        ["psychomot", "psychomotricien", "psychomotricienne"],
        ["prof:96"],
        ["psychomot"]
    ),
];

/// The families a folded query word names: an exact trigger, or the start
/// (4 letters or more) of a trigger, so « gynécol » works while typing.
pub fn lookup(word: &str) -> Vec<&'static Synonym> {
    let exact: Vec<_> = SYNONYMS
        .iter()
        .filter(|s| s.triggers.contains(&word))
        .collect();
    if !exact.is_empty() || word.len() < 4 {
        return exact;
    }
    SYNONYMS
        .iter()
        .filter(|s| s.triggers.iter().any(|t| t.starts_with(word)))
        .collect()
}

/// The tag the importer gives every document of a family.
pub fn family_tag(label: &str) -> String {
    format!(
        "fam:{}",
        crate::text::fold(label)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
    )
}

/// Families whose codes include `tag` (`code:sm04`, `prof:60`).
pub fn families_of(tag: &str) -> impl Iterator<Item = &'static Synonym> + '_ {
    SYNONYMS.iter().filter(move |s| s.tags.contains(&tag))
}

/// The family tags (`fam:…`) of a code tag, from a table built once: the
/// import asks for every tag of every row.
pub fn family_tags_of(tag: &str) -> &'static [String] {
    type Table = std::collections::HashMap<&'static str, Vec<String>, crate::text::FnvBuild>;
    static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| {
        let mut m = Table::default();
        for s in SYNONYMS {
            for t in s.tags {
                m.entry(t).or_default().push(family_tag(s.label));
            }
        }
        m
    });
    TABLE.get(tag).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_folded_and_prefixes_are_short() {
        for s in SYNONYMS {
            for t in s.triggers {
                assert_eq!(*t, crate::text::fold(t).trim(), "{t}");
            }
            for p in s.prefixes {
                assert!(
                    p.len() <= crate::text::MAX_PREFIX && !p.contains(' '),
                    "{p}"
                );
            }
        }
        assert_eq!(lookup("cardiologue")[0].label, "cardiologie");
        assert_eq!(lookup("gynecol")[0].label, "gynécologie");
        assert!(lookup("dup").is_empty());
    }
}
