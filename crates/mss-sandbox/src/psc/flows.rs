//! The login flows: authorization code + PKCE through the login page, the token endpoint
//! (code, refresh, CIBA) and the CIBA backchannel request.

use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::routes::{
    App, CIBA_GRANT, CODE_LIFETIME, OAuthError, OAuthResult, Shared, form, json_ok,
    loopback_redirect, page_error, params, pkce_ok, same, server_error, with_query,
};
use super::state::{self, Ciba, Code, Pending, digest};
use super::{CibaAnswer, page};
use crate::random;

pub(super) async fn authorize(
    State(app): App,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let p = match params(pairs) {
        Ok(p) => p,
        Err(e) => return page_error(StatusCode::BAD_REQUEST, &e.2),
    };
    let get = |k: &str| p.get(k).map(String::as_str);
    if get("client_id") != Some(app.settings.client_id.as_str()) {
        return page_error(StatusCode::BAD_REQUEST, "Client inconnu (client_id).");
    }
    let Some(redirect_uri) = get("redirect_uri").filter(|r| loopback_redirect(r)) else {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Adresse de retour refusée : seule une adresse http de bouclage (127.0.0.1, localhost) est acceptée.",
        );
    };
    let state_param = get("state");
    let fail = |error: &str, description: &str| -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &app.issuer));
        Redirect::to(&with_query(redirect_uri, &pairs)).into_response()
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "only response_type=code");
    }
    if !get("scope").is_some_and(|s| s.split(' ').any(|w| w == "openid")) {
        return fail("invalid_scope", "the scope must contain openid");
    }
    let Some(challenge) = get("code_challenge").filter(|c| pkce_ok(c)) else {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge missing or malformed",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    let Ok(id) = random::token() else {
        return page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Erreur interne du bac à sable.",
        );
    };
    let pending = Pending {
        redirect_uri: redirect_uri.to_owned(),
        state: state_param.map(str::to_owned),
        nonce: get("nonce").map(str::to_owned),
        challenge: challenge.to_owned(),
        scope: get("scope").unwrap_or_default().to_owned(),
        login_hint: get("login_hint").map(str::to_owned),
        expires: Instant::now() + CODE_LIFETIME,
    };
    let hint = pending.login_hint.clone();
    {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        state::insert_bounded(&mut st.pending, id.clone(), pending, |p| p.expires);
    }
    let mut response = Html(page::login(
        &id,
        &app.settings.professionals,
        hint.as_deref(),
    ))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

pub(super) async fn login(
    State(app): App,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let p = match form(body) {
        Ok(p) => p,
        Err(e) => return page_error(StatusCode::BAD_REQUEST, &e.2),
    };
    let request = p.get("request").map(String::as_str).unwrap_or_default();
    let pending = {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        st.pending.remove(request)
    };
    let Some(pending) = pending.filter(|p| p.expires > Instant::now()) else {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Cette demande de connexion a expiré ou a déjà servi : recommencez depuis le logiciel.",
        );
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let chosen = p
        .get("professional")
        .map(String::as_str)
        .unwrap_or_default();
    let code;
    if chosen.is_empty() {
        pairs.push(("error", "access_denied"));
        pairs.push(("error_description", "the professional cancelled the login"));
    } else {
        let Some(person) = app
            .settings
            .professionals
            .iter()
            .find(|x| x.national_id == chosen)
        else {
            return page_error(StatusCode::BAD_REQUEST, "Professionnel inconnu.");
        };
        let Ok(new_code) = random::token() else {
            return page_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Erreur interne du bac à sable.",
            );
        };
        code = new_code;
        let grant = Code {
            redirect_uri: pending.redirect_uri.clone(),
            nonce: pending.nonce.clone(),
            challenge: pending.challenge.clone(),
            scope: pending.scope.clone(),
            sub: person.national_id.clone(),
            expires: Instant::now() + CODE_LIFETIME,
        };
        {
            let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
            state::insert_bounded(&mut st.codes, digest(&code), grant, |c| c.expires);
        }
        pairs.push(("code", &code));
    }
    if let Some(s) = &pending.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &app.issuer));
    Redirect::to(&with_query(&pending.redirect_uri, &pairs)).into_response()
}

