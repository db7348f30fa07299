//! Building the header from the element stream: each start tag is matched
//! against its path of HL7 ancestors.

use std::borrow::Cow;

use mss_model::{IdentityTraits, InsKind, Matricule, PartialDate, Sex};
use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;
use quick_xml::events::attributes::Attribute;

use super::{
    Actor, BodyLevel, CdaError, CdaHeader, Coded, InsRef, InstanceId, Organization, Patient,
};
use crate::xml::XmlError;

/// Most authors, template ids or patient ids kept: far beyond any real
/// document, low enough to bound memory.
pub(super) const MAX_REPEATED: usize = 1000;

/// The HL7 element names the header reader cares about; `Other` for the rest
/// and for elements of other namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    ClinicalDocument,
    Addr,
    AdministrativeGenderCode,
    AssignedAuthor,
    AssignedCustodian,
    AssignedEntity,
    AssignedPerson,
    Author,
    BirthTime,
    Birthplace,
    Code,
    Component,
    ComponentOf,
    ConfidentialityCode,
    County,
    Custodian,
    DocumentationOf,
    EffectiveTime,
    EncompassingEncounter,
    Family,
    Given,
    HealthCareFacility,
    High,
    Id,
    LanguageCode,
    LegalAuthenticator,
    Location,
    Low,
    Name,
    ParentDocument,
    Patient,
    PatientRole,
    Performer,
    Place,
    RecordTarget,
    RelatedDocument,
    RepresentedCustodianOrganization,
    RepresentedOrganization,
    ServiceEvent,
    SetId,
    StandardIndustryClassCode,
    Time,
    TemplateId,
    Title,
    VersionNumber,
    Other,
}

impl Tag {
    pub(super) fn of(local: &[u8]) -> Self {
        match local {
            b"ClinicalDocument" => Self::ClinicalDocument,
            b"addr" => Self::Addr,
            b"administrativeGenderCode" => Self::AdministrativeGenderCode,
            b"assignedAuthor" => Self::AssignedAuthor,
            b"assignedCustodian" => Self::AssignedCustodian,
            b"assignedEntity" => Self::AssignedEntity,
            b"assignedPerson" => Self::AssignedPerson,
            b"author" => Self::Author,
            b"birthTime" => Self::BirthTime,
            b"birthplace" => Self::Birthplace,
            b"code" => Self::Code,
            b"component" => Self::Component,
            b"componentOf" => Self::ComponentOf,
            b"confidentialityCode" => Self::ConfidentialityCode,
            b"county" => Self::County,
            b"custodian" => Self::Custodian,
            b"documentationOf" => Self::DocumentationOf,
            b"effectiveTime" => Self::EffectiveTime,
            b"encompassingEncounter" => Self::EncompassingEncounter,
            b"family" => Self::Family,
            b"given" => Self::Given,
            b"healthCareFacility" => Self::HealthCareFacility,
            b"high" => Self::High,
            b"id" => Self::Id,
            b"languageCode" => Self::LanguageCode,
            b"legalAuthenticator" => Self::LegalAuthenticator,
            b"location" => Self::Location,
            b"low" => Self::Low,
            b"name" => Self::Name,
            b"parentDocument" => Self::ParentDocument,
            b"patient" => Self::Patient,
            b"patientRole" => Self::PatientRole,
            b"performer" => Self::Performer,
            b"place" => Self::Place,
            b"recordTarget" => Self::RecordTarget,
            b"relatedDocument" => Self::RelatedDocument,
            b"representedCustodianOrganization" => Self::RepresentedCustodianOrganization,
            b"representedOrganization" => Self::RepresentedOrganization,
            b"serviceEvent" => Self::ServiceEvent,
            b"setId" => Self::SetId,
            b"standardIndustryClassCode" => Self::StandardIndustryClassCode,
            b"time" => Self::Time,
            b"templateId" => Self::TemplateId,
            b"title" => Self::Title,
            b"versionNumber" => Self::VersionNumber,
            _ => Self::Other,
        }
    }
}

