//! The checks themselves: pure judgements over what the operator recorded.

use std::collections::HashMap;

use serde_json::Value;

use super::xdm::{self, Contents};
use super::{Check, Observation, Verdict, evidence_line};
use crate::identities::PATIENT_DOMAIN;
use crate::operator::recorder::{Event, Submitted};

/// Every check, in report order.
pub static CHECKS: &[Check] = &[
    Check {
        id: "tls-version",
        requirements: &["SC.MSS/CONF.01", "ECO.1.1.1"],
        title: "TLS 1.2 minimum sur chaque connexion",
        title_en: "TLS 1.2 or later on every connection",
        judge: tls_version,
    },
    Check {
        id: "tls-suites",
        requirements: &["SC.MSS/CONF.03", "ECO.1.1.3"],
        title: "Suites de chiffrement autorisées (ECDHE + AEAD, TLS 1.3)",
        title_en: "Allowed cipher suites (ECDHE + AEAD, TLS 1.3)",
        judge: tls_suites,
    },
    Check {
        id: "igc-only",
        requirements: &["SC.MSS/CONF.27", "ECO.1.1.10"],
        title: "Refus d'un serveur dont le certificat n'est pas IGC Santé",
        title_en: "A server certificate outside IGC Santé is refused",
        judge: igc_only,
    },
    Check {
        id: "tls-before-auth",
        requirements: &["SC.MSS/CONF.05", "SC.MSS/CONF.06", "ECO.1.0.1", "ECO.1.0.2"],
        title: "STARTTLS (ou TLS) avant toute authentification IMAP et SMTP",
        title_en: "TLS before any IMAP or SMTP authentication",
        judge: tls_before_auth,
    },
    Check {
        id: "xoauth2-psc",
        requirements: &["SC.MSS/CONF.07", "ECO.1.2.1"],
        title: "Cinématique TLS puis XOAUTH2 avec un jeton Pro Santé Connect",
        title_en: "TLS then XOAUTH2 with a Pro Santé Connect token",
        judge: xoauth2_psc,
    },
    Check {
        id: "external-app",
        requirements: &["SC.MSS/CONF.27", "ECO.1.1.10"],
        title: "BAL applicative : certificat IGC Santé (SASL EXTERNAL)",
        title_en: "Application mailbox: IGC Santé certificate (SASL EXTERNAL)",
        judge: external_app,
    },
    Check {
        id: "token-reopen",
        requirements: &["SC.MSS/CONF.11", "ECO.1.2.7"],
        title: "Réouverture de session avec un nouveau jeton après un refus",
        title_en: "Session reopened with a new token after a refusal",
        judge: token_reopen,
    },
    Check {
        id: "token-not-reused",
        requirements: &["SC.MSS/CONF.10", "SC.MSS/CONF.11", "ECO.1.2.6"],
        title: "Un jeton refusé n'est jamais présenté de nouveau",
        title_en: "A refused token is never presented again",
        judge: token_not_reused,
    },
    Check {
        id: "x-mss-nil",
        requirements: &["SC.MSS/CONF.16", "ECO.2.4.3"],
        title: "En-tête X-MSS-NIL sur chaque message",
        title_en: "X-MSS-NIL on every message",
        judge: x_mss_nil,
    },
    Check {
        id: "x-mss-codecda",
        requirements: &["SC.MSS/CONF.15", "ECO.2.4.1"],
        title: "X-MSS-CODECDA égal aux codes des CDA de l'archive XDM",
        title_en: "X-MSS-CODECDA equals the codes of the CDAs in the XDM",
        judge: x_mss_codecda,
    },
    Check {
        id: "x-mss-ins",
        requirements: &["SC.MSS/CONF.14", "ECO.2.4.2"],
        title: "X-MSS-INS conforme à l'INS des CDA de l'archive XDM",
        title_en: "X-MSS-INS matches the INS of the CDAs in the XDM",
        judge: x_mss_ins,
    },
    Check {
        id: "subject-xdm",
        requirements: &["ECO.2.1.3"],
        title: "Objet XDM/1.0/DDM+<libellé> <NOM> <prénom> [<date>]",
        title_en: "Subject XDM/1.0/DDM+<label> <NAME> <first name> [<date>]",
        judge: subject_xdm,
    },
    Check {
        id: "one-patient",
        requirements: &["ECO.2.1.1", "ECO.2.1.2"],
        title: "Un seul patient par message",
        title_en: "One patient per message",
        judge: one_patient,
    },
    Check {
        id: "x-mss-mes",
        requirements: &["SC.MSS/CONF.21", "ECO.2.2.8"],
        title: "X-MSS-MES: FIN vers un patient pour clore l'échange",
        title_en: "X-MSS-MES: FIN to a patient to end the exchange",
        judge: x_mss_mes,
    },
    Check {
        id: "mdn-requested",
        requirements: &["ECO.3.1.6", "SC.MSS/UX.11"],
        title: "Accusé (MDN) retourné quand le message reçu le demande",
        title_en: "An MDN is returned when the received message asks for one",
        judge: mdn_requested,
    },
];

