//! Discovery of the provider's endpoints and keys, and ID token verification.

use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::sync::RwLock;
use url::Url;

use crate::config::{ClientAuth, PscConfig};
use crate::error::PscError;
use crate::http::{Http, check_url, clip};

/// The endpoints in use, after discovery and configuration overrides.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub issuer: Url,
    pub authorization: Option<Url>,
    pub token: Url,
    pub backchannel_authentication: Option<Url>,
    pub end_session: Option<Url>,
    pub revocation: Option<Url>,
    pub jwks: Url,
}

/// The fields of the discovery document we use (others are ignored).
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    backchannel_authentication_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
}

pub(crate) struct Provider {
    pub endpoints: Endpoints,
    jwks: RwLock<CoreJsonWebKeySet>,
    /// The issuer as the provider spells it (what `iss` must equal).
    issuer_text: String,
    client_id: String,
    client_secret: Option<secrecy::SecretString>,
}

/// Claims of a verified ID token that the session keeps.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub acr: Option<String>,
}

impl Provider {
    pub(crate) async fn discover(config: &PscConfig, http: &Http) -> Result<Self, PscError> {
        let issuer = check_url("psc.issuer", &config.issuer)?;
        let pick = |what: &str, configured: &Option<String>, discovered: Option<String>| {
            configured
                .clone()
                .or(discovered)
                .map(|raw| check_url(what, &raw))
                .transpose()
        };
        let skip = config.token_endpoint.is_some() && config.jwks_uri.is_some();
        let doc = if skip {
            None
        } else {
            let mut url = issuer.clone();
            let path = format!(
                "{}/.well-known/openid-configuration",
                url.path().trim_end_matches('/')
            );
            url.set_path(&path);
            let doc: Discovery = http.get_json(&url).await?;
            // OpenID Connect Discovery §4.3: the document names the issuer we asked.
            if doc.issuer.trim_end_matches('/') != config.issuer.trim_end_matches('/') {
                return Err(PscError::Protocol(format!(
                    "discovery at {url} is for issuer `{}`, not `{}`",
                    clip(&doc.issuer),
                    config.issuer
                )));
            }
            Some(doc)
        };
        let issuer_text = doc
            .as_ref()
            .map(|d| d.issuer.clone())
            .unwrap_or_else(|| config.issuer.clone());
        let mut d = doc.unwrap_or(Discovery {
            issuer: config.issuer.clone(),
            authorization_endpoint: None,
            token_endpoint: None,
            backchannel_authentication_endpoint: None,
            end_session_endpoint: None,
            revocation_endpoint: None,
            jwks_uri: None,
        });
        let endpoints = Endpoints {
            authorization: pick(
                "authorization endpoint",
                &config.authorization_endpoint,
                d.authorization_endpoint.take(),
            )?,
            token: pick(
                "token endpoint",
                &config.token_endpoint,
                d.token_endpoint.take(),
            )?
            .ok_or_else(|| PscError::Protocol("discovery gives no token endpoint".into()))?,
            backchannel_authentication: pick(
                "backchannel authentication endpoint",
                &config.backchannel_authentication_endpoint,
                d.backchannel_authentication_endpoint.take(),
            )?,
            end_session: pick(
                "end session endpoint",
                &config.end_session_endpoint,
                d.end_session_endpoint.take(),
            )?,
            revocation: pick(
                "revocation endpoint",
                &config.revocation_endpoint,
                d.revocation_endpoint.take(),
            )?,
            jwks: pick("jwks_uri", &config.jwks_uri, d.jwks_uri.take())?
                .ok_or_else(|| PscError::Protocol("discovery gives no jwks_uri".into()))?,
            issuer,
        };
        let jwks: CoreJsonWebKeySet = http.get_json(&endpoints.jwks).await?;
        let client_secret = match config.client_auth_method() {
            ClientAuth::TlsClientAuth => None,
            _ => config.client_secret.clone(),
        };
        Ok(Provider {
            endpoints,
            jwks: RwLock::new(jwks),
            issuer_text,
            client_id: config.client_id.clone(),
            client_secret,
        })
    }

    /// Verifies an ID token (signature, issuer, audience, expiry, nonce when given). Reloads
    /// the keys once when the signature does not verify, in case PSC rotated them.
    pub(crate) async fn verify_id_token(
        &self,
        http: &Http,
        token: &CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<Identity, PscError> {
        match self.verify_with_current_keys(token, nonce).await {
            Err(first) => {
                let fresh: CoreJsonWebKeySet = http.get_json(&self.endpoints.jwks).await?;
                *self.jwks.write().await = fresh;
                self.verify_with_current_keys(token, nonce)
                    .await
                    .map_err(|_| first)
            }
            ok => ok,
        }
    }

    async fn verify_with_current_keys(
        &self,
        token: &CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<Identity, PscError> {
        let keys = self.jwks.read().await.clone();
        let issuer = IssuerUrl::new(self.issuer_text.clone())
            .map_err(|e| PscError::Config(format!("psc.issuer: {e}")))?;
        let client_id = ClientId::new(self.client_id.clone());
        let verifier = match &self.client_secret {
            Some(secret) => CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.expose_secret().to_string()),
                issuer,
                keys,
            ),
            None => CoreIdTokenVerifier::new_public_client(client_id, issuer, keys),
        };
        let claims = match nonce {
            Some(n) => token.claims(&verifier, n),
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        }
        .map_err(|e| PscError::IdToken(clip(&e.to_string())))?;
        Ok(Identity {
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_string()),
        })
    }
}
