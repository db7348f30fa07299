//! The TLS policy against a real Dovecot on its implicit-TLS IMAP port: the good chain with a
//! current CRL is accepted (and the peer is really Dovecot), a revoked certificate is refused
//! as revoked by the same policy.

mod tls_support;

use mss_testkit::dovecot::{Dovecot, DovecotConfig};
use mss_transport::TlsFailure;
use mss_transport::tls::{TlsPolicy, TlsSettings};
use tls_support::{failure, pki};

#[tokio::test]
async fn dovecot_with_a_revoked_certificate_is_refused_and_with_a_good_one_accepted() {
    let (dir, pki) = pki();
    let crl_dir = dir.path().join("crl");
    std::fs::create_dir_all(&crl_dir).unwrap();
    std::fs::copy(&pki.crl, crl_dir.join("intermediate.crl")).unwrap();
    let policy = TlsPolicy::from_settings(&TlsSettings {
        anchors: vec![pki.root.clone()],
        crl_dir: Some(crl_dir),
        ..TlsSettings::default()
    })
    .unwrap();

    for (leaf, revoked) in [(&pki.server, false), (&pki.revoked_server, true)] {
        let Some(dovecot) = Dovecot::start_or_skip(DovecotConfig {
            server_cert: leaf.chain.clone(),
            server_key: leaf.key.clone(),
            client_ca: pki.ca_bundle.clone(),
            oauth2: None,
            mechanisms: None,
        }) else {
            return;
        };
        let addr = ([127, 0, 0, 1], dovecot.imaps_port).into();
        let result = greeting(policy.client_config(None).unwrap(), addr).await;
        if revoked {
            assert_eq!(failure(result), TlsFailure::Revoked);
        } else {
            let line = result.unwrap();
            assert!(line.starts_with("* OK"), "{line}");
        }
    }
}

/// Reads the first line the server sends after the TLS handshake.
async fn greeting(
    config: std::sync::Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> Result<String, mss_transport::TransportError> {
    use tokio::io::AsyncBufReadExt;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| mss_transport::tls::classify("127.0.0.1", &e))?;
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| mss_transport::tls::classify("127.0.0.1", &e))?;
        let mut line = String::new();
        tokio::io::BufReader::new(tls)
            .read_line(&mut line)
            .await
            .map_err(|e| mss_transport::tls::classify("127.0.0.1", &e))?;
        Ok(line)
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), work)
        .await
        .expect("no answer from Dovecot within 10 s")
}
