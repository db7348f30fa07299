//! Authorization code + PKCE (RFC 7636) with a loopback redirect (RFC 8252 §7.3).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use url::Url;

use crate::error::PscError;
use crate::http::clip;
use crate::provider::Identity;
use crate::{Core, TokenAnswer};

/// Largest request head accepted on the loopback listener.
const MAX_HEAD: usize = 16 * 1024;
/// Time a browser connection may take to send its request.
const READ_WAIT: Duration = Duration::from_secs(10);

/// Opens `url` with the desktop's default browser, without waiting for it. The address is
/// also printed, for a desktop without a browser opener (remote session, container).
pub(crate) fn open_in_system_browser(url: &Url) -> Result<(), String> {
    eprintln!(
        "Connexion Pro Santé Connect : si le navigateur ne s'ouvre pas, ouvrez cette adresse :\n{url}"
    );
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    let spawned = cmd
        .arg(url.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reap the opener when it exits; the browser itself lives on.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        // The printed address is enough: keep waiting for the redirect.
        Err(e) => tracing::warn!(error = %e, "cannot start the browser opener"),
    }
    Ok(())
}

/// Where the browser comes back: the configured loopback address and path.
struct Redirect {
    bind: SocketAddr,
    path: String,
}

fn redirect_target(raw: &str) -> Result<Redirect, PscError> {
    let bad = || {
        PscError::Config(format!(
            "psc.redirect_uri `{}` must be http://127.0.0.1[:port]/path or http://[::1][:port]/path",
            clip(raw)
        ))
    };
    let url = Url::parse(raw).map_err(|_| bad())?;
    let ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => ip.into(),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => ip.into(),
        _ => return Err(bad()),
    };
    if url.scheme() != "http" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad());
    }
    Ok(Redirect {
        bind: SocketAddr::new(ip, url.port().unwrap_or(0)),
        path: url.path().to_string(),
    })
}

pub(crate) async fn run(core: &Core) -> Result<(TokenAnswer, Identity), PscError> {
    let config = &core.config;
    let endpoint = core
        .provider
        .endpoints
        .authorization
        .clone()
        .ok_or_else(|| {
            PscError::Config(
            "Pro Santé Connect publishes no authorization endpoint: set psc.authorization_endpoint"
                .into(),
        )
        })?;
    let target = redirect_target(&config.redirect_uri)?;
    let listener = TcpListener::bind(target.bind).await.map_err(|e| {
        PscError::Config(format!(
            "cannot listen on {} for the login redirect: {e}",
            target.bind
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| PscError::Config(format!("loopback listener: {e}")))?;
    let mut redirect_uri = Url::parse(&format!("http://{local}"))
        .map_err(|e| PscError::Config(format!("loopback redirect: {e}")))?;
    redirect_uri.set_path(&target.path);

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random();
    let nonce = Nonce::new_random();
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("scope", &config.scope)
            .append_pair("state", state.secret())
            .append_pair("nonce", nonce.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if !config.acr_values.is_empty() {
            q.append_pair("acr_values", &config.acr_values);
        }
        if let Some(hint) = &config.login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    (core.opener)(&url).map_err(PscError::Browser)?;
    tracing::info!(%redirect_uri, "PSC login page opened in the browser, waiting for the redirect");

    let limit = config.login_deadline();
    let deadline = Instant::now() + limit;
    let code = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(accepted) = timeout(left, listener.accept()).await else {
            return Err(PscError::Timeout(limit.as_secs()));
        };
        let Ok((stream, _)) = accepted else { continue };
        match callback(stream, &target.path, state.secret(), core).await {
            Some(result) => break result?,
            None => continue,
        }
    };

    let tokens = core
        .token_grant(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.secret()),
        ])
        .await?;
    let id_token = tokens
        .id_token
        .as_ref()
        .ok_or_else(|| PscError::Protocol("the token answer has no ID token".into()))?;
    let identity = core
        .provider
        .verify_id_token(&core.http, id_token, Some(&nonce))
        .await?;
    tracing::info!("PSC login by browser completed");
    Ok((tokens, identity))
}

/// Handles one connection on the loopback listener. `None`: not our callback (another path,
/// a wrong state, garbage), keep waiting. `Some`: the code, or the provider's refusal.
async fn callback(
    mut stream: TcpStream,
    path: &str,
    state: &str,
    core: &Core,
) -> Option<Result<String, PscError>> {
    let target = match timeout(READ_WAIT, read_target(&mut stream)).await {
        Ok(Some(target)) => target,
        _ => {
            respond(&mut stream, 400, "Requête illisible.").await;
            return None;
        }
    };
    let Ok(url) = Url::parse("http://127.0.0.1").and_then(|base| base.join(&target)) else {
        respond(&mut stream, 400, "Requête illisible.").await;
        return None;
    };
    if url.path() != path {
        respond(&mut stream, 404, "Page inconnue.").await;
        return None;
    }
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    // A redirect without our state is not the answer to our request: ignore it.
    if get("state").as_deref() != Some(state) {
        respond(
            &mut stream,
            400,
            "Cette réponse ne correspond à aucune connexion en cours.",
        )
        .await;
        return None;
    }
    // RFC 9207: when present, `iss` names the provider that answered.
    if let Some(iss) = get("iss")
        && iss.trim_end_matches('/') != core.config.issuer.trim_end_matches('/')
    {
        respond(
            &mut stream,
            400,
            "Réponse d'un autre fournisseur d'identité.",
        )
        .await;
        return Some(Err(PscError::Protocol(format!(
            "the login answer comes from issuer `{}`",
            clip(&iss)
        ))));
    }
    if let Some(error) = get("error") {
        respond(
            &mut stream,
            200,
            "La connexion Pro Santé Connect n'a pas abouti. Vous pouvez fermer cette fenêtre.",
        )
        .await;
        return Some(Err(PscError::Refused {
            code: clip(&error),
            description: get("error_description").as_deref().map(clip),
        }));
    }
    let Some(code) = get("code") else {
        respond(&mut stream, 400, "Réponse sans code d'autorisation.").await;
        return Some(Err(PscError::Protocol(
            "the login answer has neither code nor error".into(),
        )));
    };
    respond(
        &mut stream,
        200,
        "Connexion Pro Santé Connect réussie. Vous pouvez fermer cette fenêtre et revenir au logiciel.",
    )
    .await;
    Some(Ok(code))
}

/// Reads a request head (bounded) and returns the request target of a GET.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await.ok()?;
        if n == 0 {
            return None;
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return (req.method == Some("GET")).then(|| req.path.map(str::to_string))?;
            }
            Ok(httparse::Status::Partial) if len < MAX_HEAD => continue,
            _ => return None,
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\"><title>Pro Santé Connect</title><p>{text}</p></html>"
    );
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = timeout(READ_WAIT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_must_be_loopback_http() {
        let r = redirect_target("http://127.0.0.1/callback").unwrap();
        assert_eq!(r.bind.port(), 0);
        assert_eq!(r.path, "/callback");
        let r = redirect_target("http://[::1]:8765/cb").unwrap();
        assert_eq!(r.bind.port(), 8765);
        for bad in [
            "https://127.0.0.1/cb",
            "http://example.org/cb",
            "http://10.0.0.1/cb",
            "http://127.0.0.1/cb?x=1",
            "not a url",
        ] {
            assert!(redirect_target(bad).is_err(), "{bad}");
        }
    }
}