/// Whether anything below an element (at `path`, named `tag`) is read: the
/// stream skips the other subtrees without looking at them (participants,
/// addresses, telecoms, the structured parts of codes…).
pub(super) fn descend(path: &[Tag], tag: Tag) -> bool {
    use Tag::*;
    matches!(
        (path, tag),
        ([], ClinicalDocument)
            | (
                [ClinicalDocument],
                Title
                    | RecordTarget
                    | Author
                    | LegalAuthenticator
                    | Custodian
                    | RelatedDocument
                    | DocumentationOf
                    | ComponentOf
            )
            | ([ClinicalDocument, RecordTarget], PatientRole)
            | ([ClinicalDocument, RecordTarget, PatientRole], Patient)
            | (
                [ClinicalDocument, RecordTarget, PatientRole, Patient],
                Name | Birthplace
            )
            | (
                [ClinicalDocument, RecordTarget, PatientRole, Patient, Name],
                Family | Given
            )
            | (
                [
                    ClinicalDocument,
                    RecordTarget,
                    PatientRole,
                    Patient,
                    Birthplace
                ],
                Place
            )
            | (
                [
                    ClinicalDocument,
                    RecordTarget,
                    PatientRole,
                    Patient,
                    Birthplace,
                    Place
                ],
                Addr
            )
            | (
                [
                    ClinicalDocument,
                    RecordTarget,
                    PatientRole,
                    Patient,
                    Birthplace,
                    Place,
                    Addr
                ],
                County
            )
            | ([ClinicalDocument, Author], AssignedAuthor)
            | ([ClinicalDocument, LegalAuthenticator], AssignedEntity)
            | (
                [
                    ClinicalDocument,
                    Author | LegalAuthenticator,
                    AssignedAuthor | AssignedEntity
                ],
                AssignedPerson | RepresentedOrganization
            )
            | (
                [
                    ClinicalDocument,
                    Author | LegalAuthenticator,
                    _,
                    AssignedPerson
                ],
                Name
            )
            | (
                [
                    ClinicalDocument,
                    Author | LegalAuthenticator,
                    _,
                    AssignedPerson,
                    Name
                ],
                Family | Given
            )
            | (
                [
                    ClinicalDocument,
                    Author | LegalAuthenticator,
                    _,
                    RepresentedOrganization
                ],
                Name
            )
            | ([ClinicalDocument, Custodian], AssignedCustodian)
            | (
                [ClinicalDocument, Custodian, AssignedCustodian],
                RepresentedCustodianOrganization
            )
            | (
                [
                    ClinicalDocument,
                    Custodian,
                    AssignedCustodian,
                    RepresentedCustodianOrganization
                ],
                Name
            )
            | ([ClinicalDocument, RelatedDocument], ParentDocument)
            | ([ClinicalDocument, DocumentationOf], ServiceEvent)
            | (
                [ClinicalDocument, DocumentationOf, ServiceEvent],
                EffectiveTime | Performer
            )
            | (
                [ClinicalDocument, DocumentationOf, ServiceEvent, Performer],
                AssignedEntity
            )
            | (
                [
                    ClinicalDocument,
                    DocumentationOf,
                    ServiceEvent,
                    Performer,
                    AssignedEntity
                ],
                RepresentedOrganization
            )
            | ([ClinicalDocument, ComponentOf], EncompassingEncounter)
            | (
                [ClinicalDocument, ComponentOf, EncompassingEncounter],
                Location
            )
            | (
                [
                    ClinicalDocument,
                    ComponentOf,
                    EncompassingEncounter,
                    Location
                ],
                HealthCareFacility
            )
    )
}

/// Which actor a participation element feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Author,
    Legal,
}

