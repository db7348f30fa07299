//! Pro Santé Connect simulator: an OpenID provider on 127.0.0.1 that behaves like PSC for a
//! client: discovery, JWKS, authorization code + PKCE (S256) with a French login page,
//! CIBA in poll mode, refresh tokens, introspection, revocation, end of session. Access and
//! ID tokens are RS256 JWTs with `typ: JWT`, claims `iss`, `sub` (national id), `email`
//! (the mailbox), `azp`, `aud`, `iat`, `exp`, `acr = eidas1`.

mod flows;
mod keys;
pub(crate) mod page;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

pub use keys::{SigningKey, VerifyingKey};

use crate::error::SandboxError;

/// What the simulated professional does when PSC asks them to approve a CIBA request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CibaAnswer {
    /// Approves after `PscSettings::ciba_delay`.
    Approve,
    /// Declines after the same delay (`access_denied`).
    Refuse,
    /// Never answers: the request ends with `expired_token`.
    Ignore,
}

/// A test professional known to the simulator.
#[derive(Debug, Clone, Serialize)]
pub struct Professional {
    /// National id, RPPS style: `8` then the 11-digit RPPS number (the PSC `sub`).
    pub national_id: String,
    pub given_name: String,
    pub family_name: String,
    /// Profession shown on the login page.
    pub profession: String,
    /// Their MSSanté mailbox (the `email` claim).
    pub email: String,
    pub ciba: CibaAnswer,
}

impl Professional {
    pub fn new(
        national_id: &str,
        given: &str,
        family: &str,
        profession: &str,
        email: &str,
    ) -> Self {
        Professional {
            national_id: national_id.into(),
            given_name: given.into(),
            family_name: family.into(),
            profession: profession.into(),
            email: email.into(),
            ciba: CibaAnswer::Approve,
        }
    }

    /// Whether `hint` (a national id or a mailbox address) names this professional.
    pub fn matches(&self, hint: &str) -> bool {
        let hint = hint.trim();
        hint == self.national_id || hint.eq_ignore_ascii_case(&self.email)
    }
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct PscSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Access and ID token lifetime (PSC: about 5 minutes).
    pub access_token_lifetime: Duration,
    /// Lifetime of a refresh token (each refresh gives a new one and retires the old one).
    pub refresh_token_lifetime: Duration,
    /// Time a professional takes to answer a CIBA request.
    pub ciba_delay: Duration,
    /// Polling interval announced to CIBA clients (whole seconds, at least 1).
    pub ciba_interval: u64,
    /// Lifetime of a CIBA request.
    pub ciba_expires_in: u64,
    pub professionals: Vec<Professional>,
}

impl PscSettings {
    pub fn new(
        client_id: &str,
        client_secret: SecretString,
        professionals: Vec<Professional>,
    ) -> Self {
        PscSettings {
            client_id: client_id.into(),
            client_secret,
            access_token_lifetime: Duration::from_secs(300),
            refresh_token_lifetime: Duration::from_secs(1800),
            ciba_delay: Duration::from_secs(2),
            ciba_interval: 1,
            ciba_expires_in: 120,
            professionals,
        }
    }

    pub(crate) fn professional(&self, hint: &str) -> Option<&Professional> {
        self.professionals.iter().find(|p| p.matches(hint))
    }
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct PscServer {
    pub addr: SocketAddr,
    pub issuer: String,
    task: tokio::task::JoinHandle<()>,
}

impl PscServer {
    /// Serves the simulator on `listener` (already bound on 127.0.0.1).
    pub fn start(
        listener: tokio::net::TcpListener,
        settings: PscSettings,
        key: SigningKey,
    ) -> Result<PscServer, SandboxError> {
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen { port: 0, source })?;
        let issuer = format!("http://{addr}");
        let shared = Arc::new(routes::Shared {
            issuer: issuer.clone(),
            settings,
            key,
            state: Mutex::new(state::State::default()),
        });
        let app = routes::router(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PscServer { addr, issuer, task })
    }
}

impl Drop for PscServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
