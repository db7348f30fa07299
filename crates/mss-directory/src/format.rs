//! The published layout of the ANS extraction files: header lines as they
//! appear in the real files (see ../shared/spec/annuaire-sante.md §1.4–1.7).
//! The importer never relies on column order; these constants serve the
//! generator, the tests and the documentation.

/// `PS_LibreAcces_Personne_activite`, 56 columns as published since 2024.
pub const ACTIVITY_COLUMNS: [&str; 56] = [
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Code civilité d'exercice",
    "Libellé civilité d'exercice",
    "Code civilité",
    "Libellé civilité",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
    "Libellé profession",
    "Code catégorie professionnelle",
    "Libellé catégorie professionnelle",
    "Code type savoir-faire",
    "Libellé type savoir-faire",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Code mode exercice",
    "Libellé mode exercice",
    "Numéro SIRET site",
    "Numéro SIREN site",
    "Numéro FINESS site",
    "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure",
    "Raison sociale site",
    "Enseigne commerciale site",
    "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)",
    "Code commune (coord. structure)",
    "Libellé commune (coord. structure)",
    "Code pays (coord. structure)",
    "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)",
    "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)",
    "Code Département (structure)",
    "Libellé Département (structure)",
    "Ancien identifiant de la structure",
    "Autorité d'enregistrement",
    "Code secteur d'activité",
    "Libellé secteur d'activité",
    "Code section tableau pharmaciens",
    "Libellé section tableau pharmaciens",
    "Code rôle",
    "Libellé rôle",
    "Code genre activité",
    "Libellé genre activité",
];

/// Files from 2021–2023 stop after this many columns.
pub const ACTIVITY_COLUMNS_OLD: usize = 52;

/// `PS_LibreAcces_SavoirFaire`, 13 columns.
pub const SKILL_COLUMNS: [&str; 13] = [
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
    "Libellé profession",
    "Code catégorie professionnelle",
    "Libellé catégorie professionnelle",
    "Code type savoir-faire",
    "Libellé type savoir-faire",
    "Code savoir-faire",
    "Libellé savoir-faire",
];

/// `PS_LibreAcces_Dipl_AutExerc`, 13 columns.
pub const DIPLOMA_COLUMNS: [&str; 13] = [
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code type diplôme obtenu",
    "Libellé type diplôme obtenu",
    "Code diplôme obtenu",
    "Libellé diplôme obtenu",
    "Code type autorisation",
    "Libellé type autorisation",
    "Code discipline autorisation",
    "Libellé discipline autorisation",
];

/// `Extraction_Correspondance_MSSante`, 31 columns.
pub const MAILBOX_COLUMNS: [&str; 31] = [
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION structure BAL",
    "L3COMPLEMENTDISTRIBUTION structure BAL",
    "L4NUMEROVOIE structure BAL",
    "L4COMPLEMENTNUMEROVOIE structure BAL",
    "NL4TYPEVOIE structure BAL",
    "L4LIBELLEVOIE structure BAL",
    "L5LIEUDITMENTION structure BAL",
    "L6LIGNEACHEMINEMENT structure BAL",
    "Code postal structure BAL",
    "Département structure BAL",
    "Pays structure BAL",
];

/// Writes a header or data line the way the PS_LibreAcces files do: every
/// field followed by `|`, so the line ends with a trailing separator.
pub fn ps_line(fields: &[&str]) -> String {
    let mut out = String::new();
    for f in fields {
        out.push_str(f);
        out.push('|');
    }
    out
}

/// Writes a line the way the MSSanté file does (no trailing separator).
pub fn mss_line(fields: &[&str]) -> String {
    fields.join("|")
}

/// A row of `columns` with the named values set and every other column
/// empty (names must be exact; unknown names are a programming error).
pub fn row(columns: &[&str], values: &[(&str, &str)]) -> Vec<String> {
    let mut out = vec![String::new(); columns.len()];
    for (name, value) in values {
        let i = columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("unknown column {name}"));
        out[i] = (*value).to_owned();
    }
    out
}
