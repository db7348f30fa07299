//! The TLS policy for MSSanté hosts (SC.MSS/CONF.01, .03, .22, .27).
//!
//! - Trust anchors come only from the configured PEM files (the IGC Santé roots): never the
//!   system store, never webpki-roots.
//! - TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE with AES-GCM or ChaCha20-Poly1305 (the
//!   ANSSI-recommended suites), every TLS 1.3 suite (ring provider).
//! - Expiry is checked by webpki at every handshake.
//! - Revocation is checked against the CRLs kept in `crl_dir` (see [`crl`]). When no valid
//!   CRL covers a server certificate, [`WithoutCrl`] decides: `refuse` (the default when
//!   `crl_dir` is set) or `warn` (connect, and log a warning; the default without `crl_dir`,
//!   where revocation is not checked at all). A refused handshake remembers the certificate's
//!   CRL distribution points: [`TlsPolicy::refresh_crls`] fetches them, then a retry can pass.
//! - A client certificate (BAL APP) is sent with its whole chain.
//!
//! Handshake errors become [`TransportError::Tls`] through [`classify`].

pub mod crl;
mod identity;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use crl::{CrlUpdate, MAX_CRL_BYTES};
pub use identity::ClientIdentity;

use crate::{TlsFailure, TransportError};
use crl::CrlStore;

/// What to do when no valid (present, not expired) CRL covers a server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WithoutCrl {
    /// Refuse the connection: revocation could not be checked.
    Refuse,
    /// Connect anyway and log a warning.
    Warn,
}

/// The `[tls]` table of `mss.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM files holding the only trusted roots (IGC Santé Élémentaire in production).
    pub anchors: Vec<PathBuf>,
    /// Where CRLs are kept; created when missing.
    #[serde(default)]
    pub crl_dir: Option<PathBuf>,
    /// Default: `refuse` when `crl_dir` is set, `warn` otherwise.
    #[serde(default)]
    pub without_crl: Option<WithoutCrl>,
    /// Also require a CRL for each intermediate CA, not only for the server certificate.
    #[serde(default)]
    pub crl_check_chain: bool,
}

/// CRL distribution points and CA certificates met in handshakes that lacked a valid CRL.
#[derive(Default)]
struct CrlNeeds {
    urls: BTreeSet<String>,
    issuers: Vec<CertificateDer<'static>>,
}

/// The TLS policy: build it once from the configuration, then ask it for a
/// [`rustls::ClientConfig`] per session.
pub struct TlsPolicy {
    roots: Arc<RootCertStore>,
    anchors: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    crls: Arc<Mutex<CrlStore>>,
    crl_dir: Option<PathBuf>,
    without_crl: WithoutCrl,
    check_chain: bool,
    needs: Arc<Mutex<CrlNeeds>>,
    warnings: Vec<String>,
    /// The last verifier built, its CRL generation and until when its CRL set holds:
    /// parsing a large CRL costs tens of milliseconds, not worth paying per session.
    cached: Mutex<Option<(u64, i64, Arc<PolicyVerifier>)>>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("anchors", &self.anchors.len())
            .field("crl_dir", &self.crl_dir)
            .field("without_crl", &self.without_crl)
            .field("check_chain", &self.check_chain)
            .finish_non_exhaustive()
    }
}

/// The crypto provider: ring, restricted to the allowed suites.
pub fn provider() -> CryptoProvider {
    use ring::cipher_suite as cs;
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    }
}

impl TlsPolicy {
    /// Reads the anchors and loads the CRLs kept in `crl_dir`.
    pub fn from_settings(settings: &TlsSettings) -> Result<TlsPolicy, TransportError> {
        if settings.anchors.is_empty() {
            return Err(config(
                "no trust anchor: set tls.anchors to the IGC Santé root certificates (PEM)",
            ));
        }
        let mut anchors = Vec::new();
        for path in &settings.anchors {
            anchors.extend(read_certificates(path)?);
        }
        let without_crl = settings
            .without_crl
            .unwrap_or(if settings.crl_dir.is_some() {
                WithoutCrl::Refuse
            } else {
                WithoutCrl::Warn
            });
        TlsPolicy::new(
            anchors,
            settings.crl_dir.as_deref(),
            without_crl,
            settings.crl_check_chain,
        )
    }

    /// Same as [`TlsPolicy::from_settings`] from certificates already read.
    pub fn new(
        anchors: Vec<CertificateDer<'static>>,
        crl_dir: Option<&Path>,
        without_crl: WithoutCrl,
        check_chain: bool,
    ) -> Result<TlsPolicy, TransportError> {
        let mut roots = RootCertStore::empty();
        for anchor in &anchors {
            roots
                .add(anchor.clone())
                .map_err(|e| config(&format!("a trust anchor cannot be used: {e}")))?;
        }
        if roots.is_empty() {
            return Err(config("the anchor files hold no certificate"));
        }
        let (store, mut warnings) = CrlStore::load(crl_dir).map_err(|e| config(&e))?;
        let (_, expired) = store.current(now());
        for issuer in expired {
            warnings.push(format!(
                "the stored CRL of {issuer} has expired and is not used"
            ));
        }
        if crl_dir.is_none() {
            warnings.push(
                "no tls.crl_dir: server certificates are not checked for revocation".to_owned(),
            );
        }
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(TlsPolicy {
            roots: Arc::new(roots),
            anchors,
            provider: Arc::new(provider()),
            crls: Arc::new(Mutex::new(store)),
            crl_dir: crl_dir.map(Path::to_owned),
            without_crl,
            check_chain,
            needs: Arc::default(),
            warnings,
            cached: Mutex::new(None),
        })
    }

