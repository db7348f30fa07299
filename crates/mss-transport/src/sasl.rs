//! SASL payloads for the API LPS: XOAUTH2 and OAUTHBEARER (RFC 7628) with a Pro Santé Connect
//! access token for BAL PER/ORG, EXTERNAL with the TLS client certificate for BAL APP.
//!
//! Payloads are built from a [`SecretString`] into [`Zeroizing`] buffers, so the token copy
//! is wiped when the exchange is over. A server that refuses a token may first send a JSON
//! error challenge (`{"status":"invalid_token",…}`); [`SaslClient`] answers it the way each
//! mechanism requires (an empty response for XOAUTH2, `%x01` for OAUTHBEARER) and keeps the
//! server's status so the error can say why.
//!
//! ```
//! use mss_transport::sasl::{Mechanism, SaslClient};
//! use secrecy::SecretString;
//!
//! let token = SecretString::from("eyJhbGciOi.eyJzdWIiOi.c2ln");
//! let mut client = SaslClient::token(Mechanism::XOAuth2, "jean@hopital.mssante.fr", &token).unwrap();
//! let first = client.respond(b"");
//! assert!(first.starts_with(b"user=jean@hopital.mssante.fr\x01auth=Bearer "));
//! // The server refused and sent its error challenge: XOAUTH2 answers with an empty line.
//! assert!(client.respond(br#"{"status":"invalid_token"}"#).is_empty());
//! assert_eq!(client.server_error(), Some("invalid_token"));
//! ```

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

/// The mechanisms mss speaks. XOAUTH2 is the one MSSanté documents; OAUTHBEARER is its
/// standard twin, used only when a server offers it without XOAUTH2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    XOAuth2,
    OAuthBearer,
    External,
}

impl Mechanism {
    /// The name on the wire (`AUTHENTICATE <name>`, `AUTH <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::External => "EXTERNAL",
        }
    }
}

/// Why a payload could not be built (the inputs come from configuration or the IdP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the mailbox address {0:?} contains a control character")]
    BadUser(String),
    #[error("the access token contains characters a bearer token cannot have")]
    BadToken,
    #[error("{0} needs an access token, EXTERNAL needs a client certificate")]
    WrongCredential(&'static str),
}

/// XOAUTH2 initial response: `user=<addr>\x01auth=Bearer <token>\x01\x01`.
pub fn xoauth2(user: &str, token: &SecretString) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    check_user(user)?;
    let token = checked_token(token)?;
    let mut out = Zeroizing::new(Vec::with_capacity(user.len() + token.len() + 24));
    out.extend_from_slice(b"user=");
    out.extend_from_slice(user.as_bytes());
    out.extend_from_slice(b"\x01auth=Bearer ");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(b"\x01\x01");
    Ok(out)
}

/// OAUTHBEARER initial response (RFC 7628 §3.1): a GS2 header naming the authorization
/// identity, then `auth=Bearer <token>`. Commas and equals signs in the address are escaped
/// as the GS2 grammar requires (`=2C`, `=3D`).
pub fn oauthbearer(user: &str, token: &SecretString) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    check_user(user)?;
    let token = checked_token(token)?;
    let mut out = Zeroizing::new(Vec::with_capacity(user.len() + token.len() + 32));
    out.extend_from_slice(b"n,a=");
    for b in user.bytes() {
        match b {
            b',' => out.extend_from_slice(b"=2C"),
            b'=' => out.extend_from_slice(b"=3D"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b",\x01auth=Bearer ");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(b"\x01\x01");
    Ok(out)
}

/// EXTERNAL initial response: the authorization identity, or empty to be whoever the
/// certificate names (RFC 4422 appendix A).
pub fn external(authzid: Option<&str>) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    let id = authzid.unwrap_or("");
    check_user(id)?;
    Ok(Zeroizing::new(id.as_bytes().to_vec()))
}

/// What a client answers to a server's error challenge: XOAUTH2 sends an empty response,
/// OAUTHBEARER sends a single `%x01` (RFC 7628 §3.2.3). The server then fails the exchange.
pub fn error_challenge_answer(mechanism: Mechanism) -> &'static [u8] {
    match mechanism {
        Mechanism::OAuthBearer => b"\x01",
        Mechanism::XOAuth2 | Mechanism::External => b"",
    }
}

fn check_user(user: &str) -> Result<(), SaslError> {
    if user.chars().any(char::is_control) {
        return Err(SaslError::BadUser(user.escape_debug().to_string()));
    }
    Ok(())
}

/// RFC 6750 b64token characters only: anything else could break the framing (`\x01`).
fn checked_token(token: &SecretString) -> Result<&str, SaslError> {
    let t = token.expose_secret();
    let ok = !t.is_empty()
        && t.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        });
    if ok { Ok(t) } else { Err(SaslError::BadToken) }
}

/// One SASL exchange from the client side: the first challenge gets the initial response,
/// any later challenge is the server's error report and gets the mechanism's dummy answer.
pub struct SaslClient {
    mechanism: Mechanism,
    initial: Zeroizing<Vec<u8>>,
    sent_initial: bool,
    server_error: Option<String>,
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("sent_initial", &self.sent_initial)
            .field("server_error", &self.server_error)
            .finish_non_exhaustive()
    }
}

impl SaslClient {
    /// XOAUTH2 or OAUTHBEARER with an access token.
    pub fn token(
        mechanism: Mechanism,
        user: &str,
        token: &SecretString,
    ) -> Result<Self, SaslError> {
        let initial = match mechanism {
            Mechanism::XOAuth2 => xoauth2(user, token)?,
            Mechanism::OAuthBearer => oauthbearer(user, token)?,
            Mechanism::External => return Err(SaslError::WrongCredential("EXTERNAL")),
        };
        Ok(Self::with_initial(mechanism, initial))
    }

