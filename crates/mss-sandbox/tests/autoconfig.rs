//! The autoconfig document as Thunderbird reads it (its `readFromXML` rules: a
//! `clientConfig` 1.1 root, an `emailProvider` with its domains, servers with hostname,
//! port, socketType and at least one authentication value it knows), served over HTTP.

use std::time::Duration;

use mss_sandbox::autoconfig::{AutoconfigServer, AutoconfigSettings};

/// Authentication values Thunderbird understands in config-v1.1.xml.
const THUNDERBIRD_AUTH: [&str; 8] = [
    "password-cleartext",
    "password-encrypted",
    "NTLM",
    "GSSAPI",
    "client-IP-address",
    "TLS-client-cert",
    "OAuth2",
    "none",
];

fn settings() -> AutoconfigSettings {
    AutoconfigSettings {
        domains: vec![
            "sandbox.mssante.fr".into(),
            "autre.sandbox.mssante.fr".into(),
        ],
        hostname: "localhost".into(),
        imap_port: 40143,
        imaps_port: 40993,
        smtp_port: 40587,
        psc_issuer: "http://127.0.0.1:40000".into(),
    }
}

struct Server<'a> {
    kind: &'a str,
    hostname: &'a str,
    port: u16,
    socket: &'a str,
    auth: Vec<&'a str>,
}

fn servers<'a>(doc: &'a roxmltree::Document<'a>) -> (Vec<String>, Vec<Server<'a>>) {
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "clientConfig");
    assert_eq!(root.attribute("version"), Some("1.1"));
    let provider = root
        .children()
        .find(|n| n.has_tag_name("emailProvider"))
        .expect("emailProvider");
    assert!(provider.attribute("id").is_some_and(|id| !id.is_empty()));
    let domains = provider
        .children()
        .filter(|n| n.has_tag_name("domain"))
        .map(|n| n.text().unwrap().to_owned())
        .collect();
    let text = |n: roxmltree::Node<'a, 'a>, name: &str| -> &'a str {
        n.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .unwrap_or_else(|| panic!("<{name}> missing"))
    };
    let list = provider
        .children()
        .filter(|n| n.has_tag_name("incomingServer") || n.has_tag_name("outgoingServer"))
        .map(|n| {
            assert_eq!(text(n, "username"), "%EMAILADDRESS%");
            Server {
                kind: n.attribute("type").unwrap(),
                hostname: text(n, "hostname"),
                port: text(n, "port").parse().unwrap(),
                socket: text(n, "socketType"),
                auth: n
                    .children()
                    .filter(|c| c.has_tag_name("authentication"))
                    .map(|c| c.text().unwrap())
                    .collect(),
            }
        })
        .collect();
    (domains, list)
}

#[test]
fn the_document_has_the_structure_thunderbird_reads() {
    let xml = mss_sandbox::autoconfig::document(&settings());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let (domains, list) = servers(&doc);
    assert_eq!(domains, ["sandbox.mssante.fr", "autre.sandbox.mssante.fr"]);
    let find = |kind: &str, socket: &str| {
        list.iter()
            .find(|s| s.kind == kind && s.socket == socket)
            .unwrap()
    };
    let imap = find("imap", "STARTTLS");
    assert_eq!((imap.hostname, imap.port), ("localhost", 40143));
    assert_eq!(find("imap", "SSL").port, 40993);
    assert_eq!(find("smtp", "STARTTLS").port, 40587);
    for server in &list {
        assert!(["plain", "SSL", "STARTTLS"].contains(&server.socket));
        assert_ne!(server.socket, "plain", "MSSanté never goes in the clear");
        // Thunderbird takes the first value it knows: OAuth2 (PSC), and it knows the
        // certificate method under its own name.
        let known: Vec<_> = server
            .auth
            .iter()
            .filter(|a| THUNDERBIRD_AUTH.contains(a))
            .collect();
        assert_eq!(known, [&"OAuth2", &"TLS-client-cert"]);
        assert!(server.auth.contains(&"client-certificate"));
        assert!(!server.auth.iter().any(|a| a.starts_with("password")));
    }
    let oauth = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("oAuth2"))
        .unwrap();
    let token_url = oauth
        .children()
        .find(|n| n.has_tag_name("tokenURL"))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(token_url, "http://127.0.0.1:40000/token");
}

#[test]
fn values_are_escaped() {
    let mut s = settings();
    s.hostname = "a<b>&\"c".into();
    let xml = mss_sandbox::autoconfig::document(&s);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let (_, list) = servers(&doc);
    assert_eq!(list[0].hostname, "a<b>&\"c");
}

#[tokio::test]
async fn served_at_both_thunderbird_paths_for_sandbox_addresses_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = AutoconfigServer::start(listener, settings()).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{}", server.addr);
    assert_eq!(server.url, format!("{base}/mail/config-v1.1.xml"));
    for path in [
        "/mail/config-v1.1.xml",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .query(&[("emailaddress", "dpi@sandbox.mssante.fr")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/xml")
        );
        let xml = response.text().await.unwrap();
        assert_eq!(xml, mss_sandbox::autoconfig::document(&settings()));
    }
    let other = http
        .get(&server.url)
        .query(&[("emailaddress", "x@gmail.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(
        http.get(format!("{base}/autodiscover"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
