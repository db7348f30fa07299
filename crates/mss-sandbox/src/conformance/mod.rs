//! The conformance checks: each one names the MSSanté requirements it proves and judges
//! what the sandbox's operator recorded while a client worked against it. The checks are
//! grouped in steps; a step says what the client must do (and which fault the sandbox
//! injects meanwhile), so the same checks serve mss driven automatically and any other
//! software driven by a person while the step waits.

mod checks;
pub mod xdm;

use serde::Serialize;

use crate::operator::recorder::{Event, Submitted};

pub use checks::CHECKS;

/// What the operator recorded during one step.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub events: Vec<Event>,
    pub messages: Vec<Submitted>,
}

/// A check's judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed {
        evidence: Vec<String>,
    },
    Failed {
        why: String,
        evidence: Vec<String>,
    },
    /// The client did not do what the check needs to see.
    NotObserved {
        why: String,
    },
}

/// One check.
#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    pub requirements: &'static [&'static str],
    /// What is checked, in French (shown to the editor) …
    pub title: &'static str,
    /// … and in English.
    pub title_en: &'static str,
    pub judge: fn(&Observation) -> Verdict,
}

/// What the sandbox does to the client during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    None,
    /// The operator presents a certificate from a CA outside the trust space.
    UntrustedCertificate,
    /// The operator refuses the first bearer token it is shown.
    RefuseFirstToken,
}

/// A step of the conformance run.
#[derive(Debug)]
pub struct Step {
    pub id: &'static str,
    /// What the client must do, in French, for a person driving another software.
    pub instruction: &'static str,
    pub fault: Fault,
    /// The checks judged on what this step recorded.
    pub checks: &'static [&'static str],
}

/// The steps, in the order they run.
pub const STEPS: &[Step] = &[
    Step {
        id: "send-document",
        instruction: "Depuis une BAL personnelle (connexion Pro Santé Connect), envoyez à une autre BAL \
                      du bac à sable un message avec un document CDA du patient dans une archive IHE_XDM.",
        fault: Fault::None,
        checks: &[
            "tls-version",
            "tls-suites",
            "tls-before-auth",
            "xoauth2-psc",
            "x-mss-nil",
            "x-mss-codecda",
            "x-mss-ins",
            "subject-xdm",
            "one-patient",
        ],
    },
    Step {
        id: "end-patient-exchange",
        instruction: "Envoyez à l'adresse Mon espace santé d'un patient du bac à sable un message qui \
                      clôt l'échange (X-MSS-MES: FIN).",
        fault: Fault::None,
        checks: &["x-mss-mes", "x-mss-nil"],
    },
    Step {
        id: "application-mailbox",
        instruction: "Relevez la BAL applicative avec son certificat (SASL EXTERNAL).",
        fault: Fault::None,
        checks: &["external-app"],
    },
    Step {
        id: "token-refused",
        instruction: "Relevez une BAL personnelle : le serveur refuse le premier jeton présenté, le \
                      client doit en obtenir un nouveau et rouvrir la session.",
        fault: Fault::RefuseFirstToken,
        checks: &["token-reopen", "token-not-reused"],
    },
    Step {
        id: "mdn-requested",
        instruction: "Envoyez depuis une BAL personnelle un document avec demande d'accusé \
                      (Disposition-Notification-To) à une autre BAL du bac à sable, puis relevez \
                      cette BAL avec le logiciel : il doit retourner l'accusé (MDN).",
        fault: Fault::None,
        checks: &["mdn-requested"],
    },
    Step {
        id: "untrusted-operator",
        instruction: "Relevez une BAL : le serveur présente un certificat hors IGC Santé, le client \
                      doit refuser la connexion.",
        fault: Fault::UntrustedCertificate,
        checks: &["igc-only"],
    },
];

/// The result of one check, as reported (`--json`: one object per check).
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub step: &'static str,
    pub requirements: &'static [&'static str],
    pub title: &'static str,
    pub title_en: &'static str,
    pub passed: bool,
    /// `passed`, `failed` or `not_observed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The recorded lines that prove the outcome.
    pub evidence: Vec<String>,
}

/// The check named `id`.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Judges every check of `step` on what it recorded.
pub fn judge_step(step: &Step, observed: &Observation) -> Vec<CheckResult> {
    step.checks
        .iter()
        .filter_map(|id| check(id))
        .map(|c| {
            let verdict = (c.judge)(observed);
            let (status, why, evidence) = match verdict {
                Verdict::Passed { evidence } => ("passed", None, evidence),
                Verdict::Failed { why, evidence } => ("failed", Some(why), evidence),
                Verdict::NotObserved { why } => ("not_observed", Some(why), Vec::new()),
            };
            CheckResult {
                id: c.id,
                step: step.id,
                requirements: c.requirements,
                title: c.title,
                title_en: c.title_en,
                passed: status == "passed",
                status,
                why,
                evidence,
            }
        })
        .collect()
}

/// The readable report: one line per check, then the reasons of the failures.
pub fn report(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        let mark = match r.status {
            "passed" => "OK   ",
            "failed" => "ÉCHEC",
            _ => "NON VU",
        };
        out.push_str(&format!(
            "{mark} {:<18} {:<40} {}\n",
            r.id,
            r.requirements.join(", "),
            r.title
        ));
        if let Some(why) = &r.why {
            out.push_str(&format!("       → {why}\n"));
            for line in r.evidence.iter().take(5) {
                out.push_str(&format!("         {line}\n"));
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    out.push_str(&format!(
        "{passed}/{} vérifications réussies / checks passed\n",
        results.len()
    ));
    out
}

/// One recorded event as an evidence line.
pub fn evidence_line(event: &Event) -> String {
    format!(
        "#{} {}/{} {} {}",
        event.seq, event.service, event.session, event.kind, event.detail
    )
}
