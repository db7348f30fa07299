//! What a submitted message carries, read independently of mss's own document code: the
//! IHE_XDM.ZIP attachments (mail-parser, zip), the CDA documents inside (roxmltree): code,
//! INS, traits; and the patient ids of METADATA.XML. Bounded: a hostile archive is
//! reported as unreadable, never expanded without limit.

use std::io::Read;

use mail_parser::{MessageParser, MimeHeaders};

/// Most entries read from one archive, and largest entry.
const MAX_ENTRIES: usize = 500;
const MAX_ENTRY: u64 = 32 * 1024 * 1024;

/// The INS OIDs: NIR, NIA, test, demonstration.
const INS_OIDS: [&str; 4] = [
    "1.2.250.1.213.1.4.8",
    "1.2.250.1.213.1.4.9",
    "1.2.250.1.213.1.4.10",
    "1.2.250.1.213.1.4.11",
];
/// XDSDocumentEntry.patientId and XDSSubmissionSet.patientId identification schemes.
const PATIENT_ID_SCHEMES: [&str; 2] = [
    "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
];

/// One CDA found in an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cda {
    pub file: String,
    pub code: Option<String>,
    /// Matricule and OID of the first INS id.
    pub ins: Option<(String, String)>,
    /// Whether the matricule's key verifies.
    pub ins_key_valid: bool,
    pub birth_name: Option<String>,
    pub first_given_name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub birthplace: Option<String>,
}

impl Cda {
    /// The four traits every INS comes with (birth name, first given name, birth date,
    /// sex) are there.
    pub fn core_traits(&self) -> bool {
        [
            &self.birth_name,
            &self.first_given_name,
            &self.birth_date,
            &self.sex,
        ]
        .iter()
        .all(|t| t.as_ref().is_some_and(|v| !v.trim().is_empty()))
    }
}

/// What one message's attachments hold.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// Names of the XDM archives found (zip attachments).
    pub archives: Vec<String>,
    pub documents: Vec<Cda>,
    /// Patient ids (CX strings) of METADATA.XML, submission set and entries.
    pub metadata_patient_ids: Vec<String>,
    /// Archives or documents that could not be read, and why.
    pub unreadable: Vec<String>,
}

/// Reads the XDM attachments of a raw message.
pub fn read_message(raw: &[u8]) -> Contents {
    let mut out = Contents::default();
    let Some(message) = MessageParser::new().parse(raw) else {
        out.unreadable.push("not a message".into());
        return out;
    };
    for part in message.attachments() {
        let name = part.attachment_name().unwrap_or_default().to_owned();
        let is_zip = name.to_ascii_lowercase().ends_with(".zip")
            || part
                .content_type()
                .is_some_and(|ct| ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("zip")));
        if !is_zip {
            continue;
        }
        out.archives.push(name.clone());
        read_archive(&name, part.contents(), &mut out);
    }
    out
}

fn read_archive(name: &str, bytes: &[u8], out: &mut Contents) {
    let mut archive = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => {
            out.unreadable.push(format!("{name}: {e}"));
            return;
        }
    };
    if archive.len() > MAX_ENTRIES {
        out.unreadable
            .push(format!("{name}: {} entries", archive.len()));
        return;
    }
    for index in 0..archive.len() {
        let Ok(entry) = archive.by_index(index) else {
            out.unreadable.push(format!("{name}: entry {index}"));
            continue;
        };
        let Ok(file) = entry.name().map(|n| n.into_owned()) else {
            out.unreadable
                .push(format!("{name}: entry {index} has no readable name"));
            continue;
        };
        if !file.to_ascii_lowercase().ends_with(".xml") {
            continue;
        }
        let mut text = String::new();
        if entry.take(MAX_ENTRY + 1).read_to_string(&mut text).is_err()
            || text.len() as u64 > MAX_ENTRY
        {
            out.unreadable
                .push(format!("{name}/{file}: not UTF-8 or too large"));
            continue;
        }
        let doc = match roxmltree::Document::parse(&text) {
            Ok(doc) => doc,
            Err(e) => {
                out.unreadable.push(format!("{name}/{file}: {e}"));
                continue;
            }
        };
        let root = doc.root_element();
        match root.tag_name().name() {
            "ClinicalDocument" => out.documents.push(read_cda(&file, root)),
            "SubmitObjectsRequest" | "ProvideAndRegisterDocumentSetRequest" => {
                out.metadata_patient_ids.extend(metadata_patient_ids(root));
            }
            _ => {}
        }
    }
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(node: roxmltree::Node) -> Option<String> {
    node.text()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
}

fn read_cda(file: &str, root: roxmltree::Node) -> Cda {
    let mut cda = Cda {
        file: file.to_owned(),
        code: child(root, "code").and_then(|c| c.attribute("code").map(str::to_owned)),
        ..Cda::default()
    };
    let Some(role) = child(root, "recordTarget").and_then(|r| child(r, "patientRole")) else {
        return cda;
    };
    for id in role.children().filter(|c| c.has_tag_name("id")) {
        if let (Some(root), Some(ext)) = (id.attribute("root"), id.attribute("extension"))
            && INS_OIDS.contains(&root.trim())
        {
            let matricule = ext.trim().to_owned();
            cda.ins_key_valid = mss_model::ins::Matricule::parse(&matricule).is_ok();
            cda.ins = Some((matricule, root.trim().to_owned()));
            break;
        }
    }
    let Some(patient) = child(role, "patient") else {
        return cda;
    };
    if let Some(name) = child(patient, "name") {
        let qualified = |tag: &str| {
            name.children()
                .filter(|c| c.has_tag_name(tag))
                .find(|c| c.attribute("qualifier") == Some("BR"))
                .and_then(text_of)
        };
        cda.birth_name = qualified("family");
        cda.first_given_name = qualified("given").or_else(|| {
            name.children()
                .find(|c| c.has_tag_name("given"))
                .and_then(text_of)
                .and_then(|g| g.split(' ').next().map(str::to_owned))
        });
    }
    cda.birth_date =
        child(patient, "birthTime").and_then(|b| b.attribute("value").map(str::to_owned));
    cda.sex = child(patient, "administrativeGenderCode")
        .and_then(|g| g.attribute("code").map(str::to_owned));
    cda.birthplace = patient
        .descendants()
        .find(|n| n.has_tag_name("county"))
        .and_then(text_of);
    cda
}

fn metadata_patient_ids(root: roxmltree::Node) -> Vec<String> {
    root.descendants()
        .filter(|n| n.has_tag_name("ExternalIdentifier"))
        .filter(|n| {
            n.attribute("identificationScheme")
                .is_some_and(|s| PATIENT_ID_SCHEMES.contains(&s))
        })
        .filter_map(|n| n.attribute("value").map(str::to_owned))
        .collect()
}
