//! SC.MSS/CONF.04: explicit configuration, then DNS SRV, then the autoconfig XML (two URLs),
//! always inside the trust space, with a report of what was tried and why.

mod autoconfig_support;
mod tls_support;

use std::collections::HashMap;
use std::sync::Arc;

use autoconfig_support::{HttpServer, Reply, TableResolver};
use mss_transport::autoconfig::{
    AuthMethod, AutoconfigSettings, Explicit, HttpFetcher, Outcome, Source, discover,
};
use mss_transport::bal::{Endpoint, Security};
use mss_transport::tls::{TlsPolicy, TlsSettings};

const ADDRESS: &str = "secretariat@hopital.mssante.fr";
const DOMAIN: &str = "hopital.mssante.fr";

const GOOD_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="mssante.fr">
    <domain>hopital.mssante.fr</domain>
    <incomingServer type="imap">
      <hostname>imap.mssante.fr</hostname>
      <port>143</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.mssante.fr</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
      <authentication>client-certificate</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

/// Settings whose two XML locations point at the test server, shaped like the real ones.
fn settings(server: &HttpServer, scheme: &str) -> AutoconfigSettings {
    AutoconfigSettings {
        trusted_domains: vec!["mssante.fr".into()],
        xml_urls: vec![
            server.url(scheme, "/autoconfig.{domain}/mail/config-v1.1.xml"),
            server.url(
                scheme,
                "/{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
            ),
        ],
    }
}

fn first_path() -> String {
    format!("/autoconfig.{DOMAIN}/mail/config-v1.1.xml")
}

fn second_path() -> String {
    format!("/{DOMAIN}/.well-known/autoconfig/mail/config-v1.1.xml")
}

fn plain_fetcher() -> HttpFetcher {
    let (_dir, pki) = tls_support::pki();
    let policy = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        ..TlsSettings::default()
    })
    .unwrap();
    HttpFetcher::new(policy.http_tls_config()).unwrap()
}

fn endpoint(host: &str, port: u16) -> Endpoint {
    Endpoint {
        host: host.into(),
        port,
    }
}