/// Where the text of the element being read goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Capture {
    Title,
    PatientName {
        given: bool,
        qualifier: Qualifier,
    },
    County,
    PersonFamily(Who),
    PersonGiven(Who),
    /// The text directly inside a person's `name` (a name without parts).
    PersonName(Who),
    OrganizationName(Who),
    CustodianName,
}

#[derive(Debug, Default)]
struct ActorBuild {
    actor: Actor,
    names: u32,
    given: Vec<String>,
    plain_name: Option<String>,
    organization: Organization,
}

impl ActorBuild {
    fn finish(self) -> Actor {
        let mut actor = self.actor;
        if !self.given.is_empty() {
            actor.given = Some(self.given.join(" "));
        }
        if actor.family.is_none() && actor.given.is_none() {
            actor.family = self.plain_name;
        }
        actor.organization = organization(self.organization);
        actor
    }
}

fn organization(org: Organization) -> Option<Organization> {
    (org.id.is_some() || org.name.is_some()).then_some(org)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Once {
    #[default]
    Before,
    Inside,
    Done,
}

/// What has been read so far.
#[derive(Debug, Default)]
pub(super) struct Builder {
    id: Option<InstanceId>,
    set_id: Option<InstanceId>,
    version: Option<u32>,
    code: Option<Coded>,
    title: Option<String>,
    effective_time: Option<String>,
    confidentiality: Option<Coded>,
    language: Option<String>,
    template_ids: Vec<InstanceId>,
    record_targets: u32,
    patient_ids: Vec<InstanceId>,
    /// (is a given name, qualifier set, text) of every patient name part.
    name_parts: Vec<(bool, Qualifier, String)>,
    /// `administrativeGenderCode@code` and `birthTime@value`, read at once
    /// (the outer `Some` is the first occurrence with a value).
    sex: Option<Option<Sex>>,
    birth_date: Option<Option<PartialDate>>,
    county: Option<String>,
    authors: Vec<ActorBuild>,
    legal: Option<ActorBuild>,
    legal_count: u32,
    custodian: Organization,
    in_rplc: bool,
    replaces: Option<InstanceId>,
    service_time: Once,
    service_start: Option<String>,
    service_stop: Option<String>,
    facility_type: Option<Coded>,
    practice_setting: Option<Coded>,
    /// Text being gathered, with the depth of the element it belongs to
    /// (innermost last: a person's `name` and its `family` can both gather).
    captures: Vec<(Capture, usize, String)>,
}

fn malformed(message: impl Into<String>) -> CdaError {
    CdaError::Xml(XmlError::Malformed(message.into()))
}

/// Whitespace trimmed and collapsed; `None` when nothing is left.
pub(super) fn clean(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether an attribute value reads as written: printable ASCII without
/// references, single spaces between words only. Normalizing and cleaning
/// it would give it back unchanged.
fn already_clean(raw: &[u8]) -> bool {
    let printable = raw.iter().fold(true, |acc, &b| {
        acc & (b' '..=b'~').contains(&b) & (b != b'&')
    });
    printable
        && raw.first().is_some_and(|&b| b != b' ')
        && raw.last().is_some_and(|&b| b != b' ')
        && !raw.windows(2).any(|w| w == b"  ")
}

/// Whether `clean` would give `s` back unchanged, for text that is not all
/// printable ASCII (accented names and titles): no control character, no
/// reference, single spaces between words only and no other whitespace (no
/// no-break space…). Conservative: what it refuses goes through `clean`.
///
/// Looked at byte-wise, branch-free: the non-ASCII whitespace characters are
/// U+0085 and U+00A0 (`C2 85`, `C2 A0`) and characters whose first byte is
/// `E1` to `E3` (U+1680, U+2000 to U+3000), refused with all the others of
/// those blocks (`€`, typographic quotes: rare, and `clean` reads them right).
fn clean_as_written(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    let bytes = b.iter().fold(true, |acc, &c| {
        acc & (c >= b' ') & (c != b'&') & !matches!(c, 0xE1..=0xE3)
    });
    let pairs = b.iter().zip(&b[1..]).fold(true, |acc, (&x, &y)| {
        acc & !((x == b' ') & (y == b' ')) & !((x == 0xC2) & ((y == 0x85) | (y == 0xA0)))
    });
    bytes && pairs && first != b' ' && last != b' '
}

/// The values of the attributes `names` of `start`, in one pass.
///
/// quick-xml's own duplicate check is off (it records every name in a
/// `Vec`): a name we read written twice is refused here, since which value
/// was meant is ambiguous; duplicates among the attributes we do not read
/// are let through, they change nothing we keep.
fn attrs<'e, const N: usize>(
    start: &'e BytesStart<'_>,
    names: [&str; N],
) -> Result<[Option<Cow<'e, str>>; N], CdaError> {
    let mut found = [const { None }; N];
    let mut all = start.attributes();
    all.with_checks(false);
    for a in all {
        let a = a.map_err(|e| malformed(e.to_string()))?;
        if let Some(i) = names.iter().position(|n| n.as_bytes() == a.key.as_ref()) {
            if found[i].is_some() {
                return Err(malformed(format!("duplicate attribute {}", names[i])));
            }
            found[i] = Some(a);
        }
    }
    let mut out = [const { None }; N];
    for (slot, a) in out.iter_mut().zip(found) {
        if let Some(a) = a {
            *slot = value(a)?;
        }
    }
    Ok(out)
}

/// An attribute value, normalized and cleaned; borrowed from the tag when
/// that would change nothing, so a value that is only looked at costs no
/// allocation.
fn value<'e>(a: Attribute<'e>) -> Result<Option<Cow<'e, str>>, CdaError> {
    let ascii = already_clean(&a.value);
    if let Cow::Borrowed(raw) = a.value
        && let Ok(text) = std::str::from_utf8(raw)
        && (ascii || clean_as_written(text))
    {
        return Ok(Some(Cow::Borrowed(text)));
    }
    let value = a
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(|e| malformed(e.to_string()))?;
    Ok(clean(&value).map(Cow::Owned))
}

