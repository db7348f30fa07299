//! SC.MSS/CONF.22: the last non-expired CRL is kept on disk and used; an expired CRL is not;
//! a fresh CRL replaces the stored one only when it is valid and newer; without a valid CRL
//! the connection is refused (or allowed with a warning when so configured).

mod tls_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mss_transport::TlsFailure;
use mss_transport::tls::{CrlUpdate, TlsPolicy, TlsSettings, WithoutCrl};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tls_support::{TlsServer, connect, failure, pki};

fn policy(
    pki: &mss_testkit::pki::TestPki,
    crl_dir: &std::path::Path,
    without: Option<WithoutCrl>,
) -> TlsPolicy {
    TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        crl_dir: Some(crl_dir.to_owned()),
        without_crl: without,
        crl_check_chain: false,
    })
    .unwrap()
}

fn no_valid_crl(failure: &TlsFailure) -> bool {
    matches!(failure, TlsFailure::Other(text) if text.contains("no valid CRL"))
}

/// `python3 -m http.server` serving a directory on 127.0.0.1: a real HTTP server for the
/// distribution point.
struct HttpServer(Child, u16);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn http_server(dir: &std::path::Path) -> Option<HttpServer> {
    let Some(python) = mss_testkit::find_program("python3") else {
        mss_testkit::missing("python3");
        return None;
    };
    let port = mss_testkit::free_port();
    let child = Command::new(python)
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = HttpServer(child, port);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("python3 http.server did not listen on {port} within 5 s");
}

