//! Pro Santé Connect client: discovery, CIBA (poll) and authorization code + PKCE logins,
//! and a [`PscSession`] that hands out fresh access tokens until the PSC session ends.
//!
//! ```no_run
//! # async fn demo(config: mss_psc::PscConfig) -> Result<(), mss_psc::PscError> {
//! let client = mss_psc::PscClient::new(config).await?; // discovery
//! let session = client.login().await?;                  // CIBA or browser, per config
//! let token = session.access_token().await?;            // SecretString, refreshed as needed
//! // … present it with XOAUTH2; if the server refuses it:
//! session.token_refused(&token);                        // never handed out again
//! // Every IMAP/SMTP session of this user ends with the PSC session:
//! let end = session.ended().await;                      // refresh refused or logout
//! # let _ = end; Ok(()) }
//! ```
//!
//! Tokens stay in memory, in `secrecy` types, and never appear in Debug output or logs
//! (SC.MSS/CONF.28).
#![forbid(unsafe_code)]

mod ciba;
mod code;
mod config;
mod error;
mod http;
mod provider;
mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use openidconnect::core::CoreIdToken;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

pub use config::{ClientAuth, Flow, PscConfig};
pub use error::{PscError, SessionEnd};
pub use provider::Endpoints;
pub use session::PscSession;

/// Opens a URL in the user's browser (the code flow). Tests inject their own.
pub type Opener = Arc<dyn Fn(&Url) -> Result<(), String> + Send + Sync>;

/// A configured PSC client whose endpoints are known. Cheap to clone.
#[derive(Clone)]
pub struct PscClient {
    core: Arc<Core>,
}

pub(crate) struct Core {
    pub config: PscConfig,
    pub http: http::Http,
    pub provider: Arc<provider::Provider>,
    pub opener: Opener,
}

impl std::fmt::Debug for PscClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PscClient")
            .field("client_id", &self.core.config.client_id)
            .field("endpoints", &self.core.provider.endpoints)
            .finish_non_exhaustive()
    }
}

impl PscClient {
    /// Checks the configuration and reads the provider's endpoints and keys (discovery,
    /// then the `[psc]` overrides).
    pub async fn new(config: PscConfig) -> Result<Self, PscError> {
        config.validate().map_err(PscError::Config)?;
        let http = http::Http::new(&config)?;
        let provider = provider::Provider::discover(&config, &http).await?;
        Ok(PscClient {
            core: Arc::new(Core {
                config,
                http,
                provider: Arc::new(provider),
                opener: Arc::new(code::open_in_system_browser),
            }),
        })
    }

    /// Replaces the browser opener of the code flow (tests drive the login pages themselves).
    pub fn with_opener(self, opener: Opener) -> Self {
        let core = &self.core;
        PscClient {
            core: Arc::new(Core {
                config: core.config.clone(),
                http: core.http.clone(),
                provider: core.provider.clone(),
                opener,
            }),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.core.provider.endpoints
    }

    /// Logs in with the configured flow (`psc.flow`).
    pub async fn login(&self) -> Result<PscSession, PscError> {
        match self.core.config.flow {
            Flow::Ciba => {
                let hint = self.core.config.login_hint.clone().ok_or_else(|| {
                    PscError::Config("psc.login_hint is needed for flow = \"ciba\"".into())
                })?;
                self.login_ciba(&hint, self.core.config.binding_message.as_deref())
                    .await
            }
            Flow::Code => self.login_code().await,
        }
    }

    /// CIBA poll: PSC asks the professional named by `login_hint` to approve on their
    /// device; returns when approved, denied, expired or after `psc.login_timeout`.
    pub async fn login_ciba(
        &self,
        login_hint: &str,
        binding_message: Option<&str>,
    ) -> Result<PscSession, PscError> {
        let (answer, identity) = ciba::run(&self.core, login_hint, binding_message).await?;
        PscSession::start(self.core.clone(), answer, identity)
    }

    /// Authorization code + PKCE: opens the browser on PSC's login page and waits for the
    /// redirect on the loopback interface.
    pub async fn login_code(&self) -> Result<PscSession, PscError> {
        let (answer, identity) = code::run(&self.core).await?;
        PscSession::start(self.core.clone(), answer, identity)
    }
}

/// A token endpoint answer (RFC 6749 §5.1); secrets go straight into `SecretString`.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: SecretString,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub id_token: Option<CoreIdToken>,
}

impl Core {
    /// A grant at the token endpoint.
    pub(crate) async fn token_grant(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, PscError> {
        let url = &self.provider.endpoints.token;
        let answer = self.http.post_client_form(url, form).await?;
        // No serde detail in the message: it could quote a token.
        let parsed: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
            PscError::Protocol(format!(
                "the token endpoint sent an unreadable answer (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(PscError::Protocol(format!(
                "the token endpoint issued a `{}` token, not a Bearer token",
                http::clip(kind)
            )));
        }
        Ok(parsed)
    }
}
