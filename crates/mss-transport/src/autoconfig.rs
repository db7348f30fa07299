//! From a mailbox address to its IMAP and SMTP servers (SC.MSS/CONF.04).
//!
//! Order: the explicit configuration (`imap`/`smtp` of the `[[bal]]` table) wins; else DNS
//! SRV records (RFC 6186); else the Mozilla autoconfig document, first at
//! `https://autoconfig.<domain>/mail/config-v1.1.xml`, then at
//! `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`.
//!
//! Only the trust space is accepted: the mailbox domain and every server host must sit under
//! one of the configured domain suffixes (`mssante.fr` by default), and IP literals are
//! refused. Discovery sends no credential of any kind: the token is presented later, and
//! only to a server that proved an IGC Santé certificate.
//!
//! [`discover`] returns a [`Report`] of every source tried and why it was used or not, which
//! `mss autoconfig ADDR --json` prints.

pub mod srv;
pub mod xml;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::TransportError;
use crate::bal::{Endpoint, Security};
pub use srv::{SrvError, SrvRecord, SrvResolver, SystemResolver};
pub use xml::{AuthMethod, MAX_XML_BYTES, XmlConfig, XmlServer};

/// The `[autoconfig]` table of `mss.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoconfigSettings {
    /// Domain suffixes of the trust space.
    #[serde(default = "default_trusted")]
    pub trusted_domains: Vec<String>,
    /// Where to look for the XML document, in order; `{domain}` is replaced by the mailbox
    /// domain. Plain `http://` is accepted only towards a loopback address (tests).
    #[serde(default = "default_xml_urls")]
    pub xml_urls: Vec<String>,
}

impl Default for AutoconfigSettings {
    fn default() -> Self {
        AutoconfigSettings {
            trusted_domains: default_trusted(),
            xml_urls: default_xml_urls(),
        }
    }
}

fn default_trusted() -> Vec<String> {
    vec!["mssante.fr".to_owned()]
}

fn default_xml_urls() -> Vec<String> {
    vec![
        "https://autoconfig.{domain}/mail/config-v1.1.xml".to_owned(),
        "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml".to_owned(),
    ]
}

/// Servers given by hand in the configuration.
#[derive(Debug, Clone)]
pub struct Explicit {
    pub imap: Endpoint,
    pub smtp: Endpoint,
    pub security: Security,
}

/// One server found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    pub endpoint: Endpoint,
    pub security: Security,
    /// What the source says about authentication (empty when it says nothing, as SRV).
    pub auth: Vec<AuthMethod>,
}

/// The pair a mailbox needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Servers {
    pub imap: Server,
    pub smtp: Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Explicit,
    Srv,
    AutoconfigXml,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    /// This source gave the servers.
    Used,
    /// The source had nothing (no record, HTTP 404…).
    NotFound(String),
    /// The source answered, but what it said is refused (outside the trust space…).
    Rejected(String),
    /// The source could not be asked (timeout, DNS failure, TLS refused…).
    Failed(String),
    /// Not asked: an earlier source already answered.
    Skipped,
}

/// One step of the discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub source: Source,
    /// The SRV name or the URL asked.
    pub target: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Everything discovery did, for people and for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub address: String,
    pub domain: String,
    pub attempts: Vec<Attempt>,
    pub source: Option<Source>,
    pub servers: Option<Servers>,
}

impl Report {
    /// The servers, or an error that says what was tried.
    pub fn servers(&self) -> Result<&Servers, TransportError> {
        self.servers.as_ref().ok_or_else(|| {
            let tried: Vec<String> = self
                .attempts
                .iter()
                .map(|a| {
                    let why = match &a.outcome {
                        Outcome::NotFound(d) | Outcome::Rejected(d) | Outcome::Failed(d) => {
                            d.as_str()
                        }
                        Outcome::Used => "used",
                        Outcome::Skipped => "skipped",
                    };
                    format!("{} ({why})", a.target)
                })
                .collect();
            TransportError::Config(format!(
                "no server found for {}: {} — set imap and smtp in its [[bal]] table",
                self.address,
                if tried.is_empty() {
                    "nothing could be tried".to_owned()
                } else {
                    tried.join("; ")
                }
            ))
        })
    }
}

/// Fetches the XML document.
pub trait Fetcher: Send + Sync {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, FetchError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    NotFound(String),
    Failed(String),
}

/// The production fetcher: HTTPS with the caller's TLS configuration (for instance
/// [`crate::tls::TlsPolicy::http_tls_config`]), no redirects, no cookies, [`MAX_XML_BYTES`]
/// at most, 10 s per request.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
}

impl HttpFetcher {
    pub fn new(tls: rustls::ClientConfig) -> Result<HttpFetcher, TransportError> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                TransportError::Config(format!("HTTP client for autoconfiguration: {e}"))
            })?;
        Ok(HttpFetcher { client })
    }
}

