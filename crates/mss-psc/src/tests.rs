//! Interop tests against a real oidc-provider (mss-testkit), plus the checks that need no
//! server. Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use mss_testkit::oidc::{ClientAuth as IdpAuth, OidcOptions, OidcProvider};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::timeout;
use url::Url;

use crate::{ClientAuth, Flow, PscClient, PscConfig, PscError, PscSession, SessionEnd};

const RPPS: &str = "899700000001";
const EMAIL: &str = "jean.dupont@test.local";
/// Upper bound for any single step of a test.
const STEP: Duration = Duration::from_secs(20);

fn options() -> OidcOptions {
    OidcOptions::default().account(RPPS, EMAIL)
}

fn config_for(idp: &OidcProvider) -> PscConfig {
    let mut config = PscConfig::new(idp.issuer(), idp.client_id());
    config.client_secret = Some(SecretString::from(idp.client_secret()));
    config.login_hint = Some(EMAIL.into());
    config.login_timeout = 30;
    config.http_timeout = 5;
    config
}

async fn client(idp: &OidcProvider) -> PscClient {
    timeout(STEP, PscClient::new(config_for(idp)))
        .await
        .expect("discovery in time")
        .expect("discovery")
}

async fn ciba_session(idp: &OidcProvider) -> PscSession {
    let client = client(idp).await;
    timeout(STEP, client.login_ciba(EMAIL, Some("mss test")))
        .await
        .expect("CIBA in time")
        .expect("CIBA login")
}

fn claims(token: &SecretString) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.expose_secret().split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn discovery_reads_endpoints_and_config_overrides_them() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let client = client(&idp).await;
    let e = client.endpoints();
    let at = |path: &str| format!("{}{path}", idp.issuer());
    assert_eq!(e.token.as_str(), at("/token"));
    assert_eq!(e.jwks.as_str(), at("/jwks"));
    assert_eq!(e.authorization.as_ref().unwrap().as_str(), at("/auth"));
    assert_eq!(
        e.backchannel_authentication.as_ref().unwrap().as_str(),
        at("/backchannel")
    );
    assert_eq!(
        e.revocation.as_ref().unwrap().as_str(),
        at("/token/revocation")
    );
    assert_eq!(e.end_session.as_ref().unwrap().as_str(), at("/session/end"));

    // PSC serves its login page on another host than the issuer: configuration wins.
    let mut config = config_for(&idp);
    config.authorization_endpoint = Some("http://127.0.0.2:9/auth".into());
    let client = PscClient::new(config).await.unwrap();
    assert_eq!(
        client.endpoints().authorization.as_ref().unwrap().as_str(),
        "http://127.0.0.2:9/auth"
    );

    // An overridden endpoint is the one used.
    let dead = format!("http://127.0.0.1:{}/ciba", mss_testkit::free_port());
    let mut config = config_for(&idp);
    config.backchannel_authentication_endpoint = Some(dead.clone());
    let client = PscClient::new(config).await.unwrap();
    let err = timeout(STEP, client.login_ciba(EMAIL, None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, PscError::Network { ref url, .. } if *url == dead),
        "{err}"
    );

    // Discovery must describe the issuer we asked for.
    // (Same server, reached as `localhost`: its document names 127.0.0.1.)
    let mut config = config_for(&idp);
    config.issuer = idp.issuer().replace("127.0.0.1", "localhost");
    let err = PscClient::new(config).await.unwrap_err();
    assert!(matches!(err, PscError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("is for issuer"), "{err}");
}