    /// EXTERNAL: the TLS client certificate carries the identity.
    pub fn external(authzid: Option<&str>) -> Result<Self, SaslError> {
        Ok(Self::with_initial(Mechanism::External, external(authzid)?))
    }

    fn with_initial(mechanism: Mechanism, initial: Zeroizing<Vec<u8>>) -> Self {
        SaslClient {
            mechanism,
            initial,
            sent_initial: false,
            server_error: None,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The initial response, for servers that take it on the command line (SASL-IR, SMTP
    /// `AUTH <mech> <ir>`). Marks it as sent.
    pub fn initial_response(&mut self) -> Zeroizing<Vec<u8>> {
        self.sent_initial = true;
        self.initial.clone()
    }

    /// The response to a (base64-decoded) server challenge.
    pub fn respond(&mut self, challenge: &[u8]) -> Zeroizing<Vec<u8>> {
        if !self.sent_initial {
            self.sent_initial = true;
            return self.initial.clone();
        }
        self.server_error = Some(error_status(challenge));
        Zeroizing::new(error_challenge_answer(self.mechanism).to_vec())
    }

    /// The `status` of the server's error challenge, if it sent one.
    pub fn server_error(&self) -> Option<&str> {
        self.server_error.as_deref()
    }
}

impl async_imap::Authenticator for &mut SaslClient {
    type Response = Zeroizing<Vec<u8>>;

    fn process(&mut self, challenge: &[u8]) -> Self::Response {
        self.respond(challenge)
    }
}

/// Pulls `"status":"…"` out of an error challenge without trusting it: printable ASCII only,
/// at most 64 characters. Anything else is summarised.
fn error_status(challenge: &[u8]) -> String {
    let text = String::from_utf8_lossy(&challenge[..challenge.len().min(1024)]);
    let status = text.split_once("\"status\"").and_then(|(_, rest)| {
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        rest.split_once('"').map(|(value, _)| value)
    });
    match status {
        Some(s) if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()) => {
            s.to_owned()
        }
        _ if challenge.is_empty() => "no details".to_owned(),
        _ => "unreadable error challenge".to_owned(),
    }
}

/// How a mailbox proves who it is, on IMAP and on submission alike.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// BAL PER/ORG: XOAUTH2 (or OAUTHBEARER) with a Pro Santé Connect access token.
    Token {
        user: &'a str,
        token: &'a SecretString,
    },
    /// BAL APP: EXTERNAL; the identity is the client certificate in the TLS config.
    /// `authzid` is usually `None` (be whoever the certificate names).
    Certificate { authzid: Option<&'a str> },
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token { user, .. } => write!(f, "Token {{ user: {user:?}, .. }}"),
            Credentials::Certificate { authzid } => write!(f, "Certificate {{ {authzid:?} }}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn xoauth2_has_the_documented_layout() {
        let p = xoauth2("a@b.mssante.fr", &tok("abc.def-ghi")).unwrap();
        assert_eq!(
            p.as_slice(),
            b"user=a@b.mssante.fr\x01auth=Bearer abc.def-ghi\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_has_a_gs2_header_with_escapes() {
        let p = oauthbearer("we,ird=@b.fr", &tok("t0k")).unwrap();
        assert_eq!(
            p.as_slice(),
            b"n,a=we=2Cird=3D@b.fr,\x01auth=Bearer t0k\x01\x01"
        );
    }

    #[test]
    fn external_sends_the_authzid_or_nothing() {
        assert_eq!(external(None).unwrap().as_slice(), b"");
        assert_eq!(external(Some("app@x.fr")).unwrap().as_slice(), b"app@x.fr");
    }

    #[test]
    fn tokens_and_users_that_would_break_framing_are_refused() {
        assert_eq!(xoauth2("a@b", &tok("ab\x01cd")), Err(SaslError::BadToken));
        assert_eq!(xoauth2("a@b", &tok("a b")), Err(SaslError::BadToken));
        assert_eq!(xoauth2("a@b", &tok("")), Err(SaslError::BadToken));
        assert!(matches!(
            xoauth2("a\x01@b", &tok("ok")),
            Err(SaslError::BadUser(_))
        ));
        assert!(SaslClient::token(Mechanism::External, "a@b", &tok("t")).is_err());
    }

    #[test]
    fn error_challenge_is_answered_per_mechanism_and_reported() {
        let mut c = SaslClient::token(Mechanism::OAuthBearer, "a@b", &tok("t")).unwrap();
        assert!(!c.respond(b"").is_empty());
        let answer = c.respond(br#"{"status":"invalid_token","schemes":"bearer"}"#);
        assert_eq!(answer.as_slice(), b"\x01");
        assert_eq!(c.server_error(), Some("invalid_token"));

        let mut c = SaslClient::token(Mechanism::XOAuth2, "a@b", &tok("t")).unwrap();
        let _ = c.initial_response();
        assert!(c.respond(b"{\"status\":\"401\"}").is_empty());
        assert_eq!(c.server_error(), Some("401"));
    }

    #[test]
    fn hostile_error_challenges_are_summarised() {
        assert_eq!(error_status(b"\xff\xfe"), "unreadable error challenge");
        assert_eq!(
            error_status(format!("{{\"status\":\"{}\"}}", "x".repeat(500)).as_bytes()),
            "unreadable error challenge"
        );
        assert_eq!(
            error_status(b"{\"status\":\"bad\r\nline\"}"),
            "unreadable error challenge"
        );
    }

    #[test]
    fn debug_output_shows_no_payload() {
        let c = SaslClient::token(Mechanism::XOAuth2, "a@b", &tok("SECRETTOKEN")).unwrap();
        assert!(!format!("{c:?}").contains("SECRETTOKEN"));
    }
}