impl Fetcher for HttpFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let parsed =
            url::Url::parse(url).map_err(|e| FetchError::Failed(format!("bad URL: {e}")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(FetchError::Failed(
                "only https is allowed (plain http only towards a loopback address)".to_owned(),
            ));
        }
        let mut response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| FetchError::Failed(describe(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(FetchError::NotFound(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Failed(format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_XML_BYTES {
                return Err(FetchError::Failed(format!(
                    "the document is larger than {MAX_XML_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// reqwest's Display hides the cause (a refused certificate reads "error sending request").
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    let mut depth = 0;
    while let Some(cause) = source {
        if depth == 4 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}

/// Whether `host` is a DNS name under one of the trusted suffixes.
pub fn in_trust_space(host: &str, trusted: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 || host.parse::<IpAddr>().is_ok() {
        return false;
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok
        && trusted.iter().any(|suffix| {
            let suffix = suffix.trim_matches('.').to_ascii_lowercase();
            !suffix.is_empty() && (host == suffix || host.ends_with(&format!(".{suffix}")))
        })
}

/// Finds the servers of `address`.
pub async fn discover<R: SrvResolver, F: Fetcher>(
    address: &str,
    explicit: Option<&Explicit>,
    settings: &AutoconfigSettings,
    resolver: &R,
    fetcher: &F,
) -> Report {
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    let mut report = Report {
        address: address.to_owned(),
        domain: domain.clone(),
        attempts: Vec::new(),
        source: None,
        servers: None,
    };
    if let Some(explicit) = explicit {
        report.attempts.push(Attempt {
            source: Source::Explicit,
            target: "configuration".to_owned(),
            outcome: Outcome::Used,
        });
        let server = |endpoint: &Endpoint| Server {
            endpoint: endpoint.clone(),
            security: explicit.security,
            auth: Vec::new(),
        };
        report.servers = Some(Servers {
            imap: server(&explicit.imap),
            smtp: server(&explicit.smtp),
        });
        report.source = Some(Source::Explicit);
        return report;
    }
    if !in_trust_space(&domain, &settings.trusted_domains) {
        report.attempts.push(Attempt {
            source: Source::Srv,
            target: domain.clone(),
            outcome: Outcome::Rejected(format!(
                "the domain `{domain}` is outside the trust space ({})",
                settings.trusted_domains.join(", ")
            )),
        });
        return report;
    }

    if let Some(servers) = from_srv(&domain, settings, resolver, &mut report.attempts).await {
        report.servers = Some(servers);
        report.source = Some(Source::Srv);
    }
    for template in &settings.xml_urls {
        let url = template.replace("{domain}", &domain);
        if report.servers.is_some() {
            report.attempts.push(Attempt {
                source: Source::AutoconfigXml,
                target: url,
                outcome: Outcome::Skipped,
            });
            continue;
        }
        let outcome = match fetcher.get(&url).await {
            Err(FetchError::NotFound(d)) => Outcome::NotFound(d),
            Err(FetchError::Failed(d)) => Outcome::Failed(d),
            Ok(bytes) => match xml::parse(&bytes, &domain) {
                Err(e) => Outcome::Rejected(e),
                Ok(config) => match from_xml(&config, &settings.trusted_domains) {
                    Ok(servers) => {
                        report.servers = Some(servers);
                        report.source = Some(Source::AutoconfigXml);
                        Outcome::Used
                    }
                    Err(e) => Outcome::Rejected(e),
                },
            },
        };
        report.attempts.push(Attempt {
            source: Source::AutoconfigXml,
            target: url,
            outcome,
        });
    }
    report
}

/// The four RFC 6186 services: name prefix, which protocol, how TLS starts.
const SERVICES: [(&str, bool, Security); 4] = [
    ("_imap._tcp", true, Security::StartTls),
    ("_imaps._tcp", true, Security::Tls),
    ("_submission._tcp", false, Security::StartTls),
    ("_submissions._tcp", false, Security::Tls),
];

async fn from_srv<R: SrvResolver>(
    domain: &str,
    settings: &AutoconfigSettings,
    resolver: &R,
    attempts: &mut Vec<Attempt>,
) -> Option<Servers> {
    // Usable records per protocol, each with how TLS starts and the name it came from.
    let mut imap: Vec<(SrvRecord, Security, String)> = Vec::new();
    let mut smtp: Vec<(SrvRecord, Security, String)> = Vec::new();
    for (prefix, is_imap, security) in SERVICES {
        let name = format!("{prefix}.{domain}");
        let outcome = match resolver.lookup(&name).await {
            Err(SrvError::NotFound) => Outcome::NotFound("no SRV record".to_owned()),
            Err(SrvError::Failed(e)) => Outcome::Failed(e),
            Ok(records) => {
                let mut refused = Vec::new();
                let mut kept = 0;
                for record in records.into_iter().take(32) {
                    let target = srv::normalise(&record.target);
                    if target == "." {
                        refused.push("the domain says it offers no such service".to_owned());
                    } else if record.port == 0 {
                        refused.push(format!("{target}: port 0"));
                    } else if !in_trust_space(&target, &settings.trusted_domains) {
                        refused.push(format!("{target} is outside the trust space"));
                    } else {
                        kept += 1;
                        let list = if is_imap { &mut imap } else { &mut smtp };
                        list.push((SrvRecord { target, ..record }, security, name.clone()));
                    }
                }
                if kept > 0 {
                    Outcome::NotFound(format!("{kept} usable record(s), not chosen"))
                } else {
                    Outcome::Rejected(refused.join("; "))
                }
            }
        };
        attempts.push(Attempt {
            source: Source::Srv,
            target: name,
            outcome,
        });
    }
    let pick = |list: &mut Vec<(SrvRecord, Security, String)>| {
        // RFC 6186 §3.4: priorities compare across the STARTTLS and implicit-TLS services;
        // on a tie, STARTTLS (the mode MSSanté documents), then the heaviest weight.
        list.sort_by_key(|(r, s, _)| {
            (
                r.priority,
                *s != Security::StartTls,
                std::cmp::Reverse(r.weight),
            )
        });
        list.first().cloned()
    };
    let (Some(imap), Some(smtp)) = (pick(&mut imap), pick(&mut smtp)) else {
        if !imap.is_empty() || !smtp.is_empty() {
            let (has, lacks) = if imap.is_empty() {
                ("SMTP", "IMAP")
            } else {
                ("IMAP", "SMTP")
            };
            attempts.push(Attempt {
                source: Source::Srv,
                target: domain.to_owned(),
                outcome: Outcome::Rejected(format!("SRV records give {has} but not {lacks}")),
            });
        }
        return None;
    };
    for attempt in attempts.iter_mut() {
        if attempt.source == Source::Srv && (attempt.target == imap.2 || attempt.target == smtp.2) {
            attempt.outcome = Outcome::Used;
        }
    }
    let server = |(record, security, _): (SrvRecord, Security, String)| Server {
        endpoint: Endpoint {
            host: record.target,
            port: record.port,
        },
        security,
        auth: Vec::new(),
    };
    Some(Servers {
        imap: server(imap),
        smtp: server(smtp),
    })
}

/// Picks the first usable IMAP and SMTP servers of the document.
fn from_xml(config: &XmlConfig, trusted: &[String]) -> Result<Servers, String> {
    let mut refused = Vec::new();
    let mut choose = |list: &[XmlServer], kind: &str| -> Option<Server> {
        for candidate in list.iter().filter(|s| s.kind == kind) {
            let why = if !in_trust_space(&candidate.hostname, trusted) {
                Some(format!(
                    "{} `{}` is outside the trust space",
                    kind, candidate.hostname
                ))
            } else if candidate.port.is_none() {
                Some(format!(
                    "{} `{}` has no valid port",
                    kind, candidate.hostname
                ))
            } else if candidate.security.is_none() {
                Some(format!(
                    "{} `{}` has socket type `{}` (STARTTLS or SSL required)",
                    kind, candidate.hostname, candidate.socket_type
                ))
            } else {
                None
            };
            match (why, candidate.port, candidate.security) {
                (None, Some(port), Some(security)) => {
                    return Some(Server {
                        endpoint: Endpoint {
                            host: candidate.hostname.clone(),
                            port,
                        },
                        security,
                        auth: candidate.auth.clone(),
                    });
                }
                (why, _, _) => refused.extend(why),
            }
        }
        None
    };
    let imap = choose(&config.incoming, "imap");
    let smtp = choose(&config.outgoing, "smtp");
    match (imap, smtp) {
        (Some(imap), Some(smtp)) => Ok(Servers { imap, smtp }),
        (imap, smtp) => {
            let mut missing = Vec::new();
            if imap.is_none() {
                missing.push("no usable IMAP server");
            }
            if smtp.is_none() {
                missing.push("no usable SMTP server");
            }
            let mut text = missing.join(", ");
            if !refused.is_empty() {
                text.push_str(": ");
                text.push_str(&refused.join("; "));
            }
            Err(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_space_is_a_suffix_match_on_names_only() {
        let trusted = default_trusted();
        assert!(in_trust_space("mssante.fr", &trusted));
        assert!(in_trust_space("imap.hopital.MSSANTE.fr.", &trusted));
        assert!(!in_trust_space("evilmssante.fr", &trusted));
        assert!(!in_trust_space("mssante.fr.evil.com", &trusted));
        assert!(!in_trust_space("127.0.0.1", &trusted));
        assert!(!in_trust_space("::1", &trusted));
        assert!(!in_trust_space("a..mssante.fr", &trusted));
        assert!(!in_trust_space("a_b.mssante.fr", &trusted));
        assert!(!in_trust_space("", &trusted));
        assert!(!in_trust_space("x.mssante.fr", &["".to_owned()]));
    }
}