const ALLOWED_SUITES: &[&str] = &[
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

fn of_kind<'a>(o: &'a Observation, kind: &str) -> impl Iterator<Item = &'a Event> {
    o.events.iter().filter(move |e| e.kind == kind)
}

fn ok(e: &Event) -> bool {
    e.detail["ok"] == Value::Bool(true)
}

fn str_of<'a>(e: &'a Event, key: &str) -> &'a str {
    e.detail[key].as_str().unwrap_or_default()
}

fn lines<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<String> {
    events.map(evidence_line).collect()
}

fn message_line(m: &Submitted) -> String {
    let picked: Vec<String> = m
        .headers
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n.starts_with("x-mss-") || n == "subject"
        })
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    format!(
        "#{} message from={} to={} {}",
        m.seq,
        m.from,
        m.recipients.join(","),
        picked.join(" | ")
    )
}

/// Passes when `bad` is empty and there was something to judge.
fn all_good(seen: Vec<String>, bad: Vec<String>, why: &str, nothing: &str) -> Verdict {
    if !bad.is_empty() {
        return Verdict::Failed {
            why: why.to_owned(),
            evidence: bad,
        };
    }
    if seen.is_empty() {
        return Verdict::NotObserved {
            why: nothing.to_owned(),
        };
    }
    Verdict::Passed { evidence: seen }
}

fn tls_version(o: &Observation) -> Verdict {
    let handshakes: Vec<&Event> = of_kind(o, "tls").filter(|e| ok(e)).collect();
    let bad = handshakes
        .iter()
        .filter(|e| !matches!(str_of(e, "version"), "TLSv1_2" | "TLSv1_3"))
        .map(|e| evidence_line(e))
        .collect();
    all_good(
        lines(handshakes.into_iter()),
        bad,
        "a connection used a TLS version older than 1.2",
        "no TLS connection was recorded",
    )
}

fn tls_suites(o: &Observation) -> Verdict {
    let handshakes: Vec<&Event> = of_kind(o, "tls").filter(|e| ok(e)).collect();
    let bad = handshakes
        .iter()
        .filter(|e| !ALLOWED_SUITES.contains(&str_of(e, "suite")))
        .map(|e| evidence_line(e))
        .collect();
    all_good(
        lines(handshakes.into_iter()),
        bad,
        "a connection negotiated a cipher suite outside the allowed list",
        "no TLS connection was recorded",
    )
}

fn igc_only(o: &Observation) -> Verdict {
    let accepted: Vec<String> = lines(of_kind(o, "tls").filter(|e| ok(e)));
    let after: Vec<String> = lines(o.events.iter().filter(|e| e.kind == "auth"));
    if !accepted.is_empty() || !after.is_empty() {
        return Verdict::Failed {
            why: "the client completed a TLS handshake with a server certificate outside IGC Santé"
                .into(),
            evidence: accepted.into_iter().chain(after).collect(),
        };
    }
    let refused = lines(of_kind(o, "tls").filter(|e| !ok(e)));
    if refused.is_empty() {
        return Verdict::NotObserved {
            why: "the client did not try to connect while the untrusted certificate was presented"
                .into(),
        };
    }
    Verdict::Passed { evidence: refused }
}