#[tokio::test]
async fn discovery_refuses_plain_http_off_loopback_and_reports_unreachable_hosts() {
    let mut config = PscConfig::new("http://psc.example.org/auth/realms/x", "mss");
    config.client_secret = Some(SecretString::from("s"));
    let err = PscClient::new(config).await.unwrap_err();
    assert!(matches!(err, PscError::Config(_)), "{err}");
    assert!(err.to_string().contains("https"), "{err}");

    // Nothing listens there: a network error naming the URL, within the HTTP timeout.
    let port = mss_testkit::free_port();
    let mut config = PscConfig::new(&format!("http://127.0.0.1:{port}"), "mss");
    config.client_secret = Some(SecretString::from("s"));
    config.http_timeout = 3;
    let err = timeout(STEP, PscClient::new(config))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PscError::Network { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn ciba_approved_gives_a_session_with_a_verified_identity() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let session = ciba_session(&idp).await;
    assert_eq!(session.subject(), RPPS);
    assert_eq!(session.email(), Some(EMAIL));
    assert_eq!(session.acr(), Some("eidas1"));
    let token = session.access_token().await.unwrap();
    let claims = claims(&token);
    assert_eq!(claims["email"], EMAIL);
    assert_eq!(claims["azp"], idp.client_id());
    assert!(session.end_reason().is_none());
    assert!(session.is_active());
    let stats = idp.stats();
    assert_eq!(stats.backchannel_requests, 1);
    assert_eq!(stats.slow_downs, 0, "the client honours the interval");
}

#[tokio::test]
async fn ciba_with_client_secret_post() {
    let Some(idp) = OidcProvider::start(options().client_auth(IdpAuth::SecretPost)) else {
        return;
    };
    let mut config = config_for(&idp);
    config.client_auth = Some(ClientAuth::ClientSecretPost);
    config.flow = Flow::Ciba;
    let client = PscClient::new(config).await.unwrap();
    let session = timeout(STEP, client.login()).await.unwrap().unwrap();
    assert_eq!(session.subject(), RPPS);
}

#[tokio::test]
async fn ciba_denied_by_the_user_is_access_denied() {
    let Some(idp) = OidcProvider::start(options().ciba_deny(EMAIL)) else {
        return;
    };
    let client = client(&idp).await;
    let err = timeout(STEP, client.login_ciba(EMAIL, None))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("access_denied"), "{err}");
}

#[tokio::test]
async fn ciba_unknown_professional_is_refused() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let client = client(&idp).await;
    let err = client
        .login_ciba("nobody@test.local", None)
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("unknown_user_id"), "{err}");
}

#[tokio::test]
async fn ciba_slow_approval_keeps_polling_at_the_interval() {
    let Some(idp) = OidcProvider::start(options().ciba_approve_after(Duration::from_millis(3200)))
    else {
        return;
    };
    let started = std::time::Instant::now();
    let session = ciba_session(&idp).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(12), "{took:?}");
    let stats = idp.stats();
    assert_eq!(stats.slow_downs, 0);
    // One poll a second while pending (a few more if the machine is slow), never a burst.
    let most = took.as_secs() + 1;
    assert!(
        (3..=most).contains(&stats.ciba_polls),
        "{stats:?} in {took:?}"
    );
    assert!(session.access_token().await.is_ok());
}

#[tokio::test]
async fn ciba_slow_down_makes_the_client_wait_longer() {
    // Interval 1 s announced, but polls must be 3 s apart: the first poll meets slow_down,
    // the client adds 5 s, the next poll succeeds.
    let Some(idp) = OidcProvider::start(
        options()
            .ciba_approve_after(Duration::from_millis(200))
            .ciba_min_poll_gap(Duration::from_secs(3)),
    ) else {
        return;
    };
    let started = std::time::Instant::now();
    let _session = ciba_session(&idp).await;
    let took = started.elapsed();
    let stats = idp.stats();
    assert_eq!(stats.slow_downs, 1, "{stats:?}");
    assert_eq!(stats.ciba_polls, 2, "{stats:?}");
    assert!(took >= Duration::from_secs(6), "{took:?}");
}

#[tokio::test]
async fn ciba_gives_up_at_the_login_timeout() {
    let Some(idp) = OidcProvider::start(options().ciba_approve_after(Duration::from_secs(60)))
    else {
        return;
    };
    let mut config = config_for(&idp);
    config.login_timeout = 3;
    let client = PscClient::new(config).await.unwrap();
    let err = timeout(STEP, client.login_ciba(EMAIL, None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PscError::Timeout(3)), "{err}");
    assert!(err.to_string().contains("start it again"), "{err}");
}

/// Drives oidc-provider's development login and consent pages like a browser would.
async fn drive_browser(start: Url, login: String) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut next = start;
    for _ in 0..12 {
        let resp = http
            .get(next.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_redirection() {
            let location = resp.headers()["location"]
                .to_str()
                .map_err(|e| e.to_string())?;
            next = next.join(location).map_err(|e| e.to_string())?;
            continue;
        }
        let status = resp.status();
        let html = resp.text().await.map_err(|e| e.to_string())?;
        if next.path() == "/callback" {
            return if status.is_success() {
                Ok(())
            } else {
                Err(html)
            };
        }
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| format!("no form on {next}: {html}"))?
            .replace("&amp;", "&");
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", &login), ("password", "x")]
        } else {
            vec![("prompt", "consent")]
        };
        let target = next.join(&action).map_err(|e| e.to_string())?;
        let resp = http
            .post(target.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let location = resp
            .headers()
            .get("location")
            .ok_or_else(|| format!("{target} answered {} without redirect", resp.status()))?
            .to_str()
            .map_err(|e| e.to_string())?
            .to_string();
        next = target.join(&location).map_err(|e| e.to_string())?;
    }
    Err("too many steps".into())
}