    /// What was noticed while loading (expired or unreadable CRLs, no CRL directory).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A client configuration for one session: the anchors, the CRLs valid now, and the
    /// client certificate when given (sent with its chain).
    pub fn client_config(
        &self,
        identity: Option<&ClientIdentity>,
    ) -> Result<Arc<rustls::ClientConfig>, TransportError> {
        let verifier = self.verifier()?;
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| config(&format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain().to_vec(), identity.key()?)
                .map_err(|e| config(&format!("the client certificate cannot be used: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn verifier(&self) -> Result<Arc<PolicyVerifier>, TransportError> {
        let now = now();
        let (generation, stable_until, usable) = {
            let store = self.lock_crls();
            (
                store.generation,
                store.stable_until(now),
                store.current(now).0,
            )
        };
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_for, until, verifier)) = cached.as_ref()
            && *built_for == generation
            && now < *until
        {
            return Ok(verifier.clone());
        }
        let no_crl = usable.is_empty();
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .with_crls(usable)
                .enforce_revocation_expiration();
        if !self.check_chain {
            builder = builder.only_check_end_entity_revocation();
        }
        if self.without_crl == WithoutCrl::Warn {
            builder = builder.allow_unknown_revocation_status();
        }
        let inner = builder
            .build()
            .map_err(|e| config(&format!("TLS verifier: {e}")))?;
        let verifier = Arc::new(PolicyVerifier {
            inner,
            no_crl,
            without_crl: self.without_crl,
            check_chain: self.check_chain,
            needs: self.needs.clone(),
        });
        *cached = Some((generation, stable_until, verifier.clone()));
        Ok(verifier)
    }

    /// Offers a CRL (DER or PEM) obtained by the caller; it is kept if it is valid and newer
    /// than the stored one. `issuers` adds CA certificates its signature may come from (the
    /// anchors and the intermediates seen in handshakes are always tried).
    pub fn offer_crl(&self, bytes: &[u8], issuers: &[CertificateDer<'_>]) -> CrlUpdate {
        let mut candidates: Vec<CertificateDer<'_>> = self.anchors.to_vec();
        if let Ok(needs) = self.needs.lock() {
            candidates.extend(needs.issuers.iter().cloned());
        }
        candidates.extend(
            issuers
                .iter()
                .map(|c| CertificateDer::from(c.as_ref().to_vec())),
        );
        let update = self.lock_crls().offer(bytes, &candidates, now());
        match &update {
            CrlUpdate::Rejected(reason) => tracing::warn!("CRL refused: {reason}"),
            CrlUpdate::Stored { issuer } => tracing::info!("new CRL kept for {issuer}"),
            CrlUpdate::KeptStored { .. } => {}
        }
        update
    }

    /// The CRL distribution points of server certificates refused (or let through with a
    /// warning) for want of a valid CRL.
    pub fn crl_urls_needed(&self) -> Vec<String> {
        self.needs
            .lock()
            .map(|n| n.urls.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Fetches the needed CRLs over HTTP (distribution points are plain `http://`; a CRL is
    /// signed, so this is safe) and offers each to the store. Bounded: 30 s and
    /// [`MAX_CRL_BYTES`] per CRL, at most 8 URLs.
    pub async fn refresh_crls(&self) -> Vec<(String, CrlUpdate)> {
        let urls = self.crl_urls_needed();
        let client = match reqwest::Client::builder()
            .tls_backend_preconfigured(self.http_tls_config())
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                return urls
                    .into_iter()
                    .map(|u| (u, CrlUpdate::Rejected(format!("HTTP client: {e}"))))
                    .collect();
            }
        };
        let mut out = Vec::new();
        for url in urls.into_iter().take(8) {
            let update = match http_get_capped(&client, &url, MAX_CRL_BYTES).await {
                Ok(bytes) => self.offer_crl(&bytes, &[]),
                Err(e) => CrlUpdate::Rejected(format!("cannot fetch {url}: {e}")),
            };
            if matches!(
                update,
                CrlUpdate::Stored { .. } | CrlUpdate::KeptStored { .. }
            ) && let Ok(mut needs) = self.needs.lock()
            {
                needs.urls.remove(&url);
            }
            out.push((url, update));
        }
        out
    }

    /// A TLS configuration for HTTPS requests made on behalf of the policy (CRLs over
    /// https, autoconfiguration): the same anchors and suites, no client certificate.
    pub fn http_tls_config(&self) -> rustls::ClientConfig {
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    fn lock_crls(&self) -> std::sync::MutexGuard<'_, CrlStore> {
        self.crls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// webpki's verifier plus the "no valid CRL" rule and the memory of what was missing.
#[derive(Debug)]
struct PolicyVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// No current CRL at all: webpki would skip revocation silently.
    no_crl: bool,
    without_crl: WithoutCrl,
    check_chain: bool,
    needs: Arc<Mutex<CrlNeeds>>,
}

impl std::fmt::Debug for CrlNeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlNeeds")
            .field("urls", &self.urls)
            .finish()
    }
}

impl PolicyVerifier {
    fn remember(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let Ok(mut needs) = self.needs.lock() else {
            return;
        };
        let mut certs = vec![end_entity];
        if self.check_chain {
            certs.extend(intermediates);
        }
        for cert in certs {
            for url in distribution_points(cert) {
                if needs.urls.len() < 64 {
                    needs.urls.insert(url);
                }
            }
        }
        for issuer in intermediates {
            if needs.issuers.len() < 16 && !needs.issuers.iter().any(|c| c == issuer) {
                needs.issuers.push(issuer.clone().into_owned());
            }
        }
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match result {
            Ok(verified) if self.no_crl => {
                // The chain is good, but nothing said whether it was revoked.
                self.remember(end_entity, intermediates);
                match self.without_crl {
                    WithoutCrl::Refuse => Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownRevocationStatus,
                    )),
                    WithoutCrl::Warn => {
                        tracing::warn!(
                            "{} accepted without revocation check: no valid CRL",
                            server_name.to_str()
                        );
                        Ok(verified)
                    }
                }
            }
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownRevocationStatus
                | CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. },
            )) => {
                self.remember(end_entity, intermediates);
                result
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The `http://` and `https://` CRL distribution points named in a certificate.
pub fn distribution_points(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            for name in names {
                if let GeneralName::URI(uri) = name
                    && (uri.starts_with("http://") || uri.starts_with("https://"))
                    && uri.len() < 2048
                {
                    urls.push((*uri).to_owned());
                }
            }
        }
    }
    urls
}