fn tls_before_auth(o: &Observation) -> Verdict {
    let mut secured: HashMap<(&str, u64), u64> = HashMap::new();
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for e in &o.events {
        match e.kind {
            "tls" if ok(e) => {
                secured.entry((e.service, e.session)).or_insert(e.seq);
            }
            "auth" => {
                if secured.contains_key(&(e.service, e.session)) {
                    seen.push(evidence_line(e));
                } else {
                    bad.push(evidence_line(e));
                }
            }
            _ => {}
        }
    }
    all_good(
        seen,
        bad,
        "the client authenticated on a connection without TLS",
        "no authentication was recorded",
    )
}

fn is_bearer(e: &Event) -> bool {
    matches!(str_of(e, "mechanism"), "XOAUTH2" | "OAUTHBEARER")
}

fn xoauth2_psc(o: &Observation) -> Verdict {
    let bad: Vec<String> =
        lines(of_kind(o, "auth").filter(|e| matches!(str_of(e, "mechanism"), "LOGIN" | "PLAIN")));
    let good: Vec<String> = lines(of_kind(o, "auth").filter(|e| is_bearer(e) && ok(e)));
    all_good(
        good,
        bad,
        "the client tried a password login (LOGIN/PLAIN) instead of a PSC token",
        "no successful XOAUTH2/OAUTHBEARER login was recorded",
    )
}

fn external_app(o: &Observation) -> Verdict {
    let bad = lines(
        of_kind(o, "auth")
            .filter(|e| is_bearer(e) && str_of(e, "reason").starts_with("application mailbox")),
    );
    let good = lines(of_kind(o, "auth").filter(|e| {
        str_of(e, "mechanism") == "EXTERNAL" && ok(e) && !e.detail["certificate"].is_null()
    }));
    all_good(
        good,
        bad,
        "the client presented a bearer token for an application mailbox",
        "no EXTERNAL login with a client certificate was recorded",
    )
}

fn token_reopen(o: &Observation) -> Verdict {
    let auths: Vec<&Event> = of_kind(o, "auth").filter(|e| is_bearer(e)).collect();
    let Some(refused) = auths.iter().find(|e| !ok(e)) else {
        return Verdict::NotObserved {
            why: "no token was refused during the step".into(),
        };
    };
    let reopened = auths.iter().find(|e| {
        e.seq > refused.seq
            && ok(e)
            && str_of(e, "mailbox").eq_ignore_ascii_case(str_of(refused, "mailbox"))
            && str_of(e, "token") != str_of(refused, "token")
    });
    match reopened {
        Some(e) => Verdict::Passed {
            evidence: vec![evidence_line(refused), evidence_line(e)],
        },
        None => Verdict::Failed {
            why: "after the refusal, the client did not log in again with a new token".into(),
            evidence: lines(auths.into_iter()),
        },
    }
}

fn token_not_reused(o: &Observation) -> Verdict {
    let mut refused: HashMap<&str, &Event> = HashMap::new();
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    for e in of_kind(o, "auth").filter(|e| is_bearer(e)) {
        let token = str_of(e, "token");
        if let Some(first) = refused.get(token) {
            bad.push(evidence_line(first));
            bad.push(evidence_line(e));
            continue;
        }
        if !ok(e) && !token.is_empty() {
            refused.insert(token, e);
            seen.push(evidence_line(e));
        }
    }
    all_good(
        seen,
        bad,
        "a token the server had refused was presented again",
        "no token was refused, so reuse could not be observed",
    )
}

fn no_messages() -> Verdict {
    Verdict::NotObserved {
        why: "no message was submitted".into(),
    }
}

fn x_mss_nil(o: &Observation) -> Verdict {
    if o.messages.is_empty() {
        return no_messages();
    }
    let bad = o
        .messages
        .iter()
        .filter(|m| {
            let values = m.header("X-MSS-NIL");
            values.len() != 1 || values[0].trim().is_empty()
        })
        .map(message_line)
        .collect();
    all_good(
        o.messages.iter().map(message_line).collect(),
        bad,
        "a message has no X-MSS-NIL (or several, or an empty one)",
        "no message was submitted",
    )
}

