//! AUTHENTICATE: XOAUTH2 and OAUTHBEARER with a PSC token, EXTERNAL with the client
//! certificate; refusals the way Dovecot answers them (error challenge, then NO).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{Code, CommandContinuationRequest};
use imap_next::imap_types::secret::Secret;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::answer::{Answer, Flow, other_code, tagged};
use super::conn::Conn;
use super::session::SERVICE;
use super::session::Session;
use crate::operator::auth::{self};

/// An AUTHENTICATE exchange waiting for the client's next line.
pub(super) struct PendingAuth {
    pub(super) tag: Tag<'static>,
    pub(super) mechanism: Mechanism,
    /// The error challenge was sent: whatever comes next, the answer is NO.
    pub(super) refused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    XOAuth2,
    OAuthBearer,
    External,
}

impl Mechanism {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::External => "EXTERNAL",
        }
    }
}

impl Session {
    pub(super) fn authenticate(
        &mut self,
        conn: &mut Conn,
        tag: Tag<'static>,
        mechanism: AuthMechanism<'static>,
        initial: Option<Secret<Cow<'static, [u8]>>>,
    ) -> Flow {
        let name = mechanism.as_ref().to_ascii_uppercase();
        self.record(
            "command",
            json!({ "tag": tag.as_ref(), "command": "AUTHENTICATE", "mechanism": name, "initial_response": initial.is_some() }),
        );
        let refuse = |me: &mut Session, conn: &mut Conn, answer: Answer, reason: &str| {
            me.record(
                "auth",
                json!({ "mechanism": name, "ok": false, "reason": reason }),
            );
            me.record_answer(&tag, &answer);
            let _ = conn.server.authenticate_finish(tagged(tag.clone(), answer));
        };
        if !self.tls {
            refuse(
                self,
                conn,
                Answer::no("Authentication needs TLS: STARTTLS first")
                    .with(other_code("PRIVACYREQUIRED")),
                "before STARTTLS",
            );
            return self.count_failure(conn);
        }
        if self.user.is_some() {
            refuse(
                self,
                conn,
                Answer::bad("Already logged in"),
                "already logged in",
            );
            return Flow::Continue;
        }
        let mechanism = match name.as_str() {
            "XOAUTH2" => Mechanism::XOAuth2,
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            "EXTERNAL" => Mechanism::External,
            _ => {
                refuse(
                    self,
                    conn,
                    Answer::no(
                        "Mechanism not offered: use XOAUTH2 (Pro Santé Connect) or EXTERNAL",
                    )
                    .with(other_code("AUTHENTICATIONFAILED")),
                    "mechanism not offered",
                );
                return self.count_failure(conn);
            }
        };
        match initial {
            Some(data) => self.sasl(conn, tag, mechanism, data.declassify().as_ref()),
            None => {
                let _ = conn
                    .server
                    .authenticate_continue(CommandContinuationRequest::base64(Vec::new()));
                self.auth = Some(PendingAuth {
                    tag,
                    mechanism,
                    refused: false,
                });
                Flow::Continue
            }
        }
    }

    pub(super) fn authenticate_data(
        &mut self,
        conn: &mut Conn,
        data: AuthenticateData<'static>,
    ) -> Flow {
        let Some(pending) = self.auth.take() else {
            return Flow::Close("authentication data out of turn");
        };
        match data {
            AuthenticateData::Cancel => {
                let answer = Answer::bad("AUTHENTICATE cancelled");
                self.record_answer(&pending.tag, &answer);
                let _ = conn.server.authenticate_finish(tagged(pending.tag, answer));
                Flow::Continue
            }
            AuthenticateData::Continue(_) if pending.refused => {
                let answer =
                    Answer::no("Authentication failed").with(other_code("AUTHENTICATIONFAILED"));
                self.record_answer(&pending.tag, &answer);
                let _ = conn.server.authenticate_finish(tagged(pending.tag, answer));
                self.count_failure(conn)
            }
            AuthenticateData::Continue(data) => self.sasl(
                conn,
                pending.tag,
                pending.mechanism,
                data.declassify().as_ref(),
            ),
        }
    }

    /// Judges a SASL response (initial or after the empty challenge).
    pub(super) fn sasl(
        &mut self,
        conn: &mut Conn,
        tag: Tag<'static>,
        mechanism: Mechanism,
        data: &[u8],
    ) -> Flow {
        let outcome = match mechanism {
            Mechanism::XOAuth2 | Mechanism::OAuthBearer => {
                let parsed = if mechanism == Mechanism::XOAuth2 {
                    auth::parse_xoauth2(data)
                } else {
                    auth::parse_oauthbearer(data)
                };
                let Some((user, token)) = parsed else {
                    self.record(
                        "auth",
                        json!({ "mechanism": mechanism.name(), "ok": false, "reason": "malformed SASL response" }),
                    );
                    let answer = Answer::bad("Malformed SASL response");
                    self.record_answer(&tag, &answer);
                    let _ = conn.server.authenticate_finish(tagged(tag, answer));
                    return self.count_failure(conn);
                };
                let token = SecretString::from(token);
                auth::check_token(
                    &self.ctx,
                    SERVICE,
                    self.id,
                    mechanism.name(),
                    &user,
                    token.expose_secret(),
                )
            }
            Mechanism::External => {
                let authzid = String::from_utf8_lossy(data).into_owned();
                auth::check_external(&self.ctx, SERVICE, self.id, self.peer.as_ref(), &authzid)
            }
        };
        match outcome {
            Ok(address) => {
                self.user = Some(address);
                let answer = Answer::ok("Logged in").with(Code::Capability(self.capabilities()));
                self.record_answer(&tag, &answer);
                let _ = conn.server.authenticate_finish(tagged(tag, answer));
                Flow::Continue
            }
            Err(_) if mechanism != Mechanism::External => {
                // RFC 7628 §3.2.2: the error travels as a challenge, the NO follows the
                // client's dummy answer.
                let challenge = STANDARD
                    .decode(auth::error_challenge(&self.ctx))
                    .unwrap_or_default();
                let _ = conn
                    .server
                    .authenticate_continue(CommandContinuationRequest::base64(challenge));
                self.auth = Some(PendingAuth {
                    tag,
                    mechanism,
                    refused: true,
                });
                Flow::Continue
            }
            Err(_) => {
                let answer = Answer::no("Certificate not accepted for this mailbox")
                    .with(other_code("AUTHENTICATIONFAILED"));
                self.record_answer(&tag, &answer);
                let _ = conn.server.authenticate_finish(tagged(tag, answer));
                self.count_failure(conn)
            }
        }
    }

    pub(super) fn count_failure(&mut self, conn: &mut Conn) -> Flow {
        self.auth_failures += 1;
        if self.auth_failures >= self.settings.max_auth_failures {
            self.bye(conn, "Too many failed logins");
            return Flow::Close("too many failed logins");
        }
        Flow::Continue
    }
}