/// GET with a size cap; the body is read chunk by chunk so a hostile server cannot make us
/// hold more than `cap` bytes.
pub(crate) async fn http_get_capped(
    client: &reqwest::Client,
    url: &str,
    cap: usize,
) -> Result<Vec<u8>, String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(format!("larger than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > cap {
            return Err(format!("larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps an I/O error from a TLS connection (tokio-rustls wraps rustls errors in
/// `io::Error`) to a classified transport error.
pub fn classify(host: &str, err: &io::Error) -> TransportError {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(host, tls);
    }
    TransportError::Network {
        host: host.to_owned(),
        detail: err.to_string(),
    }
}

/// Maps a rustls error to the failure a person can act on.
pub fn classify_rustls(host: &str, err: &rustls::Error) -> TransportError {
    use rustls::AlertDescription as Alert;
    use rustls::Error as E;
    let failure = match err {
        E::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnhandledCriticalExtension => TlsFailure::Untrusted,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            CertificateError::Revoked => TlsFailure::Revoked,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongHost
            }
            CertificateError::UnknownRevocationStatus => TlsFailure::Other(
                "no valid CRL of its certificate authority is at hand, so revocation cannot \
                 be checked (fetch the IGC Santé CRL into tls.crl_dir)"
                    .to_owned(),
            ),
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => TlsFailure::Other(
                "the CRL of its certificate authority has expired (fetch a new one into \
                 tls.crl_dir)"
                    .to_owned(),
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                TlsFailure::Other("its certificate is not meant for a server".to_owned())
            }
            other => TlsFailure::Other(format!("its certificate is invalid ({other:?})")),
        },
        E::PeerIncompatible(_) => TlsFailure::Version,
        E::AlertReceived(
            Alert::ProtocolVersion | Alert::InsufficientSecurity | Alert::HandshakeFailure,
        ) => TlsFailure::Version,
        E::AlertReceived(
            Alert::BadCertificate
            | Alert::CertificateRequired
            | Alert::UnknownCA
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::AccessDenied,
        ) => {
            return TransportError::CertificateRefused {
                host: host.to_owned(),
                detail: format!("the server answered {err}"),
            };
        }
        E::InvalidMessage(_) | E::PeerMisbehaved(_) => {
            TlsFailure::Other(format!("it broke the TLS protocol ({err})"))
        }
        other => TlsFailure::Other(other.to_string()),
    };
    TransportError::Tls {
        host: host.to_owned(),
        failure,
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            config(&format!(
                "cannot read trust anchors {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(config(&format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn now() -> i64 {
    UnixTime::now().as_secs() as i64
}

fn config(detail: &str) -> TransportError {
    TransportError::Config(detail.to_owned())
}
