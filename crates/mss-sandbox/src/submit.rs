//! Mail written by the sandbox's own people: `Sandbox::submit_as` sends a message as one
//! of its professionals (or its application mailbox) through that operator's real SMTP
//! submission port, after STARTTLS, logged in the way a client would be: a PSC access
//! token the sandbox signs itself (XOAUTH2) for a personal or organisational mailbox, the
//! mailbox's AUTH_CLI certificate (EXTERNAL) for an application one. `mss demo` uses it to
//! play the professionals who write to the software under test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio_rustls::TlsConnector;

use crate::error::SandboxError;
use crate::operator::AccountKind;
use crate::psc::SigningKey;
use crate::space::{CLIENT_ID, Sandbox};

/// The whole submission (connect, TLS, login, envelope, data) ends within this.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The name on the operator's certificate.
const SERVER_NAME: &str = "localhost";
/// Lifetime of the tokens minted here.
const TOKEN_LIFETIME: u64 = 120;

/// Why a message could not be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0} is not a mailbox of the sandbox's operators: choose one from sandbox.json")]
    UnknownMailbox(String),
    #[error("{0} is a Mon espace santé mailbox: patients answer with operator::mes::patient_reply")]
    Patient(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("submission as {from} failed at {step}: {why}")]
    Smtp {
        from: String,
        step: &'static str,
        why: String,
    },
}

impl Sandbox {
    /// Submits `data` (exact bytes, CRLF lines) from `from` to `rcpts` over the submission
    /// port of the operator that holds `from`; returns the operator's final answer.
    pub async fn submit_as(
        &self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
    ) -> Result<String, SubmitError> {
        let operator = [&self.operator, &self.second_operator]
            .into_iter()
            .find(|o| o.context.account(from).is_some())
            .ok_or_else(|| SubmitError::UnknownMailbox(from.to_owned()))?;
        let account = operator
            .context
            .account(from)
            .ok_or_else(|| SubmitError::UnknownMailbox(from.to_owned()))?;
        let login = match account.kind {
            AccountKind::Patient => return Err(SubmitError::Patient(from.to_owned())),
            AccountKind::App => Login::Certificate(
                self.info
                    .bals
                    .iter()
                    .find(|b| b.address.eq_ignore_ascii_case(&account.address))
                    .and_then(|b| b.cert_pem.clone().zip(b.key_pem.clone()))
                    .ok_or_else(|| SubmitError::UnknownMailbox(from.to_owned()))?,
            ),
            AccountKind::Per | AccountKind::Org => {
                let holder = account
                    .holders
                    .first()
                    .ok_or_else(|| SubmitError::UnknownMailbox(from.to_owned()))?;
                Login::Token(self.mint_access_token(holder)?)
            }
        };
        let tls = self.client_tls(&login)?;
        let address = account.address.clone();
        let fail = |step: &'static str| {
            let from = address.clone();
            move |e: mail_send::Error| SubmitError::Smtp {
                from,
                step,
                why: e.to_string(),
            }
        };
        let exchange = async {
            let mut plain = SmtpClient::connect(operator.smtp, SUBMIT_TIMEOUT)
                .await
                .map_err(fail("connect"))?;
            plain.read().await.map_err(fail("greeting"))?;
            plain.ehlo("demo.sandbox").await.map_err(fail("EHLO"))?;
            let mut client = plain
                .start_tls(&TlsConnector::from(tls), SERVER_NAME)
                .await
                .map_err(fail("STARTTLS"))?;
            let ehlo = client.ehlo("demo.sandbox").await.map_err(fail("EHLO"))?;
            match &login {
                Login::Token(token) => {
                    let credentials =
                        Credentials::new_xoauth2(address.as_str(), token.expose_secret());
                    client
                        .authenticate(&credentials, &ehlo)
                        .await
                        .map_err(fail("AUTH XOAUTH2"))?;
                }
                Login::Certificate(_) => {
                    let reply = client
                        .cmd(b"AUTH EXTERNAL =\r\n")
                        .await
                        .map_err(fail("AUTH EXTERNAL"))?;
                    if reply.code() != 235 {
                        return Err(SubmitError::Smtp {
                            from: address.clone(),
                            step: "AUTH EXTERNAL",
                            why: format!("{} {}", reply.code(), reply.message()),
                        });
                    }
                }
            }
            client
                .mail_from(&address, &Parameters::new())
                .await
                .map_err(fail("MAIL FROM"))?;
            for rcpt in rcpts {
                client
                    .rcpt_to(rcpt, &Parameters::new())
                    .await
                    .map_err(fail("RCPT TO"))?;
            }
            // mail-send ends the data with CRLF . CRLF: the message's own last CRLF goes.
            let body = data.strip_suffix(b"\r\n").unwrap_or(data);
            let reply = client.data(body).await.map_err(fail("DATA"))?;
            let _ = client.quit().await;
            Ok(format!("{} {}", reply.code(), reply.message()))
        };
        tokio::time::timeout(SUBMIT_TIMEOUT, exchange)
            .await
            .map_err(|_| SubmitError::Smtp {
                from: address.clone(),
                step: "submission",
                why: "the operator did not answer in time".into(),
            })?
    }

    /// An access token for the professional `national_id`, signed with the simulator's key
    /// as PSC would issue it after a login (never written anywhere).
    pub fn mint_access_token(&self, national_id: &str) -> Result<SecretString, SandboxError> {
        let person = self
            .info
            .psc
            .professionals
            .iter()
            .find(|p| p.national_id == national_id)
            .ok_or_else(|| SandboxError::Identity(national_id.to_owned()))?;
        let key = SigningKey::open(&self.dir().join("psc").join("signing-key.pem"))?;
        let now = crate::operator::now_secs();
        let claims = json!({
            "iss": self.info.psc.issuer, "sub": person.national_id, "aud": CLIENT_ID,
            "azp": CLIENT_ID, "iat": now, "exp": now + TOKEN_LIFETIME,
            "jti": crate::random::token()?, "sid": crate::random::token()?,
            "scope": "openid scope_all", "acr": "eidas1", "email": person.email,
            "given_name": person.given_name, "family_name": person.family_name,
        });
        Ok(key.sign(&claims)?.into())
    }

    /// The sandbox's directory (where `mss.toml` is written).
    fn dir(&self) -> &Path {
        self.info.config.parent().unwrap_or(Path::new("."))
    }

    /// Trusts the sandbox root; presents the mailbox certificate for EXTERNAL.
    fn client_tls(&self, login: &Login) -> Result<Arc<ClientConfig>, SandboxError> {
        let bad = |path: &Path, why: String| SandboxError::Damaged {
            path: path.to_owned(),
            why,
        };
        let root = &self.info.ca_pem;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(root).map_err(|e| bad(root, e.to_string()))? {
            roots
                .add(cert.map_err(|e| bad(root, e.to_string()))?)
                .map_err(|e| bad(root, e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(root, e.to_string()))?
            .with_root_certificates(roots);
        let config = match login {
            Login::Token(_) => builder.with_no_client_auth(),
            Login::Certificate((chain, key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
                    .and_then(|it| it.collect())
                    .map_err(|e| bad(chain, e.to_string()))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| bad(chain, e.to_string()))?
            }
        };
        Ok(Arc::new(config))
    }
}

enum Login {
    Token(SecretString),
    /// Chain and key files of the AUTH_CLI certificate.
    Certificate((std::path::PathBuf, std::path::PathBuf)),
}