#[tokio::test]
async fn code_flow_with_pkce_through_the_login_pages() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let mut config = config_for(&idp);
    config.flow = Flow::Code;
    config.login_hint = None;
    let seen = Arc::new(std::sync::Mutex::new(None::<Url>));
    let driven = Arc::new(std::sync::Mutex::new(None));
    let (seen2, driven2) = (seen.clone(), driven.clone());
    let client = PscClient::new(config)
        .await
        .unwrap()
        .with_opener(Arc::new(move |url: &Url| {
            *seen2.lock().unwrap() = Some(url.clone());
            let task = tokio::spawn(drive_browser(url.clone(), RPPS.to_string()));
            *driven2.lock().unwrap() = Some(task);
            Ok(())
        }));
    let session = timeout(STEP, client.login()).await.unwrap().unwrap();
    assert_eq!(session.subject(), RPPS);
    assert_eq!(session.email(), Some(EMAIL));
    let task = driven.lock().unwrap().take().unwrap();
    timeout(STEP, task).await.unwrap().unwrap().unwrap();

    let url = seen.lock().unwrap().clone().unwrap();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(q("scope").as_deref(), Some("openid scope_all"));
    assert_eq!(q("acr_values").as_deref(), Some("eidas1"));
    assert!(q("state").is_some() && q("nonce").is_some());
    assert!(q("redirect_uri").unwrap().starts_with("http://127.0.0.1:"));
    assert_eq!(idp.stats().code_exchanges, 1);
    assert!(claims(&session.access_token().await.unwrap())["email"] == EMAIL);
}

#[tokio::test]
async fn code_flow_user_abort_is_refused_and_a_wrong_state_is_ignored() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let mut config = config_for(&idp);
    config.flow = Flow::Code;
    config.login_timeout = 10;
    let client = PscClient::new(config)
        .await
        .unwrap()
        .with_opener(Arc::new(move |url: &Url| {
            let q = |k: &str| {
                url.query_pairs()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.into_owned())
                    .unwrap()
            };
            let redirect = Url::parse(&q("redirect_uri")).unwrap();
            let state = q("state");
            tokio::spawn(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let http = reqwest::Client::new();
                // A forged answer without our state is ignored…
                let mut forged = redirect.clone();
                forged.set_query(Some("code=stolen&state=forged"));
                let r = http.get(forged).send().await.unwrap();
                assert_eq!(r.status(), 400);
                // …then the provider's refusal ends the login.
                let mut refusal = redirect;
                refusal
                    .query_pairs_mut()
                    .append_pair("error", "access_denied")
                    .append_pair("state", &state);
                http.get(refusal).send().await.unwrap();
            });
            Ok(())
        }));
    let err = timeout(STEP, client.login()).await.unwrap().unwrap_err();
    assert_eq!(err.refusal_code(), Some("access_denied"), "{err}");
    assert_eq!(idp.stats().code_exchanges, 0);
}

#[tokio::test]
async fn access_token_is_refreshed_before_it_expires() {
    let Some(idp) = OidcProvider::start(options().access_token_ttl(Duration::from_secs(3))) else {
        return;
    };
    let session = ciba_session(&idp).await;
    let first = session.access_token().await.unwrap();
    // Asked again at once: the same token, no refresh.
    assert_eq!(
        session.access_token().await.unwrap().expose_secret(),
        first.expose_secret()
    );
    assert_eq!(idp.stats().refreshes, 0);
    // 3 s lifetime, margin capped at half of it: renewed by the session itself after 1.5 s,
    // before the token expires.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2800);
    while idp.stats().refreshes == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idp.stats().refreshes >= 1, "renewed in the background");
    let second = session.access_token().await.unwrap();
    assert_ne!(second.expose_secret(), first.expose_secret());
    let exp = claims(&second)["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(exp > now, "a valid token is handed out");
}

