//! Delivery status notifications (RFC 3464) for mail the operator accepted but could not
//! deliver: a `multipart/report; report-type=delivery-status` with a human part (French,
//! then English), the machine-readable `message/delivery-status`, and the original
//! message's headers (`text/rfc822-headers`: never the body, which may be 25 MB or more).

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

/// One recipient the message did not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub recipient: String,
    /// The envelope's ORCPT, if the client gave one.
    pub original_recipient: Option<String>,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: &'static str,
    /// The SMTP reply that explains it (one line).
    pub diagnostic: String,
    /// Why, in French, for the person who sent the message.
    pub reason_fr: String,
}

/// What the report is about.
#[derive(Debug)]
pub struct Report<'a> {
    /// The reporting operator's host name (`Reporting-MTA`).
    pub reporting_host: &'a str,
    /// Where the report goes: the original envelope sender.
    pub to: &'a str,
    /// The operator's mail domain (the report's From).
    pub domain: &'a str,
    pub envelope_id: Option<&'a str>,
    pub arrival: i64,
    pub now: i64,
    pub failures: &'a [Failure],
    /// The original message's header section (up to, not including, the blank line).
    pub original_headers: &'a [u8],
}

/// The DSN as message bytes.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let mut human = String::from(
        "Votre message n'a pas pu être remis aux destinataires suivants.\r\n\
         Your message could not be delivered to the following recipients.\r\n\r\n",
    );
    for f in report.failures {
        human.push_str(&format!(
            "  <{}> : {}\r\n      ({})\r\n",
            f.recipient,
            f.reason_fr,
            ascii_line(&f.diagnostic)
        ));
    }
    human.push_str("\r\nLes en-têtes du message d'origine sont joints.\r\n");

    let mut status = format!(
        "Reporting-MTA: dns; {}\r\n",
        ascii_line(report.reporting_host)
    );
    if let Some(id) = report.envelope_id {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", ascii_line(id)));
    }
    status.push_str(&format!(
        "Arrival-Date: {}\r\n",
        Date::new(report.arrival).to_rfc822()
    ));
    for f in report.failures {
        status.push_str("\r\n");
        if let Some(orcpt) = &f.original_recipient {
            // smtp-proto gives the ORCPT address without its address type.
            let typed = if orcpt.contains(';') {
                orcpt.clone()
            } else {
                format!("rfc822;{orcpt}")
            };
            status.push_str(&format!("Original-Recipient: {}\r\n", ascii_line(&typed)));
        }
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n\
             Action: failed\r\n\
             Status: {}\r\n\
             Diagnostic-Code: smtp; {}\r\n\
             Last-Attempt-Date: {}\r\n",
            ascii_line(&f.recipient),
            f.status,
            ascii_line(&f.diagnostic),
            Date::new(report.now).to_rfc822()
        ));
    }

    let mut headers = report.original_headers.to_vec();
    if !headers.ends_with(b"\r\n") {
        headers.extend_from_slice(b"\r\n");
    }
    let eight_bit = headers.iter().any(|b| !b.is_ascii());

    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human),
            MimePart::new("message/delivery-status", status.into_bytes()).transfer_encoding("7bit"),
            MimePart::new("text/rfc822-headers", headers).transfer_encoding(if eight_bit {
                "8bit"
            } else {
                "7bit"
            }),
        ],
    );
    let daemon = format!("mailer-daemon@{}", report.domain);
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Système de messagerie MSSanté (bac à sable)"),
            daemon,
        ))
        .to(report.to)
        .subject("Non distribué / Undelivered Mail Returned to Sender")
        .date(report.now)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(body)
        .write_to_vec()
        .unwrap_or_default()
}

/// One printable ASCII line, bounded: report fields must not carry CR, LF or 8-bit text.
fn ascii_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    #[test]
    fn a_report_is_a_delivery_status_with_the_original_headers() {
        let failures = [Failure {
            recipient: "000000000000000@patient.mssante.fr".into(),
            original_recipient: Some("000000000000000@patient.mssante.fr".into()),
            status: "5.1.1",
            diagnostic: "550 5.1.1 unknown\r\nInjected: yes".into(),
            reason_fr: "patient inconnu".into(),
        }];
        let bytes = build(&Report {
            reporting_host: "smtp.sandbox.mssante.fr",
            to: "jeanne.martin@sandbox.mssante.fr",
            domain: "sandbox.mssante.fr",
            envelope_id: Some("env-1"),
            arrival: 1_700_000_000,
            now: 1_700_000_001,
            failures: &failures,
            original_headers: b"Subject: bonjour\r\nX-MSS-MES: FIN",
        });
        let text = String::from_utf8_lossy(&bytes);
        let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        let ct = message.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert!(text.contains("Final-Recipient: rfc822; 000000000000000@patient.mssante.fr"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Original-Recipient: rfc822;000000000000000@patient.mssante.fr"));
        assert!(text.contains("Original-Envelope-Id: env-1"));
        assert!(text.contains("Subject: bonjour\r\nX-MSS-MES: FIN\r\n"));
        assert!(!text.contains("\r\nInjected: yes"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-replied"));
    }
}
