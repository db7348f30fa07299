//! The production SRV resolver (hickory) against a real DNS server: a private dnsmasq on
//! 127.0.0.1 serving RFC 6186 records (installed by scripts/setup/dns.sh).

mod autoconfig_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autoconfig_support::HttpServer;
use mss_transport::autoconfig::{
    AutoconfigSettings, HttpFetcher, Outcome, Source, SrvError, SrvResolver, SystemResolver,
    discover,
};
use mss_transport::bal::Security;

struct Dnsmasq(Child, SocketAddr);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts dnsmasq authoritative-like for `mssante.fr` (unknown names: NXDOMAIN, nothing is
/// forwarded anywhere) with the given `--srv-host` values.
async fn dnsmasq(srv_hosts: &[&str]) -> Option<Dnsmasq> {
    let Some(program) = mss_testkit::find_program("dnsmasq") else {
        mss_testkit::missing("dnsmasq");
        return None;
    };
    let port = mss_testkit::free_port();
    let mut command = Command::new(program);
    command
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
        ])
        .args([
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
        ])
        .args(["--local=/mssante.fr/", "--log-facility=-"])
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for srv in srv_hosts {
        command.arg(format!("--srv-host={srv}"));
    }
    let server = Dnsmasq(command.spawn().unwrap(), ([127, 0, 0, 1], port).into());
    // Ready when it answers a query (UDP: no connection to wait for).
    let resolver = SystemResolver::with_server(server.1, Duration::from_secs(1));
    for _ in 0..50 {
        match tokio::time::timeout(
            Duration::from_millis(500),
            resolver.lookup("_probe._tcp.mssante.fr"),
        )
        .await
        {
            Ok(Err(SrvError::NotFound)) | Ok(Ok(_)) => return Some(server),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("dnsmasq did not answer on {} within 5 s", server.1);
}

#[tokio::test]
async fn srv_records_from_a_real_dns_server() {
    let Some(dns) = dnsmasq(&[
        "_imap._tcp.hopital.mssante.fr,imap.hopital.mssante.fr,143,10,5",
        "_imaps._tcp.hopital.mssante.fr,imaps.hopital.mssante.fr,993,20,5",
        "_submission._tcp.hopital.mssante.fr,smtp.hopital.mssante.fr,587,0,0",
    ])
    .await
    else {
        return;
    };
    let resolver = SystemResolver::with_server(dns.1, Duration::from_secs(1));
    let records = resolver
        .lookup("_imap._tcp.hopital.mssante.fr")
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].target.as_str(),
            records[0].port,
            records[0].priority,
            records[0].weight
        ),
        ("imap.hopital.mssante.fr", 143, 10, 5)
    );
    assert_eq!(
        resolver
            .lookup("_submissions._tcp.hopital.mssante.fr")
            .await,
        Err(SrvError::NotFound)
    );

    let http = HttpServer::start(HashMap::new(), None).await;
    let settings = AutoconfigSettings {
        trusted_domains: vec!["mssante.fr".into()],
        xml_urls: vec![http.url("http", "/{domain}/config-v1.1.xml")],
    };
    let fetcher = HttpFetcher::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            mss_transport::tls::provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    )
    .unwrap();
    let report = discover(
        "secretariat@hopital.mssante.fr",
        None,
        &settings,
        &resolver,
        &fetcher,
    )
    .await;
    assert_eq!(report.source, Some(Source::Srv), "{:?}", report.attempts);
    let servers = report.servers().unwrap();
    assert_eq!(
        (
            servers.imap.endpoint.host.as_str(),
            servers.imap.endpoint.port,
            servers.imap.security
        ),
        ("imap.hopital.mssante.fr", 143, Security::StartTls)
    );
    assert_eq!(servers.smtp.endpoint.port, 587);
    assert!(matches!(&report.attempts[3].outcome, Outcome::NotFound(_)));
}

#[tokio::test]
async fn an_unreachable_dns_server_is_a_failure_not_an_absence() {
    // Nothing listens there: every look-up fails, and the report says so rather than
    // claiming the domain has no records.
    let port = mss_testkit::free_port();
    let resolver =
        SystemResolver::with_server(([127, 0, 0, 1], port).into(), Duration::from_millis(500));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        resolver.lookup("_imap._tcp.hopital.mssante.fr"),
    )
    .await
    .expect("the resolver gives up within its own timeouts");
    assert!(matches!(result, Err(SrvError::Failed(_))), "{result:?}");
}
