//! The simulator's router, its shared state and request helpers, and the endpoints around
//! the login flows (discovery, JWKS, introspection, revocation, userinfo, end of session);
//! the flows themselves are in `flows.rs`. Every input is checked: duplicated or oversized
//! parameters are refused, secrets are compared in constant time, bodies are capped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::state::{self, Refresh, digest};
use super::{PscSettings, SigningKey, flows, page};
use crate::random;

/// Largest request body: OAuth forms are a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;
/// Largest single parameter value.
pub(super) const MAX_VALUE: usize = 4096;
/// Lifetime of a login page and of an authorization code.
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(120);
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

pub struct Shared {
    pub issuer: String,
    pub settings: PscSettings,
    pub key: SigningKey,
    pub state: Mutex<state::State>,
}

pub(super) type App = State<Arc<Shared>>;
pub(super) type Params = HashMap<String, String>;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/auth", get(flows::authorize))
        .route("/auth/login", post(flows::login))
        .route("/token", post(flows::token))
        .route("/bc-authorize", post(flows::bc_authorize))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/userinfo", get(userinfo))
        .route("/logout", get(logout_get).post(logout_post))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// An OAuth error answer (RFC 6749 §5.2).
pub(super) struct OAuthError(pub StatusCode, pub &'static str, pub String);

impl OAuthError {
    pub(super) fn bad(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError(StatusCode::BAD_REQUEST, code, description.into())
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({ "error": self.1, "error_description": self.2 }));
        let mut response = (self.0, body).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"psc-sandbox\""),
            );
        }
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        response
    }
}

pub(super) type OAuthResult = Result<Response, OAuthError>;

/// One value per name, each of bounded size.
pub(super) fn params(pairs: Vec<(String, String)>) -> Result<Params, OAuthError> {
    let mut out = Params::new();
    for (name, value) in pairs {
        if value.len() > MAX_VALUE || name.len() > 64 {
            return Err(OAuthError::bad(
                "invalid_request",
                format!("parameter {name:.64} is too long"),
            ));
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(OAuthError::bad(
                "invalid_request",
                format!("parameter {name} is repeated"),
            ));
        }
    }
    Ok(out)
}

