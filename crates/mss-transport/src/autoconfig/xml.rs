//! The Mozilla autoconfig format (`config-v1.1.xml`), read defensively: no DTD, bounded
//! size and node count, unknown elements ignored. Pure: bytes in, candidates out.

use serde::Serialize;

use crate::bal::Security;

/// Largest document read; real ones are a few hundred bytes.
pub const MAX_XML_BYTES: usize = 64 * 1024;
const MAX_NODES: u32 = 10_000;

/// How a server wants clients to authenticate, as the file says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// `OAuth2`: a bearer token over SASL (XOAUTH2): PSC for BAL PER/ORG.
    OAuth2,
    /// `client-certificate` (or Thunderbird's `TLS-client-cert`): TLS client certificate,
    /// SASL EXTERNAL: BAL APP.
    ClientCertificate,
    /// Anything else (`password-cleartext`, `GSSAPI`…): mss never uses it.
    Other(String),
}

/// One `incomingServer` or `outgoingServer` element, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XmlServer {
    /// `imap`, `pop3`, `smtp`…, lowercased.
    pub kind: String,
    pub hostname: String,
    pub port: Option<u16>,
    /// `None` when the socket type is missing, or `plain`, or unknown (see `socket_type`).
    pub security: Option<Security>,
    pub socket_type: String,
    pub auth: Vec<AuthMethod>,
}

/// Every server element of the document, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct XmlConfig {
    pub incoming: Vec<XmlServer>,
    pub outgoing: Vec<XmlServer>,
}

/// Parses a `config-v1.1.xml` document. `%EMAILDOMAIN%` in host names becomes `domain`.
pub fn parse(bytes: &[u8], domain: &str) -> Result<XmlConfig, String> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(format!("the document is larger than {MAX_XML_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "the document is not UTF-8".to_owned())?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "clientConfig" {
        return Err(format!(
            "the root element is <{}>, not <clientConfig>",
            root.tag_name().name()
        ));
    }
    let mut config = XmlConfig::default();
    for provider in root.children().filter(|n| n.has_tag_name("emailProvider")) {
        for node in provider.children().filter(|n| n.is_element()) {
            let list = match node.tag_name().name() {
                "incomingServer" => &mut config.incoming,
                "outgoingServer" => &mut config.outgoing,
                _ => continue,
            };
            list.push(server(node, domain));
        }
    }
    Ok(config)
}

fn server(node: roxmltree::Node<'_, '_>, domain: &str) -> XmlServer {
    let child_text = |name: &str| -> String {
        node.children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(|t| t.trim().chars().take(300).collect())
            .unwrap_or_default()
    };
    let socket_type = child_text("socketType");
    let security = match socket_type.to_ascii_uppercase().as_str() {
        "STARTTLS" => Some(Security::StartTls),
        "SSL" | "TLS" => Some(Security::Tls),
        _ => None,
    };
    let auth = node
        .children()
        .filter(|n| n.has_tag_name("authentication"))
        .filter_map(|n| n.text())
        .take(16)
        .map(|t| match t.trim() {
            t if t.eq_ignore_ascii_case("OAuth2") => AuthMethod::OAuth2,
            t if t.eq_ignore_ascii_case("client-certificate")
                || t.eq_ignore_ascii_case("TLS-client-cert") =>
            {
                AuthMethod::ClientCertificate
            }
            other => AuthMethod::Other(other.chars().take(64).collect()),
        })
        .collect();
    XmlServer {
        kind: node
            .attribute("type")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .chars()
            .take(16)
            .collect(),
        hostname: child_text("hostname")
            .replace("%EMAILDOMAIN%", domain)
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        port: child_text("port").parse().ok().filter(|p| *p != 0),
        security,
        socket_type,
        auth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="mssante.fr">
    <domain>hopital.mssante.fr</domain>
    <incomingServer type="pop3"><hostname>pop.mssante.fr</hostname><port>995</port><socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>143</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <authentication>TLS-client-cert</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>SMTP.mssante.fr.</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <authentication>client-certificate</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn reads_servers_ports_socket_types_and_methods() {
        let config = parse(SAMPLE.as_bytes(), "hopital.mssante.fr").unwrap();
        assert_eq!(config.incoming.len(), 2);
        let imap = &config.incoming[1];
        assert_eq!(imap.kind, "imap");
        assert_eq!(imap.hostname, "imap.hopital.mssante.fr");
        assert_eq!(imap.port, Some(143));
        assert_eq!(imap.security, Some(Security::StartTls));
        assert_eq!(
            imap.auth,
            vec![AuthMethod::OAuth2, AuthMethod::ClientCertificate]
        );
        let smtp = &config.outgoing[0];
        assert_eq!(smtp.hostname, "smtp.mssante.fr");
        assert_eq!(
            (smtp.port, smtp.security),
            (Some(587), Some(Security::StartTls))
        );
        assert_eq!(
            smtp.auth,
            vec![AuthMethod::OAuth2, AuthMethod::ClientCertificate]
        );
    }

    #[test]
    fn refuses_dtds_entities_oversize_and_other_roots() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE clientConfig [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&b;</hostname></incomingServer></emailProvider></clientConfig>"#;
        assert!(parse(bomb.as_bytes(), "d").is_err());
        let big = format!("<clientConfig>{}</clientConfig>", " ".repeat(MAX_XML_BYTES));
        assert!(parse(big.as_bytes(), "d").unwrap_err().contains("larger"));
        assert!(
            parse(b"<html><body>404</body></html>", "d")
                .unwrap_err()
                .contains("<html>")
        );
        assert!(parse(b"\xff\xfe", "d").is_err());
        assert!(parse(b"<clientConfig>", "d").is_err());
    }

    #[test]
    fn odd_values_are_kept_as_unusable_not_guessed() {
        let xml = r#"<clientConfig><emailProvider>
<incomingServer type="IMAP"><hostname>h</hostname><port>99999</port><socketType>plain</socketType><authentication>password-cleartext</authentication></incomingServer>
</emailProvider></clientConfig>"#;
        let config = parse(xml.as_bytes(), "d").unwrap();
        let s = &config.incoming[0];
        assert_eq!(s.kind, "imap");
        assert_eq!(s.port, None);
        assert_eq!(s.security, None);
        assert_eq!(s.auth, vec![AuthMethod::Other("password-cleartext".into())]);
    }
}
