//! The PSC session of one logged-in professional: hands out fresh access tokens, refreshes
//! them ahead of expiry, and ends (with a signal every mailbox session listens to) when PSC
//! refuses the refresh token or the user logs out.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{PscError, SessionEnd};
use crate::provider::Identity;
use crate::{Core, TokenAnswer};

/// Assumed lifetime when PSC does not say (`expires_in` absent): short, to refresh early.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(60);
/// Refused tokens remembered (a few: one per refusal until the next refresh).
const REFUSED_KEPT: usize = 16;
/// Wait between refresh attempts that failed for network reasons.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A logged-in PSC session. Clones share the same tokens and the same end.
#[derive(Clone)]
pub struct PscSession {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    identity: Identity,
    tokens: tokio::sync::Mutex<Tokens>,
    refused: Mutex<Vec<SecretString>>,
    end: watch::Sender<Option<SessionEnd>>,
}

struct Tokens {
    access: SecretString,
    /// When the access token stops being valid at the servers.
    expires_at: Instant,
    /// When we renew it (expiry minus the margin).
    renew_at: Instant,
    refresh: Option<SecretString>,
}

impl std::fmt::Debug for PscSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PscSession")
            .field("subject", &self.inner.identity.subject)
            .field("ended", &*self.inner.end.borrow())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    fn from_answer(
        answer: TokenAnswer,
        margin: Duration,
        previous_refresh: Option<SecretString>,
    ) -> Self {
        let now = Instant::now();
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(UNKNOWN_LIFETIME);
        // A margin larger than half the lifetime would refresh at every call.
        let margin = margin.min(lifetime / 2);
        Tokens {
            access: answer.access_token,
            expires_at: now + lifetime,
            renew_at: now + lifetime - margin,
            // PSC may keep the same refresh token (no rotation): keep the old one then.
            refresh: answer.refresh_token.or(previous_refresh),
        }
    }
}

impl PscSession {
    pub(crate) fn start(
        core: Arc<Core>,
        answer: TokenAnswer,
        identity: Identity,
    ) -> Result<PscSession, PscError> {
        let tokens = Tokens::from_answer(answer, core.config.margin(), None);
        let (end, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            core,
            identity,
            tokens: tokio::sync::Mutex::new(tokens),
            refused: Mutex::new(Vec::new()),
            end,
        });
        tokio::spawn(keep_fresh(Arc::downgrade(&inner)));
        Ok(PscSession { inner })
    }

    /// The `sub` of the ID token.
    pub fn subject(&self) -> &str {
        &self.inner.identity.subject
    }

    /// The `email` claim of the ID token, when PSC gives it.
    pub fn email(&self) -> Option<&str> {
        self.inner.identity.email.as_deref()
    }

    /// The authentication level (`acr`) of the ID token, when PSC gives it.
    pub fn acr(&self) -> Option<&str> {
        self.inner.identity.acr.as_deref()
    }

    /// A valid access token: the current one, or a new one when it is near expiry or was
    /// refused by a server. Fails with [`PscError::SessionOver`] once the session ended.
    pub async fn access_token(&self) -> Result<SecretString, PscError> {
        self.inner.fresh_token().await
    }

    /// Tells the session that a server refused `token`: it is never handed out again, and
    /// the next [`access_token`](Self::access_token) refreshes.
    pub fn token_refused(&self, token: &SecretString) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(|e| e.into_inner());
        if !refused
            .iter()
            .any(|t| t.expose_secret() == token.expose_secret())
        {
            if refused.len() == REFUSED_KEPT {
                refused.remove(0);
            }
            refused.push(token.clone());
        }
    }

    /// True while the PSC session runs: a mailbox may reopen its connection (SC.MSS/CONF.11).
    pub fn is_active(&self) -> bool {
        self.inner.end.borrow().is_none()
    }

    /// Why the session ended, or `None` while it runs.
    pub fn end_reason(&self) -> Option<SessionEnd> {
        self.inner.end.borrow().clone()
    }

    /// Waits until the session ends (refresh refused, logout) and says why. Every IMAP/SMTP
    /// session of the user selects on this and closes (SC.MSS/CONF.10).
    pub async fn ended(&self) -> SessionEnd {
        let mut rx = self.inner.end.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(end) => end.clone().unwrap_or(SessionEnd::LoggedOut),
            // The sender lives in `inner`, which `self` keeps alive.
            Err(_) => SessionEnd::LoggedOut,
        }
    }

    /// A receiver of the end signal, for code that prefers a `watch` (None while running).
    pub fn subscribe(&self) -> watch::Receiver<Option<SessionEnd>> {
        self.inner.end.subscribe()
    }

    /// Ends the session: revokes the refresh token at PSC (or ends the session at its
    /// logout endpoint), forgets the tokens and fires the end signal. The session is over
    /// locally even when PSC cannot be reached; the error then says so.
    pub async fn logout(&self) -> Result<(), PscError> {
        let mut tokens = self.inner.tokens.lock().await;
        let refresh = tokens.refresh.take();
        tokens.access = SecretString::from("");
        tokens.expires_at = Instant::now();
        self.inner.finish(SessionEnd::LoggedOut);
        drop(tokens);
        let core = &self.inner.core;
        let Some(refresh) = refresh else {
            return Ok(());
        };
        let endpoints = &core.provider.endpoints;
        let result = if let Some(url) = &endpoints.revocation {
            core.http
                .post_client_form(
                    url,
                    &[
                        ("token", refresh.expose_secret()),
                        ("token_type_hint", "refresh_token"),
                    ],
                )
                .await
        } else if let Some(url) = &endpoints.end_session {
            // Keycloak (PSC) ends a session from the back end with the refresh token.
            core.http
                .post_client_form(url, &[("refresh_token", refresh.expose_secret())])
                .await
        } else {
            tracing::warn!("PSC publishes neither revocation nor end session endpoint");
            return Ok(());
        };
        result.map(|_| ())
    }
}