#[tokio::test]
async fn without_a_crl_the_server_is_refused_until_its_distribution_point_is_fetched() {
    let (dir, pki) = pki();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let Some(http) = http_server(&served).await else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/ac-elementaire.crl", http.1);
    let leaf = pki
        .issue_server("dp-server", &mss_testkit::pki::SERVER_NAMES, Some(&url))
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let crl = pki
        .crl_der(&[], now, now + time::Duration::days(7))
        .unwrap();
    std::fs::write(served.join("ac-elementaire.crl"), &crl).unwrap();

    let crl_dir = dir.path().join("crl");
    let policy = policy(&pki, &crl_dir, None);
    let server = TlsServer::start(&leaf, None).await;
    let refused = failure(
        connect(
            policy.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1",
        )
        .await,
    );
    assert!(no_valid_crl(&refused), "{refused:?}");
    assert_eq!(policy.crl_urls_needed(), vec![url.clone()]);

    let updates = policy.refresh_crls().await;
    assert_eq!(updates.len(), 1);
    assert!(
        matches!(updates[0].1, CrlUpdate::Stored { .. }),
        "{updates:?}"
    );
    assert!(policy.crl_urls_needed().is_empty());
    assert_eq!(
        connect(
            policy.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1"
        )
        .await
        .unwrap(),
        "ok\n"
    );

    // Kept on disk: a policy started later uses it without fetching anything.
    drop(http);
    let later = self::policy(&pki, &crl_dir, None);
    assert_eq!(
        connect(later.client_config(None).unwrap(), server.addr, "127.0.0.1")
            .await
            .unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn an_expired_crl_is_not_used() {
    let (dir, pki) = pki();
    let now = OffsetDateTime::now_utc();
    let crl_dir = dir.path().join("crl");
    std::fs::create_dir_all(&crl_dir).unwrap();
    // Expired yesterday, and it lists the revoked server.
    let revoked = [pki.revoked_server.serial.as_slice()];
    let expired = pki
        .crl_der(
            &revoked,
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(crl_dir.join("old.crl"), expired).unwrap();

    let refusing = policy(&pki, &crl_dir, None);
    assert!(
        refusing.warnings().iter().any(|w| w.contains("expired")),
        "{:?}",
        refusing.warnings()
    );
    let good = TlsServer::start(&pki.server, None).await;
    let refused = failure(
        connect(
            refusing.client_config(None).unwrap(),
            good.addr,
            "127.0.0.1",
        )
        .await,
    );
    assert!(no_valid_crl(&refused), "{refused:?}");

    // `warn`: connect without revocation information, even to the certificate the expired
    // CRL lists — an expired CRL proves nothing either way.
    let warning = policy(&pki, &crl_dir, Some(WithoutCrl::Warn));
    assert_eq!(
        connect(warning.client_config(None).unwrap(), good.addr, "127.0.0.1")
            .await
            .unwrap(),
        "ok\n"
    );
    let revoked_server = TlsServer::start(&pki.revoked_server, None).await;
    assert_eq!(
        connect(
            warning.client_config(None).unwrap(),
            revoked_server.addr,
            "127.0.0.1"
        )
        .await
        .unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn a_crl_replaces_the_stored_one_only_when_valid_and_newer() {
    let (dir, pki) = pki();
    let now = OffsetDateTime::now_utc();
    let week = time::Duration::days(7);
    let crl_dir = dir.path().join("crl");
    let intermediate = [CertificateDer::from(pki.intermediate_der())];
    let revoked = [pki.revoked_server.serial.as_slice()];

    // Numbers grow with each CRL the PKI signs: `older` is older than `listing`.
    let older = pki.crl_der(&[], now, now + week).unwrap();
    let empty = pki.crl_der(&[], now, now + week).unwrap();
    let listing = pki.crl_der(&revoked, now, now + week).unwrap();

    let policy = policy(&pki, &crl_dir, None);
    assert!(matches!(
        policy.offer_crl(&empty, &intermediate),
        CrlUpdate::Stored { .. }
    ));
    let server = TlsServer::start(&pki.revoked_server, None).await;
    assert_eq!(
        connect(
            policy.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1"
        )
        .await
        .unwrap(),
        "ok\n",
        "the stored CRL does not list it yet"
    );

    assert!(matches!(
        policy.offer_crl(&listing, &intermediate),
        CrlUpdate::Stored { .. }
    ));
    assert_eq!(
        failure(
            connect(
                policy.client_config(None).unwrap(),
                server.addr,
                "127.0.0.1"
            )
            .await
        ),
        TlsFailure::Revoked
    );

    // Older, expired, forged or not a CRL at all: the stored CRL stays.
    assert!(matches!(
        policy.offer_crl(&older, &intermediate),
        CrlUpdate::KeptStored { .. }
    ));
    let expired = pki
        .crl_der(
            &[],
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    assert!(
        matches!(policy.offer_crl(&expired, &intermediate), CrlUpdate::Rejected(r) if r.contains("expired"))
    );
    let newest = pki.crl_der(&[], now, now + week).unwrap();
    let mut forged = newest.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x55;
    assert!(
        matches!(policy.offer_crl(&forged, &intermediate), CrlUpdate::Rejected(r) if r.contains("signature"))
    );
    assert!(
        matches!(policy.offer_crl(&newest, &[]), CrlUpdate::Rejected(r) if r.contains("not a known CA"))
    );
    assert!(matches!(
        policy.offer_crl(b"<html>not found</html>", &intermediate),
        CrlUpdate::Rejected(_)
    ));
    assert_eq!(
        failure(
            connect(
                policy.client_config(None).unwrap(),
                server.addr,
                "127.0.0.1"
            )
            .await
        ),
        TlsFailure::Revoked
    );

    // PEM is accepted as well; on disk there is one file for the CA, the newest CRL.
    let pem = pki.crl_pem(&[], now, now + week).unwrap();
    assert!(matches!(
        policy.offer_crl(pem.as_bytes(), &intermediate),
        CrlUpdate::Stored { .. }
    ));
    let files: Vec<_> = std::fs::read_dir(&crl_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let restarted = self::policy(&pki, &crl_dir, None);
    assert_eq!(
        connect(
            restarted.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1"
        )
        .await
        .unwrap(),
        "ok\n",
        "the newest CRL no longer lists it"
    );
}

#[tokio::test]
async fn a_crl_that_expires_while_running_stops_being_used() {
    let (dir, pki) = pki();
    let now = OffsetDateTime::now_utc();
    let crl_dir = dir.path().join("crl");
    std::fs::create_dir_all(&crl_dir).unwrap();
    let short = pki
        .crl_der(
            &[],
            now - time::Duration::minutes(1),
            now + time::Duration::seconds(2),
        )
        .unwrap();
    std::fs::write(crl_dir.join("short.crl"), short).unwrap();
    let policy = policy(&pki, &crl_dir, None);
    let server = TlsServer::start(&pki.server, None).await;
    assert_eq!(
        connect(
            policy.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1"
        )
        .await
        .unwrap(),
        "ok\n"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let refused = failure(
        connect(
            policy.client_config(None).unwrap(),
            server.addr,
            "127.0.0.1",
        )
        .await,
    );
    assert!(no_valid_crl(&refused), "{refused:?}");
}
