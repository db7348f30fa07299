//! The TLS policy against real TLS peers (tokio-rustls, and `openssl s_server` for TLS 1.1):
//! only the configured IGC-Santé-shaped root is trusted, expired, revoked and wrong-host
//! certificates are refused with the right reason, and a BAL APP client certificate is sent
//! with its chain.

mod tls_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mss_testkit::pki::TestPki;
use mss_transport::TlsFailure;
use mss_transport::tls::{ClientIdentity, TlsPolicy, TlsSettings, WithoutCrl};
use rustls_pki_types::pem::PemObject;
use secrecy::SecretString;
use tls_support::{TlsServer, connect, der, failure, pki};

fn policy_without_crl(pki: &TestPki) -> TlsPolicy {
    TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        ..TlsSettings::default()
    })
    .unwrap()
}

/// A policy whose CRL directory holds a copy of `crl`.
fn policy_with_crl(pki: &TestPki, crl: &std::path::Path, dir: &std::path::Path) -> TlsPolicy {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(crl, dir.join("intermediate.crl")).unwrap();
    TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        crl_dir: Some(dir.to_owned()),
        ..TlsSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_chain_to_the_configured_root_is_accepted_by_ip_and_by_name() {
    let (_dir, pki) = pki();
    let server = TlsServer::start(&pki.server, None).await;
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    assert_eq!(
        connect(config.clone(), server.addr, "127.0.0.1")
            .await
            .unwrap(),
        "ok\n"
    );
    assert_eq!(
        connect(config, server.addr, "localhost").await.unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_untrusted() {
    let (_dir, pki) = pki();
    let server = TlsServer::start(&pki.untrusted_server, None).await;
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    assert_eq!(
        failure(connect(config, server.addr, "127.0.0.1").await),
        TlsFailure::Untrusted
    );
}

#[tokio::test]
async fn system_roots_are_not_trusted_either() {
    // The other CA's server is trusted by a policy anchored on the other CA, and by nothing
    // else: a policy anchored on our root must refuse it even though it is a valid chain.
    let (_dir, pki) = pki();
    let server = TlsServer::start(&pki.untrusted_server, None).await;
    let other = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.other_ca.clone()],
        ..TlsSettings::default()
    })
    .unwrap();
    assert_eq!(
        connect(other.client_config(None).unwrap(), server.addr, "127.0.0.1")
            .await
            .unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_as_expired() {
    let (_dir, pki) = pki();
    let server = TlsServer::start(&pki.expired_server, None).await;
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    let err = connect(config, server.addr, "127.0.0.1").await;
    let message = err.as_ref().unwrap_err().to_string();
    assert_eq!(failure(err), TlsFailure::Expired);
    assert!(
        message.contains("127.0.0.1") && message.contains("expired"),
        "{message}"
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_as_revoked() {
    let (dir, pki) = pki();
    let server = TlsServer::start(&pki.revoked_server, None).await;
    let policy = policy_with_crl(&pki, &pki.crl, &dir.path().join("crl"));
    let config = policy.client_config(None).unwrap();
    assert_eq!(
        failure(connect(config, server.addr, "127.0.0.1").await),
        TlsFailure::Revoked
    );
    // The same CRL does not list the good server certificate.
    let good = TlsServer::start(&pki.server, None).await;
    let config = policy.client_config(None).unwrap();
    assert_eq!(
        connect(config, good.addr, "127.0.0.1").await.unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_as_wrong_host() {
    let (_dir, pki) = pki();
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    let other_name = TlsServer::start(&pki.wrong_host_server, None).await;
    assert_eq!(
        failure(connect(config.clone(), other_name.addr, "127.0.0.1").await),
        TlsFailure::WrongHost
    );
    let good = TlsServer::start(&pki.server, None).await;
    assert_eq!(
        failure(connect(config, good.addr, "imap.hopital.mssante.fr").await),
        TlsFailure::WrongHost
    );
}

/// `openssl s_server` limited to TLS 1.1, kept alive by an open stdin (it quits on EOF).
struct OpensslServer(Child);

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_server_that_only_speaks_tls_1_1_is_refused() {
    let Some(openssl) = mss_testkit::find_program("openssl") else {
        mss_testkit::missing("openssl");
        return;
    };
    let (_dir, pki) = pki();
    let port = mss_testkit::free_port();
    let start = |extra: &[&str]| {
        Command::new(&openssl)
            .args(["s_server", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&pki.server.cert)
            .arg("-key")
            .arg(&pki.server.key)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let _server = OpensslServer(start(&["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"]));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for_port(addr).await;

    // The peer does speak TLS 1.1: openssl's own client completes a handshake with it.
    let probe = Command::new(&openssl)
        .args(["s_client", "-connect"])
        .arg(addr.to_string())
        .args(["-tls1_1", "-cipher", "ALL:@SECLEVEL=0", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&probe.stderr).to_string()
        + &String::from_utf8_lossy(&probe.stdout);
    assert!(
        said.contains("TLSv1.1"),
        "the TLS 1.1 peer did not answer: {said}"
    );

    let config = policy_without_crl(&pki).client_config(None).unwrap();
    assert_eq!(
        failure(connect(config, addr, "127.0.0.1").await),
        TlsFailure::Version
    );
}

async fn wait_for_port(addr: std::net::SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr} after 5 s");
}

#[tokio::test]
async fn the_client_certificate_is_sent_with_its_chain_from_pem_files() {
    let (_dir, pki) = pki();
    // The server trusts only the root: without the intermediate the client chain cannot verify.
    let server = TlsServer::start(&pki.server, Some(&pki.root)).await;
    let client = pki.issue_client("robot@hopital.mssante.fr").unwrap();
    let identity = ClientIdentity::from_pem_files(&client.chain, &client.key).unwrap();
    assert!(identity.subject().contains("robot@hopital.mssante.fr"));
    assert!(!format!("{identity:?}").contains("PRIVATE"));
    let config = policy_without_crl(&pki)
        .client_config(Some(&identity))
        .unwrap();
    assert_eq!(
        connect(config, server.addr, "127.0.0.1").await.unwrap(),
        "ok\n"
    );
    let chains = server.client_chains.lock().unwrap().clone();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].len(), 2, "leaf and intermediate");
    assert_eq!(chains[0][0].as_ref(), client.der.as_slice());
    assert_eq!(chains[0][1].as_ref(), pki.intermediate_der().as_slice());
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_refuses_a_client_without_one() {
    let (_dir, pki) = pki();
    let server = TlsServer::start(&pki.server, Some(&pki.root)).await;
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    // TLS 1.3: the refusal arrives with the first read, after the client's handshake ended.
    let err = connect(config, server.addr, "127.0.0.1").await.unwrap_err();
    assert!(
        matches!(
            err,
            mss_transport::TransportError::CertificateRefused { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_client_certificate_is_read_from_pkcs12() {
    let (dir, pki) = pki();
    let client = pki.issue_client("robot-p12@hopital.mssante.fr").unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&client.key).unwrap();
    // p12-keystore marks the first certificate as the key's: leaf first.
    let chain = der(&client.chain);
    let p12_key = p12_keystore::PrivateKey::from_der(key.secret_der()).unwrap();
    let certs: Vec<p12_keystore::Certificate> = chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c).unwrap())
        .collect();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "robot",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            vec![1, 2, 3, 4],
            p12_key,
            certs,
        )),
    );
    let bytes = store.writer("secret-p12").write().unwrap();
    let path = dir.path().join("robot.p12");
    std::fs::write(&path, bytes).unwrap();

    let wrong = ClientIdentity::from_pkcs12_file(&path, &SecretString::from("wrong"));
    assert!(wrong.is_err());
    let identity =
        ClientIdentity::from_pkcs12_file(&path, &SecretString::from("secret-p12")).unwrap();
    assert_eq!(identity.chain()[0].as_ref(), client.der.as_slice());
    assert_eq!(identity.chain().len(), 2);

    // A bundle made by openssl (PBES2, AES-256, HMAC-SHA256: OpenSSL 3 defaults), the way an
    // administrator would make one.
    if let Some(openssl) = mss_testkit::find_program("openssl") {
        let made = dir.path().join("openssl.p12");
        let status = std::process::Command::new(openssl)
            .args([
                "pkcs12",
                "-export",
                "-passout",
                "pass:secret-openssl",
                "-in",
            ])
            .arg(&client.chain)
            .arg("-inkey")
            .arg(&client.key)
            .arg("-out")
            .arg(&made)
            .status()
            .unwrap();
        assert!(status.success());
        let from_openssl =
            ClientIdentity::from_pkcs12_file(&made, &SecretString::from("secret-openssl")).unwrap();
        assert_eq!(from_openssl.chain()[0].as_ref(), client.der.as_slice());
        assert_eq!(from_openssl.chain().len(), 2);
    }

    let server = TlsServer::start(&pki.server, Some(&pki.root)).await;
    let config = policy_without_crl(&pki)
        .client_config(Some(&identity))
        .unwrap();
    assert_eq!(
        connect(config, server.addr, "localhost").await.unwrap(),
        "ok\n"
    );
    let chains = server.client_chains.lock().unwrap().clone();
    assert_eq!(chains[0].len(), 2);
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_with_the_allowed_suites_are_offered() {
    let (_dir, pki) = pki();
    let config = policy_without_crl(&pki).client_config(None).unwrap();
    let versions: Vec<_> = config
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    for suite in &versions {
        let name = format!("{suite:?}");
        assert!(
            name.starts_with("TLS13_")
                || (name.starts_with("TLS_ECDHE_")
                    && (name.contains("_GCM_") || name.contains("CHACHA20"))),
            "{name}"
        );
    }
    assert_eq!(versions.len(), 9);
    let _ = WithoutCrl::Refuse;
}
