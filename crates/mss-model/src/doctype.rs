//! Document types (JDV_J07-XdsTypeCode-CISIS): code → French label.
//!
//! The table is generated from the ANS value set by `scripts/gen-doctypes.py`
//! into `doctype_table.rs` and committed, so building never needs the value
//! set file. See that file's header for its source version.

use serde::Serialize;

#[path = "doctype_table.rs"]
mod table;

pub use table::{VALUE_SET_OID, VALUE_SET_REVISION};

/// OID of LOINC, the code system of most document types.
pub const CODE_SYSTEM_LOINC: &str = "2.16.840.1.113883.6.1";

/// One document type of the value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DocType {
    /// The code, e.g. `11502-2`.
    pub code: &'static str,
    /// OID (or name, `ASTM`) of the code system the code belongs to.
    pub code_system: &'static str,
    /// French label, as published, e.g. `CR d'examens biologiques`.
    pub label: &'static str,
}

/// The document type with this code (exact, case-sensitive match; surrounding
/// spaces ignored).
pub fn lookup(code: &str) -> Option<&'static DocType> {
    let code = code.trim();
    table::ENTRIES
        .binary_search_by(|entry| entry.code.cmp(code))
        .ok()
        .map(|i| &table::ENTRIES[i])
}

/// The French label of a document type code.
pub fn label(code: &str) -> Option<&'static str> {
    lookup(code).map(|entry| entry.label)
}

/// The code system of a document type code.
pub fn code_system(code: &str) -> Option<&'static str> {
    lookup(code).map(|entry| entry.code_system)
}

/// Every document type, sorted by code.
pub fn all() -> &'static [DocType] {
    table::ENTRIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn jdv_file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/ans/jdv/JDV_J07_XdsTypeCode_CISIS.xml")
    }

    #[test]
    fn known_codes() {
        assert_eq!(label("11502-2"), Some("CR d'examens biologiques"));
        assert_eq!(label("18748-4"), Some("CR d'imagerie médicale"));
        assert_eq!(label(" 34112-3 "), Some("CR hospitalier (séjour)"));
        assert_eq!(code_system("11502-2"), Some(CODE_SYSTEM_LOINC));
        assert_eq!(code_system("SYNTH"), Some("1.2.250.1.213.1.1.4.12"));
        assert_eq!(label("SYNTH"), Some("Synthèse"));
        assert_eq!(code_system("E1762"), Some("ASTM"));
        assert_eq!(label("99999-9"), None);
        assert_eq!(label(""), None);
        assert_eq!(label("synth"), None);
        assert_eq!(VALUE_SET_OID, "1.2.250.1.213.1.1.5.471");
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let entries = all();
        assert_eq!(entries.len(), 114);
        assert!(entries.windows(2).all(|w| w[0].code < w[1].code));
        for entry in entries {
            assert_eq!(lookup(entry.code), Some(entry));
            assert!(!entry.label.is_empty());
        }
    }

    /// Checks the committed table against the value set when `../shared` is
    /// there. Without an XML parser in this crate, it checks the concept
    /// count and that each entry's three attributes appear in the file.
    #[test]
    fn table_matches_the_value_set_file() {
        let path = jdv_file();
        let Ok(xml) = std::fs::read_to_string(&path) else {
            println!(
                "SKIPPED: {} is absent, the table was not compared with its source",
                path.display()
            );
            return;
        };
        // Each `<Concept …/>` element's attribute text.
        let elements: Vec<&str> = xml
            .split("<Concept ")
            .skip(1)
            .map(|rest| rest.split("/>").next().unwrap_or(""))
            .collect();
        assert_eq!(
            all().len(),
            elements.len(),
            "regenerate with scripts/gen-doctypes.py"
        );
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
        };
        for entry in all() {
            let needles = [
                format!("code=\"{}\"", escape(entry.code)),
                format!("codeSystem=\"{}\"", escape(entry.code_system)),
                format!("displayName=\"{}\"", escape(entry.label)),
            ];
            assert!(
                elements
                    .iter()
                    .any(|e| needles.iter().all(|n| e.contains(n.as_str()))),
                "{} is not in the value set file as generated: regenerate with scripts/gen-doctypes.py",
                entry.code
            );
        }
    }
}