#[cfg(test)]
impl PscSession {
    pub(crate) async fn refresh_token_for_test(&self) -> Option<SecretString> {
        self.inner.tokens.lock().await.refresh.clone()
    }
    pub(crate) fn core_for_test(&self) -> Arc<Core> {
        self.inner.core.clone()
    }
}

impl Inner {
    fn is_refused(&self, token: &SecretString) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused
            .iter()
            .any(|t| t.expose_secret() == token.expose_secret())
    }

    fn finish(&self, why: SessionEnd) {
        self.end.send_if_modified(|end| {
            if end.is_none() {
                tracing::warn!(reason = %why, "PSC session over");
                *end = Some(why);
                true
            } else {
                false
            }
        });
    }

    fn over(&self) -> Option<PscError> {
        self.end.borrow().clone().map(PscError::SessionOver)
    }

    /// The token to use now; refreshes when due or refused. One refresh at a time: the
    /// others wait on the lock and then find the new token.
    async fn fresh_token(&self) -> Result<SecretString, PscError> {
        if let Some(over) = self.over() {
            return Err(over);
        }
        let mut tokens = self.tokens.lock().await;
        if let Some(over) = self.over() {
            return Err(over);
        }
        let now = Instant::now();
        let refused = self.is_refused(&tokens.access);
        if !refused && now < tokens.renew_at {
            return Ok(tokens.access.clone());
        }
        match self.refresh(&mut tokens).await {
            Ok(()) => {
                if self.is_refused(&tokens.access) {
                    return Err(PscError::Protocol(
                        "the refreshed access token is one a server already refused".into(),
                    ));
                }
                Ok(tokens.access.clone())
            }
            Err(PscError::Refused { code, .. }) => {
                tokens.refresh = None;
                tokens.access = SecretString::from("");
                self.finish(SessionEnd::RefreshRefused { code: code.clone() });
                Err(PscError::SessionOver(SessionEnd::RefreshRefused { code }))
            }
            // PSC unreachable: the current token still works until it expires.
            Err(e) if !refused && now < tokens.expires_at => {
                tracing::warn!(error = %e, "PSC token refresh failed, keeping the current token");
                Ok(tokens.access.clone())
            }
            Err(e) => Err(e),
        }
    }

    async fn refresh(&self, tokens: &mut Tokens) -> Result<(), PscError> {
        let Some(refresh) = tokens.refresh.clone() else {
            return Err(PscError::Refused {
                code: "no_refresh_token".into(),
                description: Some("PSC gave no refresh token".into()),
            });
        };
        let core = &self.core;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ];
        if !core.config.scope.is_empty() {
            form.push(("scope", core.config.scope.as_str()));
        }
        let answer = core.token_grant(&form).await?;
        if let Some(id_token) = &answer.id_token {
            let identity = core
                .provider
                .verify_id_token(&core.http, id_token, None)
                .await?;
            if identity.subject != self.identity.subject {
                return Err(PscError::IdToken(
                    "the refreshed ID token names another person".into(),
                ));
            }
        }
        *tokens = Tokens::from_answer(answer, core.config.margin(), Some(refresh));
        tracing::debug!("PSC access token refreshed");
        Ok(())
    }
}

/// Refreshes ahead of expiry even while no one asks for a token, so an idle session learns
/// at once that PSC ended it (and its mailboxes close). Stops with the session.
async fn keep_fresh(inner: Weak<Inner>) {
    loop {
        let (renew_at, mut end) = {
            let Some(inner) = inner.upgrade() else { return };
            let renew_at = inner.tokens.lock().await.renew_at;
            (renew_at, inner.end.subscribe())
        };
        tokio::select! {
            _ = tokio::time::sleep_until(renew_at) => {}
            _ = end.wait_for(Option::is_some) => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.over().is_some() {
            return;
        }
        let outcome = inner.fresh_token().await;
        let renewed = inner.tokens.lock().await.renew_at > Instant::now();
        drop(inner);
        match outcome {
            Err(PscError::SessionOver(_)) => return,
            Err(e) => tracing::warn!(error = %e, "PSC token refresh failed, retrying"),
            Ok(_) => {}
        }
        if !renewed {
            // Refresh failed but the token still works: try again a bit later.
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}