/// The submitted messages with what their attachments hold.
fn with_contents(o: &Observation) -> Vec<(&Submitted, Contents)> {
    o.messages
        .iter()
        .map(|m| (m, xdm::read_message(&m.raw)))
        .collect()
}

const NO_DOCUMENT: &str = "no message with a CDA document in an IHE_XDM archive was submitted";

fn no_document() -> Verdict {
    Verdict::NotObserved {
        why: NO_DOCUMENT.into(),
    }
}

fn x_mss_codecda(o: &Observation) -> Verdict {
    let all = with_contents(o);
    if !all.iter().any(|(_, c)| !c.documents.is_empty()) {
        return no_document();
    }
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (m, contents) in &all {
        let header = m.header("X-MSS-CODECDA");
        let mut expected: Vec<String> = contents
            .documents
            .iter()
            .filter_map(|d| d.code.clone())
            .collect();
        expected.sort();
        let fine = if expected.is_empty() {
            header.is_empty()
        } else {
            let mut got: Vec<String> = header
                .first()
                .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect())
                .unwrap_or_default();
            got.sort();
            header.len() == 1 && got == expected
        };
        let line = format!("{} (CDA codes: {})", message_line(m), expected.join(","));
        if fine {
            seen.push(line)
        } else {
            bad.push(line)
        }
    }
    all_good(
        seen,
        bad,
        "X-MSS-CODECDA does not list exactly the codes of the attached CDAs",
        "no message was submitted",
    )
}

fn x_mss_ins(o: &Observation) -> Verdict {
    let all = with_contents(o);
    if !all.iter().any(|(_, c)| !c.documents.is_empty()) {
        return no_document();
    }
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (m, contents) in &all {
        let header = m.header("X-MSS-INS");
        let docs = &contents.documents;
        let fine = if docs.is_empty() {
            header.is_empty()
        } else {
            // Certainly O: a valid INS with all six traits; certainly N: no valid INS at
            // all. In between (INS with some traits missing) both answers are accepted.
            let surely_yes = docs.iter().any(|d| {
                d.ins.is_some() && d.ins_key_valid && d.core_traits() && d.birthplace.is_some()
            });
            let surely_no = !docs.iter().any(|d| d.ins.is_some() && d.ins_key_valid);
            match header.as_slice() {
                ["O"] => !surely_no,
                ["N"] => !surely_yes,
                _ => false,
            }
        };
        let line = format!(
            "{} (INS in the CDAs: {})",
            message_line(m),
            docs.iter()
                .map(|d| d
                    .ins
                    .as_ref()
                    .map_or("none".to_owned(), |(m, oid)| format!("{m}/{oid}")))
                .collect::<Vec<_>>()
                .join(",")
        );
        if fine {
            seen.push(line)
        } else {
            bad.push(line)
        }
    }
    all_good(
        seen,
        bad,
        "X-MSS-INS does not match the INS of the attached CDAs",
        "no message was submitted",
    )
}

fn fold(text: &str) -> String {
    text.to_lowercase()
}

fn subject_xdm(o: &Observation) -> Verdict {
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (m, contents) in with_contents(o) {
        let Some(doc) = contents.documents.first() else {
            continue;
        };
        let subject = m
            .header("Subject")
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned();
        let rest = subject.strip_prefix("XDM/1.0/DDM+");
        let names_ok = rest.is_some_and(|rest| {
            let rest = fold(rest);
            [&doc.birth_name, &doc.first_given_name]
                .iter()
                .all(|n| n.as_ref().is_none_or(|n| rest.contains(&fold(n))))
        });
        let line = message_line(m);
        if names_ok {
            seen.push(line)
        } else {
            bad.push(line)
        }
    }
    all_good(
        seen,
        bad,
        "the subject is not XDM/1.0/DDM+<label> <NAME> <first name> [<date>] for the patient of the CDA",
        NO_DOCUMENT,
    )
}

