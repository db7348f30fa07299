//! How one mailbox (BAL) is described in `mss.toml`: its address, kind, how it
//! authenticates and, optionally, where its servers are (autoconfiguration otherwise).

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The three kinds of MSSanté mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BalKind {
    /// Personal mailbox of a professional.
    Per,
    /// Organisational mailbox (a service, a secretariat).
    Org,
    /// Applicative mailbox, used by software without a person behind it.
    App,
}

/// How the mailbox proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BalAuth {
    /// A Pro Santé Connect access token over SASL XOAUTH2 (PER and ORG).
    Psc,
    /// An IGC Santé client certificate over SASL EXTERNAL (APP).
    Certificate,
}

/// How TLS starts on a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587): the MSSanté default.
    #[default]
    StartTls,
    /// TLS from the first byte (IMAPS 993, submissions 465).
    Tls,
}

/// A server address, written `host:port` (`[::1]:143` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{text}` is not a server address: write host:port, e.g. imap.example.fr:143")
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !host_ok || port == 0 {
            return Err(bad());
        }
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One `[[bal]]` table of `mss.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalConfig {
    pub address: String,
    pub kind: BalKind,
    /// Default: `certificate` for APP mailboxes, `psc` otherwise.
    pub auth: Option<BalAuth>,
    /// The professional who logs in to Pro Santé Connect for this mailbox (CIBA
    /// `login_hint`); default: `[psc] login_hint`. Each professional holds their own
    /// personal mailbox: one configuration can serve several.
    pub login_hint: Option<String>,
    /// IMAP server; autoconfiguration when absent.
    pub imap: Option<Endpoint>,
    /// Submission server; autoconfiguration when absent.
    pub smtp: Option<Endpoint>,
    #[serde(default)]
    pub security: Security,
    /// PEM chain (leaf first) or PKCS#12 bundle of the application certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (absent with a PKCS#12 bundle).
    pub client_key: Option<PathBuf>,
}

impl BalConfig {
    pub fn auth(&self) -> BalAuth {
        self.auth.unwrap_or(match self.kind {
            BalKind::App => BalAuth::Certificate,
            BalKind::Per | BalKind::Org => BalAuth::Psc,
        })
    }

    /// Checks what the types cannot: the combinations MSSanté allows.
    pub fn validate(&self) -> Result<(), String> {
        let address = &self.address;
        let (local, domain) = address
            .rsplit_once('@')
            .filter(|(l, d)| !l.is_empty() && d.contains('.'))
            .ok_or_else(|| format!("bal `{address}`: not a mailbox address"))?;
        if local.len() > 64 || domain.len() > 253 {
            return Err(format!("bal `{address}`: address too long"));
        }
        match (self.kind, self.auth()) {
            (BalKind::App, BalAuth::Psc) => {
                return Err(format!(
                    "bal `{address}`: an application mailbox authenticates with its certificate (auth = \"certificate\")"
                ));
            }
            (BalKind::Per | BalKind::Org, BalAuth::Certificate) => {
                return Err(format!(
                    "bal `{address}`: personal and organisational mailboxes log in with Pro Santé Connect (auth = \"psc\")"
                ));
            }
            _ => {}
        }
        if self.auth() == BalAuth::Certificate && self.client_cert.is_none() {
            return Err(format!(
                "bal `{address}`: client_cert is required to authenticate with a certificate"
            ));
        }
        if self.imap.is_some() != self.smtp.is_some() {
            return Err(format!(
                "bal `{address}`: give both imap and smtp, or neither (autoconfiguration)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_hosts_ports_and_ipv6() {
        let e: Endpoint = "IMAP.Example.fr:143".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("imap.example.fr", 143));
        let e: Endpoint = "[::1]:10143".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 10143));
        assert_eq!(e.to_string(), "[::1]:10143");
        for bad in [
            "imap.example.fr",
            "imap:0",
            ":143",
            "imap:99999",
            "a b:1",
            "x:-1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    fn bal(kind: BalKind, auth: Option<BalAuth>, cert: bool) -> BalConfig {
        BalConfig {
            login_hint: None,
            address: "secretariat@hopital.mssante.fr".into(),
            kind,
            auth,
            imap: None,
            smtp: None,
            security: Security::StartTls,
            client_cert: cert.then(|| "app.pem".into()),
            client_key: None,
        }
    }

    #[test]
    fn the_kind_decides_the_authentication() {
        assert_eq!(bal(BalKind::Per, None, false).auth(), BalAuth::Psc);
        assert_eq!(bal(BalKind::App, None, true).auth(), BalAuth::Certificate);
        assert!(bal(BalKind::App, None, true).validate().is_ok());
        assert!(bal(BalKind::App, None, false).validate().is_err());
        assert!(
            bal(BalKind::App, Some(BalAuth::Psc), true)
                .validate()
                .is_err()
        );
        assert!(
            bal(BalKind::Org, Some(BalAuth::Certificate), true)
                .validate()
                .is_err()
        );
        let mut half = bal(BalKind::Per, None, false);
        half.imap = Some("imap.x.fr:143".parse().unwrap());
        assert!(half.validate().unwrap_err().contains("both imap and smtp"));
    }
}
