//! SMTP AUTH (RFC 4954): the exchange around the decisions of `operator::auth`.
//! Credentials come with the command (initial response) or after a `334` continuation.
//! A refused token gets the RFC 7628 error challenge (`334 <base64 JSON>`), then `535`
//! once the client answers. PLAIN and LOGIN are refused (no passwords in MSSanté).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use smtp_proto::response::generate::BitToString;
use smtp_proto::{AUTH_EXTERNAL, AUTH_LOGIN, AUTH_OAUTHBEARER, AUTH_PLAIN, AUTH_XOAUTH2};

use super::conn::{Conn, Line};
use super::{MAX_LINE, Mode, Next, Session};
use crate::operator::auth;

/// The client's SASL answer.
enum Answer {
    Bytes(Vec<u8>),
    Cancelled,
    Malformed,
    /// The connection is over (closed, timed out or line too long).
    Gone,
}

impl Session {
    pub(super) async fn auth(&mut self, conn: &mut Conn, mechanism: u64, initial: String) -> Next {
        let name = mechanism.to_mechanism();
        let name = if name.is_empty() { "unknown" } else { name };
        if self.mode == Mode::Relay {
            return self
                .fail(
                    conn,
                    502,
                    [5, 5, 1],
                    "No AUTH on the relay port: use submission",
                )
                .await;
        }
        if !conn.is_tls() {
            self.auth_refused(name, "AUTH before STARTTLS");
            return self
                .fail(conn, 530, [5, 7, 0], "Must issue a STARTTLS command first")
                .await;
        }
        if self.helo.is_none() {
            return self.fail(conn, 503, [5, 5, 1], "Say EHLO first").await;
        }
        if self.user.is_some() {
            return self
                .fail(conn, 503, [5, 5, 1], "Already authenticated")
                .await;
        }
        if self.tx.is_some() {
            return self
                .fail(conn, 503, [5, 5, 1], "No AUTH during a mail transaction")
                .await;
        }
        match mechanism {
            AUTH_XOAUTH2 | AUTH_OAUTHBEARER => self.token(conn, mechanism, name, initial).await,
            AUTH_EXTERNAL => self.external(conn, initial).await,
            AUTH_PLAIN | AUTH_LOGIN => {
                self.auth_refused(name, "password mechanisms are refused");
                self.fail(
                    conn,
                    504,
                    [5, 5, 4],
                    "Passwords are refused: log in with XOAUTH2 (Pro Sante Connect) or EXTERNAL (certificate)",
                )
                .await
            }
            _ => {
                self.auth_refused(name, "mechanism not offered");
                self.fail(conn, 504, [5, 5, 4], "Mechanism not offered")
                    .await
            }
        }
    }

    fn auth_refused(&self, mechanism: &str, reason: &str) {
        self.record(
            "auth",
            json!({ "mechanism": mechanism, "ok": false, "reason": reason }),
        );
    }

    /// The SASL answer: the initial response, or the line after a `334 <challenge>`.
    async fn answer(
        &self,
        conn: &mut Conn,
        initial: String,
        challenge: &str,
    ) -> std::io::Result<Answer> {
        let text = SecretString::from(if initial.is_empty() {
            conn.send(format!("334 {challenge}\r\n").as_bytes()).await?;
            match conn.line(MAX_LINE).await? {
                Some(Line::Full(line)) => String::from_utf8(line).unwrap_or_default(),
                _ => return Ok(Answer::Gone),
            }
        } else {
            initial
        });
        let text = text.expose_secret().trim_end_matches(['\r', '\n']);
        Ok(match text {
            "*" => Answer::Cancelled,
            "=" => Answer::Bytes(Vec::new()),
            _ => STANDARD
                .decode(text.trim())
                .map_or(Answer::Malformed, Answer::Bytes),
        })
    }

    async fn token(
        &mut self,
        conn: &mut Conn,
        mechanism: u64,
        name: &'static str,
        initial: String,
    ) -> Next {
        let raw = match self.answer(conn, initial, "").await? {
            Answer::Bytes(raw) => raw,
            Answer::Gone => return Ok(false),
            Answer::Cancelled => {
                self.auth_refused(name, "cancelled by the client");
                return self
                    .fail(conn, 501, [5, 0, 0], "Authentication cancelled")
                    .await;
            }
            Answer::Malformed => {
                self.auth_refused(name, "invalid base64");
                return self.fail(conn, 501, [5, 5, 2], "Invalid base64").await;
            }
        };
        let parsed = if mechanism == AUTH_XOAUTH2 {
            auth::parse_xoauth2(&raw)
        } else {
            auth::parse_oauthbearer(&raw)
        };
        drop(raw);
        let Some((user, token)) = parsed else {
            self.auth_refused(name, "malformed SASL response");
            return self
                .fail(conn, 501, [5, 5, 2], "Malformed authentication response")
                .await;
        };
        let token = SecretString::from(token);
        let verdict = auth::check_token(
            &self.ctx,
            self.service(),
            self.session,
            name,
            &user,
            token.expose_secret(),
        );
        drop(token);
        match verdict {
            Ok(mailbox) => self.logged_in(conn, mailbox).await,
            Err(_) => {
                // RFC 7628 §3.2.2: the error report, then the failure once answered.
                let challenge = auth::error_challenge(&self.ctx);
                self.record(
                    "response",
                    json!({ "code": 334, "text": "error challenge" }),
                );
                conn.send(format!("334 {challenge}\r\n").as_bytes()).await?;
                match conn.line(MAX_LINE).await? {
                    Some(Line::Full(_)) => {}
                    _ => return Ok(false),
                }
                self.fail(conn, 535, [5, 7, 8], "Authentication credentials invalid")
                    .await
            }
        }
    }

    async fn external(&mut self, conn: &mut Conn, initial: String) -> Next {
        let authzid = match self.answer(conn, initial, "").await? {
            Answer::Bytes(raw) => match String::from_utf8(raw) {
                Ok(text) => text,
                Err(_) => {
                    self.auth_refused("EXTERNAL", "authorization identity not UTF-8");
                    return self.fail(conn, 501, [5, 5, 2], "Invalid identity").await;
                }
            },
            Answer::Gone => return Ok(false),
            Answer::Cancelled => {
                self.auth_refused("EXTERNAL", "cancelled by the client");
                return self
                    .fail(conn, 501, [5, 0, 0], "Authentication cancelled")
                    .await;
            }
            Answer::Malformed => {
                self.auth_refused("EXTERNAL", "invalid base64");
                return self.fail(conn, 501, [5, 5, 2], "Invalid base64").await;
            }
        };
        match auth::check_external(
            &self.ctx,
            self.service(),
            self.session,
            self.peer_cert.as_ref(),
            authzid.trim(),
        ) {
            Ok(mailbox) => self.logged_in(conn, mailbox).await,
            Err(_) => {
                self.fail(
                    conn,
                    535,
                    [5, 7, 8],
                    "Certificate not accepted for this mailbox",
                )
                .await
            }
        }
    }

    async fn logged_in(&mut self, conn: &mut Conn, mailbox: String) -> Next {
        let text = format!("Authentication successful ({mailbox})");
        self.user = Some(mailbox);
        self.reply(conn, 235, [2, 7, 0], &text).await?;
        Ok(true)
    }
}
