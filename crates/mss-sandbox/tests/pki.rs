//! The sandbox PKI, checked with rustls's own certificate verifiers (webpki): what a real
//! TLS client or server would accept or refuse.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use mss_sandbox::pki::{self, Pki};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

fn names() -> Vec<String> {
    ["127.0.0.1", "localhost", "imap.sandbox.mssante.fr"]
        .map(String::from)
        .to_vec()
}

fn certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn roots(path: &std::path::Path) -> Arc<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs(path) {
        store.add(cert).unwrap();
    }
    Arc::new(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_check(
    anchor: &std::path::Path,
    chain: &std::path::Path,
    name: &str,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(anchor), provider())
        .build()
        .unwrap();
    let chain = certs(chain);
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn server_chain_verifies_under_the_root_only_for_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::open(dir.path(), &names()).unwrap();
    assert!(pki.created);
    for name in ["127.0.0.1", "localhost", "imap.sandbox.mssante.fr"] {
        server_check(&pki.root, &pki.server.chain, name).unwrap();
    }
    assert!(server_check(&pki.root, &pki.server.chain, "mail.example.org").is_err());
    // The untrusted server has the right names but another CA: refused under the root…
    let err = server_check(&pki.root, &pki.untrusted_server.chain, "127.0.0.1").unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    // …and accepted by whoever trusts that other CA, so only the anchor makes the difference.
    server_check(&pki.untrusted_ca, &pki.untrusted_server.chain, "127.0.0.1").unwrap();
}

#[test]
fn names_are_shaped_like_igc_sante() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::open(dir.path(), &names()).unwrap();
    let root = std::fs::read(&pki.root).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&root).unwrap();
    let cert = pem.parse_x509().unwrap();
    let subject = cert.subject().to_string();
    assert!(subject.contains(pki::ROOT_CN), "{subject}");
    assert!(
        subject.contains("O=ASIP-SANTE") && subject.contains("OU=IGC-SANTE TEST"),
        "{subject}"
    );
    assert!(cert.is_ca());
    let int = std::fs::read(&pki.intermediate).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&int).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert!(cert.subject().to_string().contains(pki::INTERMEDIATE_CN));
    assert!(cert.issuer().to_string().contains(pki::ROOT_CN));
}

#[test]
fn auth_cli_certificate_names_the_mailbox_and_passes_a_client_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::open(dir.path(), &names()).unwrap();
    let address = "dpi@sandbox.mssante.fr";
    let leaf = pki.client(address).unwrap();
    let pem = std::fs::read(&leaf.cert).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), address);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pki.root), provider())
        .build()
        .unwrap();
    let chain = certs(&leaf.chain);
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .unwrap();
    // A server certificate is not a client certificate.
    let server = certs(&pki.server.chain);
    assert!(
        verifier
            .verify_client_cert(&server[0], &server[1..], UnixTime::now())
            .is_err()
    );
    // Same mailbox later: the same certificate, not a new one.
    assert_eq!(pki.client(address).unwrap(), leaf);
    assert_eq!(
        std::fs::read(&leaf.cert).unwrap(),
        std::fs::read(&leaf.cert).unwrap()
    );
}

#[test]
fn keys_are_private_and_the_pki_is_reused_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::open(dir.path(), &names()).unwrap();
    let client = first.client("robot@sandbox.mssante.fr").unwrap();
    for key in [
        &first.server.key,
        &first.untrusted_server.key,
        &client.key,
        &first.dir.join("root.key"),
        &first.dir.join("intermediate.key"),
    ] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let root = std::fs::read(&first.root).unwrap();
    let server = std::fs::read(&first.server.chain).unwrap();
    let client_cert = std::fs::read(&client.cert).unwrap();

    let second = Pki::open(dir.path(), &names()).unwrap();
    assert!(!second.created);
    assert_eq!(std::fs::read(&second.root).unwrap(), root);
    assert_eq!(std::fs::read(&second.server.chain).unwrap(), server);
    let again = second.client("robot@sandbox.mssante.fr").unwrap();
    assert_eq!(std::fs::read(&again.cert).unwrap(), client_cert);

    // A lost root key means a new PKI: nothing issued under the old root survives.
    std::fs::remove_file(first.dir.join("root.key")).unwrap();
    let third = Pki::open(dir.path(), &names()).unwrap();
    assert!(third.created);
    assert_ne!(std::fs::read(&third.root).unwrap(), root);
    assert!(!client.cert.exists());
    server_check(&third.root, &third.server.chain, "127.0.0.1").unwrap();
}