fn one_patient(o: &Observation) -> Verdict {
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (m, contents) in with_contents(o) {
        if contents.documents.is_empty() {
            continue;
        }
        let mut patients: Vec<String> = contents
            .documents
            .iter()
            .map(|d| d.ins.as_ref().map_or_else(String::new, |(m, _)| m.clone()))
            .collect();
        // METADATA.XML ids are CX strings: the id is before the first '^'.
        patients.extend(
            contents
                .metadata_patient_ids
                .iter()
                .map(|id| id.split('^').next().unwrap_or_default().trim().to_owned()),
        );
        patients.sort();
        patients.dedup();
        let line = format!("{} (patients: {})", message_line(m), patients.join(","));
        if patients.len() == 1 {
            seen.push(line)
        } else {
            bad.push(line)
        }
    }
    all_good(
        seen,
        bad,
        "a message carries documents of several patients",
        NO_DOCUMENT,
    )
}

fn is_patient(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(PATIENT_DOMAIN))
}

fn x_mss_mes(o: &Observation) -> Verdict {
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for m in &o.messages {
        let values = m.header("X-MSS-MES");
        if values.is_empty() {
            continue;
        }
        let fine = values == ["FIN"] && m.recipients.iter().any(|r| is_patient(r));
        if fine {
            seen.push(message_line(m));
        } else {
            bad.push(message_line(m));
        }
    }
    all_good(
        seen,
        bad,
        "X-MSS-MES is not exactly FIN, or was sent to no patient",
        "no message ending a patient exchange (X-MSS-MES: FIN) was submitted",
    )
}