#[tokio::test]
async fn explicit_configuration_wins_and_nothing_is_asked() {
    let server =
        HttpServer::start(HashMap::from([(first_path(), Reply::xml(GOOD_XML))]), None).await;
    let resolver = TableResolver::default().with(
        &format!("_imap._tcp.{DOMAIN}"),
        &[(0, 0, 143, "imap.mssante.fr")],
    );
    let explicit = Explicit {
        imap: endpoint("127.0.0.1", 10143),
        smtp: endpoint("127.0.0.1", 10587),
        security: Security::Tls,
    };
    let report = discover(
        ADDRESS,
        Some(&explicit),
        &settings(&server, "http"),
        &resolver,
        &plain_fetcher(),
    )
    .await;
    assert_eq!(report.source, Some(Source::Explicit));
    let servers = report.servers().unwrap();
    assert_eq!(servers.imap.endpoint, endpoint("127.0.0.1", 10143));
    assert_eq!(servers.smtp.security, Security::Tls);
    assert!(resolver.asked.lock().unwrap().is_empty());
    assert!(server.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn srv_records_come_before_the_xml_and_the_report_says_so() {
    let server =
        HttpServer::start(HashMap::from([(first_path(), Reply::xml(GOOD_XML))]), None).await;
    let resolver = TableResolver::default()
        .with(
            &format!("_imap._tcp.{DOMAIN}"),
            &[(10, 5, 143, "IMAP.hopital.mssante.fr.")],
        )
        .with(
            &format!("_imaps._tcp.{DOMAIN}"),
            &[(20, 5, 993, "imap.hopital.mssante.fr")],
        )
        .with(
            &format!("_submission._tcp.{DOMAIN}"),
            &[(10, 0, 587, "smtp.hopital.mssante.fr")],
        );
    let report = discover(
        ADDRESS,
        None,
        &settings(&server, "http"),
        &resolver,
        &plain_fetcher(),
    )
    .await;
    assert_eq!(report.source, Some(Source::Srv));
    let servers = report.servers().unwrap();
    assert_eq!(
        servers.imap.endpoint,
        endpoint("imap.hopital.mssante.fr", 143)
    );
    assert_eq!(servers.imap.security, Security::StartTls);
    assert_eq!(
        servers.smtp.endpoint,
        endpoint("smtp.hopital.mssante.fr", 587)
    );
    assert_eq!(
        *resolver.asked.lock().unwrap(),
        [
            format!("_imap._tcp.{DOMAIN}"),
            format!("_imaps._tcp.{DOMAIN}"),
            format!("_submission._tcp.{DOMAIN}"),
            format!("_submissions._tcp.{DOMAIN}"),
        ]
    );
    assert!(
        server.requests.lock().unwrap().is_empty(),
        "the XML is not fetched when SRV answered"
    );

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["source"], "srv");
    assert_eq!(
        json["attempts"][0]["target"],
        format!("_imap._tcp.{DOMAIN}")
    );
    assert_eq!(json["attempts"][0]["outcome"], "used");
    assert_eq!(json["attempts"][1]["outcome"], "not_found");
    assert_eq!(json["attempts"][3]["detail"], "no SRV record");
    assert_eq!(json["attempts"][4]["outcome"], "skipped");
    assert_eq!(json["servers"]["smtp"]["endpoint"]["port"], 587);
}

#[tokio::test]
async fn srv_priorities_compare_across_starttls_and_implicit_tls() {
    let server = HttpServer::start(HashMap::new(), None).await;
    let resolver = TableResolver::default()
        .with(
            &format!("_imap._tcp.{DOMAIN}"),
            &[(20, 0, 143, "imap.mssante.fr")],
        )
        .with(
            &format!("_imaps._tcp.{DOMAIN}"),
            &[(10, 0, 993, "imaps.mssante.fr")],
        )
        .with(
            &format!("_submission._tcp.{DOMAIN}"),
            &[(10, 0, 587, "smtp.mssante.fr")],
        )
        .with(
            &format!("_submissions._tcp.{DOMAIN}"),
            &[(10, 50, 465, "smtps.mssante.fr")],
        );
    let report = discover(
        ADDRESS,
        None,
        &settings(&server, "http"),
        &resolver,
        &plain_fetcher(),
    )
    .await;
    let servers = report.servers().unwrap();
    assert_eq!(
        (servers.imap.endpoint.port, servers.imap.security),
        (993, Security::Tls)
    );
    // Same priority: STARTTLS, the documented MSSanté mode, wins over weight.
    assert_eq!(
        (servers.smtp.endpoint.port, servers.smtp.security),
        (587, Security::StartTls)
    );
}

#[tokio::test]
async fn srv_targets_outside_the_trust_space_are_refused_then_the_xml_is_used() {
    let server =
        HttpServer::start(HashMap::from([(first_path(), Reply::xml(GOOD_XML))]), None).await;
    let resolver = TableResolver::default()
        .with(
            &format!("_imap._tcp.{DOMAIN}"),
            &[(0, 0, 143, "imap.attacker.example")],
        )
        .with(
            &format!("_submission._tcp.{DOMAIN}"),
            &[(0, 0, 587, "127.0.0.1")],
        )
        .with(&format!("_imaps._tcp.{DOMAIN}"), &[(0, 0, 0, ".")])
        .failing(&format!("_submissions._tcp.{DOMAIN}"), "SERVFAIL");
    let report = discover(
        ADDRESS,
        None,
        &settings(&server, "http"),
        &resolver,
        &plain_fetcher(),
    )
    .await;
    assert_eq!(report.source, Some(Source::AutoconfigXml));
    let outcomes: Vec<&Outcome> = report.attempts.iter().map(|a| &a.outcome).collect();
    assert!(
        matches!(outcomes[0], Outcome::Rejected(d) if d.contains("imap.attacker.example is outside the trust space"))
    );
    assert!(matches!(outcomes[1], Outcome::Rejected(d) if d.contains("offers no such service")));
    assert!(matches!(outcomes[2], Outcome::Rejected(d) if d.contains("127.0.0.1 is outside")));
    assert!(matches!(outcomes[3], Outcome::Failed(d) if d == "SERVFAIL"));
    assert_eq!(outcomes[4], &Outcome::Used);
    assert_eq!(outcomes[5], &Outcome::Skipped);
    let servers = report.servers().unwrap();
    assert_eq!(servers.imap.endpoint, endpoint("imap.mssante.fr", 143));
    assert_eq!(servers.imap.auth, vec![AuthMethod::OAuth2]);
    assert_eq!(
        (servers.smtp.endpoint.port, servers.smtp.security),
        (465, Security::Tls)
    );
    assert_eq!(servers.smtp.auth, vec![AuthMethod::ClientCertificate]);
}

#[tokio::test]
async fn the_well_known_location_is_tried_second_and_no_credential_is_sent() {
    let server =
        HttpServer::start(HashMap::from([(second_path(), Reply::xml(GOOD_XML))]), None).await;
    let report = discover(
        ADDRESS,
        None,
        &settings(&server, "http"),
        &TableResolver::default(),
        &plain_fetcher(),
    )
    .await;
    assert_eq!(report.source, Some(Source::AutoconfigXml));
    assert!(matches!(&report.attempts[4].outcome, Outcome::NotFound(d) if d.contains("404")));
    assert_eq!(report.attempts[5].outcome, Outcome::Used);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    for head in &requests {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("authorization") && !lower.contains("cookie"),
            "{head}"
        );
        assert!(
            !lower.contains(ADDRESS),
            "the address is not disclosed: {head}"
        );
    }
}