#[tokio::test]
async fn refused_refresh_ends_the_session_for_everyone() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let session = ciba_session(&idp).await;
    let mailbox = session.clone(); // what an IMAP session holds
    let watcher = tokio::spawn(async move { mailbox.ended().await });
    let token = session.access_token().await.unwrap();
    assert_eq!(idp.revoke(EMAIL), 1);
    // A server refuses the token: the session tries to refresh, PSC says invalid_grant.
    session.token_refused(&token);
    let err = session.access_token().await.unwrap_err();
    assert!(matches!(err, PscError::SessionOver(_)), "{err}");
    assert!(err.to_string().contains("log in again"), "{err}");
    let end = timeout(STEP, watcher).await.unwrap().unwrap();
    assert_eq!(
        end,
        SessionEnd::RefreshRefused {
            code: "invalid_grant".into()
        }
    );
    // Later calls keep failing the same way, without asking PSC again.
    let refreshes = idp.stats().refreshes;
    assert!(matches!(
        session.access_token().await,
        Err(PscError::SessionOver(_))
    ));
    assert_eq!(idp.stats().refreshes, refreshes);
}

#[tokio::test]
async fn an_idle_session_learns_by_itself_that_psc_ended_it() {
    let Some(idp) = OidcProvider::start(options().access_token_ttl(Duration::from_secs(2))) else {
        return;
    };
    let session = ciba_session(&idp).await;
    idp.revoke(RPPS);
    let end = timeout(STEP, session.ended()).await.expect("ended in time");
    assert!(matches!(end, SessionEnd::RefreshRefused { .. }), "{end:?}");
    assert!(session.subscribe().borrow().is_some());
}

#[tokio::test]
async fn a_refused_token_is_never_handed_out_again() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let session = ciba_session(&idp).await;
    let mut seen: Vec<SecretString> = Vec::new();
    for _ in 0..3 {
        let token = session.access_token().await.unwrap();
        assert!(
            seen.iter()
                .all(|t| t.expose_secret() != token.expose_secret()),
            "a refused token came back"
        );
        session.token_refused(&token);
        seen.push(token);
    }
    assert_eq!(idp.stats().refreshes, 2);
}

#[tokio::test]
async fn logout_revokes_at_psc_and_ends_the_session() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let session = ciba_session(&idp).await;
    let refresh = session.refresh_token_for_test().await.unwrap();
    let core = session.core_for_test();
    timeout(STEP, session.logout()).await.unwrap().unwrap();
    assert_eq!(session.end_reason(), Some(SessionEnd::LoggedOut));
    assert!(!session.is_active());
    assert!(matches!(
        session.access_token().await,
        Err(PscError::SessionOver(SessionEnd::LoggedOut))
    ));
    // PSC no longer accepts the refresh token.
    let err = core
        .token_grant(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ])
        .await
        .err()
        .expect("refused");
    assert_eq!(err.refusal_code(), Some("invalid_grant"), "{err}");
}

#[tokio::test]
async fn no_secret_in_debug_output_or_errors() {
    let Some(idp) = OidcProvider::start(options()) else {
        return;
    };
    let config = config_for(&idp);
    let client = client(&idp).await;
    let session = ciba_session(&idp).await;
    let access = session.access_token().await.unwrap();
    let refresh = session.refresh_token_for_test().await.unwrap();
    idp.revoke(EMAIL);
    session.token_refused(&access);
    let err = session.access_token().await.unwrap_err();
    let printed = format!("{config:?} {client:?} {session:?} {err:?} {err} {access:?}");
    for secret in [
        access.expose_secret(),
        refresh.expose_secret(),
        idp.client_secret(),
    ] {
        assert!(!printed.contains(secret), "a secret leaked: {printed}");
    }
    assert!(
        printed.contains(RPPS),
        "the Debug output still says who: {printed}"
    );
}

/// A `Write` into a shared buffer, for capturing logs.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_in_the_logs_at_trace_level() {
    let Some(idp) = OidcProvider::start(options().access_token_ttl(Duration::from_secs(2))) else {
        return;
    };
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let session = ciba_session(&idp).await;
    let mut secrets = vec![session.access_token().await.unwrap()];
    secrets.push(session.refresh_token_for_test().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await; // a background refresh
    let renewed = session.access_token().await.unwrap();
    secrets.push(renewed.clone());
    session.token_refused(&renewed);
    secrets.push(session.access_token().await.unwrap());
    secrets.push(session.refresh_token_for_test().await.unwrap());
    session.logout().await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("PSC CIBA login approved"),
        "logs were captured: {text}"
    );
    assert!(text.contains("PSC session over"), "{text}");
    for secret in &secrets {
        assert!(
            !text.contains(secret.expose_secret()),
            "a token is in the logs"
        );
    }
    assert!(
        !text.contains(idp.client_secret()),
        "the client secret is in the logs"
    );
}