/// The address inside `<…>`, or the whole value, lower case.
fn bare_address(value: &str) -> String {
    let inner = match (value.find('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    };
    inner.trim().to_ascii_lowercase()
}

fn is_mdn(m: &Submitted) -> bool {
    m.header("Content-Type").iter().any(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("multipart/report") && ct.contains("disposition-notification")
    })
}

fn mdn_requested(o: &Observation) -> Verdict {
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (index, request) in o.messages.iter().enumerate() {
        let Some(notify) = request
            .header("Disposition-Notification-To")
            .first()
            .copied()
        else {
            continue;
        };
        if is_mdn(request) {
            continue;
        }
        let notify = bare_address(notify);
        let id = request
            .header("Message-ID")
            .first()
            .map(|v| v.trim().trim_matches(['<', '>']).to_owned())
            .unwrap_or_default();
        let answered = o.messages[index + 1..].iter().find(|m| {
            is_mdn(m)
                && m.recipients.iter().any(|r| r.eq_ignore_ascii_case(&notify))
                && !id.is_empty()
                && String::from_utf8_lossy(&m.raw).contains(&id)
        });
        match answered {
            Some(mdn) => {
                seen.push(message_line(request));
                seen.push(message_line(mdn));
            }
            None => bad.push(message_line(request)),
        }
    }
    all_good(
        seen,
        bad,
        "a message asked for an MDN and none referring to it was sent to the address it named",
        "no message asking for an MDN (Disposition-Notification-To) was exchanged",
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::operator::delivery::header_fields;
    use crate::operator::recorder::Recorder;

    const CDA: &str = r#"<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1"/>
  <recordTarget><patientRole>
    <id root="1.2.250.1.213.1.4.10" extension="MATRICULE"/>
    <patient>
      <name><family qualifier="BR">DURAND</family><given qualifier="BR">Alice</given></name>
      <administrativeGenderCode code="F"/><birthTime value="19800115"/>
      <birthplace><place><addr><county>75056</county></addr></place></birthplace>
    </patient>
  </patientRole></recordTarget>
</ClinicalDocument>"#;

    fn matricule(n: u64) -> String {
        format!("{n}{:02}", 97 - n % 97)
    }

    fn archive(cdas: &[String]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (i, cda) in cdas.iter().enumerate() {
            zip.start_file(format!("IHE_XDM/SUBSET01/DOC{i:04}.XML"), options)
                .unwrap();
            zip.write_all(cda.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn message(headers: &[(&str, &str)], cdas: &[String]) -> Vec<u8> {
        let mut out = String::from(
            "From: jeanne.martin@sandbox.mssante.fr\r\nTo: karim.benali@sandbox.mssante.fr\r\nMIME-Version: 1.0\r\n",
        );
        for (n, v) in headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nBonjour\r\n");
        if !cdas.is_empty() {
            let zip = base64::engine::general_purpose::STANDARD.encode(archive(cdas));
            out.push_str("--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\r\n");
            out.push_str(&zip);
            out.push_str("\r\n");
        }
        out.push_str("--b--\r\n");
        out.into_bytes()
    }

    fn observe(messages: &[Vec<u8>]) -> Observation {
        let rec = Recorder::new(None);
        for raw in messages {
            rec.record_message(
                "smtp",
                1,
                "jeanne.martin@sandbox.mssante.fr",
                &["karim.benali@sandbox.mssante.fr".into()],
                header_fields(raw),
                raw,
            );
        }
        Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        }
    }

    fn verdict(id: &str, o: &Observation) -> Verdict {
        (super::super::check(id).unwrap().judge)(o)
    }

    fn passed(id: &str, o: &Observation) -> bool {
        matches!(verdict(id, o), Verdict::Passed { .. })
    }

    fn failed(id: &str, o: &Observation) -> bool {
        matches!(verdict(id, o), Verdict::Failed { .. })
    }

    fn alice() -> String {
        CDA.replace("MATRICULE", &matricule(2800175123456))
    }

    const GOOD: &[(&str, &str)] = &[
        (
            "Subject",
            "XDM/1.0/DDM+CR de consultation DURAND Alice 15/01/1980",
        ),
        ("X-MSS-CODECDA", "11488-4"),
        ("X-MSS-INS", "O"),
        ("X-MSS-NIL", "SANDBOX-NIL"),
    ];

    #[test]
    fn a_compliant_document_message_passes_every_message_check() {
        let o = observe(&[message(GOOD, &[alice()])]);
        for id in [
            "x-mss-nil",
            "x-mss-codecda",
            "x-mss-ins",
            "subject-xdm",
            "one-patient",
        ] {
            assert!(passed(id, &o), "{id}: {:?}", verdict(id, &o));
        }
        // Nothing to judge for MES: not a failure, not a pass.
        assert!(matches!(
            verdict("x-mss-mes", &o),
            Verdict::NotObserved { .. }
        ));
    }

    #[test]
    fn each_broken_header_fails_its_check() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            GOOD.iter().filter(|(n, _)| *n != name).copied().collect()
        };
        let replaced =
            |name: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
                GOOD.iter()
                    .map(|&(n, v)| if n == name { (n, value) } else { (n, v) })
                    .collect()
            };
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("x-mss-nil", without("X-MSS-NIL")),
            ("x-mss-nil", replaced("X-MSS-NIL", " ")),
            ("x-mss-codecda", without("X-MSS-CODECDA")),
            ("x-mss-codecda", replaced("X-MSS-CODECDA", "11490-0")),
            ("x-mss-ins", replaced("X-MSS-INS", "N")),
            ("x-mss-ins", without("X-MSS-INS")),
            (
                "subject-xdm",
                replaced("Subject", "CR de consultation DURAND Alice"),
            ),
            (
                "subject-xdm",
                replaced("Subject", "XDM/1.0/DDM+CR de consultation PETIT Bernard"),
            ),
        ];
        for (id, headers) in cases {
            let o = observe(&[message(&headers, &[alice()])]);
            assert!(
                failed(id, &o),
                "{id} with {headers:?}: {:?}",
                verdict(id, &o)
            );
        }
        // Headers about documents on a message without any: wrong too.
        let o = observe(&[message(GOOD, &[])]);
        assert!(matches!(
            verdict("x-mss-codecda", &o),
            Verdict::NotObserved { .. }
        ));
        let o = observe(&[message(GOOD, &[]), message(GOOD, &[alice()])]);
        assert!(failed("x-mss-codecda", &o));
        assert!(failed("x-mss-ins", &o));
    }

    #[test]
    fn an_invalid_ins_key_must_say_n_and_two_patients_fail() {
        let bad_key = CDA.replace("MATRICULE", "280017512345600");
        let o = observe(&[message(GOOD, &[bad_key])]);
        assert!(failed("x-mss-ins", &o));
        let bernard = CDA.replace("MATRICULE", &matricule(1750299123789));
        let o = observe(&[message(GOOD, &[alice(), bernard])]);
        assert!(failed("one-patient", &o));
    }

    #[test]
    fn end_of_exchange_must_be_fin_to_a_patient() {
        let rec = Recorder::new(None);
        let patient = format!("{}@patient.mssante.fr", matricule(2800175123456));
        let raw = b"From: a@sandbox.mssante.fr\r\nX-MSS-MES: FIN\r\nX-MSS-NIL: N\r\n\r\nx".to_vec();
        rec.record_message(
            "smtp",
            1,
            "a@sandbox.mssante.fr",
            &[patient],
            header_fields(&raw),
            &raw,
        );
        let o = Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        };
        assert!(passed("x-mss-mes", &o));
        rec.record_message(
            "smtp",
            1,
            "a@sandbox.mssante.fr",
            &["b@sandbox.mssante.fr".into()],
            header_fields(&raw),
            &raw,
        );
        let o = Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        };
        assert!(failed("x-mss-mes", &o));
    }

    #[test]
    fn an_mdn_request_needs_an_mdn_naming_the_message() {
        let rec = Recorder::new(None);
        let request = b"From: j@sandbox.mssante.fr\r\nMessage-ID: <req-1@x>\r\nDisposition-Notification-To: Dr J <j@sandbox.mssante.fr>\r\nX-MSS-NIL: N\r\n\r\nx".to_vec();
        let record = |raw: &[u8], from: &str, to: &str| {
            rec.record_message("smtp", 1, from, &[to.into()], header_fields(raw), raw)
        };
        record(&request, "j@sandbox.mssante.fr", "k@sandbox.mssante.fr");
        let o = Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        };
        assert!(failed("mdn-requested", &o), "no MDN yet");
        let mdn = b"From: k@sandbox.mssante.fr\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\nContent-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <req-1@x>\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\n--b--\r\n".to_vec();
        record(
            &mdn,
            "k@sandbox.mssante.fr",
            "someone.else@sandbox.mssante.fr",
        );
        let o = Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        };
        assert!(failed("mdn-requested", &o), "sent to the wrong address");
        record(&mdn, "k@sandbox.mssante.fr", "j@sandbox.mssante.fr");
        let o = Observation {
            events: rec.since(0),
            messages: rec.messages_since(0),
        };
        assert!(
            passed("mdn-requested", &o),
            "{:?}",
            verdict("mdn-requested", &o)
        );
    }

    fn auth(rec: &Recorder, session: u64, token: &str, ok: bool) {
        rec.record(
            "imap",
            session,
            "tls",
            json!({"ok": true, "version": "TLSv1_3", "suite": "TLS13_AES_256_GCM_SHA384"}),
        );
        rec.record(
            "imap",
            session,
            "auth",
            json!({"mechanism": "XOAUTH2", "mailbox": "jeanne.martin@sandbox.mssante.fr", "token": token, "ok": ok}),
        );
    }

    #[test]
    fn a_refused_token_presented_again_fails_and_a_fresh_one_passes() {
        let rec = Recorder::new(None);
        auth(&rec, 1, "aaaa", false);
        auth(&rec, 2, "bbbb", true);
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(passed("token-reopen", &o));
        assert!(passed("token-not-reused", &o));
        assert!(passed("tls-before-auth", &o));
        assert!(passed("xoauth2-psc", &o));
        auth(&rec, 3, "aaaa", true);
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(failed("token-not-reused", &o));

        let rec = Recorder::new(None);
        auth(&rec, 1, "aaaa", false);
        auth(&rec, 2, "aaaa", false);
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(failed("token-reopen", &o));
    }

    #[test]
    fn accepting_an_untrusted_server_fails_igc_only() {
        let rec = Recorder::new(None);
        rec.record(
            "imap",
            1,
            "tls",
            json!({"ok": false, "error": "received fatal alert: UnknownCA"}),
        );
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(passed("igc-only", &o));
        auth(&rec, 2, "cccc", true);
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(failed("igc-only", &o));
        let rec = Recorder::new(None);
        rec.record(
            "imap",
            1,
            "auth",
            json!({"mechanism": "XOAUTH2", "token": "x", "ok": true}),
        );
        let o = Observation {
            events: rec.since(0),
            messages: Vec::new(),
        };
        assert!(failed("tls-before-auth", &o));
    }
}
