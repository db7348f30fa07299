//! Shared by the tls_* tests: a tokio-rustls server presenting a test PKI certificate, and a
//! client connection that reports the classified error.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mss_testkit::pki::{Leaf, TestPki};
use mss_transport::TransportError;
use mss_transport::tls;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    (dir, pki)
}

/// A TLS server on 127.0.0.1 that answers "ok\n" to each client, and remembers the
/// certificate chain each client presented.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub client_chains: Arc<Mutex<Vec<Vec<CertificateDer<'static>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    /// `client_ca`: when given, a client certificate chaining to it is required.
    pub async fn start(leaf: &Leaf, client_ca: Option<&Path>) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.chain)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let config = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(cert.unwrap()).unwrap();
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        }
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client_chains = Arc::new(Mutex::new(Vec::new()));
        let seen = client_chains.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    if let Ok(Ok(mut tls)) = accepted {
                        if let Some(chain) = tls.get_ref().1.peer_certificates() {
                            seen.lock().unwrap().push(chain.to_vec());
                        }
                        let _ = tls.write_all(b"ok\n").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        TlsServer {
            addr,
            client_chains,
            task,
        }
    }
}

/// Connects with the policy's configuration, reads the greeting, and classifies failures
/// the way a session would.
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> Result<String, TransportError> {
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| tls::classify(name, &e))?;
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut stream = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| tls::classify(name, &e))?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .await
            .map_err(|e| tls::classify(name, &e))?;
        Ok(text)
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("the TLS exchange did not finish within 10 s")
}

/// The TLS failure inside a transport error, or a panic that shows what came instead.
pub fn failure(result: Result<String, TransportError>) -> mss_transport::TlsFailure {
    match result {
        Err(TransportError::Tls { failure, .. }) => failure,
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

pub fn der(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