#[tokio::test]
async fn hostile_documents_are_refused_with_a_reason() {
    let outside = GOOD_XML.replace("imap.mssante.fr", "imap.evil.example");
    let plain = GOOD_XML.replace(
        "<socketType>STARTTLS</socketType>",
        "<socketType>plain</socketType>",
    );
    let dtd = format!(
        "<!DOCTYPE clientConfig [<!ENTITY x \"y\">]>{}",
        GOOD_XML.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
    );
    let big = format!("{}<!--{}-->", GOOD_XML, "x".repeat(70 * 1024));
    let cases: [(&str, Reply, &str); 5] = [
        (
            "outside",
            Reply::xml(&outside),
            "imap `imap.evil.example` is outside the trust space",
        ),
        ("plain", Reply::xml(&plain), "socket type `plain`"),
        ("dtd", Reply::xml(&dtd), "not well-formed"),
        ("big", Reply::xml(&big), "larger than"),
        (
            "redirect",
            Reply::redirect("http://127.0.0.1:9/elsewhere.xml"),
            "HTTP 302",
        ),
    ];
    for (name, reply, expected) in cases {
        let server = HttpServer::start(HashMap::from([(first_path(), reply)]), None).await;
        let mut settings = settings(&server, "http");
        settings.xml_urls.truncate(1);
        let report = discover(
            ADDRESS,
            None,
            &settings,
            &TableResolver::default(),
            &plain_fetcher(),
        )
        .await;
        assert!(report.servers.is_none(), "{name}");
        let detail = match &report.attempts[4].outcome {
            Outcome::Rejected(d) | Outcome::Failed(d) | Outcome::NotFound(d) => d.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert!(detail.contains(expected), "{name}: {detail}");
        let message = report.servers().unwrap_err().to_string();
        assert!(
            message.contains(ADDRESS) && message.contains("[[bal]]"),
            "{message}"
        );
        assert_eq!(
            server.requests.lock().unwrap().len(),
            1,
            "{name}: redirects are not followed"
        );
    }
}

#[tokio::test]
async fn a_domain_outside_the_trust_space_is_not_even_looked_up() {
    let server = HttpServer::start(
        HashMap::from([(
            "/autoconfig.evil.example/mail/config-v1.1.xml".to_owned(),
            Reply::xml(GOOD_XML),
        )]),
        None,
    )
    .await;
    let resolver = TableResolver::default();
    let report = discover(
        "someone@evil.example",
        None,
        &settings(&server, "http"),
        &resolver,
        &plain_fetcher(),
    )
    .await;
    assert!(report.servers.is_none());
    assert!(
        matches!(&report.attempts[0].outcome, Outcome::Rejected(d) if d.contains("outside the trust space"))
    );
    assert!(resolver.asked.lock().unwrap().is_empty());
    assert!(server.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_except_towards_loopback() {
    let settings = AutoconfigSettings {
        trusted_domains: vec!["mssante.fr".into()],
        xml_urls: vec!["http://autoconfig.{domain}/mail/config-v1.1.xml".into()],
    };
    let report = discover(
        ADDRESS,
        None,
        &settings,
        &TableResolver::default(),
        &plain_fetcher(),
    )
    .await;
    assert!(matches!(&report.attempts[4].outcome, Outcome::Failed(d) if d.contains("only https")));
}

#[tokio::test]
async fn https_autoconfig_is_trusted_only_through_the_configured_anchors() {
    let (_dir, pki) = tls_support::pki();
    let acceptor = |leaf: &mss_testkit::pki::Leaf| {
        let chain = tls_support::der(&leaf.chain);
        let key = {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::PrivateKeyDer::from_pem_file(&leaf.key).unwrap()
        };
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    };
    let policy = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        ..TlsSettings::default()
    })
    .unwrap();
    let fetcher = HttpFetcher::new(policy.http_tls_config()).unwrap();

    let good = HttpServer::start(
        HashMap::from([(first_path(), Reply::xml(GOOD_XML))]),
        Some(acceptor(&pki.server)),
    )
    .await;
    let report = discover(
        ADDRESS,
        None,
        &settings(&good, "https"),
        &TableResolver::default(),
        &fetcher,
    )
    .await;
    assert_eq!(
        report.source,
        Some(Source::AutoconfigXml),
        "{:?}",
        report.attempts
    );

    let other = HttpServer::start(
        HashMap::from([(first_path(), Reply::xml(GOOD_XML))]),
        Some(acceptor(&pki.untrusted_server)),
    )
    .await;
    let mut settings = settings(&other, "https");
    settings.xml_urls.truncate(1);
    let report = discover(
        ADDRESS,
        None,
        &settings,
        &TableResolver::default(),
        &fetcher,
    )
    .await;
    assert!(report.servers.is_none());
    assert!(
        matches!(&report.attempts[4].outcome, Outcome::Failed(d) if d.contains("UnknownIssuer") || d.contains("invalid peer certificate")),
        "{:?}",
        report.attempts[4]
    );
}
