//! The ebRIM / IHE XDS identifiers and the CDA → XDS code correspondences.

use crate::cda::Coded;

pub(crate) const NS_RIM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0";
pub(crate) const NS_LCM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0";

pub(crate) const SUBMISSION_SET_NODE: &str = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd";
pub(crate) const DOCUMENT_ENTRY_TYPE: &str = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1";

pub(crate) const SS_AUTHOR: &str = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d";
pub(crate) const SS_CONTENT_TYPE: &str = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500";
pub(crate) const SS_PATIENT_ID: &str = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446";
pub(crate) const SS_SOURCE_ID: &str = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832";
pub(crate) const SS_UNIQUE_ID: &str = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8";

pub(crate) const DE_AUTHOR: &str = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d";
pub(crate) const DE_CLASS: &str = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a";
pub(crate) const DE_CONFIDENTIALITY: &str = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f";
pub(crate) const DE_FORMAT: &str = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d";
pub(crate) const DE_FACILITY: &str = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1";
pub(crate) const DE_PRACTICE: &str = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead";
pub(crate) const DE_TYPE: &str = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983";
pub(crate) const DE_PATIENT_ID: &str = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427";
pub(crate) const DE_UNIQUE_ID: &str = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab";

pub(crate) const HAS_MEMBER: &str = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember";
pub(crate) const CLASSIFICATION_OBJECT: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification";
pub(crate) const EXTERNAL_IDENTIFIER_OBJECT: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier";
pub(crate) const ASSOCIATION_OBJECT: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association";
pub(crate) const REGISTRY_PACKAGE_OBJECT: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage";

/// Coding scheme of the IHE format codes (`urn:ihe:…`).
const IHE_FORMAT_SCHEME: &str = "1.3.6.1.4.1.19376.1.2.3";
/// TRE_A03-ClasseDocument.
const CLASS_SCHEME: &str = "1.2.250.1.213.1.1.4.1";

/// formatCode of a CDA level 1 document (PDF in `nonXMLBody`).
pub(crate) fn format_code_pdf() -> Coded {
    Coded {
        code: "urn:ihe:iti:xds-sd:pdf:2008".into(),
        system: Some(IHE_FORMAT_SCHEME.into()),
        display: Some("Document à corps non structuré en Pdf/A-1".into()),
    }
}

/// formatCode of a structured CDA from its templateIds (ASS_A11, the part
/// we could confirm: CR-BIO and IHE PALM → XD-LAB), else the IHE generic
/// `urn:ihe:iti:xds:2017:mimeTypeSufficient`. Callers who know better pass
/// `XdmInput::format_code`.
pub(crate) fn format_code_structured(template_roots: &[&str]) -> Coded {
    const XD_LAB: [&str; 2] = ["1.2.250.1.213.1.1.1.55", "1.3.6.1.4.1.19376.1.3.3"];
    if template_roots.iter().any(|root| XD_LAB.contains(root)) {
        return Coded {
            code: "urn:ihe:lab:xd-lab:2008".into(),
            system: Some(IHE_FORMAT_SCHEME.into()),
            display: Some("CR d'examens biologiques".into()),
        };
    }
    Coded {
        code: "urn:ihe:iti:xds:2017:mimeTypeSufficient".into(),
        system: Some(IHE_FORMAT_SCHEME.into()),
        display: Some("Format défini par le type MIME".into()),
    }
}

/// classCode from the document type code. The ASS_X04 correspondence is not
/// in the project's references: this covers only the report and synthesis
/// types whose class is unambiguous (class `10` "Compte rendu", `11`
/// "Synthèse", TRE_A03). Other types need `XdmInput::class_code`.
pub(crate) fn class_code_for(type_code: &str) -> Option<Coded> {
    const REPORTS: [&str; 10] = [
        "11502-2", // CR d'examens biologiques
        "18748-4", // CR d'imagerie médicale
        "34112-3", // CR hospitalier (séjour)
        "11488-4", // CR de consultation
        "15507-7", // CR de passage aux urgences
        "34874-8", // CR opératoire
        "60568-3", // CR d'anatomie et de cytologie pathologiques
        "51969-4", // CR de génétique moléculaire
        "11490-0", // Lettre de liaison à la sortie
        "96173-0", // TROD
    ];
    const SYNTHESES: [&str; 2] = ["60591-5", "SYNTH"];
    let (code, display) = if REPORTS.contains(&type_code) {
        ("10", "Compte rendu")
    } else if SYNTHESES.contains(&type_code) {
        ("11", "Synthèse")
    } else {
        return None;
    };
    Some(Coded {
        code: code.into(),
        system: Some(CLASS_SCHEME.into()),
        display: Some(display.into()),
    })
}

/// A UUID (RFC 4122 version 5 layout) derived from SHA-1 of `parts`, so
/// identifiers are stable for the same input. Returned as `urn:uuid:…`.
pub(crate) fn derived_uuid(parts: &[&str]) -> String {
    format!("urn:uuid:{}", uuid_text(&uuid_bytes(parts)))
}

/// The same UUID as an OID under `2.25` (ITU-T X.667), for uniqueIds.
pub(crate) fn derived_oid(parts: &[&str]) -> String {
    format!("2.25.{}", u128::from_be_bytes(uuid_bytes(parts)))
}

fn uuid_bytes(parts: &[&str]) -> [u8; 16] {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(b"mss-xdm");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest: [u8; 20] = hasher.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Escapes the HL7 v2 delimiters inside one component value.
pub(crate) fn hl7_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuid_is_stable_and_well_formed() {
        let a = derived_uuid(&["doc", "1.2.3"]);
        assert_eq!(a, derived_uuid(&["doc", "1.2.3"]));
        assert_ne!(a, derived_uuid(&["doc", "1.2.4"]));
        assert_ne!(derived_uuid(&["ab", "c"]), derived_uuid(&["a", "bc"]));
        let text = a.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "5");
        assert!(derived_oid(&["x"]).starts_with("2.25."));
    }

    #[test]
    fn hl7_escape_covers_delimiters() {
        assert_eq!(hl7_escape(r"a^b&c~d|e\f"), r"a\S\b\T\c\R\d\F\e\E\f");
    }
}