fn attr<'e>(start: &'e BytesStart<'_>, name: &str) -> Result<Option<Cow<'e, str>>, CdaError> {
    let [value] = attrs(start, [name])?;
    Ok(value)
}

/// An attribute value that is kept in the header.
fn owned_attr(start: &BytesStart<'_>, name: &str) -> Result<Option<String>, CdaError> {
    Ok(attr(start, name)?.map(Cow::into_owned))
}

fn instance_id(start: &BytesStart<'_>) -> Result<Option<InstanceId>, CdaError> {
    let [root, extension] = attrs(start, ["root", "extension"])?;
    Ok(root.map(|root| InstanceId {
        root: root.into_owned(),
        extension: extension.map(Cow::into_owned),
    }))
}

fn coded(start: &BytesStart<'_>) -> Result<Option<Coded>, CdaError> {
    let [code, system, display] = attrs(start, ["code", "codeSystem", "displayName"])?;
    Ok(code.map(|code| Coded {
        code: code.into_owned(),
        system: system.map(Cow::into_owned),
        display: display.map(Cow::into_owned),
    }))
}

/// Sets `slot` from `read` unless it already holds a value.
fn first<T>(
    slot: &mut Option<T>,
    read: impl FnOnce() -> Result<Option<T>, CdaError>,
) -> Result<(), CdaError> {
    if slot.is_none() {
        *slot = read()?;
    }
    Ok(())
}

fn push_limited<T>(list: &mut Vec<T>, item: T, what: &'static str) -> Result<(), CdaError> {
    if list.len() >= MAX_REPEATED {
        return Err(CdaError::TooMany(what, MAX_REPEATED));
    }
    list.push(item);
    Ok(())
}

