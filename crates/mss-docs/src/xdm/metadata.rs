//! `METADATA.XML` (ebRIM 3.0 SubmitObjectsRequest) → plain values, by
//! namespace and local name, never by prefix.

use std::collections::{HashMap, HashSet};

use roxmltree::{Document as XmlDoc, Node};

use super::vocab::*;
use super::{Action, SubmissionSet};
use crate::cda::Coded;

/// What one DocumentEntry (ExtrinsicObject) says.
#[derive(Debug, Default)]
pub(crate) struct RawEntry {
    pub entry_uuid: Option<String>,
    pub unique_id: Option<String>,
    pub patient_id: Option<String>,
    pub type_code: Option<Coded>,
    pub class_code: Option<Coded>,
    pub format_code: Option<Coded>,
    pub hash: Option<String>,
    pub size: Option<String>,
    pub uri: Option<String>,
    pub creation_time: Option<String>,
    pub mime_type: Option<String>,
    pub title: Option<String>,
    pub action: Option<Action>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSubmission {
    pub submission_set: SubmissionSet,
    pub action: Option<Action>,
    pub entries: Vec<RawEntry>,
}

/// Element `node` is the ebRIM element `local` (rim or lcm namespace, or no
/// namespace at all for lenient producers).
fn is(node: &Node, local: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == local
        && matches!(
            node.tag_name().namespace(),
            None | Some(NS_RIM) | Some(NS_LCM)
        )
}

fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |n| is(n, local))
}

fn slot_values<'a>(slot: Node<'a, '_>) -> Vec<&'a str> {
    children(slot, "ValueList")
        .flat_map(|list| children(list, "Value"))
        .map(|v| v.text().unwrap_or("").trim())
        .collect()
}

/// First value of the slot `name` directly under `node`.
fn slot<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    children(node, "Slot")
        .find(|s| s.attribute("name") == Some(name))
        .and_then(|s| slot_values(s).into_iter().next())
        .filter(|v| !v.is_empty())
}

/// The `URI` slot, joining the legacy multi-value form `1|part`, `2|part`.
fn uri_slot(node: Node) -> Option<String> {
    let values = children(node, "Slot")
        .find(|s| s.attribute("name") == Some("URI"))
        .map(slot_values)?;
    let mut numbered: Vec<(u32, &str)> = Vec::new();
    for v in &values {
        match v
            .split_once('|')
            .and_then(|(n, rest)| Some((n.parse().ok()?, rest)))
        {
            Some(part) if values.len() > 1 => numbered.push(part),
            _ => {
                return values
                    .first()
                    .map(|v| v.to_string())
                    .filter(|v| !v.is_empty());
            }
        }
    }
    numbered.sort_by_key(|(n, _)| *n);
    Some(numbered.into_iter().map(|(_, part)| part).collect())
}

/// The action slot: name `action` or ending with `:action`, any case.
fn action_slot(node: Node) -> Option<Action> {
    children(node, "Slot")
        .filter(|s| {
            let name = s.attribute("name").unwrap_or("").to_ascii_lowercase();
            name == "action" || name.ends_with(":action")
        })
        .flat_map(slot_values)
        .find_map(Action::from_code)
}

fn name_of(node: Node) -> Option<String> {
    children(node, "Name")
        .flat_map(|n| children(n, "LocalizedString"))
        .find_map(|s| s.attribute("value"))
        .map(str::to_string)
}

fn coded(classification: Node) -> Option<Coded> {
    let code = classification.attribute("nodeRepresentation")?;
    Some(Coded {
        code: code.to_string(),
        system: slot(classification, "codingScheme").map(str::to_string),
        display: name_of(classification),
    })
}

/// The first Classification and ExternalIdentifier of each scheme, by the id
/// of the object they describe (nested ones by their parent, others by their
/// reference). Keyed by (owner, scheme) so that every lookup is O(1): a
/// METADATA.XML with many objects sharing one id cannot make reading quadratic.
struct Index<'a, 'input> {
    classifications: HashMap<(&'a str, &'a str), Node<'a, 'input>>,
    identifiers: HashMap<(&'a str, &'a str), Node<'a, 'input>>,
    /// Owners of a Classification with `classificationNode` = SubmissionSet.
    submission_sets: HashSet<&'a str>,
}

