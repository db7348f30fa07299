//! The ANS example corpus (`../shared/fixtures/ans/`): every CDA reads, the XSL
//! wrappers are refused with their own error, and each file says what it
//! really says. The expected table was cross-checked against a whole-document
//! reading with an independent XML library.
//!
//! When `../shared` is absent (a fresh clone), this prints a notice and checks
//! only the repository's own fixtures.

use std::path::{Path, PathBuf};

use mss_docs::cda::{BodyLevel, CdaError, CdaHeader, InstanceId, parse_header};
use mss_model::{InsKind, PartialDate, Sex};

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ans");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared not present ({})", dir.display());
        None
    }
}

fn own_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cda")
}

fn read(path: &Path) -> Result<CdaHeader, CdaError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_header(&bytes)
}

fn ok(base: &Path, rel: &str) -> CdaHeader {
    read(&base.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `.xml`/`.XML` file under `dir`, relative to `base`, sorted.
fn xml_files(base: &Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![base.join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
            {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

struct Row {
    path: &'static str,
    code: &'static str,
    level: u8,
    /// (matricule, last arc of the INS OID, key verifies)
    ins: Option<(&'static str, &'static str, bool)>,
    version: Option<u32>,
    /// `root` or `root^extension` of the replaced document.
    replaces: Option<&'static str>,
    birthplace: &'static str,
}

const fn row(
    path: &'static str,
    code: &'static str,
    level: u8,
    ins: Option<(&'static str, &'static str, bool)>,
    version: Option<u32>,
    replaces: Option<&'static str>,
    birthplace: &'static str,
) -> Row {
    Row {
        path,
        code,
        level,
        ins,
        version,
        replaces,
        birthplace,
    }
}

const XSL_WRAPPERS: [&str; 3] = [
    "cda/BIO-CR-BIO_2021.01_Auto-Presentable.xml",
    "cda/BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.xml",
    "cda/CANCER-PPS_2022.01_Autopresentable.xml",
];

#[rustfmt::skip]
const TABLE: &[Row] = &[
    row("cda/01_Modeles_contenus_CDA.xml", "60591-5", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.1.13.1.1"), "51215"),
    row("cda/ANEST-CR-ANEST_2022.01.xml", "77436-4", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/ANEST-CR-CPA_2022.01.xml", "34749-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/AVC-AUNV_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/AVC-EUNV_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/AVC-PAVC_2022.01.xml", "11488-4", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/AVC-SUNV_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml", "11502-2", 1, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2021.01_CR-2nde-intention.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2021.01_Electrophorese.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2021.01_Microbiologie_V1.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2021.01_Microbiologie_V2.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.1.55.12345.8"), "51215"),
    row("cda/BIO-CR-BIO_2023.01_Electrophorese.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "63220"),
    row("cda/BIO-CR-BIO_2024.01_CR-2nde-intention-PDF.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_CRP_non_LOINC.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_DEP-CCU-HPV-structure-CYTO-pdf.xml.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_DEP-CCU-tout-structure.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_Electrophorese.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_Glycemie_deux_unites_principales_mole_masse.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_Glycemie_mole.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_Microbiologie_V1.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_Microbiologie_V2.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.1.55.12345.13"), "51215"),
    row("cda/BIO-CR-BIO_2024.01_TSH_1.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-CR-BIO_2024.01_TSH_2.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-TROD_2024.01_Angine.xml", "96173-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-TROD_2024.01_COVID-19.xml", "96173-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-TROD_2024.01_COVID-19_Grippe-A_Grippe-B.xml", "96173-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/BIO-TROD_2024.01_Cystite.xml", "96173-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-CR-GM_2022.01_AnalyseNonRealisee.xml", "51969-4", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CANCER-CR-GM_2022.01_AnalyseRealisee.xml", "51969-4", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-D2LM-FIDD_2022.01.xml", "18748-4", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-D2LM-FIN_2022.01.xml", "18748-4", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-FRCP_2022.01_Appareil.xml", "34794-8", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-FRCP_2022.01_Transversale.xml", "34794-8", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CANCER-PPS_2022.01_feuille-de-style-externe.xml", "18776-5", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CARD-F-PRC-AVK_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CARD-F-PRC-DCI_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CARD-F-PRC-PPV_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CARD-F-PRC-PSC_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CARD-F-PRC-TAP_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/CNAM-HR_2021.01.xml", "REMB", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/CNAM-HR_2021.01_sans-info.xml", "REMB", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.9^10002-1"), "51215"),
    row("cda/CSE-CS24_2024.01.xml", "CERT_DECL", 3, Some(("221042545611404", "8", false)), Some(1), None, "75056"),
    row("cda/CSE-CS24_2025.01.xml", "CERT_DECL", 3, Some(("221042545611404", "10", false)), Some(1), None, "75056"),
    row("cda/CSE-CS8_2024.01.xml", "CERT_DECL", 3, Some(("223042545611404", "8", false)), Some(1), Some("1.2.250.1.213.1.1.1.5.1.1"), "75056"),
    row("cda/CSE-CS8_2025.01.xml", "CERT_DECL", 3, Some(("221042545611404", "10", false)), Some(1), None, "75056"),
    row("cda/CSE-CS9_2024.01.xml", "CERT_DECL", 3, Some(("221042545611404", "8", false)), Some(1), None, "75056"),
    row("cda/CSE-CS9_2025.01.xml", "CERT_DECL", 3, Some(("221042545611404", "10", false)), Some(1), None, "75056"),
    row("cda/CSE-MDE_2023.01.xml", "29274-8", 3, Some(("222127505611201", "8", false)), Some(4), None, "75056"),
    row("cda/DLU-EHPAD-DLU_2022.01.xml", "74207-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/DLU-EHPAD-FLUDR_2022.01.xml", "74207-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/DLU-EHPAD-FLUDT_2022.01.xml", "74207-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/DOC_NON_STRUCTURE_CDA-R2-N1.xml", "11502-2", 1, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Mammo-Echo-Seins.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Radiographie_ChevilleGenou.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Radiographie_Echographie_SeinThorax.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Radiographie_IRM_Genou.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Radiographie_Scanner_Genou.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_Scanner_Crane_ThoraxAbdomenPelvis.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG-DA-IMG_2024.01_TEP_Thorax.xml", "55115-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/IMG_CR_IMG_2024.01.xml", "18748-4", 3, Some(("279035121518989", "10", true)), Some(2), Some("90E1C8EC-F951-4B26-A305-A34848818DD6"), "51215"),
    row("cda/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("90E1C8EC-F951-4B26-A305-A34848818DD6"), "51215"),
    row("cda/IPS-FR_2024.01.xml", "60591-5", 3, Some(("279035121518989", "10", true)), Some(2), Some("8D5E778C-E155-4685-95C6-5FF65A362964"), "51215"),
    row("cda/IPS-FR_2024.01_DLU.xml", "74207-2", 3, Some(("279035121518989", "10", true)), Some(2), Some("AA2F476F-CA64-47BF-AED1-852692B493D9"), "51215"),
    row("cda/LDL-EES_2022.01.xml", "18761-7", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/LDL-SES_2022.01.xml", "11490-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/OBP-SAP_2024.01.xml", "57055-6", 3, Some(("277076322082910", "8", true)), Some(1), None, "51215"),
    row("cda/OBP-SCM_2024.01.xml", "89235-6", 3, Some(("277076322082910", "8", true)), Some(1), None, "51215"),
    row("cda/OBP-SEM_2024.01.xml", "78489-2", 3, Some(("223042545611404", "8", false)), Some(1), None, "75056"),
    row("cda/OBP-SNE_2024.01.xml", "57075-4", 3, Some(("223042545611404", "8", false)), Some(1), None, "75056"),
    row("cda/OBP-SNM_2024.01.xml", "57057-2", 3, Some(("277076322082910", "8", true)), Some(1), None, "51215"),
    row("cda/OPH-BRE_2022.02.xml", "78513-9", 3, Some(("279035121518989", "10", true)), Some(3), Some("1.2.250.1.213.1.1.9^OPH-BRE_2021.01_20210827_00001_2"), "51215"),
    row("cda/OPH-CR-RTN_2022.01.xml", "75492-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/SDM-MR_2022.01.xml", "34133-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/SDM-MR_2024.01_nouveau-ne.xml", "34133-9", 3, Some(("224027511583555", "10", false)), Some(2), None, "75115"),
    row("cda/SDM-MR_2024.01_patiente-enceinte.xml", "34133-9", 3, Some(("277076322082910", "10", true)), Some(1), None, "75115"),
    row("cda/SDM-MR_2024.01_patiente-post-grossesse.xml", "34133-9", 3, Some(("277076322082910", "10", true)), Some(2), None, "75115"),
    row("cda/TLM-CR_2022.01.xml", "85208-7", 1, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/TLM-DA_2022.01_TCG.xml", "75496-0", 3, Some(("279035121518989", "10", true)), Some(2), None, "51215"),
    row("cda/TLM-DA_2022.01_TCG_anamnese-non-structuree.xml", "75496-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/TLM-DA_2022.01_TE1_anamnese-non-structuree.xml", "75496-0", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/VAC-NOTE_2023.01.xml", "87273-9", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/VAC_2023.01.xml", "11369-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/VSM_1.4_2022.01.xml", "SYNTH", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eDISP-MED_2024.01.xml", "60593-1", 3, Some(("277076322082910", "8", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2022.01_PosoNonStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2022.01_PosoStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2023.01_PosoNonStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2023.01_PosoStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2024.01_PosoNonStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("cda/eP-MED-DM_2024.01_PosoStruct.xml", "57833-6", 3, Some(("279035121518989", "10", true)), Some(1), None, "51215"),
    row("hl7v2/RIS/remplacement_cr_imagerie.xml", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.4.5.4.402"), "63220"),
    row("hl7v2/RIS/suppression_cr_imagerie.xml", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.4.5.4.402"), "63220"),
    row("hl7v2/RIS/transmission_initiale_cr_imagerie.xml", "18748-4", 1, Some(("279035121518989", "10", true)), Some(1), None, "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/Remplacement_MDM/CR_Radio_CDAN1_v2.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.71.4.2.2.120456789.71024000081"), "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/Suppression_MDM/CR_Radio_CDAN1_v2.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.71.4.2.2.120456789.71024000081"), "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/Transmission_initiale_MDM/CR_Radio_CDAN1_v1.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(1), None, "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/Remplacement_ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.12"), "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/Suppression_ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.213.1.1.12"), "63220"),
    row("hl7v2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/Transmission_initiale_ORU/SEGUR_CR-BIO_2023.01_Electrophorese.xml", "11502-2", 3, Some(("279035121518989", "10", true)), Some(1), None, "63220"),
    row("hl7v2/Trans_LPS_CDA_MSSante/TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1/Remplacement_MDM/CR_Radio_CDAN1_v2.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.71.4.2.2.120456789.71024000081"), "63220"),
    row("hl7v2/Trans_LPS_CDA_MSSante/TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1/Suppression_MDM/CR_Radio_CDAN1_v2.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(2), Some("1.2.250.1.71.4.2.2.120456789.71024000081"), "63220"),
    row("hl7v2/Trans_LPS_CDA_MSSante/TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1/Transmission_initiale_MDM/CR_Radio_CDAN1_v1.XML", "18748-4", 1, Some(("279035121518989", "10", true)), Some(1), None, "63220"),
];

fn id_text(id: &InstanceId) -> String {
    match &id.extension {
        Some(ext) => format!("{}^{ext}", id.root),
        None => id.root.clone(),
    }
}

#[test]
fn every_file_of_the_corpus_reads_as_the_table_says() {
    let Some(base) = shared() else { return };
    let mut on_disk = xml_files(&base, "cda");
    on_disk.extend(xml_files(&base, "hl7v2"));
    let mut listed: Vec<String> = TABLE.iter().map(|r| r.path.to_owned()).collect();
    listed.extend(XSL_WRAPPERS.iter().map(|p| (*p).to_owned()));
    listed.sort();
    assert_eq!(on_disk, listed, "the corpus changed: update TABLE");

    let mut failures = Vec::new();
    for row in TABLE {
        let h = match read(&base.join(row.path)) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{}: {e}", row.path));
                continue;
            }
        };
        let mut check = |what: &str, ok: bool| {
            if !ok {
                failures.push(format!("{}: {what}", row.path));
            }
        };
        check(
            "code",
            h.code.as_ref().map(|c| c.code.as_str()) == Some(row.code),
        );
        check("level", u8::from(h.level) == row.level);
        check("version", h.version == row.version);
        check(
            "replaces",
            h.replaces.as_ref().map(id_text).as_deref() == row.replaces,
        );
        check(
            "birthplace",
            h.patient.traits.birthplace_code.as_deref() == Some(row.birthplace),
        );
        match (&h.patient.ins, row.ins) {
            (None, None) => {}
            (Some(ins), Some((matricule, arc, valid))) => {
                check("INS matricule", ins.matricule == matricule);
                check("INS OID", ins.oid == format!("1.2.250.1.213.1.4.{arc}"));
                check("INS key", ins.key_valid == valid);
                check("INS kind", Some(ins.kind) == InsKind::from_oid(&ins.oid));
            }
            _ => check("INS presence", false),
        }
        // Every ANS example carries the full INS traits.
        let t = &h.patient.traits;
        check("birth name", t.birth_name.is_some());
        check("first given name", t.first_given_name.is_some());
        check("given names", t.given_names.is_some());
        check("birth date", t.birth_date.is_some());
        check("sex", t.sex.is_some());
        check("authors", !h.authors.is_empty());
        check("custodian", h.custodian.is_some());
        check("title", h.title.is_some());
        check("effective time", h.effective_time.is_some());
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_three_xsl_wrappers_are_refused_as_such() {
    let Some(base) = shared() else { return };
    for rel in XSL_WRAPPERS {
        assert_eq!(read(&base.join(rel)), Err(CdaError::XslWrapper), "{rel}");
    }
}

#[test]
fn tsh_1_header_in_full() {
    let Some(base) = shared() else { return };
    let h = ok(&base, "cda/BIO-CR-BIO_2024.01_TSH_1.xml");
    assert_eq!(
        h.id,
        InstanceId {
            root: "1.2.250.1.213.1.1.1.55.2024.9.1".into(),
            extension: None
        }
    );
    assert_eq!(
        h.set_id.as_ref().map(id_text).as_deref(),
        Some("1.2.250.1.213.1.1.1.55.2024.9")
    );
    assert_eq!(h.version, Some(1));
    let code = h.code.unwrap();
    assert_eq!(code.code, "11502-2");
    assert_eq!(code.system.as_deref(), Some("2.16.840.1.113883.6.1"));
    assert_eq!(code.display.as_deref(), Some("CR d'examens biologiques"));
    assert_eq!(
        h.title.as_deref(),
        Some("Compte rendu d'examens biologiques")
    );
    assert_eq!(h.effective_time.as_deref(), Some("20210401171000+0100"));
    assert_eq!(h.confidentiality.unwrap().code, "N");
    assert_eq!(h.language.as_deref(), Some("fr-FR"));
    let templates: Vec<&str> = h.template_ids.iter().map(|t| t.root.as_str()).collect();
    assert_eq!(
        templates,
        [
            "2.16.840.1.113883.2.8.2.1",
            "1.2.250.1.213.1.1.1.1",
            "1.3.6.1.4.1.19376.1.3.3",
            "1.2.250.1.213.1.1.1.55"
        ]
    );
    assert_eq!(h.level, BodyLevel::Structured);

    let p = &h.patient;
    assert_eq!(p.ids.len(), 2);
    assert_eq!(id_text(&p.ids[1]), "1.2.3.4.567.8.9.10^1234567890121");
    let ins = p.ins.as_ref().unwrap();
    assert_eq!(ins.matricule, "279035121518989");
    assert_eq!(ins.oid, "1.2.250.1.213.1.4.10");
    assert_eq!(ins.kind, InsKind::Test);
    assert!(ins.key_valid);
    assert_eq!(p.traits.birth_name.as_deref(), Some("PAT-TROIS"));
    assert_eq!(p.traits.first_given_name.as_deref(), Some("DOMINIQUE"));
    assert_eq!(
        p.traits.given_names.as_deref(),
        Some("DOMINIQUE MARIE-LOUISE")
    );
    assert_eq!(
        p.traits.birth_date,
        Some(PartialDate {
            year: 1979,
            month: Some(3),
            day: Some(28)
        })
    );
    assert_eq!(p.traits.sex, Some(Sex::F));
    assert_eq!(p.traits.birthplace_code.as_deref(), Some("51215"));
    assert_eq!(p.used_name.as_deref(), Some("PAT-TROIS"));
    assert_eq!(p.used_given_name.as_deref(), Some("DOMINIQUE"));

    assert_eq!(h.authors.len(), 1);
    let a = &h.authors[0];
    assert_eq!(
        a.id.as_ref().map(id_text).as_deref(),
        Some("1.2.250.1.71.4.2.1^801234534765")
    );
    assert_eq!(a.family.as_deref(), Some("CAMPARINI"));
    assert_eq!(a.given.as_deref(), Some("Marcel"));
    assert_eq!(
        a.role.as_ref().map(|c| c.code.as_str()),
        Some("G15_10/SM03")
    );
    assert_eq!(a.time.as_deref(), Some("20210104160527+0100"));
    let org = a.organization.as_ref().unwrap();
    assert_eq!(
        org.id.as_ref().map(id_text).as_deref(),
        Some("1.2.250.1.71.4.2.2^1120459876")
    );
    assert_eq!(org.name.as_deref(), Some("Laboratoire des charmes"));
    let custodian = h.custodian.unwrap();
    assert_eq!(custodian.name.as_deref(), Some("Laboratoire des charmes"));
    let legal = h.legal_authenticator.unwrap();
    assert_eq!(legal.family.as_deref(), Some("CAMPARINI"));
    assert_eq!(legal.time.as_deref(), Some("20210104160527+0100"));
    assert_eq!(h.replaces, None);
    assert_eq!(h.service_start.as_deref(), Some("20210104092200+0100"));
    assert_eq!(h.service_stop.as_deref(), Some("20210104160500+0100"));
    assert_eq!(h.facility_type.unwrap().code, "SA25");
    // The performer's organisation, not the legal authenticator's (ETABLISSEMENT).
    assert_eq!(h.practice_setting.unwrap().code, "AMBULATOIRE");
}

#[test]
fn level_one_examples_are_level_one() {
    let Some(base) = shared() else { return };
    for rel in [
        "cda/BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml",
        "cda/DOC_NON_STRUCTURE_CDA-R2-N1.xml",
        "cda/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
        "cda/TLM-CR_2022.01.xml",
    ] {
        assert_eq!(ok(&base, rel).level, BodyLevel::Unstructured, "{rel}");
    }
}

#[test]
fn microbiologie_v2_declares_the_parent_the_file_says() {
    let Some(base) = shared() else { return };
    let v1 = ok(&base, "cda/BIO-CR-BIO_2024.01_Microbiologie_V1.xml");
    let v2 = ok(&base, "cda/BIO-CR-BIO_2024.01_Microbiologie_V2.xml");
    let parent = v2.replaces.unwrap();
    assert_eq!(parent.root, "1.2.250.1.213.1.1.1.55.12345.13");
    // Known trap of the ANS examples: that is not V1's id.
    assert_ne!(parent, v1.id);
    assert_eq!(v2.version, Some(2));
}

#[test]
fn ris_triplet_is_a_true_version_pair() {
    let Some(base) = shared() else { return };
    let v1 = ok(&base, "hl7v2/RIS/transmission_initiale_cr_imagerie.xml");
    let v2 = ok(&base, "hl7v2/RIS/remplacement_cr_imagerie.xml");
    let deletion = ok(&base, "hl7v2/RIS/suppression_cr_imagerie.xml");
    assert_eq!(v1.version, Some(1));
    assert_eq!(v1.replaces, None);
    assert_eq!(v2.version, Some(2));
    assert_eq!(v2.replaces.as_ref(), Some(&v1.id));
    assert_eq!(v2.set_id, v1.set_id);
    assert_ne!(v2.id, v1.id);
    assert_eq!(deletion, v2);
    assert_eq!(v2.code.as_ref().unwrap().code, "18748-4");
    assert_eq!(v2.level, BodyLevel::Unstructured);
    assert_eq!(v2.title.as_deref(), Some("CR d’imagerie médicale"));
    let t = &v2.patient.traits;
    assert_eq!(t.birthplace_code.as_deref(), Some("63220"));
    // Same INS as the other examples, diverging traits (see spec §8).
    assert_eq!(t.given_names.as_deref(), Some("DOMINIQUE"));
    assert_eq!(
        v2.patient.ins.as_ref().unwrap().matricule,
        "279035121518989"
    );
    assert_eq!(id_text(&v2.patient.ids[1]), "1.2.250.1.213.4.5.2.4^IPP101");
}

#[test]
fn mdm_radiology_examples_have_no_set_id() {
    let Some(base) = shared() else { return };
    let dir = "hl7v2/Trans_LPS_CDA_MSSante/TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1";
    let v2 = ok(
        &base,
        &format!("{dir}/Remplacement_MDM/CR_Radio_CDAN1_v2.XML"),
    );
    assert_eq!(v2.set_id, None);
    assert_eq!(v2.version, Some(2));
    assert_eq!(v2.level, BodyLevel::Unstructured);
    assert_eq!(
        v2.replaces.map(|id| id.root).as_deref(),
        Some("1.2.250.1.71.4.2.2.120456789.71024000081")
    );
    // Name parts without a used given name and no CL given.
    assert_eq!(v2.patient.used_given_name, None);
}

#[test]
fn invalid_keys_are_reported_never_hidden() {
    let Some(base) = shared() else { return };
    for (rel, matricule) in [
        ("cda/CSE-CS24_2024.01.xml", "221042545611404"),
        ("cda/CSE-CS8_2024.01.xml", "223042545611404"),
        ("cda/CSE-MDE_2023.01.xml", "222127505611201"),
        ("cda/OBP-SEM_2024.01.xml", "223042545611404"),
        ("cda/OBP-SNE_2024.01.xml", "223042545611404"),
        ("cda/SDM-MR_2024.01_nouveau-ne.xml", "224027511583555"),
    ] {
        let ins = ok(&base, rel).patient.ins.unwrap();
        assert_eq!(ins.matricule, matricule, "{rel}");
        assert!(!ins.key_valid, "{rel}");
    }
}

#[test]
fn cse_2025_ins_is_the_test_oid_not_the_social_security_number() {
    let Some(base) = shared() else { return };
    for rel in ["cda/CSE-CS24_2025.01.xml", "cda/CSE-CS9_2025.01.xml"] {
        let p = ok(&base, rel).patient;
        let roots: Vec<&str> = p.ids.iter().map(|i| i.root.as_str()).collect();
        assert_eq!(
            roots,
            ["1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.13"],
            "{rel}"
        );
        let ins = p.ins.unwrap();
        assert_eq!(ins.oid, "1.2.250.1.213.1.4.10", "{rel}");
        assert_eq!(ins.kind, InsKind::Test, "{rel}");
        assert!(!ins.key_valid, "{rel}");
    }
}

#[test]
fn production_nir_with_given_names_first_and_a_spouse_name() {
    let Some(base) = shared() else { return };
    let p = ok(&base, "cda/eDISP-MED_2024.01.xml").patient;
    let ins = p.ins.unwrap();
    assert_eq!(
        (ins.matricule.as_str(), ins.kind, ins.key_valid),
        ("277076322082910", InsKind::Nir, true)
    );
    assert_eq!(p.traits.birth_name.as_deref(), Some("NESSI"));
    assert_eq!(p.traits.first_given_name.as_deref(), Some("RUTH"));
    assert_eq!(p.traits.given_names.as_deref(), Some("ISABELLE"));
    assert_eq!(p.used_name.as_deref(), Some("DECOURCY"));
    assert_eq!(
        p.traits.birth_date,
        Some(PartialDate {
            year: 1977,
            month: Some(7),
            day: Some(14)
        })
    );
}

#[test]
fn accented_given_names_and_newborn() {
    let Some(base) = shared() else { return };
    let h = ok(&base, "cda/SDM-MR_2024.01_nouveau-ne.xml");
    let t = &h.patient.traits;
    assert_eq!(t.first_given_name.as_deref(), Some("Léa"));
    assert_eq!(t.given_names.as_deref(), Some("Léa Marie"));
    assert_eq!(
        t.birth_date,
        Some(PartialDate {
            year: 2024,
            month: Some(2),
            day: Some(28)
        })
    );
    assert_eq!(h.patient.ids.len(), 3);
    assert_eq!(h.patient.used_given_name, None);
}

#[test]
fn headers_serialize_to_json() {
    let path = own_fixtures().join("n3_default_ns.xml");
    let h = read(&path).unwrap();
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["level"], 3);
    assert_eq!(json["patient"]["birth_date"], "1985-05-12");
    assert_eq!(json["patient"]["ins"]["kind"], "test");
}