impl Builder {
    fn actor(&mut self, who: Who) -> Option<&mut ActorBuild> {
        match who {
            Who::Author => self.authors.last_mut(),
            Who::Legal => self.legal.as_mut(),
        }
    }

    fn capture(&mut self, what: Capture, depth: usize) {
        self.captures.push((what, depth, String::new()));
    }

    /// An element starts; `path` holds its ancestors' tags.
    pub(super) fn start(
        &mut self,
        path: &[Tag],
        tag: Tag,
        e: &BytesStart<'_>,
    ) -> Result<(), CdaError> {
        use Tag::*;
        let depth = path.len();
        match (path, tag) {
            ([ClinicalDocument], Id) => first(&mut self.id, || instance_id(e))?,
            ([ClinicalDocument], SetId) => first(&mut self.set_id, || instance_id(e))?,
            ([ClinicalDocument], VersionNumber) => {
                if self.version.is_none()
                    && let Some(raw) = attr(e, "value")?
                {
                    match raw.parse::<u32>() {
                        Ok(v) if v > 0 => self.version = Some(v),
                        _ => return Err(CdaError::InvalidVersion(raw.into_owned())),
                    }
                }
            }
            ([ClinicalDocument], Code) => first(&mut self.code, || coded(e))?,
            ([ClinicalDocument], Title) if self.title.is_none() => {
                self.capture(Capture::Title, depth);
            }
            ([ClinicalDocument], EffectiveTime) => {
                first(&mut self.effective_time, || owned_attr(e, "value"))?;
            }
            ([ClinicalDocument], ConfidentialityCode) => {
                first(&mut self.confidentiality, || coded(e))?;
            }
            ([ClinicalDocument], LanguageCode) => {
                first(&mut self.language, || owned_attr(e, "code"))?
            }
            ([ClinicalDocument], TemplateId) => {
                if let Some(id) = instance_id(e)? {
                    push_limited(&mut self.template_ids, id, "templateId")?;
                }
            }
            ([ClinicalDocument], RecordTarget) => self.record_targets += 1,
            ([ClinicalDocument, RecordTarget, PatientRole], Id) if self.record_targets == 1 => {
                if let Some(id) = instance_id(e)? {
                    push_limited(&mut self.patient_ids, id, "patient id")?;
                }
            }
            ([ClinicalDocument, RecordTarget, PatientRole, Patient, ..], _)
                if self.record_targets == 1 =>
            {
                self.patient(&path[4..], tag, e, depth)?;
            }
            ([ClinicalDocument], Author) => {
                push_limited(&mut self.authors, ActorBuild::default(), "author")?;
            }
            ([ClinicalDocument, Author, rest @ ..], _) => {
                self.participation(Who::Author, AssignedAuthor, rest, tag, e, depth)?;
            }
            ([ClinicalDocument], LegalAuthenticator) => {
                self.legal_count += 1;
                if self.legal_count == 1 {
                    self.legal = Some(ActorBuild::default());
                }
            }
            ([ClinicalDocument, LegalAuthenticator, rest @ ..], _) if self.legal_count == 1 => {
                self.participation(Who::Legal, AssignedEntity, rest, tag, e, depth)?;
            }
            (
                [
                    ClinicalDocument,
                    Custodian,
                    AssignedCustodian,
                    RepresentedCustodianOrganization,
                ],
                Id,
            ) => first(&mut self.custodian.id, || instance_id(e))?,
            (
                [
                    ClinicalDocument,
                    Custodian,
                    AssignedCustodian,
                    RepresentedCustodianOrganization,
                ],
                Name,
            ) if self.custodian.name.is_none() => self.capture(Capture::CustodianName, depth),
            ([ClinicalDocument], RelatedDocument) => {
                self.in_rplc = attr(e, "typeCode")?.is_some_and(|t| t == "RPLC");
            }
            ([ClinicalDocument, RelatedDocument, ParentDocument], Id) if self.in_rplc => {
                first(&mut self.replaces, || instance_id(e))?;
            }
            ([ClinicalDocument, DocumentationOf, ServiceEvent], EffectiveTime)
                if self.service_time == Once::Before =>
            {
                self.service_time = Once::Inside;
            }
            (
                [
                    ClinicalDocument,
                    DocumentationOf,
                    ServiceEvent,
                    EffectiveTime,
                ],
                Low,
            ) if self.service_time == Once::Inside => {
                first(&mut self.service_start, || owned_attr(e, "value"))?;
            }
            (
                [
                    ClinicalDocument,
                    DocumentationOf,
                    ServiceEvent,
                    EffectiveTime,
                ],
                High,
            ) if self.service_time == Once::Inside => {
                first(&mut self.service_stop, || owned_attr(e, "value"))?;
            }
            (
                [
                    ClinicalDocument,
                    DocumentationOf,
                    ServiceEvent,
                    Performer,
                    AssignedEntity,
                    RepresentedOrganization,
                ],
                StandardIndustryClassCode,
            ) => first(&mut self.practice_setting, || coded(e))?,
            (
                [
                    ClinicalDocument,
                    ComponentOf,
                    EncompassingEncounter,
                    Location,
                    HealthCareFacility,
                ],
                Code,
            ) => first(&mut self.facility_type, || coded(e))?,
            _ => {}
        }
        Ok(())
    }

