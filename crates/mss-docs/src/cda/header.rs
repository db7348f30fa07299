//! Reading the header tree (the document cut just before its body).

use mss_model::{IdentityTraits, InsKind, Matricule, PartialDate, Sex};
use roxmltree::{Document, Node};

use super::{
    Actor, BodyLevel, CdaError, CdaHeader, Coded, HL7_NS, InsRef, InstanceId, Organization, Patient,
};

type El<'a, 'i> = Node<'a, 'i>;

fn is(node: El<'_, '_>, local: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == local
        && node.tag_name().namespace() == Some(HL7_NS)
}

/// The HL7 children of `node` named `local`.
fn children<'a, 'i>(node: El<'a, 'i>, local: &'static str) -> impl Iterator<Item = El<'a, 'i>> {
    node.children().filter(move |c| is(*c, local))
}

fn child<'a, 'i>(node: El<'a, 'i>, local: &'static str) -> Option<El<'a, 'i>> {
    children(node, local).next()
}

fn path<'a, 'i>(node: El<'a, 'i>, steps: &[&'static str]) -> Option<El<'a, 'i>> {
    steps.iter().try_fold(node, |n, step| child(n, step))
}

/// Whitespace trimmed and collapsed; `None` when nothing is left.
fn clean(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

fn attr(node: El<'_, '_>, name: &str) -> Option<String> {
    node.attribute(name).and_then(clean)
}

/// The text directly inside `node` (comments and child elements skipped).
fn text(node: El<'_, '_>) -> Option<String> {
    let mut raw = String::new();
    for c in node.children().filter(|c| c.is_text()) {
        raw.push_str(c.text().unwrap_or_default());
        raw.push(' ');
    }
    clean(&raw)
}

fn instance_id(node: El<'_, '_>) -> Option<InstanceId> {
    Some(InstanceId {
        root: attr(node, "root")?,
        extension: attr(node, "extension"),
    })
}

/// The first `id` child that has a root.
fn first_id(node: El<'_, '_>) -> Option<InstanceId> {
    children(node, "id").find_map(instance_id)
}

fn coded(node: El<'_, '_>) -> Option<Coded> {
    Some(Coded {
        code: attr(node, "code")?,
        system: attr(node, "codeSystem"),
        display: attr(node, "displayName"),
    })
}

fn value(node: Option<El<'_, '_>>) -> Option<String> {
    node.and_then(|n| attr(n, "value"))
}

pub(super) fn read(doc: &Document<'_>, level: BodyLevel) -> Result<CdaHeader, CdaError> {
    let root = doc.root_element();
    let id = child(root, "id")
        .and_then(instance_id)
        .ok_or(CdaError::MissingId)?;
    let version = match value(child(root, "versionNumber")) {
        None => None,
        Some(raw) => match raw.parse::<u32>() {
            Ok(v) if v > 0 => Some(v),
            _ => return Err(CdaError::InvalidVersion(raw)),
        },
    };
    let replaces = children(root, "relatedDocument")
        .filter(|r| r.attribute("typeCode").map(str::trim) == Some("RPLC"))
        .find_map(|r| child(r, "parentDocument").and_then(first_id));
    let service_time =
        children(root, "documentationOf").find_map(|d| path(d, &["serviceEvent", "effectiveTime"]));
    let practice_setting = children(root, "documentationOf")
        .filter_map(|d| child(d, "serviceEvent"))
        .flat_map(|e| children(e, "performer"))
        .find_map(|p| {
            path(
                p,
                &[
                    "assignedEntity",
                    "representedOrganization",
                    "standardIndustryClassCode",
                ],
            )
            .and_then(coded)
        });
    Ok(CdaHeader {
        id,
        set_id: child(root, "setId").and_then(instance_id),
        version,
        code: child(root, "code").and_then(coded),
        title: child(root, "title").and_then(text),
        effective_time: value(child(root, "effectiveTime")),
        confidentiality: child(root, "confidentialityCode").and_then(coded),
        language: child(root, "languageCode").and_then(|n| attr(n, "code")),
        template_ids: children(root, "templateId")
            .filter_map(instance_id)
            .collect(),
        level,
        patient: path(root, &["recordTarget", "patientRole"])
            .map(patient)
            .unwrap_or_default(),
        authors: children(root, "author").map(author).collect(),
        custodian: path(
            root,
            &[
                "custodian",
                "assignedCustodian",
                "representedCustodianOrganization",
            ],
        )
        .and_then(organization),
        legal_authenticator: child(root, "legalAuthenticator").map(legal_authenticator),
        replaces,
        service_start: value(service_time.and_then(|t| child(t, "low"))),
        service_stop: value(service_time.and_then(|t| child(t, "high"))),
        facility_type: path(
            root,
            &[
                "componentOf",
                "encompassingEncounter",
                "location",
                "healthCareFacility",
                "code",
            ],
        )
        .and_then(coded),
        practice_setting,
    })
}

fn organization(node: El<'_, '_>) -> Option<Organization> {
    let org = Organization {
        id: first_id(node),
        name: child(node, "name").and_then(text),
    };
    (org.id.is_some() || org.name.is_some()).then_some(org)
}

/// An `assignedAuthor` or `assignedEntity` with the `time` of its participation.
fn actor(participation: El<'_, '_>, entity: Option<El<'_, '_>>) -> Actor {
    let mut actor = Actor {
        time: value(child(participation, "time")),
        ..Actor::default()
    };
    let Some(entity) = entity else {
        return actor;
    };
    actor.id = first_id(entity);
    actor.role = child(entity, "code").and_then(coded);
    actor.organization = child(entity, "representedOrganization").and_then(organization);
    if let Some(name) = path(entity, &["assignedPerson", "name"]) {
        actor.family = child(name, "family").and_then(text);
        let given: Vec<String> = children(name, "given").filter_map(text).collect();
        actor.given = (!given.is_empty()).then(|| given.join(" "));
        if actor.family.is_none() && actor.given.is_none() {
            // A name written as plain text, without parts.
            actor.family = text(name);
        }
    }
    actor
}

fn author(node: El<'_, '_>) -> Actor {
    actor(node, child(node, "assignedAuthor"))
}

fn legal_authenticator(node: El<'_, '_>) -> Actor {
    actor(node, child(node, "assignedEntity"))
}

fn patient(role: El<'_, '_>) -> Patient {
    let ids: Vec<InstanceId> = children(role, "id").filter_map(instance_id).collect();
    let ins = ids.iter().find_map(|id| {
        let kind = InsKind::from_oid(&id.root)?;
        let matricule = id.extension.clone()?;
        Some(InsRef {
            key_valid: Matricule::parse(&matricule).is_ok(),
            matricule,
            oid: id.root.clone(),
            kind,
        })
    });
    let mut patient = Patient {
        ids,
        ins,
        ..Patient::default()
    };
    let Some(person) = child(role, "patient") else {
        return patient;
    };
    let names = Names::of(person);
    let given_names = names
        .unqualified("given")
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(" ");
    let given_names = clean(&given_names);
    patient.traits = IdentityTraits {
        birth_name: names.qualified("family", "BR").or_else(|| {
            names
                .unqualified("family")
                .next()
                .map(|(_, t)| t.to_owned())
        }),
        first_given_name: names.qualified("given", "BR").or_else(|| {
            given_names
                .as_deref()
                .and_then(|g| g.split(' ').next())
                .map(str::to_owned)
        }),
        given_names,
        birth_date: value(child(person, "birthTime"))
            .as_deref()
            .and_then(birth_date),
        sex: child(person, "administrativeGenderCode")
            .and_then(|n| attr(n, "code"))
            .as_deref()
            .and_then(sex),
        birthplace_code: path(person, &["birthplace", "place", "addr", "county"]).and_then(text),
    };
    patient.used_name = names.qualified("family", "CL");
    patient.used_given_name = names.qualified("given", "CL");
    patient
}

/// Name parts of every `patient/name`: (element, qualifier set, text).
struct Names(Vec<(&'static str, Option<String>, String)>);

impl Names {
    fn of(person: El<'_, '_>) -> Self {
        let mut parts = Vec::new();
        for name in children(person, "name") {
            for part in name.children() {
                let kind = if is(part, "family") {
                    "family"
                } else if is(part, "given") {
                    "given"
                } else {
                    continue;
                };
                if let Some(t) = text(part) {
                    parts.push((kind, attr(part, "qualifier"), t));
                }
            }
        }
        Self(parts)
    }

    fn qualified(&self, kind: &str, code: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, q, _)| {
                *k == kind
                    && q.as_deref()
                        .is_some_and(|q| q.split(' ').any(|c| c.eq_ignore_ascii_case(code)))
            })
            .map(|(_, _, t)| t.clone())
    }

    fn unqualified<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = (&'s str, &'s str)> {
        self.0
            .iter()
            .filter(move |(k, q, _)| *k == kind && q.is_none())
            .map(|(k, _, t)| (*k, t.as_str()))
    }
}

/// HL7 `TS` (`YYYY[MM[DD[HH…]]]`) to a possibly partial date. `None` when the
/// date part is not a real calendar date.
// TODO: switch to `PartialDate::parse_hl7` once mss-model has it.
fn birth_date(ts: &str) -> Option<PartialDate> {
    let digits = ts.bytes().take_while(u8::is_ascii_digit).count();
    let number = |range: std::ops::Range<usize>| ts.get(range)?.parse::<u16>().ok();
    let year = if digits >= 4 {
        number(0..4)?
    } else {
        return None;
    };
    let month = if digits >= 6 {
        Some(number(4..6)?)
    } else {
        None
    };
    let day = if digits >= 8 {
        Some(number(6..8)?)
    } else {
        None
    };
    if let Some(m) = month
        && !(1..=12).contains(&m)
    {
        return None;
    }
    if let (Some(m), Some(d)) = (month, day) {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let last = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=last).contains(&d) {
            return None;
        }
    }
    Some(PartialDate {
        year,
        month: month.and_then(|m| u8::try_from(m).ok()),
        day: day.and_then(|d| u8::try_from(d).ok()),
    })
}

/// `administrativeGenderCode@code` (JDV_J143: M, F, UN).
// TODO: switch to `Sex::from_code` once mss-model has it.
fn sex(code: &str) -> Option<Sex> {
    match code {
        "M" => Some(Sex::M),
        "F" => Some(Sex::F),
        "UN" | "U" => Some(Sex::U),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_dates_may_be_partial_and_must_be_real() {
        let d = |y, m, d| {
            Some(PartialDate {
                year: y,
                month: m,
                day: d,
            })
        };
        assert_eq!(birth_date("19790328"), d(1979, Some(3), Some(28)));
        assert_eq!(birth_date("197903281200+0100"), d(1979, Some(3), Some(28)));
        assert_eq!(birth_date("197903"), d(1979, Some(3), None));
        assert_eq!(birth_date("1979"), d(1979, None, None));
        assert_eq!(birth_date("20000229"), d(2000, Some(2), Some(29)));
        assert_eq!(birth_date("19000229"), None);
        assert_eq!(birth_date("19791328"), None);
        assert_eq!(birth_date("19790300"), None);
        assert_eq!(birth_date("197"), None);
        assert_eq!(birth_date(""), None);
        assert_eq!(birth_date("é"), None);
    }

    #[test]
    fn sex_codes() {
        assert_eq!(sex("F"), Some(Sex::F));
        assert_eq!(sex("M"), Some(Sex::M));
        assert_eq!(sex("UN"), Some(Sex::U));
        assert_eq!(sex("X"), None);
    }

    #[test]
    fn text_is_trimmed_and_collapsed() {
        assert_eq!(clean("  a \n\t b  "), Some("a b".into()));
        assert_eq!(clean(" \n "), None);
    }
}
