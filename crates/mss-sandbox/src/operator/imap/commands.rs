//! The commands of the any, not-authenticated and authenticated states (RFC 3501 §6.1-6.3),
//! and the dispatch of every command.

use std::borrow::Cow;

use imap_next::imap_types::IntoStatic;
use imap_next::imap_types::command::{Command, CommandBody, SelectParameter};
use imap_next::imap_types::core::{Atom, QuotedChar};
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::flag::{Flag, FlagNameAttribute, FlagPerm};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data, Status, StatusBody, StatusKind};
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};
use serde_json::json;

use super::answer::{
    Answer, Flow, describe, folder_name, other_code, store_answer, text_of, wildcard_match,
};
use super::conn::Conn;
use super::fetch::{self};
use super::session::Session;
use super::view::Selected;
use crate::operator::mailstore::StoreError;
use crate::operator::now_secs;

impl Session {
    pub(super) async fn command(&mut self, conn: &mut Conn, command: Command<'static>) -> Flow {
        let tag = command.tag;
        let body = command.body;
        self.record("command", describe(&tag, &body));
        let mut expunges_allowed = true;
        let answer = match body {
            CommandBody::Capability => {
                conn.server
                    .enqueue_data(Data::Capability(self.capabilities()));
                Answer::ok("CAPABILITY completed")
            }
            CommandBody::Noop | CommandBody::Check => Answer::ok("NOOP completed"),
            CommandBody::Logout => {
                self.bye(conn, "Logging out");
                self.finish(conn, tag, Answer::ok("LOGOUT completed"));
                return Flow::Close("logout");
            }
            CommandBody::StartTLS => {
                if self.tls {
                    Answer::bad("TLS is already on")
                } else {
                    self.finish(conn, tag, Answer::ok("Begin TLS negotiation now"));
                    return Flow::StartTls;
                }
            }
            CommandBody::Login { username, .. } => {
                self.record(
                    "auth",
                    json!({
                        "mechanism": "LOGIN",
                        "mailbox": String::from_utf8_lossy(username.as_ref()),
                        "ok": false,
                        "reason": "LOGIN is disabled",
                    }),
                );
                let answer = Answer::no(
                    "LOGIN is disabled: use AUTHENTICATE XOAUTH2 (Pro Santé Connect) or EXTERNAL",
                )
                .with(other_code("PRIVACYREQUIRED"));
                self.finish(conn, tag, answer);
                return self.count_failure(conn);
            }
            body if self.user.is_none() => {
                let _ = body;
                Answer::bad("Log in first")
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for cap in capabilities.as_ref() {
                    if matches!(cap, CapabilityEnable::CondStore) {
                        self.condstore = true;
                        enabled.push(CapabilityEnable::CondStore);
                    }
                }
                conn.server.enqueue_data(Data::Enabled {
                    capabilities: enabled,
                });
                Answer::ok("ENABLE completed")
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(conn, &mailbox, &parameters, false),
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(conn, &mailbox, &parameters, true),
            CommandBody::Create { mailbox } => self.create(&mailbox),
            CommandBody::Delete { mailbox } => self.delete(&mailbox),
            CommandBody::Rename { .. } => Answer::no("RENAME is not offered by the sandbox"),
            CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } => {
                Answer::ok("Every folder is subscribed")
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(conn, &reference, &mailbox_wildcard, false),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(conn, &reference, &mailbox_wildcard, true),
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(conn, &mailbox, &item_names),
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, &flags, date.as_ref(), message),
            body if self.selected.is_none() => {
                let _ = body;
                Answer::bad("No folder selected")
            }
            CommandBody::Close => {
                let selected = self.selected.take().expect("checked");
                if !selected.read_only {
                    let _ = self.ctx.store.expunge(self.user(), &selected.folder, None);
                }
                Answer::ok("CLOSE completed")
            }
            CommandBody::Unselect => {
                self.selected = None;
                Answer::ok("UNSELECT completed")
            }
            CommandBody::Expunge => self.expunge(None),
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set)),
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                expunges_allowed = uid;
                let charset_ok = charset.as_ref().is_none_or(|c| {
                    let c: &str = c.as_ref();
                    c.eq_ignore_ascii_case("UTF-8") || c.eq_ignore_ascii_case("US-ASCII")
                });
                if charset_ok {
                    self.search(conn, criteria.as_ref(), uid)
                } else {
                    Answer::no("Only UTF-8 and US-ASCII searches")
                        .with(Code::BadCharset { allowed: vec![] })
                }
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                expunges_allowed = uid;
                self.fetch(conn, &sequence_set, &macro_or_item_names, uid, &modifiers)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                expunges_allowed = uid;
                self.store(conn, &sequence_set, kind, response, &flags, uid, &modifiers)
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                expunges_allowed = uid;
                self.copy(&sequence_set, &mailbox, uid)
            }
            _ => Answer::bad("Command not offered by the sandbox"),
        };
        self.push_updates(conn, expunges_allowed);
        self.finish(conn, tag, answer);
        Flow::Continue
    }

    pub(super) fn user(&self) -> &str {
        self.user.as_deref().unwrap_or_default()
    }

    pub(super) fn select(
        &mut self,
        conn: &mut Conn,
        mailbox: &Mailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
    ) -> Answer {
        self.selected = None;
        if parameters
            .iter()
            .any(|p| matches!(p, SelectParameter::QResync { .. }))
        {
            return Answer::bad("QRESYNC is not offered");
        }
        if parameters.contains(&SelectParameter::CondStore) {
            self.condstore = true;
        }
        let name = folder_name(mailbox);
        let (selected, messages) =
            match Selected::open(&self.ctx.store, self.user(), &name, read_only) {
                Ok(opened) => opened,
                Err(e) => return store_answer(&e),
            };
        let status = match self.ctx.store.status(self.user(), &name) {
            Ok(status) => status,
            Err(e) => return store_answer(&e),
        };
        let system = || {
            ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
                .into_iter()
                .map(|f| Flag::try_from(f).expect("system flag").into_static())
        };
        conn.server.enqueue_data(Data::Flags(system().collect()));
        conn.server.enqueue_data(Data::Exists(selected.len()));
        conn.server.enqueue_data(Data::Recent(0));
        let mut untagged = |code: Code<'static>, text: &str| {
            conn.server.enqueue_status(Status::Untagged(StatusBody {
                kind: StatusKind::Ok,
                code: Some(code),
                text: text_of(text),
            }));
        };
        if let Some(first) = messages.iter().position(|m| !m.has_flag("\\Seen"))
            && let Ok(code) = Code::unseen(first as u32 + 1)
        {
            untagged(code, "First unseen");
        }
        let mut permanent: Vec<FlagPerm<'static>> = system().map(FlagPerm::Flag).collect();
        permanent.push(FlagPerm::Asterisk);
        untagged(
            Code::PermanentFlags(if read_only { vec![] } else { permanent }),
            "Flags kept",
        );
        if let Ok(code) = Code::uidvalidity(status.uid_validity) {
            untagged(code, "UIDs valid");
        }
        if let Ok(code) = Code::uidnext(status.uid_next) {
            untagged(code, "Predicted next UID");
        }
        untagged(
            Code::HighestModSeq(fetch::modseq(status.highest_modseq)),
            "Highest",
        );
        self.selected = Some(selected);
        if read_only {
            Answer::ok("EXAMINE completed").with(Code::ReadOnly)
        } else {
            Answer::ok("SELECT completed").with(Code::ReadWrite)
        }
    }

    pub(super) fn create(&mut self, mailbox: &Mailbox<'_>) -> Answer {
        let name = folder_name(mailbox);
        let name = name.trim_end_matches('/');
        match self.ctx.store.create_folder(self.user(), name) {
            Ok(()) => Answer::ok("CREATE completed"),
            Err(StoreError::FolderExists(_)) => {
                Answer::no("The folder already exists").with(other_code("ALREADYEXISTS"))
            }
            Err(e) => store_answer(&e),
        }
    }

    pub(super) fn delete(&mut self, mailbox: &Mailbox<'_>) -> Answer {
        let name = folder_name(mailbox);
        if self.selected.as_ref().is_some_and(|s| s.folder == name) {
            self.selected = None;
        }
        match self.ctx.store.delete_folder(self.user(), &name) {
            Ok(()) => Answer::ok("DELETE completed"),
            Err(e) => store_answer(&e),
        }
    }

    pub(super) fn list(
        &mut self,
        conn: &mut Conn,
        reference: &Mailbox<'_>,
        wildcard: &ListMailbox<'_>,
        lsub: bool,
    ) -> Answer {
        let pattern: &[u8] = match wildcard {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let delimiter = Some(QuotedChar::unvalidated('/'));
        if pattern.is_empty() {
            // The hierarchy delimiter and root (RFC 3501 §6.3.8).
            if !lsub {
                conn.server.enqueue_data(Data::List {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter,
                    mailbox: Mailbox::try_from("").map_or(Mailbox::Inbox, IntoStatic::into_static),
                });
            }
            return Answer::ok("LIST completed");
        }
        let mut full = match reference {
            Mailbox::Inbox => b"INBOX".to_vec(),
            Mailbox::Other(o) => o.as_ref().to_vec(),
        };
        full.extend_from_slice(pattern);
        if full.len() > 512 {
            return Answer::bad("Pattern too long");
        }
        let folders = match self.ctx.store.folders(self.user()) {
            Ok(f) => f,
            Err(e) => return store_answer(&e),
        };
        for folder in folders {
            if !wildcard_match(&full, folder.as_bytes()) {
                continue;
            }
            let Ok(mailbox) = Mailbox::try_from(folder.as_str()) else {
                continue;
            };
            let mut items = Vec::new();
            if folder == crate::operator::mailstore::SENT {
                items.push(FlagNameAttribute::from(
                    Atom::try_from("Sent").expect("valid atom"),
                ));
            }
            let mailbox = mailbox.into_static();
            conn.server.enqueue_data(if lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox,
                }
            });
        }
        Answer::ok(if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        })
    }

    pub(super) fn status(
        &mut self,
        conn: &mut Conn,
        mailbox: &Mailbox<'static>,
        names: &[StatusDataItemName],
    ) -> Answer {
        let name = folder_name(mailbox);
        let status = match self.ctx.store.status(self.user(), &name) {
            Ok(s) => s,
            Err(e) => return store_answer(&e),
        };
        let items: Vec<StatusDataItem> = names
            .iter()
            .filter_map(|n| {
                Some(match n {
                    StatusDataItemName::Messages => StatusDataItem::Messages(status.exists),
                    StatusDataItemName::Recent => StatusDataItem::Recent(0),
                    StatusDataItemName::UidNext => {
                        StatusDataItem::UidNext(std::num::NonZeroU32::new(status.uid_next)?)
                    }
                    StatusDataItemName::UidValidity => {
                        StatusDataItem::UidValidity(std::num::NonZeroU32::new(status.uid_validity)?)
                    }
                    StatusDataItemName::Unseen => StatusDataItem::Unseen(status.unseen),
                    StatusDataItemName::HighestModSeq => {
                        StatusDataItem::HighestModSeq(status.highest_modseq.max(1))
                    }
                    _ => return None,
                })
            })
            .collect();
        conn.server.enqueue_data(Data::Status {
            mailbox: mailbox.clone(),
            items: items.into(),
        });
        Answer::ok("STATUS completed")
    }

    pub(super) fn append(
        &mut self,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&imap_next::imap_types::datetime::DateTime>,
        message: LiteralOrLiteral8<'_>,
    ) -> Answer {
        let name = folder_name(mailbox);
        let bytes: Cow<'_, [u8]> = match message {
            LiteralOrLiteral8::Literal(l) => l.into_inner(),
            LiteralOrLiteral8::Literal8(l) => l.data,
        };
        let flags: Vec<String> = flags.iter().map(ToString::to_string).collect();
        let date = date.map_or(now_secs() as i64, |d| {
            let d: &chrono::DateTime<chrono::FixedOffset> = d.as_ref();
            d.timestamp()
        });
        match self
            .ctx
            .store
            .append(self.user(), &name, &flags, date, &bytes)
        {
            Ok(uid) => {
                let validity = self
                    .ctx
                    .store
                    .status(self.user(), &name)
                    .map(|s| s.uid_validity)
                    .unwrap_or(1);
                self.record(
                    "append",
                    json!({ "mailbox": name, "uid": uid, "size": bytes.len() }),
                );
                match (
                    std::num::NonZeroU32::new(validity),
                    std::num::NonZeroU32::new(uid),
                ) {
                    (Some(uid_validity), Some(uid)) => {
                        Answer::ok("APPEND completed").with(Code::AppendUid { uid_validity, uid })
                    }
                    _ => Answer::ok("APPEND completed"),
                }
            }
            Err(StoreError::NoFolder(_)) => Answer::no("No such folder").with(Code::TryCreate),
            Err(StoreError::TooBig) => Answer::no("Message too big").with(Code::TooBig),
            Err(e) => store_answer(&e),
        }
    }
}
