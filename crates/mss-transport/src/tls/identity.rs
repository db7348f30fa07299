//! The client certificate of an application mailbox (BAL APP), from PEM files or a PKCS#12
//! bundle. The key lives in a zeroizing secret; only the certificate subject is ever shown.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::TransportError;

/// A certificate chain (leaf first) and its private key.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: SecretSlice<u8>,
    subject: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject)
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ClientIdentity {
    /// Reads a PEM certificate file (the leaf, then its issuers: all are sent) and a PEM
    /// private key file (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                config(format!(
                    "cannot read client certificate {}: {e}",
                    cert.display()
                ))
            })?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| config(format!("cannot read client key {}: {e}", key.display())))?;
        Self::new(chain, key.secret_der().to_vec())
    }

    /// Reads a PKCS#12 bundle (`.p12`/`.pfx`) holding the key and its certificate chain.
    pub fn from_pkcs12_file(path: &Path, password: &SecretString) -> Result<Self, TransportError> {
        let data = std::fs::read(path)
            .map_err(|e| config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pkcs12(&data, password).map_err(|e| config(format!("{}: {e}", path.display())))
    }

    /// Same as [`ClientIdentity::from_pkcs12_file`] from bytes already read.
    pub fn from_pkcs12(data: &[u8], password: &SecretString) -> Result<Self, String> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            data,
            password.expose_secret(),
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            format!("cannot open the PKCS#12 bundle ({e}): check the file and its password")
        })?;
        let (_, entry) = store
            .private_key_chain()
            .ok_or("the PKCS#12 bundle holds no private key with its certificate")?;
        let certs: Vec<CertificateDer<'static>> = entry
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        Self::new(leaf_first(certs), entry.key().as_der().to_vec()).map_err(|e| e.to_string())
    }

    fn new(chain: Vec<CertificateDer<'static>>, key_der: Vec<u8>) -> Result<Self, TransportError> {
        let key = SecretSlice::from(key_der);
        let first = chain
            .first()
            .ok_or_else(|| config("the client certificate file holds no certificate".into()))?;
        let subject = x509_parser::parse_x509_certificate(first)
            .map(|(_, c)| c.subject().to_string())
            .map_err(|e| config(format!("the client certificate cannot be read: {e}")))?;
        // Fail now, not at the first handshake, if the key is not one rustls can use.
        PrivateKeyDer::try_from(key.expose_secret().to_vec())
            .map_err(|e| config(format!("the client key cannot be read: {e}")))
            .and_then(|k| {
                rustls::crypto::ring::sign::any_supported_type(&k)
                    .map(|_| ())
                    .map_err(|e| config(format!("the client key is not usable: {e}")))
            })?;
        Ok(ClientIdentity {
            chain,
            key,
            subject,
        })
    }

    /// The subject of the leaf certificate (safe to show and log).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The chain sent to the server, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> Result<PrivateKeyDer<'static>, TransportError> {
        PrivateKeyDer::try_from(self.key.expose_secret().to_vec())
            .map_err(|e| config(format!("the client key cannot be read: {e}")))
    }
}

/// PKCS#12 bundles list certificates in any order: put the one that issued no other first,
/// then each issuer after the certificate it issued.
fn leaf_first(mut certs: Vec<CertificateDer<'static>>) -> Vec<CertificateDer<'static>> {
    let names: Vec<(Vec<u8>, Vec<u8>)> = certs
        .iter()
        .map(|c| {
            x509_parser::parse_x509_certificate(c)
                .map(|(_, x)| (x.subject().as_raw().to_vec(), x.issuer().as_raw().to_vec()))
                .unwrap_or_default()
        })
        .collect();
    let issued_something = |i: usize| {
        names
            .iter()
            .enumerate()
            .any(|(j, n)| j != i && n.1 == names[i].0)
    };
    let Some(leaf) = (0..certs.len()).find(|&i| !issued_something(i)) else {
        return certs;
    };
    let mut order = vec![leaf];
    while order.len() < certs.len() {
        let last = &names[order[order.len() - 1]];
        match (0..certs.len()).find(|i| !order.contains(i) && names[*i].0 == last.1) {
            Some(next) => order.push(next),
            None => break,
        }
    }
    let mut rest: Vec<usize> = (0..certs.len()).filter(|i| !order.contains(i)).collect();
    order.append(&mut rest);
    let mut taken: Vec<Option<CertificateDer<'static>>> = certs.drain(..).map(Some).collect();
    order.into_iter().filter_map(|i| taken[i].take()).collect()
}

fn config(detail: String) -> TransportError {
    TransportError::Config(detail)
}