    /// Inside `recordTarget/patientRole/patient`; `rel` is the path below `patient`.
    fn patient(
        &mut self,
        rel: &[Tag],
        tag: Tag,
        e: &BytesStart<'_>,
        depth: usize,
    ) -> Result<(), CdaError> {
        use Tag::*;
        match (rel, tag) {
            ([Name], Family | Given) => {
                let qualifier = Qualifier::of(attr(e, "qualifier")?.as_deref());
                self.capture(
                    Capture::PatientName {
                        given: tag == Given,
                        qualifier,
                    },
                    depth,
                );
            }
            ([], AdministrativeGenderCode) => first(&mut self.sex, || {
                Ok(attr(e, "code")?.map(|code| Sex::from_code(&code).ok()))
            })?,
            ([], BirthTime) => first(&mut self.birth_date, || {
                Ok(attr(e, "value")?.map(|ts| PartialDate::parse_hl7(&ts).ok()))
            })?,
            ([Birthplace, Place, Addr], County) if self.county.is_none() => {
                self.capture(Capture::County, depth);
            }
            _ => {}
        }
        Ok(())
    }

    /// Inside `author` or `legalAuthenticator`; `rel` is the path below it and
    /// `entity` its `assignedAuthor` / `assignedEntity`.
    fn participation(
        &mut self,
        who: Who,
        entity: Tag,
        rel: &[Tag],
        tag: Tag,
        e: &BytesStart<'_>,
        depth: usize,
    ) -> Result<(), CdaError> {
        use Tag::*;
        let mut capture = None;
        let Some(actor) = self.actor(who) else {
            return Ok(());
        };
        match (rel, tag) {
            ([], Time) => first(&mut actor.actor.time, || owned_attr(e, "value"))?,
            ([t], Id) if *t == entity => first(&mut actor.actor.id, || instance_id(e))?,
            ([t], Code) if *t == entity => first(&mut actor.actor.role, || coded(e))?,
            ([t, AssignedPerson], Name) if *t == entity => {
                actor.names += 1;
                if actor.names == 1 {
                    capture = Some(Capture::PersonName(who));
                }
            }
            ([t, AssignedPerson, Name], Family)
                if *t == entity && actor.names == 1 && actor.actor.family.is_none() =>
            {
                capture = Some(Capture::PersonFamily(who));
            }
            ([t, AssignedPerson, Name], Given) if *t == entity && actor.names == 1 => {
                capture = Some(Capture::PersonGiven(who));
            }
            ([t, RepresentedOrganization], Id) if *t == entity => {
                first(&mut actor.organization.id, || instance_id(e))?;
            }
            ([t, RepresentedOrganization], Name)
                if *t == entity && actor.organization.name.is_none() =>
            {
                capture = Some(Capture::OrganizationName(who));
            }
            _ => {}
        }
        if let Some(capture) = capture {
            self.capture(capture, depth);
        }
        Ok(())
    }