impl<'a, 'input> Index<'a, 'input> {
    fn build(doc: &'a XmlDoc<'input>) -> Self {
        let mut index = Index {
            classifications: HashMap::new(),
            identifiers: HashMap::new(),
            submission_sets: HashSet::new(),
        };
        for node in doc.descendants() {
            let (map, reference, scheme) = if is(&node, "Classification") {
                (
                    &mut index.classifications,
                    "classifiedObject",
                    "classificationScheme",
                )
            } else if is(&node, "ExternalIdentifier") {
                (
                    &mut index.identifiers,
                    "registryObject",
                    "identificationScheme",
                )
            } else {
                continue;
            };
            let owner = node
                .attribute(reference)
                .or_else(|| node.parent_element().and_then(|p| p.attribute("id")));
            let Some(owner) = owner else { continue };
            if node.attribute("classificationNode") == Some(SUBMISSION_SET_NODE) {
                index.submission_sets.insert(owner);
            }
            if let Some(scheme) = node.attribute(scheme) {
                map.entry((owner, scheme)).or_insert(node);
            }
        }
        index
    }

    fn identifier(&self, owner: Option<&str>, scheme: &str) -> Option<String> {
        self.identifiers
            .get(&(owner?, scheme))
            .and_then(|n| n.attribute("value"))
            .map(|v| v.trim().to_string())
    }

    fn code(&self, owner: Option<&str>, scheme: &str) -> Option<Coded> {
        self.classifications
            .get(&(owner?, scheme))
            .and_then(|n| coded(*n))
    }

    fn is_submission_set(&self, package: Node) -> bool {
        package
            .attribute("id")
            .is_some_and(|id| self.submission_sets.contains(id))
    }
}

/// Reads a parsed METADATA.XML. Errors are the reason, for
/// [`super::XdmError::MetadataInvalid`].
pub(crate) fn parse(doc: &XmlDoc, max_documents: usize) -> Result<RawSubmission, String> {
    let root = doc.root_element();
    if !is(&root, "SubmitObjectsRequest") {
        return Err(format!(
            "root element is {:?}, expected SubmitObjectsRequest",
            root.tag_name().name()
        ));
    }
    let Some(list) = root.descendants().find(|n| is(n, "RegistryObjectList")) else {
        return Err("no RegistryObjectList".into());
    };
    let index = Index::build(doc);

    let packages: Vec<Node> = list
        .descendants()
        .filter(|n| is(n, "RegistryPackage"))
        .collect();
    let package = packages
        .iter()
        .copied()
        .find(|p| index.is_submission_set(*p))
        .or_else(|| (packages.len() == 1).then(|| packages[0]));
    let Some(package) = package else {
        return Err("no SubmissionSet (RegistryPackage classified as a submission set)".into());
    };
    let package_id = package.attribute("id");
    let mut submission = RawSubmission {
        submission_set: SubmissionSet {
            unique_id: index.identifier(package_id, SS_UNIQUE_ID),
            source_id: index.identifier(package_id, SS_SOURCE_ID),
            patient_id: index.identifier(package_id, SS_PATIENT_ID),
            submission_time: slot(package, "submissionTime").map(str::to_string),
        },
        action: action_slot(package),
        entries: Vec::new(),
    };

    let replacing: HashSet<&str> = list
        .descendants()
        .filter(|n| is(n, "Association"))
        .filter(|n| {
            n.attribute("associationType")
                .is_some_and(|t| t.rsplit(':').next() == Some("RPLC"))
        })
        .filter_map(|n| n.attribute("sourceObject"))
        .collect();

    let objects: Vec<Node> = list
        .descendants()
        .filter(|n| is(n, "ExtrinsicObject"))
        .collect();
    if objects.len() > max_documents {
        return Err(format!(
            "{} DocumentEntries, more than the {max_documents} allowed",
            objects.len()
        ));
    }
    for object in objects {
        let id = object.attribute("id");
        let action = action_slot(object).or_else(|| {
            id.filter(|id| replacing.contains(*id))
                .map(|_| Action::Replace)
        });
        submission.entries.push(RawEntry {
            entry_uuid: id.map(str::to_string),
            unique_id: index.identifier(id, DE_UNIQUE_ID),
            patient_id: index.identifier(id, DE_PATIENT_ID),
            type_code: index.code(id, DE_TYPE),
            class_code: index.code(id, DE_CLASS),
            format_code: index.code(id, DE_FORMAT),
            hash: slot(object, "hash").map(str::to_string),
            size: slot(object, "size").map(str::to_string),
            uri: uri_slot(object),
            creation_time: slot(object, "creationTime").map(str::to_string),
            mime_type: object.attribute("mimeType").map(str::to_string),
            title: name_of(object),
            action,
        });
    }
    Ok(submission)
}
