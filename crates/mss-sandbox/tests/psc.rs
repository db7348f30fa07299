//! The PSC simulator through plain HTTP calls (reqwest), as any OIDC client would see it.
//! Tokens are checked with ring against the published JWKS, not with the crate's own code.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mss_sandbox::psc::{CibaAnswer, Professional, PscServer, PscSettings, SigningKey};
use reqwest::StatusCode;
use serde_json::Value;

const SECRET: &str = "s3cret:with/odd&chars";

struct Psc {
    server: PscServer,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn professionals() -> Vec<Professional> {
    let mut refuse = Professional::new(
        "899700000098",
        "Paul",
        "REFUS",
        "Médecin",
        "paul.refus@sandbox.mssante.fr",
    );
    refuse.ciba = CibaAnswer::Refuse;
    let mut silent = Professional::new(
        "899700000099",
        "Lou",
        "SILENCE",
        "Médecin",
        "lou.silence@sandbox.mssante.fr",
    );
    silent.ciba = CibaAnswer::Ignore;
    vec![
        Professional::new(
            "899700000001",
            "Jeanne",
            "MARTIN",
            "Médecin",
            "jeanne.martin@sandbox.mssante.fr",
        ),
        refuse,
        silent,
    ]
}

async fn start(tune: impl FnOnce(&mut PscSettings)) -> Psc {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::open(&dir.path().join("key.pem")).unwrap();
    let mut settings = PscSettings::new("mss-client", SECRET.to_owned().into(), professionals());
    settings.ciba_delay = Duration::from_millis(1500);
    tune(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = PscServer::start(listener, settings, key).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Psc {
        server,
        http,
        _dir: dir,
    }
}

impl Psc {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.issuer)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .basic_auth(
                "mss-client",
                Some(
                    SECRET
                        .replace(':', "%3A")
                        .replace('/', "%2F")
                        .replace('&', "%26"),
                ),
            )
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ciba_start(&self, hint: &str) -> String {
        let (status, body) = self
            .post(
                "/bc-authorize",
                &[
                    ("scope", "openid scope_all"),
                    ("login_hint", hint),
                    ("binding_message", "MSS-1234"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["interval"].as_u64().unwrap() >= 1);
        body["auth_req_id"].as_str().unwrap().to_owned()
    }

    async fn ciba_poll(&self, id: &str) -> (StatusCode, Value) {
        self.post(
            "/token",
            &[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", id),
            ],
        )
        .await
    }

    /// Polls as a client should, until something other than authorization_pending.
    async fn ciba_wait(&self, id: &str) -> (StatusCode, Value) {
        for _ in 0..30 {
            let (status, body) = self.ciba_poll(id).await;
            if body["error"] != "authorization_pending" {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(1050)).await;
        }
        panic!("CIBA never finished");
    }

    async fn jwks(&self) -> Value {
        self.http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Verifies an RS256 JWT with ring and the JWKS; returns (header, claims).
fn verify(jwt: &str, jwks: &Value) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode =
        |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    let header = decode(parts[0]);
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid in JWKS");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &sig,
        )
        .expect("signature verifies with the JWKS");
    (header, decode(parts[1]))
}

#[tokio::test]
async fn discovery_then_ciba_gives_psc_shaped_signed_tokens() {
    let psc = start(|_| {}).await;
    let disco: Value = psc
        .http
        .get(psc.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disco["issuer"], psc.server.issuer.as_str());
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "backchannel_authentication_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ] {
        let url = disco[endpoint].as_str().unwrap();
        assert!(url.starts_with(&psc.server.issuer), "{endpoint}: {url}");
    }
    assert_eq!(
        disco["backchannel_token_delivery_modes_supported"],
        serde_json::json!(["poll"])
    );
    assert_eq!(
        disco["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    let id = psc.ciba_start("899700000001").await;
    let (status, body) = psc.ciba_poll(&id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );
    // Polling again at once is too fast.
    let (_, body) = psc.ciba_poll(&id).await;
    assert_eq!(body["error"], "slow_down");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (status, tokens) = psc.ciba_wait(&id).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 40);

    let jwks = psc.jwks().await;
    let (header, claims) = verify(tokens["access_token"].as_str().unwrap(), &jwks);
    assert_eq!(header["typ"], "JWT", "Dovecot 2.3 wants typ JWT");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], psc.server.issuer.as_str());
    assert_eq!(claims["sub"], "899700000001");
    assert_eq!(claims["email"], "jeanne.martin@sandbox.mssante.fr");
    assert_eq!(claims["azp"], "mss-client");
    assert_eq!(claims["aud"], "mss-client");
    assert_eq!(claims["acr"], "eidas1");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    let (_, id_claims) = verify(tokens["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(id_claims["sub"], "899700000001");
    assert_eq!(id_claims["aud"], "mss-client");

    // The request is finished: it gives tokens once.
    let (_, again) = psc.ciba_poll(&id).await;
    assert_eq!(again["error"], "invalid_grant");
}

#[tokio::test]
async fn ciba_refusal_expiry_and_unknown_professionals() {
    let psc = start(|s| {
        s.ciba_expires_in = 3;
        s.ciba_delay = Duration::from_millis(200);
    })
    .await;
    let id = psc.ciba_start("paul.refus@sandbox.mssante.fr").await;
    let (status, body) = psc.ciba_wait(&id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("access_denied"))
    );

    let id = psc.ciba_start("899700000099").await;
    let (_, body) = psc.ciba_wait(&id).await;
    assert_eq!(body["error"], "expired_token");

    let (status, body) = psc
        .post(
            "/bc-authorize",
            &[("scope", "openid"), ("login_hint", "899700000777")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_user_id"))
    );
    let (_, body) = psc
        .post(
            "/bc-authorize",
            &[("scope", "profile"), ("login_hint", "899700000001")],
        )
        .await;
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn client_authentication_basic_or_post_never_a_wrong_secret() {
    let psc = start(|s| s.ciba_delay = Duration::ZERO).await;
    let form = [("scope", "openid"), ("login_hint", "899700000001")];
    let post = |form: Vec<(&'static str, &'static str)>, basic: Option<&'static str>| {
        let mut request = psc.http.post(psc.url("/bc-authorize")).form(&form);
        if let Some(secret) = basic {
            request = request.basic_auth("mss-client", Some(secret));
        }
        request.send()
    };
    let wrong = post(form.to_vec(), Some("not-the-secret")).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let mut with_post = form.to_vec();
    with_post.extend([("client_id", "mss-client"), ("client_secret", SECRET)]);
    let ok = post(with_post.clone(), None).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let mut wrong_post = form.to_vec();
    wrong_post.extend([("client_id", "mss-client"), ("client_secret", "s3cret")]);
    assert_eq!(
        post(wrong_post, None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let both = post(with_post, Some(SECRET)).await.unwrap();
    assert_eq!(
        both.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    assert_eq!(
        post(form.to_vec(), None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-sandbox".to_owned();
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

async fn code_login(psc: &Psc, redirect: &str, challenge: &str) -> String {
    let page = psc
        .http
        .get(psc.url("/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "mss-client"),
            ("redirect_uri", redirect),
            ("scope", "openid scope_all"),
            ("state", "st-42"),
            ("nonce", "n-7"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("acr_values", "eidas1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("lang=\"fr\"")
            && html.contains("Jeanne MARTIN")
            && html.contains("899700000001")
    );
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let answer = psc
        .http
        .post(psc.url("/auth/login"))
        .form(&[("request", request), ("professional", "899700000001")])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_redirection());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(redirect), "{location}");
    let url = url::Url::parse(&location).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-42");
    assert_eq!(q["iss"], psc.server.issuer);
    // The login page is good once.
    let replay = psc
        .http
        .post(psc.url("/auth/login"))
        .form(&[("request", request), ("professional", "899700000001")])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    q["code"].clone()
}

#[tokio::test]
async fn authorization_code_with_pkce_through_the_login_page() {
    let psc = start(|_| {}).await;
    let redirect = "http://127.0.0.1:45678/callback";
    let (verifier, challenge) = pkce();

    let code = code_login(&psc, redirect, &challenge).await;
    let (_, body) = psc
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", "x".repeat(43).as_str()),
            ],
        )
        .await;
    assert_eq!(body["error"], "invalid_grant", "wrong verifier");
    let (_, body) = psc
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(
        body["error"], "invalid_grant",
        "a code is good for one attempt only"
    );

    let code = code_login(&psc, redirect, &challenge).await;
    let (status, tokens) = psc
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, id) = verify(tokens["id_token"].as_str().unwrap(), &psc.jwks().await);
    assert_eq!(id["nonce"], "n-7");
    assert_eq!(id["sub"], "899700000001");

    // Only loopback redirects, and PKCE S256 is required.
    let refused = psc
        .http
        .get(psc.url("/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "mss-client"),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let no_pkce = psc
        .http
        .get(psc.url("/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "mss-client"),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let location = no_pkce.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("error=invalid_request") && location.contains("state=s"),
        "{location}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_end_of_session_stops_everything() {
    let psc = start(|s| s.ciba_delay = Duration::ZERO).await;
    let id = psc.ciba_start("899700000001").await;
    let (_, first) = psc.ciba_wait(&id).await;
    let refresh1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = psc
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh1)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let refresh2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(refresh1, refresh2);
    let (_, reused) = psc
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh1)],
        )
        .await;
    assert_eq!(
        reused["error"], "invalid_grant",
        "an old refresh token is retired"
    );

    let access = second["access_token"].as_str().unwrap();
    let (_, info) = psc.post("/introspect", &[("token", access)]).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["email"], "jeanne.martin@sandbox.mssante.fr");
    let userinfo: Value = psc
        .http
        .get(psc.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], "899700000001");

    // End of session (Keycloak style: refresh token to the logout endpoint).
    let (status, _) = psc.post("/logout", &[("refresh_token", refresh2)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, info) = psc.post("/introspect", &[("token", access)]).await;
    assert_eq!(info, serde_json::json!({"active": false}));
    let (_, after) = psc
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh2)],
        )
        .await;
    assert_eq!(after["error"], "invalid_grant");

    // Revocation of a refresh token ends its session too.
    let id = psc.ciba_start("899700000001").await;
    let (_, tokens) = psc.ciba_wait(&id).await;
    let (status, _) = psc
        .post(
            "/revoke",
            &[("token", tokens["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, info) = psc
        .post(
            "/introspect",
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(info["active"], false);
}

#[tokio::test]
async fn short_lived_tokens_expire_for_real() {
    let psc = start(|s| {
        s.access_token_lifetime = Duration::from_secs(1);
        s.ciba_delay = Duration::ZERO;
    })
    .await;
    let id = psc.ciba_start("899700000001").await;
    let (_, tokens) = psc.ciba_wait(&id).await;
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().unwrap();
    let (_, info) = psc.post("/introspect", &[("token", access)]).await;
    assert_eq!(info["active"], true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, info) = psc.post("/introspect", &[("token", access)]).await;
    assert_eq!(info["active"], false);
}

#[tokio::test]
async fn hostile_requests_are_refused_cleanly() {
    let psc = start(|_| {}).await;
    let big = "a".repeat(20 * 1024);
    let (status, _) = psc
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &big)],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, body) = psc
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("grant_type", "authorization_code"),
            ],
        )
        .await;
    assert_eq!(body["error"], "invalid_request");
    let (_, body) = psc
        .post("/token", &[("grant_type", "password"), ("username", "x")])
        .await;
    assert_eq!(body["error"], "unsupported_grant_type");
    let not_form = psc
        .http
        .post(psc.url("/token"))
        .basic_auth("mss-client", Some(SECRET))
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"899700000001"}"#),
        ""
    );
    let (_, info) = psc.post("/introspect", &[("token", &forged)]).await;
    assert_eq!(info["active"], false);
}

#[tokio::test]
async fn browser_logout_with_id_token_hint_ends_the_session_and_redirects_to_loopback_only() {
    let psc = start(|s| s.ciba_delay = Duration::ZERO).await;
    let id = psc.ciba_start("899700000001").await;
    let (_, tokens) = psc.ciba_wait(&id).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // A foreign redirect is not followed, and a forged hint ends nothing.
    let forged = psc
        .http
        .get(psc.url("/logout"))
        .query(&[
            ("id_token_hint", "a.b.c"),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(forged.text().await.unwrap().contains("déconnecté"));
    let (_, info) = psc.post("/introspect", &[("token", refresh)]).await;
    assert_eq!(
        info["active"], true,
        "a forged hint must not end the session"
    );

    let out = psc
        .http
        .get(psc.url("/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ("state", "z"),
        ])
        .send()
        .await
        .unwrap();
    assert!(out.status().is_redirection());
    assert_eq!(out.headers()["location"], "http://127.0.0.1:9/bye?state=z");
    let (_, after) = psc
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(after["error"], "invalid_grant");
}