    /// Text directly inside the open element at `depth`.
    pub(super) fn text(&mut self, text: &[u8], depth: usize) -> Result<(), CdaError> {
        if let Some((_, at, gathered)) = self.captures.last_mut()
            && *at == depth
        {
            gathered.push_str(std::str::from_utf8(text).map_err(|_| super::stream::not_utf8())?);
        }
        Ok(())
    }

    /// An element ends; `path` holds its ancestors' tags.
    pub(super) fn end(&mut self, path: &[Tag], tag: Tag) {
        let depth = path.len();
        if self.captures.last().is_some_and(|(_, at, _)| *at == depth)
            && let Some((what, _, gathered)) = self.captures.pop()
        {
            let text = if already_clean(gathered.as_bytes()) || clean_as_written(&gathered) {
                Some(gathered)
            } else {
                clean(&gathered)
            };
            self.store(what, text);
        }
        if tag == Tag::EffectiveTime
            && path
                == [
                    Tag::ClinicalDocument,
                    Tag::DocumentationOf,
                    Tag::ServiceEvent,
                ]
            && self.service_time == Once::Inside
        {
            self.service_time = Once::Done;
        }
    }

    fn store(&mut self, what: Capture, text: Option<String>) {
        match what {
            Capture::Title => self.title = text,
            Capture::County => self.county = text,
            Capture::CustodianName => self.custodian.name = text,
            Capture::PatientName { given, qualifier } => {
                if let Some(text) = text
                    && self.name_parts.len() < MAX_REPEATED
                {
                    self.name_parts.push((given, qualifier, text));
                }
            }
            Capture::PersonFamily(who) => {
                if let Some(a) = self.actor(who) {
                    a.actor.family = text;
                }
            }
            Capture::PersonGiven(who) => {
                if let (Some(a), Some(text)) = (self.actor(who), text)
                    && a.given.len() < MAX_REPEATED
                {
                    a.given.push(text);
                }
            }
            Capture::PersonName(who) => {
                if let Some(a) = self.actor(who) {
                    a.plain_name = text;
                }
            }
            Capture::OrganizationName(who) => {
                if let Some(a) = self.actor(who) {
                    a.organization.name = text;
                }
            }
        }
    }

    pub(super) fn finish(self, level: BodyLevel) -> Result<CdaHeader, CdaError> {
        let id = self.id.ok_or(CdaError::MissingId)?;
        let patient = patient(self.patient_ids, &self.name_parts, |traits| {
            traits.birth_date = self.birth_date.flatten();
            traits.sex = self.sex.flatten();
            traits.birthplace_code = self.county;
        });
        Ok(CdaHeader {
            id,
            set_id: self.set_id,
            version: self.version,
            code: self.code,
            title: self.title,
            effective_time: self.effective_time,
            confidentiality: self.confidentiality,
            language: self.language,
            template_ids: self.template_ids,
            level,
            patient,
            authors: self.authors.into_iter().map(ActorBuild::finish).collect(),
            custodian: organization(self.custodian),
            legal_authenticator: self.legal.map(ActorBuild::finish),
            replaces: self.replaces,
            service_start: self.service_start,
            service_stop: self.service_stop,
            facility_type: self.facility_type,
            practice_setting: self.practice_setting,
        })
    }
}

/// The `qualifier` of a patient name part, as far as the name rules go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Qualifier {
    /// The part has a qualifier (whatever its codes).
    any: bool,
    birth: bool,
    in_use: bool,
}

