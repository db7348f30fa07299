//! Helpers shared by the tests that talk to the operator as an independent client:
//! mail-send and raw bytes over tokio + rustls, PSC tokens by CIBA over plain HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use mss_sandbox::{Sandbox, SandboxOptions};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use smtp_proto::{EXT_AUTH, EXT_SIZE};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const JEANNE: &str = "jeanne.martin@sandbox.mssante.fr";
pub const KARIM: &str = "karim.benali@sandbox.mssante.fr";
pub const DPI: &str = "dpi@sandbox.mssante.fr";
pub const KARIM_2: &str = "karim.benali@operateur2.sandbox.mssante.fr";
pub const WAIT: Duration = Duration::from_secs(30);

pub type Tls = SmtpClient<TlsStream<TcpStream>>;

pub struct Env {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn start(token_lifetime: Duration) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SandboxOptions::new(dir.path());
    options.ciba_delay = Duration::ZERO;
    options.access_token_lifetime = token_lifetime;
    let sandbox = Sandbox::start(options).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Env { sandbox, http, dir }
}

pub fn connector(root: &Path, client: Option<(&Path, &Path)>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(chain)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

impl Env {
    /// A PSC access token for `login_hint`, by CIBA (poll mode) over plain HTTP.
    pub async fn token(&self, login_hint: &str) -> String {
        let psc = &self.sandbox.info.psc;
        let post = |path: &str, form: Vec<(&'static str, String)>| {
            self.http
                .post(format!("{}{path}", psc.issuer))
                .basic_auth(&psc.client_id, Some(&psc.client_secret))
                .form(&form)
                .send()
        };
        let started: Value = post(
            "/bc-authorize",
            vec![
                ("scope", "openid scope_all".into()),
                ("login_hint", login_hint.into()),
                ("binding_message", "SMTP TEST".into()),
            ],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = started["auth_req_id"].as_str().unwrap().to_owned();
        for _ in 0..20 {
            let body: Value = post(
                "/token",
                vec![
                    ("grant_type", "urn:openid:params:grant-type:ciba".into()),
                    ("auth_req_id", id.clone()),
                ],
            )
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            if let Some(token) = body["access_token"].as_str() {
                return token.to_owned();
            }
            assert!(
                body["error"] == "authorization_pending" || body["error"] == "slow_down",
                "{body}"
            );
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        panic!("CIBA never answered");
    }

    pub fn root(&self) -> &Path {
        &self.sandbox.info.ca_pem
    }

    pub fn bal_cert(&self, address: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let bal = self
            .sandbox
            .info
            .bals
            .iter()
            .find(|b| b.address == address)
            .unwrap();
        (bal.cert_pem.clone().unwrap(), bal.key_pem.clone().unwrap())
    }

    /// Greeting, EHLO, STARTTLS, EHLO again: the client ready to authenticate.
    pub async fn secure(
        &self,
        addr: SocketAddr,
        client: Option<(&Path, &Path)>,
    ) -> (Tls, smtp_proto::EhloResponse<String>) {
        let mut plain = SmtpClient::connect(addr, WAIT).await.unwrap();
        assert_eq!(plain.read().await.unwrap().code(), 220);
        let before = plain.ehlo("client.test").await.unwrap();
        assert!(before.has_capability(smtp_proto::EXT_START_TLS));
        assert!(!before.has_capability(EXT_AUTH), "no AUTH before TLS");
        assert!(
            !before.has_capability(EXT_SIZE) && !before.has_capability(smtp_proto::EXT_PIPELINING)
        );
        let mut tls = plain
            .start_tls(&connector(self.root(), client), "localhost")
            .await
            .unwrap();
        let ehlo = tls.ehlo("client.test").await.unwrap();
        (tls, ehlo)
    }

    pub fn inbox(
        &self,
        ctx: &mss_sandbox::operator::OperatorContext,
        address: &str,
    ) -> Vec<Vec<u8>> {
        ctx.store
            .messages(address, "INBOX")
            .unwrap()
            .iter()
            .map(|m| ctx.store.read(address, "INBOX", m.uid).unwrap())
            .collect()
    }

    pub fn recording(&self) -> String {
        serde_json::to_string(&self.sandbox.operator.context.recorder.since(0)).unwrap()
    }
}

pub fn xoauth2(user: &str, token: &str) -> String {
    STANDARD.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

pub async fn cmd(client: &mut Tls, line: &str) -> (u16, String) {
    let reply = client.cmd(format!("{line}\r\n")).await.unwrap();
    (reply.code(), reply.message().to_owned())
}

pub fn message(from: &str, to: &str, subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n{extra}\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        subject.len()
    )
    .into_bytes()
}

/// MAIL, RCPT, DATA; the DATA reply.
pub async fn send(client: &mut Tls, from: &str, to: &[&str], bytes: &[u8]) -> (u16, String) {
    client.mail_from(from, &Parameters::new()).await.unwrap();
    for rcpt in to {
        client.rcpt_to(rcpt, &Parameters::new()).await.unwrap();
    }
    let reply = client
        .data(bytes.strip_suffix(b"\r\n").unwrap_or(bytes))
        .await
        .unwrap();
    (reply.code(), reply.message().to_owned())
}

/// The values of a header field, unfolded.
pub fn header(bytes: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    fields
        .iter()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_owned())
        .collect()
}