#[tokio::test]
async fn mutual_tls_client_authentication_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = mss_testkit::pki::TestPki::generate(dir.path()).unwrap();
    let lps = pki.issue_client("lps@test.local").unwrap();
    let Some(idp) = OidcProvider::start(
        options()
            .https(mss_testkit::oidc::OidcHttps {
                cert_chain: pki.server.chain.clone(),
                key: pki.server.key.clone(),
                client_ca: pki.ca_bundle.clone(),
            })
            .tls_client_auth("lps@test.local"),
    ) else {
        return;
    };
    assert!(idp.issuer().starts_with("https://127.0.0.1:"));
    let mut config = PscConfig::new(idp.issuer(), idp.client_id());
    config.login_timeout = 30;
    config.http_timeout = 5;
    config.public_roots = false;
    config.anchors = vec![pki.root.clone()];
    config.client_cert = Some(lps.chain.clone());
    config.client_key = Some(lps.key.clone());
    assert_eq!(config.client_auth_method(), ClientAuth::TlsClientAuth);
    let client = PscClient::new(config.clone()).await.unwrap();
    let session = timeout(STEP, client.login_ciba(EMAIL, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.subject(), RPPS);
    // Refresh goes through the same client authentication.
    let first = session.access_token().await.unwrap();
    session.token_refused(&first);
    assert!(session.access_token().await.is_ok());

    // mTLS without a certificate is a configuration mistake, found before any request.
    let mut anonymous = config.clone();
    anonymous.client_cert = None;
    anonymous.client_key = None;
    anonymous.client_auth = Some(ClientAuth::TlsClientAuth);
    let err = PscClient::new(anonymous).await.unwrap_err();
    assert!(matches!(err, PscError::Config(_)), "{err}");

    // A certificate from the right CA but for another client: PSC refuses the client.
    let stranger = pki.issue_client("other@test.local").unwrap();
    let mut wrong = config.clone();
    wrong.client_cert = Some(stranger.chain.clone());
    wrong.client_key = Some(stranger.key.clone());
    let client = PscClient::new(wrong).await.unwrap();
    let err = client.login_ciba(EMAIL, None).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some("invalid_client"), "{err}");

    // The test root is not a public root: with public roots only, the server is untrusted.
    let mut public = config;
    public.public_roots = true;
    public.anchors.clear();
    let err = PscClient::new(public).await.unwrap_err();
    assert!(matches!(err, PscError::Network { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn config_from_toml_with_defaults_and_checks() {
    let config: PscConfig = toml::from_str(
        r#"
        issuer = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet"
        client_id = "mss"
        client_secret = "s3cret"
        flow = "code"
        authorization_endpoint = "https://wallet.bas.psc.esante.gouv.fr/auth"
        "#,
    )
    .unwrap();
    assert_eq!(config.flow, Flow::Code);
    assert_eq!(config.scope, "openid scope_all");
    assert_eq!(config.acr_values, "eidas1");
    assert_eq!(config.client_auth_method(), ClientAuth::ClientSecretBasic);
    assert_eq!(config.refresh_margin, 60);
    assert!(config.validate().is_ok());
    assert!(!format!("{config:?}").contains("s3cret"));

    let unknown =
        toml::from_str::<PscConfig>("issuer = \"https://x\"\nclient_id = \"a\"\nsecret = \"s\"");
    assert!(unknown.is_err(), "unknown keys are errors");

    let mut mtls: PscConfig = toml::from_str(
        "issuer = \"https://x\"\nclient_id = \"a\"\nclient_cert = \"pki/c.pem\"\nclient_key = \"pki/k.pem\"",
    )
    .unwrap();
    assert_eq!(mtls.client_auth_method(), ClientAuth::TlsClientAuth);
    assert!(mtls.validate().is_ok());
    mtls.resolve_paths(std::path::Path::new("/etc/mss"));
    assert_eq!(
        mtls.client_cert.as_deref(),
        Some(std::path::Path::new("/etc/mss/pki/c.pem"))
    );

    let no_secret: PscConfig = toml::from_str("issuer = \"https://x\"\nclient_id = \"a\"").unwrap();
    assert!(no_secret.validate().unwrap_err().contains("client_secret"));
}

#[tokio::test]
async fn unreadable_client_certificate_is_a_configuration_error() {
    let mut config = PscConfig::new("https://psc.invalid", "mss");
    config.client_cert = Some("/nonexistent/cert.pem".into());
    config.client_key = Some("/nonexistent/key.pem".into());
    let err = PscClient::new(config).await.unwrap_err();
    assert!(matches!(err, PscError::Config(_)), "{err}");
    assert!(err.to_string().contains("client_cert"), "{err}");
}