pub(super) fn form(
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Params, OAuthError> {
    let Form(pairs) = body.map_err(|e| {
        // Keeps 413 for an oversized body, 415 for another content type.
        OAuthError(
            e.status(),
            "invalid_request",
            format!("expected a small application/x-www-form-urlencoded body: {e}"),
        )
    })?;
    params(pairs)
}

/// Constant-time equality of two secrets (their digests, so lengths do not leak either).
pub(super) fn same(a: &str, b: &str) -> bool {
    digest(a).ct_eq(&digest(b)).into()
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn json_ok(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

pub(super) fn decode_component(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Shared {
    /// client_secret_basic or client_secret_post, never both.
    pub(super) fn authenticate_client(
        &self,
        headers: &HeaderMap,
        p: &Params,
    ) -> Result<(), OAuthError> {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        let (id, secret) = match (basic, p.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::bad(
                    "invalid_request",
                    "two client authentication methods",
                ));
            }
            (Some(b64), None) => {
                let decoded = STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .ok_or_else(|| self.invalid_client())?;
                let (id, secret) = decoded
                    .split_once(':')
                    .ok_or_else(|| self.invalid_client())?;
                (decode_component(id), decode_component(secret))
            }
            (None, Some(secret)) => (
                p.get("client_id").cloned().unwrap_or_default(),
                secret.clone(),
            ),
            (None, None) => return Err(self.invalid_client()),
        };
        if p.get("client_id").is_some_and(|body_id| body_id != &id) {
            return Err(self.invalid_client());
        }
        let id_ok = same(&id, &self.settings.client_id);
        let secret_ok = same(&secret, self.settings.client_secret.expose_secret());
        if id_ok & secret_ok {
            Ok(())
        } else {
            Err(self.invalid_client())
        }
    }

    fn invalid_client(&self) -> OAuthError {
        OAuthError(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed".into(),
        )
    }

    /// Tokens for `sub` in session `sid`.
    pub(super) fn issue(
        &self,
        sub: &str,
        scope: &str,
        sid: &str,
        nonce: Option<&str>,
    ) -> OAuthResult {
        let s = &self.settings;
        let person = s
            .professional(sub)
            .ok_or_else(|| OAuthError::bad("invalid_grant", "unknown professional"))?;
        let now = now_secs();
        let exp = now + s.access_token_lifetime.as_secs();
        let jti = random::token().map_err(|_| server_error())?;
        let access = json!({
            "iss": self.issuer, "sub": person.national_id, "aud": s.client_id,
            "azp": s.client_id, "iat": now, "exp": exp, "jti": jti, "sid": sid,
            "scope": scope, "acr": "eidas1", "email": person.email,
            "preferred_username": person.national_id,
            "given_name": person.given_name, "family_name": person.family_name,
        });
        let mut id = json!({
            "iss": self.issuer, "sub": person.national_id, "aud": s.client_id,
            "azp": s.client_id, "iat": now, "exp": exp, "auth_time": now, "sid": sid,
            "acr": "eidas1", "email": person.email,
            "given_name": person.given_name, "family_name": person.family_name,
        });
        if let Some(nonce) = nonce {
            id["nonce"] = json!(nonce);
        }
        let refresh = random::token().map_err(|_| server_error())?;
        let refresh_expires = Instant::now() + s.refresh_token_lifetime;
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state::insert_set(&mut st.sessions, sid.to_owned());
            state::insert_bounded(
                &mut st.refresh,
                digest(&refresh),
                Refresh {
                    sub: person.national_id.clone(),
                    scope: scope.into(),
                    sid: sid.into(),
                    expires: refresh_expires,
                },
                |r| r.expires,
            );
        }
        Ok(json_ok(json!({
            "access_token": self.key.sign(&access).map_err(|_| server_error())?,
            "token_type": "Bearer",
            "expires_in": s.access_token_lifetime.as_secs(),
            "refresh_token": refresh,
            "refresh_expires_in": s.refresh_token_lifetime.as_secs(),
            "id_token": self.key.sign(&id).map_err(|_| server_error())?,
            "scope": scope,
        })))
    }

    /// The claims of an access token that is still good: our signature, our issuer, not
    /// expired, not revoked, its session still open.
    fn active_access(&self, token: &str) -> Option<Value> {
        let claims = self.key.verify(token)?;
        if claims["iss"] != self.issuer.as_str() || claims["exp"].as_u64()? <= now_secs() {
            return None;
        }
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let jti = claims["jti"].as_str()?;
        let sid = claims["sid"].as_str()?;
        (!st.revoked.contains(jti) && st.sessions.contains(sid)).then_some(claims)
    }

    fn end_session(&self, sid: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.sessions.remove(sid);
        st.refresh.retain(|_, r| r.sid != sid);
    }
}

pub(super) fn server_error() -> OAuthError {
    OAuthError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the sandbox could not sign".into(),
    )
}

