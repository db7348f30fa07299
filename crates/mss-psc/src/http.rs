//! HTTP to Pro Santé Connect: rustls (ring), bounded answers, no redirects, and the client
//! authentication of the token endpoint.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;

use crate::config::{ClientAuth, PscConfig};
use crate::error::PscError;

/// Largest answer read from PSC (discovery, JWKS, tokens are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Only HTTPS, except plain HTTP on a loopback address (a local stand-in in tests).
pub(crate) fn check_url(what: &str, raw: &str) -> Result<Url, PscError> {
    let url = Url::parse(raw)
        .map_err(|e| PscError::Config(format!("{what} `{}` is not a URL ({e})", clip(raw))))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(PscError::Config(format!(
            "{what} `{}` must be https (plain http only on a loopback address)",
            clip(raw)
        ))),
    }
}

/// Shortens and cleans text that came from outside before it goes into a message.
pub(crate) fn clip(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    clean
}

/// The HTTP side of a PSC client.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    client_id: String,
    client_secret: Option<secrecy::SecretString>,
    auth: ClientAuth,
}

pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An OAuth error body (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Http {
    pub(crate) fn new(config: &PscConfig) -> Result<Self, PscError> {
        let tls = tls_config(config)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.http_deadline())
            .connect_timeout(
                config
                    .http_deadline()
                    .min(std::time::Duration::from_secs(10)),
            )
            .user_agent(concat!("mss/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PscError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Http {
            client,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            auth: config.client_auth_method(),
        })
    }

    /// Sends a request and reads at most `MAX_BODY` bytes of the answer.
    async fn send(&self, url: &Url, req: reqwest::RequestBuilder) -> Result<Answer, PscError> {
        let mut resp = req
            .send()
            .await
            .map_err(|e| PscError::network(url.as_str(), short(&e)))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| PscError::network(url.as_str(), short(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(PscError::Protocol(format!(
                    "the answer of {url} is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<T, PscError> {
        let req = self
            .client
            .get(url.clone())
            .header("accept", "application/json");
        let answer = self.send(url, req).await?;
        if answer.status != 200 {
            return Err(PscError::Protocol(format!(
                "{url} answered HTTP {}",
                answer.status
            )));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| PscError::Protocol(format!("{url} sent unreadable JSON ({e})")))
    }

    /// POSTs a form to an endpoint that takes client authentication (token, CIBA,
    /// revocation, logout). A 2xx answer is returned; an OAuth error becomes `Refused`.
    pub(crate) async fn post_client_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<Answer, PscError> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let mut req = self
            .client
            .post(url.clone())
            .header("accept", "application/json");
        match self.auth {
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let secret = self
                    .client_secret
                    .as_ref()
                    .map(|s| enc(s.expose_secret()))
                    .unwrap_or_default();
                req = req.basic_auth(enc(&self.client_id), Some(secret));
            }
            ClientAuth::ClientSecretPost => {
                fields.push(("client_id", &self.client_id));
                if let Some(secret) = &self.client_secret {
                    fields.push(("client_secret", secret.expose_secret()));
                }
            }
            ClientAuth::TlsClientAuth => fields.push(("client_id", &self.client_id)),
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let answer = self.send(url, req).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        match serde_json::from_slice::<OAuthError>(&answer.body) {
            Ok(err) if (400..500).contains(&answer.status) => Err(PscError::Refused {
                code: clip(&err.error),
                description: err.error_description.as_deref().map(clip),
            }),
            _ => Err(PscError::Protocol(format!(
                "{url} answered HTTP {}",
                answer.status
            ))),
        }
    }
}

/// The error chain of reqwest in one line (it hides the cause behind "error sending request").
fn short(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    clip(&text)
}

fn tls_config(config: &PscConfig) -> Result<rustls::ClientConfig, PscError> {
    let mut roots = RootCertStore::empty();
    if config.public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for path in &config.anchors {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| PscError::Config(format!("psc.anchors {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(PscError::Config(format!(
                "psc.anchors {}: no certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| PscError::Config(format!("psc.anchors {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| PscError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    PscError::Config(format!("psc.client_cert {}: {e}", cert.display()))
                })?;
            if chain.is_empty() {
                return Err(PscError::Config(format!(
                    "psc.client_cert {}: no certificate in it",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| PscError::Config(format!("psc.client_key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| PscError::Config(format!("psc.client_cert/client_key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}