impl Qualifier {
    /// From the cleaned value of the attribute: codes are separated by one space.
    fn of(qualifier: Option<&str>) -> Self {
        let has = |code: &str| {
            qualifier.is_some_and(|q| q.split(' ').any(|c| c.eq_ignore_ascii_case(code)))
        };
        Self {
            any: qualifier.is_some(),
            birth: has("BR"),
            in_use: has("CL"),
        }
    }
}

/// The patient, from its ids and name parts (see the module documentation
/// of `cda` for the name rules).
fn patient(
    ids: Vec<InstanceId>,
    parts: &[(bool, Qualifier, String)],
    complete: impl FnOnce(&mut IdentityTraits),
) -> Patient {
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
    let qualified = |given: bool, code: fn(&Qualifier) -> bool| {
        parts
            .iter()
            .find(|(g, q, _)| *g == given && code(q))
            .map(|(_, _, t)| t.clone())
    };
    let plain = |given: bool| {
        parts
            .iter()
            .filter(move |(g, q, _)| *g == given && !q.any)
            .map(|(_, _, t)| t.as_str())
    };
    // Parts are cleaned and never empty: joined by one space, they are clean.
    let given_names = plain(true).fold(None, |names: Option<String>, part| {
        Some(match names {
            Some(mut names) => {
                names.push(' ');
                names.push_str(part);
                names
            }
            None => part.to_owned(),
        })
    });
    let birth_name =
        qualified(false, |q| q.birth).or_else(|| plain(false).next().map(str::to_owned));
    let first_given_name = qualified(true, |q| q.birth).or_else(|| {
        given_names
            .as_deref()
            .and_then(|g| g.split(' ').next())
            .map(str::to_owned)
    });
    let mut traits = IdentityTraits {
        birth_name,
        first_given_name,
        given_names,
        ..IdentityTraits::default()
    };
    complete(&mut traits);
    Patient {
        ids,
        ins,
        traits,
        used_name: qualified(false, |q| q.in_use),
        used_given_name: qualified(true, |q| q.in_use),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_collapsed() {
        assert_eq!(clean("  a \n\t b  "), Some("a b".into()));
        assert_eq!(clean(" \n "), None);
    }

    #[test]
    fn clean_values_are_spotted() {
        for raw in ["1.2.250.1.213.1.1.1", "a b", "x"] {
            assert!(already_clean(raw.as_bytes()), "{raw}");
            assert_eq!(clean(raw).as_deref(), Some(raw));
        }
        for raw in ["", " a", "a ", "a  b", "a\tb", "a&amp;b", "é", "a\u{a0}b"] {
            assert!(!already_clean(raw.as_bytes()), "{raw:?}");
        }
    }

    #[test]
    fn text_clean_as_written_is_what_clean_gives() {
        for raw in ["é", "Compte rendu d'anesthésie", "Zoé Müller-Éric", "a b"] {
            assert!(clean_as_written(raw), "{raw:?}");
            assert_eq!(clean(raw).as_deref(), Some(raw));
        }
        let not = [
            "",
            " é",
            "é ",
            "é  b",
            "é\tb",
            "é\nb",
            "a&amp;é",
            "é\u{a0}b",
            "é\u{3000}b",
        ];
        for raw in not {
            assert!(!clean_as_written(raw), "{raw:?}");
        }
    }

    #[test]
    fn no_whitespace_character_is_clean_as_written() {
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            if c.is_whitespace() {
                assert!(!clean_as_written(&format!("a{c}b")), "{c:?}");
            }
        }
    }

    #[test]
    fn every_tag_name_round_trips() {
        assert_eq!(Tag::of(b"patientRole"), Tag::PatientRole);
        assert_eq!(Tag::of(b"PatientRole"), Tag::Other);
        assert_eq!(Tag::of(b""), Tag::Other);
    }
}
