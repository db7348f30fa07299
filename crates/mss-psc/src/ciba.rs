//! CIBA in poll mode (OpenID Connect Client-Initiated Backchannel Authentication 1.0).
//! No crate implements it; the ID token is still verified by openidconnect.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::PscError;
use crate::provider::Identity;
use crate::{Core, TokenAnswer};

const GRANT: &str = "urn:openid:params:grant-type:ciba";
/// CIBA §7.3: without `interval`, poll every 5 seconds.
const DEFAULT_INTERVAL: u64 = 5;
/// CIBA §11: `slow_down` adds at least 5 seconds for all later polls.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Started {
    auth_req_id: SecretString,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

pub(crate) async fn run(
    core: &Core,
    login_hint: &str,
    binding_message: Option<&str>,
) -> Result<(TokenAnswer, Identity), PscError> {
    let endpoint = core
        .provider
        .endpoints
        .backchannel_authentication
        .clone()
        .ok_or_else(|| {
            PscError::Config(
                "Pro Santé Connect publishes no CIBA endpoint: set psc.backchannel_authentication_endpoint or use flow = \"code\"".into(),
            )
        })?;
    let config = &core.config;
    let mut form = vec![("scope", config.scope.as_str()), ("login_hint", login_hint)];
    if let Some(message) = binding_message {
        form.push(("binding_message", message));
    }
    if !config.acr_values.is_empty() {
        form.push(("acr_values", config.acr_values.as_str()));
    }
    let answer = core.http.post_client_form(&endpoint, &form).await?;
    let started: Started = serde_json::from_slice(&answer.body).map_err(|e| {
        PscError::Protocol(format!(
            "the CIBA endpoint sent an unreadable answer (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    tracing::info!(
        expires_in = started.expires_in,
        interval = started.interval,
        "PSC CIBA request accepted, waiting for approval"
    );

    let limit = config
        .login_deadline()
        .min(Duration::from_secs(started.expires_in.max(1)));
    let deadline = Instant::now() + limit;
    let mut interval = Duration::from_secs(started.interval.unwrap_or(DEFAULT_INTERVAL).max(1));
    let poll = [
        ("grant_type", GRANT),
        ("auth_req_id", started.auth_req_id.expose_secret()),
    ];
    loop {
        if Instant::now() + interval > deadline {
            return Err(PscError::Timeout(limit.as_secs()));
        }
        tokio::time::sleep(interval).await;
        match core.token_grant(&poll).await {
            Ok(tokens) => {
                let id_token = tokens
                    .id_token
                    .as_ref()
                    .ok_or_else(|| PscError::Protocol("the CIBA answer has no ID token".into()))?;
                let identity = core
                    .provider
                    .verify_id_token(&core.http, id_token, None)
                    .await?;
                tracing::info!("PSC CIBA login approved");
                return Ok((tokens, identity));
            }
            Err(e) => match e.refusal_code() {
                Some("authorization_pending") => {}
                Some("slow_down") => {
                    interval += SLOW_DOWN_STEP;
                    tracing::debug!(?interval, "PSC asked to poll more slowly");
                }
                _ => return Err(e),
            },
        }
    }
}