async fn discovery(State(app): App) -> Response {
    let i = &app.issuer;
    json_ok(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "backchannel_authentication_endpoint": format!("{i}/bc-authorize"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "end_session_endpoint": format!("{i}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", CIBA_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": false,
        "scopes_supported": ["openid", "scope_all", "email", "profile", "offline_access"],
        "acr_values_supported": ["eidas1"],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "acr", "email", "given_name", "family_name", "preferred_username", "sid"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(app): App) -> Response {
    json_ok(app.key.jwks())
}

/// Native clients redirect to the loopback interface, on any port (RFC 8252 §7.3).
pub(super) fn loopback_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let host_ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    url.scheme() == "http" && host_ok && url.fragment().is_none() && url.username().is_empty()
}

pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(uri) {
        Ok(url) => url,
        Err(_) => return uri.to_owned(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

pub(super) fn page_error(status: StatusCode, message: &str) -> Response {
    (status, Html(page::error(message))).into_response()
}

pub(super) fn pkce_ok(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn introspect(
    State(app): App,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> OAuthResult {
    let p = form(body)?;
    app.authenticate_client(&headers, &p)?;
    let token = p.get("token").map(String::as_str).unwrap_or_default();
    if let Some(mut claims) = app.active_access(token) {
        claims["active"] = json!(true);
        claims["client_id"] = json!(app.settings.client_id);
        claims["token_type"] = json!("Bearer");
        return Ok(json_ok(claims));
    }
    let refresh = {
        let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        st.refresh
            .get(&digest(token))
            .filter(|r| r.expires > Instant::now() && st.sessions.contains(&r.sid))
            .cloned()
    };
    Ok(json_ok(match refresh {
        Some(r) => json!({
            "active": true, "sub": r.sub, "client_id": app.settings.client_id,
            "scope": r.scope, "token_type": "Refresh", "iss": app.issuer,
        }),
        None => json!({ "active": false }),
    }))
}

async fn revoke(
    State(app): App,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> OAuthResult {
    let p = form(body)?;
    app.authenticate_client(&headers, &p)?;
    let token = p.get("token").map(String::as_str).unwrap_or_default();
    let sid = {
        let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        st.refresh.get(&digest(token)).map(|r| r.sid.clone())
    };
    if let Some(sid) = sid {
        // Revoking the refresh token ends the grant, with its access tokens (RFC 7009 §2.1).
        app.end_session(&sid);
    } else if let Some(jti) = app
        .key
        .verify(token)
        .and_then(|c| c["jti"].as_str().map(str::to_owned))
    {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        state::insert_set(&mut st.revoked, jti);
    }
    // RFC 7009: the same answer whether or not the token was known.
    Ok(StatusCode::OK.into_response())
}

async fn userinfo(State(app): App, headers: HeaderMap) -> OAuthResult {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let claims = app.active_access(token.trim()).ok_or(OAuthError(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "the access token is not active".into(),
    ))?;
    let pick = |k: &str| claims[k].clone();
    Ok(json_ok(json!({
        "sub": pick("sub"), "email": pick("email"), "given_name": pick("given_name"),
        "family_name": pick("family_name"), "preferred_username": pick("preferred_username"),
    })))
}

/// RP-initiated logout with `id_token_hint` (the browser way).
async fn logout_get(State(app): App, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let p = match params(pairs) {
        Ok(p) => p,
        Err(e) => return page_error(StatusCode::BAD_REQUEST, &e.2),
    };
    logout_by_hint(&app, &p)
}

fn logout_by_hint(app: &Shared, p: &Params) -> Response {
    // An expired ID token still names the session to end.
    let claims = p.get("id_token_hint").and_then(|t| app.key.verify(t));
    if let Some(sid) = claims.as_ref().and_then(|c| c["sid"].as_str()) {
        app.end_session(sid);
    }
    match p
        .get("post_logout_redirect_uri")
        .filter(|r| loopback_redirect(r))
    {
        Some(uri) if claims.is_some() => {
            let pairs: Vec<(&str, &str)> = p
                .get("state")
                .map(|s| vec![("state", s.as_str())])
                .unwrap_or_default();
            Redirect::to(&with_query(uri, &pairs)).into_response()
        }
        _ => Html(page::logged_out()).into_response(),
    }
}

/// Logout from the back channel, as Keycloak accepts it: the client authenticates and
/// sends the refresh token of the session to end.
async fn logout_post(
    State(app): App,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let p = match form(body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(refresh) = p.get("refresh_token") else {
        return logout_by_hint(&app, &p);
    };
    if let Err(e) = app.authenticate_client(&headers, &p) {
        return e.into_response();
    }
    let sid = {
        let st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        st.refresh.get(&digest(refresh)).map(|r| r.sid.clone())
    };
    match sid {
        Some(sid) => {
            app.end_session(&sid);
            StatusCode::NO_CONTENT.into_response()
        }
        None => OAuthError::bad("invalid_grant", "unknown refresh token").into_response(),
    }
}
