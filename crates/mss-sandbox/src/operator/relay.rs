//! The hop between the sandbox's two operators: a real SMTP exchange over TCP with
//! STARTTLS (the peer's certificate checked against the sandbox root), spoken by mail-send
//! on the client side and by the peer's own relay listener (smtp.rs, relay mode).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use smtp_proto::EXT_START_TLS;
use tokio_rustls::TlsConnector;

use crate::error::SandboxError;

/// The whole hop (connect, TLS, envelope, data) must end within this.
const HOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The name the peer's certificate must carry.
const PEER_NAME: &str = "localhost";

/// Another operator: the mail domains it serves and where it takes mail.
#[derive(Debug, Clone)]
pub struct Peer {
    pub domains: Vec<String>,
    pub addr: SocketAddr,
    tls: Arc<ClientConfig>,
}

impl Peer {
    /// A peer serving `domains` at `addr`, whose certificate chains to `root_pem`.
    pub fn new(domains: &[&str], addr: SocketAddr, root_pem: &Path) -> Result<Peer, SandboxError> {
        let bad = |why: String| SandboxError::Damaged {
            path: root_pem.to_owned(),
            why,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(root_pem).map_err(|e| bad(e.to_string()))? {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Peer {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            addr,
            tls: Arc::new(tls),
        })
    }

    /// Whether this peer takes mail for `domain`.
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// What the peer said about each recipient: `Ok(reply)` accepted, `Err(reply)` refused.
pub type HopOutcome = Vec<(String, Result<String, String>)>;

/// Hands `data` (exact bytes, CRLF lines) for `rcpts` to `peer`, as `helo`, with envelope
/// sender `from` (empty: a bounce). A failure of the whole hop refuses every recipient.
pub async fn send(
    peer: &Peer,
    helo: &str,
    from: &str,
    rcpts: &[String],
    data: &[u8],
) -> HopOutcome {
    match tokio::time::timeout(HOP_TIMEOUT, exchange(peer, helo, from, rcpts, data)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(why)) => refuse_all(rcpts, &why),
        Err(_) => refuse_all(rcpts, "the other operator did not answer in time"),
    }
}

fn refuse_all(rcpts: &[String], why: &str) -> HopOutcome {
    rcpts
        .iter()
        .map(|r| (r.clone(), Err(why.to_owned())))
        .collect()
}

fn reply_text(e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::UnexpectedReply(r) => format!(
            "{} {}.{}.{} {}",
            r.code(),
            r.esc[0],
            r.esc[1],
            r.esc[2],
            r.message()
        ),
        other => other.to_string(),
    }
}

async fn exchange(
    peer: &Peer,
    helo: &str,
    from: &str,
    rcpts: &[String],
    data: &[u8],
) -> Result<HopOutcome, String> {
    let fail = |step: &str, e: mail_send::Error| format!("{step}: {}", reply_text(&e));
    let mut plain = SmtpClient::connect(peer.addr, HOP_TIMEOUT)
        .await
        .map_err(|e| fail("connect", e))?;
    let greeting = plain.read().await.map_err(|e| fail("greeting", e))?;
    if greeting.code() != 220 {
        return Err(format!("greeting: {}", greeting.message()));
    }
    let ehlo = plain.ehlo(helo).await.map_err(|e| fail("EHLO", e))?;
    if !ehlo.has_capability(EXT_START_TLS) {
        return Err("the other operator does not offer STARTTLS".to_owned());
    }
    let mut client = plain
        .start_tls(&TlsConnector::from(peer.tls.clone()), PEER_NAME)
        .await
        .map_err(|e| fail("STARTTLS", e))?;
    client.ehlo(helo).await.map_err(|e| fail("EHLO", e))?;
    let mut params = Parameters::new();
    let size = format!("SIZE={}", data.len());
    params.add(size.as_str());
    client
        .mail_from(from, &params)
        .await
        .map_err(|e| fail("MAIL FROM", e))?;
    let mut outcome: HopOutcome = Vec::new();
    for rcpt in rcpts {
        let result = client
            .rcpt_to(rcpt, &Parameters::new())
            .await
            .map(|_| String::new())
            .map_err(|e| reply_text(&e));
        outcome.push((rcpt.clone(), result));
    }
    if outcome.iter().all(|(_, r)| r.is_err()) {
        let _ = client.quit().await;
        return Ok(outcome);
    }
    // mail-send ends the data with CRLF . CRLF: the message's own last CRLF goes, so the
    // peer stores exactly these bytes.
    let body = data.strip_suffix(b"\r\n").unwrap_or(data);
    match client.data(body).await {
        Ok(reply) => {
            let text = format!("{} {}", reply.code(), reply.message());
            for (_, r) in outcome.iter_mut() {
                if r.is_ok() {
                    *r = Ok(text.clone());
                }
            }
            let _ = client.quit().await;
            Ok(outcome)
        }
        Err(e) => Err(fail("DATA", e)),
    }
}