pub(super) async fn token(
    State(app): App,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> OAuthResult {
    let p = form(body)?;
    app.authenticate_client(&headers, &p)?;
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    match get("grant_type") {
        "authorization_code" => {
            let grant = {
                let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                // Removed whatever happens next: a code is good for one attempt.
                st.codes.remove(&digest(get("code")))
            };
            let grant = grant
                .filter(|g| g.expires > Instant::now())
                .ok_or_else(|| OAuthError::bad("invalid_grant", "unknown, used or expired code"))?;
            if get("redirect_uri") != grant.redirect_uri {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request",
                ));
            }
            let verifier = get("code_verifier");
            if !pkce_ok(verifier) {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "code_verifier missing or malformed",
                ));
            }
            let computed = URL_SAFE_NO_PAD.encode(digest(verifier));
            if !same(&computed, &grant.challenge) {
                return Err(OAuthError::bad("invalid_grant", "PKCE verification failed"));
            }
            let sid = random::token().map_err(|_| server_error())?;
            app.issue(&grant.sub, &grant.scope, &sid, grant.nonce.as_deref())
        }
        "refresh_token" => {
            let grant = {
                let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
                let grant = st.refresh.remove(&digest(get("refresh_token")));
                grant.filter(|g| g.expires > Instant::now() && st.sessions.contains(&g.sid))
            };
            let grant = grant.ok_or_else(|| {
                OAuthError::bad(
                    "invalid_grant",
                    "refresh token unknown, used, expired or its session ended",
                )
            })?;
            app.issue(&grant.sub, &grant.scope, &grant.sid, None)
        }
        CIBA_GRANT => ciba_poll(&app, get("auth_req_id")),
        "" => Err(OAuthError::bad("invalid_request", "grant_type is missing")),
        _ => Err(OAuthError::bad(
            "unsupported_grant_type",
            "authorization_code, refresh_token or CIBA only",
        )),
    }
}

fn ciba_poll(app: &Shared, auth_req_id: &str) -> OAuthResult {
    let now = Instant::now();
    let key = digest(auth_req_id);
    let interval = Duration::from_secs(app.settings.ciba_interval);
    let request = {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(request) = st.ciba.get_mut(&key) else {
            return Err(OAuthError::bad(
                "invalid_grant",
                "unknown or finished auth_req_id",
            ));
        };
        if request.expires <= now {
            st.ciba.remove(&key);
            return Err(OAuthError::bad(
                "expired_token",
                "the professional did not answer in time",
            ));
        }
        // A little slack: the client measures from our answer, we from its request.
        let too_soon = request
            .last_poll
            .is_some_and(|last| now.duration_since(last) + Duration::from_millis(200) < interval);
        request.last_poll = Some(now);
        if too_soon {
            return Err(OAuthError::bad(
                "slow_down",
                format!("poll at most every {} s", interval.as_secs()),
            ));
        }
        let answer = app.settings.professional(&request.sub).map(|p| p.ciba);
        if request.answer_at > now || answer == Some(CibaAnswer::Ignore) {
            return Err(OAuthError::bad(
                "authorization_pending",
                "waiting for the professional",
            ));
        }
        st.ciba.remove(&key).expect("present above")
    };
    if app.settings.professional(&request.sub).map(|p| p.ciba) == Some(CibaAnswer::Refuse) {
        return Err(OAuthError::bad(
            "access_denied",
            "the professional declined the request",
        ));
    }
    let sid = random::token().map_err(|_| server_error())?;
    app.issue(&request.sub, &request.scope, &sid, None)
}

pub(super) async fn bc_authorize(
    State(app): App,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> OAuthResult {
    let p = form(body)?;
    app.authenticate_client(&headers, &p)?;
    let get = |k: &str| p.get(k).map(String::as_str);
    let scope = get("scope").unwrap_or_default();
    if !scope.split(' ').any(|w| w == "openid") {
        return Err(OAuthError::bad(
            "invalid_scope",
            "the scope must contain openid",
        ));
    }
    if get("login_hint_token").is_some() || get("id_token_hint").is_some() {
        return Err(OAuthError::bad(
            "invalid_request",
            "only login_hint is supported",
        ));
    }
    let hint = get("login_hint").unwrap_or_default();
    if hint.is_empty() {
        return Err(OAuthError::bad("invalid_request", "login_hint is required"));
    }
    if get("binding_message").is_some_and(|m| m.chars().count() > 64) {
        return Err(OAuthError::bad(
            "invalid_binding_message",
            "binding_message is longer than 64 characters",
        ));
    }
    let person = app.settings.professional(hint).ok_or_else(|| {
        OAuthError::bad(
            "unknown_user_id",
            "no test professional has this login_hint",
        )
    })?;
    let id = random::token().map_err(|_| server_error())?;
    let now = Instant::now();
    let request = Ciba {
        sub: person.national_id.clone(),
        scope: scope.to_owned(),
        answer_at: now + app.settings.ciba_delay,
        expires: now + Duration::from_secs(app.settings.ciba_expires_in),
        last_poll: None,
    };
    {
        let mut st = app.state.lock().unwrap_or_else(|e| e.into_inner());
        state::insert_bounded(&mut st.ciba, digest(&id), request, |r| r.expires);
    }
    Ok(json_ok(json!({
        "auth_req_id": id,
        "expires_in": app.settings.ciba_expires_in,
        "interval": app.settings.ciba_interval.max(1),
    })))
}
