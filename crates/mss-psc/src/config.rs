//! The `[psc]` table of `mss.toml` (documented in docs/psc.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Which login flow `PscClient::login` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Client-Initiated Backchannel Authentication, poll mode: the professional approves on
    /// their e-CPS device; no browser. Recommended by PSC for desktop software.
    #[default]
    Ciba,
    /// Authorization code + PKCE through the system browser and a loopback redirect.
    Code,
}

/// How mss authenticates itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with `client_id` and `client_secret`.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// Mutual TLS with `client_cert` / `client_key`; `client_id` in the form body.
    TlsClientAuth,
}

/// `[psc]`: how to reach Pro Santé Connect and log in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PscConfig {
    /// Issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// PEM certificate chain (leaf first) for mTLS client authentication.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Default: `client_secret_basic` with a secret, `tls_client_auth` with a certificate.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    #[serde(default)]
    pub flow: Flow,
    /// CIBA: whom PSC asks to approve (e.g. the RPPS identifier, per the PSC contract).
    #[serde(default)]
    pub login_hint: Option<String>,
    /// CIBA: short text shown on the professional's device to tie it to this request.
    #[serde(default)]
    pub binding_message: Option<String>,
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Sent as `acr_values` unless empty.
    #[serde(default = "default_acr")]
    pub acr_values: String,
    /// Code flow: redirect URI on the loopback interface. Without a port, a free port is
    /// taken at each login (the client must be registered for loopback redirects).
    #[serde(default = "default_redirect")]
    pub redirect_uri: String,
    // Endpoints: each overrides what discovery says (PSC serves the authorization page on
    // another host than the issuer). With both token_endpoint and jwks_uri set, discovery is
    // skipped.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub backchannel_authentication_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Extra PEM trust anchors for the PSC HTTPS endpoints, added to the public roots.
    #[serde(default)]
    pub anchors: Vec<PathBuf>,
    /// Trust the public web roots (PSC uses public certificates). `false`: `anchors` only.
    #[serde(default = "yes")]
    pub public_roots: bool,
    /// Seconds before expiry when the access token is refreshed (PSC tokens live ~5 min).
    #[serde(default = "default_margin")]
    pub refresh_margin: u64,
    /// Seconds a login (CIBA approval, browser) may take before giving up.
    #[serde(default = "default_login_timeout")]
    pub login_timeout: u64,
    /// Seconds for one HTTP exchange with PSC.
    #[serde(default = "default_http_timeout")]
    pub http_timeout: u64,
}

fn default_scope() -> String {
    "openid scope_all".into()
}
fn default_acr() -> String {
    "eidas1".into()
}
fn default_redirect() -> String {
    "http://127.0.0.1/callback".into()
}
fn yes() -> bool {
    true
}
fn default_margin() -> u64 {
    60
}
fn default_login_timeout() -> u64 {
    300
}
fn default_http_timeout() -> u64 {
    30
}

impl PscConfig {
    /// A configuration with the defaults of the file format, for code and tests.
    pub fn new(issuer: &str, client_id: &str) -> Self {
        PscConfig {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_cert: None,
            client_key: None,
            client_auth: None,
            flow: Flow::default(),
            login_hint: None,
            binding_message: None,
            scope: default_scope(),
            acr_values: default_acr(),
            redirect_uri: default_redirect(),
            authorization_endpoint: None,
            token_endpoint: None,
            backchannel_authentication_endpoint: None,
            end_session_endpoint: None,
            revocation_endpoint: None,
            jwks_uri: None,
            anchors: Vec::new(),
            public_roots: true,
            refresh_margin: default_margin(),
            login_timeout: default_login_timeout(),
            http_timeout: default_http_timeout(),
        }
    }

    /// Makes relative file paths relative to `base` (the directory of mss.toml).
    pub fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.client_cert.iter_mut().for_each(join);
        self.client_key.iter_mut().for_each(join);
        self.anchors.iter_mut().for_each(join);
    }

    /// The client authentication method in force, after defaults.
    pub fn client_auth_method(&self) -> ClientAuth {
        self.client_auth.unwrap_or(if self.client_cert.is_some() {
            ClientAuth::TlsClientAuth
        } else {
            ClientAuth::ClientSecretBasic
        })
    }

    pub(crate) fn margin(&self) -> Duration {
        Duration::from_secs(self.refresh_margin)
    }
    pub(crate) fn login_deadline(&self) -> Duration {
        Duration::from_secs(self.login_timeout.max(1))
    }
    pub(crate) fn http_deadline(&self) -> Duration {
        Duration::from_secs(self.http_timeout.max(1))
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_id.trim().is_empty() {
            return Err("psc.client_id is empty".into());
        }
        match self.client_auth_method() {
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
                if self.client_secret.is_none() {
                    return Err(
                        "psc.client_secret is missing (or set client_cert and client_key for mTLS)"
                            .into(),
                    );
                }
            }
            ClientAuth::TlsClientAuth => {}
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("psc.client_cert and psc.client_key go together".into());
        }
        if self.client_auth_method() == ClientAuth::TlsClientAuth && self.client_cert.is_none() {
            return Err(
                "psc.client_auth = \"tls_client_auth\" needs client_cert and client_key".into(),
            );
        }
        if !self.scope.split_whitespace().any(|s| s == "openid") {
            return Err("psc.scope must contain \"openid\"".into());
        }
        if !self.public_roots && self.anchors.is_empty() {
            return Err("psc.public_roots = false needs psc.anchors".into());
        }
        Ok(())
    }
}
