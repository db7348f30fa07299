//! The operator's IMAP server through an independent client (async-imap over tokio-rustls,
//! never mss's own transport), with real PSC tokens obtained by CIBA over HTTP, and through
//! raw sockets for what a well-behaved client never sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_imap::Authenticator;
use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use mss_sandbox::{Sandbox, SandboxOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(20);

type Tls = TlsStream<TcpStream>;
type Session = async_imap::Session<Tls>;

async fn start(dir: &Path, token_lifetime: Option<Duration>) -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut options = SandboxOptions::new(dir);
    options.ciba_delay = Duration::ZERO;
    if let Some(lifetime) = token_lifetime {
        options.access_token_lifetime = lifetime;
    }
    tokio::time::timeout(Duration::from_secs(60), Sandbox::start(options))
        .await
        .expect("sandbox starts in time")
        .expect("sandbox starts")
}

fn info(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).unwrap()).unwrap()
}

/// (address, login hint) of the first PER mailbox.
fn per(dir: &Path) -> (String, String) {
    let info = info(dir);
    let bal = info["bals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "per")
        .expect("a PER mailbox")
        .clone();
    (
        bal["address"].as_str().unwrap().to_owned(),
        bal["login_hint"].as_str().unwrap().to_owned(),
    )
}

/// (address, chain, key) of the APP mailbox.
fn app(dir: &Path) -> (String, PathBuf, PathBuf) {
    let info = info(dir);
    let bal = info["bals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "app")
        .expect("an APP mailbox")
        .clone();
    (
        bal["address"].as_str().unwrap().to_owned(),
        bal["cert_pem"].as_str().unwrap().into(),
        bal["key_pem"].as_str().unwrap().into(),
    )
}

/// An access token, the way a client gets one: CIBA against the simulator over HTTP.
async fn token(dir: &Path, login_hint: &str) -> String {
    let info = info(dir);
    let psc = &info["psc"];
    let issuer = psc["issuer"].as_str().unwrap();
    let (id, secret) = (
        psc["client_id"].as_str().unwrap(),
        psc["client_secret"].as_str().unwrap(),
    );
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let started: Value = http
        .post(format!("{issuer}/bc-authorize"))
        .basic_auth(id, Some(secret))
        .form(&[("scope", "openid scope_all"), ("login_hint", login_hint)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request = started["auth_req_id"]
        .as_str()
        .expect("auth_req_id")
        .to_owned();
    for _ in 0..20 {
        let answer: Value = http
            .post(format!("{issuer}/token"))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", &request),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(token) = answer["access_token"].as_str() {
            return token.to_owned();
        }
        assert!(
            answer["error"] == "authorization_pending" || answer["error"] == "slow_down",
            "{answer}"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    panic!("CIBA never gave a token");
}

fn tls_config(
    dir: &Path,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = info(dir)["ca_pem"].as_str().unwrap().to_owned();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

fn pem_identity(
    chain: &Path,
    key: &Path,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        CertificateDer::pem_file_iter(chain)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        PrivateKeyDer::from_pem_file(key).unwrap(),
    )
}

async fn handshake(config: Arc<rustls::ClientConfig>, tcp: TcpStream) -> std::io::Result<Tls> {
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn port(sandbox: &Sandbox, which: &str) -> u16 {
    match which {
        "imap" => sandbox.operator.imap.port(),
        _ => sandbox.operator.imaps.port(),
    }
}

/// An async-imap client on the STARTTLS port, after STARTTLS.
async fn starttls(sandbox: &Sandbox, dir: &Path) -> async_imap::Client<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port(sandbox, "imap")))
        .await
        .unwrap();
    let mut client = async_imap::Client::new(tcp);
    let greeting = client.read_response().await.unwrap().expect("greeting");
    assert!(matches!(
        greeting.parsed(),
        async_imap::imap_proto::Response::Data {
            status: async_imap::imap_proto::Status::Ok,
            ..
        }
    ));
    client
        .run_command_and_check_ok("STARTTLS", None)
        .await
        .unwrap();
    let tls = handshake(tls_config(dir, None), client.into_inner())
        .await
        .unwrap();
    async_imap::Client::new(tls)
}

/// An async-imap client on the implicit-TLS port, greeting read.
async fn implicit(
    dir: &Path,
    sandbox: &Sandbox,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> async_imap::Client<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port(sandbox, "imaps")))
        .await
        .unwrap();
    let tls = handshake(tls_config(dir, identity), tcp).await.unwrap();
    let mut client = async_imap::Client::new(tls);
    client.read_response().await.unwrap().expect("greeting");
    client
}

/// SASL for the test client: the payload first, then the dummy answer to an error
/// challenge (empty for XOAUTH2, as RFC 7628 asks of OAUTHBEARER with `\x01`).
struct Sasl {
    payload: Vec<u8>,
    sent: bool,
    error: Option<String>,
}

impl Sasl {
    fn xoauth2(user: &str, token: &str) -> Sasl {
        Sasl {
            payload: format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes(),
            sent: false,
            error: None,
        }
    }
    fn external() -> Sasl {
        Sasl {
            payload: Vec::new(),
            sent: false,
            error: None,
        }
    }
}

impl Authenticator for &mut Sasl {
    type Response = Vec<u8>;
    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if !self.sent {
            self.sent = true;
            return self.payload.clone();
        }
        self.error = Some(String::from_utf8_lossy(challenge).into_owned());
        Vec::new()
    }
}

async fn login(sandbox: &Sandbox, dir: &Path, user: &str, token: &str) -> Session {
    let client = starttls(sandbox, dir).await;
    let mut sasl = Sasl::xoauth2(user, token);
    tokio::time::timeout(WAIT, client.authenticate("XOAUTH2", &mut sasl))
        .await
        .unwrap()
        .map_err(|(e, _)| e)
        .expect("XOAUTH2 login")
}

async fn fetch_all(session: &mut Session, set: &str, items: &str) -> Vec<async_imap::types::Fetch> {
    tokio::time::timeout(WAIT, async {
        session
            .uid_fetch(set, items)
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    })
    .await
    .unwrap()
}

const MESSAGE: &[u8] = b"From: Dr Karim BENALI <karim.benali@sandbox.mssante.fr>\r\n\
To: jeanne.martin@sandbox.mssante.fr\r\n\
Subject: Compte rendu \xc3\xa9chographie\r\n\
Message-ID: <cr-1@sandbox.mssante.fr>\r\n\
\r\n\
Bonjour,\r\nle compte rendu est joint.\r\n";

#[tokio::test]
async fn xoauth2_mailbox_append_fetch_search_store_expunge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let mut session = login(&sandbox, dir, &address, &token).await;

    let caps = session.capabilities().await.unwrap();
    for cap in ["IDLE", "UIDPLUS", "CONDSTORE"] {
        assert!(caps.has_str(cap), "{cap}");
    }
    assert!(!caps.has_str("STARTTLS"));

    // Folders: INBOX and Sent (marked \Sent), then a user folder.
    session.create("Dossiers/Cardiologie").await.unwrap();
    let names: Vec<async_imap::types::Name> = session
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let listed: Vec<&str> = names.iter().map(|n| n.name()).collect();
    assert_eq!(listed, ["INBOX", "Dossiers/Cardiologie", "Sent"]);
    let sent = names.iter().find(|n| n.name() == "Sent").unwrap();
    assert!(
        sent.attributes()
            .iter()
            .any(|a| matches!(a, async_imap::types::NameAttribute::Sent)),
        "{:?}",
        sent.attributes()
    );
    assert!(session.create("Dossiers/Cardiologie").await.is_err());

    let selected = session.select_condstore("INBOX").await.unwrap();
    assert_eq!(selected.exists, 0);
    let validity = selected.uid_validity.expect("UIDVALIDITY");
    assert_eq!(selected.uid_next, Some(1));
    assert!(selected.highest_modseq.is_some());

    session
        .append("INBOX", Some("(\\Flagged)"), None, MESSAGE)
        .await
        .unwrap();
    session
        .append(
            "INBOX",
            None,
            None,
            b"Subject: deux\r\nMessage-ID: <two@x>\r\n\r\nB\r\n",
        )
        .await
        .unwrap();
    session.noop().await.unwrap();

    let fetched = fetch_all(
        &mut session,
        "1:*",
        "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])",
    )
    .await;
    assert_eq!(fetched.len(), 2);
    let first = &fetched[0];
    assert_eq!(first.uid, Some(1));
    assert_eq!(first.body(), Some(MESSAGE), "exact bytes back");
    assert_eq!(first.size, Some(MESSAGE.len() as u32));
    assert!(first.internal_date().is_some());
    let flags: Vec<_> = first.flags().collect();
    assert!(
        flags.contains(&async_imap::types::Flag::Flagged),
        "{flags:?}"
    );
    assert!(
        !flags.contains(&async_imap::types::Flag::Seen),
        "PEEK leaves \\Seen alone"
    );

    let header = fetch_all(&mut session, "1", "(BODY.PEEK[HEADER])").await;
    let end = MESSAGE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(header[0].header(), Some(&MESSAGE[..end]));

    let envelope = fetch_all(&mut session, "1", "(ENVELOPE)").await;
    let envelope = envelope[0].envelope().expect("ENVELOPE");
    assert_eq!(
        envelope.subject.as_deref(),
        Some("Compte rendu \u{e9}chographie".as_bytes())
    );
    assert_eq!(
        envelope.message_id.as_deref(),
        Some(&b"<cr-1@sandbox.mssante.fr>"[..])
    );
    let from = &envelope.from.as_ref().expect("From")[0];
    assert_eq!(from.mailbox.as_deref(), Some(&b"karim.benali"[..]));
    assert_eq!(from.host.as_deref(), Some(&b"sandbox.mssante.fr"[..]));

    // SEARCH: unseen, by UID, by header; STORE; then BODY[] sets \Seen.
    let unseen = session.uid_search("UNSEEN").await.unwrap();
    assert_eq!(unseen.len(), 2);
    let by_id = session
        .uid_search("HEADER Message-ID <cr-1@sandbox.mssante.fr>")
        .await
        .unwrap();
    assert_eq!(by_id.into_iter().collect::<Vec<_>>(), [1]);
    let by_uid = session.uid_search("UID 2:*").await.unwrap();
    assert_eq!(by_uid.into_iter().collect::<Vec<_>>(), [2]);
    let stored: Vec<_> = session
        .uid_store("2", "+FLAGS (\\Seen $MDNSent)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        stored[0]
            .flags()
            .any(|f| f == async_imap::types::Flag::Seen)
    );
    assert_eq!(
        session
            .uid_search("SEEN")
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [2]
    );
    let read = fetch_all(&mut session, "1", "(BODY[])").await;
    assert_eq!(read[0].body(), Some(MESSAGE));
    assert_eq!(session.uid_search("UNSEEN").await.unwrap().len(), 0);

    // EXPUNGE removes only what is \Deleted; UIDs are never reused.
    session
        .uid_store("1", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(
        session
            .uid_search("DELETED")
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [1]
    );
    let gone: Vec<u32> = session
        .expunge()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(gone, [1]);
    assert_eq!(
        session
            .uid_search("ALL")
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [2]
    );
    session
        .append("INBOX", None, None, b"Subject: trois\r\n\r\nC\r\n")
        .await
        .unwrap();
    let status = session
        .status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        .await
        .unwrap();
    assert_eq!(status.exists, 2);
    assert_eq!(status.uid_next, Some(4));
    assert_eq!(status.uid_validity, Some(validity));

    // UID EXPUNGE (UIDPLUS) only touches the UIDs named.
    session
        .uid_store("2:3", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let gone: Vec<u32> = session
        .uid_expunge("3")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        session
            .uid_search("ALL")
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [2]
    );
    session.logout().await.unwrap();

    // The recording names commands and outcomes, never the token or the message.
    let events = sandbox.operator.context.recorder.since(0);
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&token), "token in the recording");
    assert!(
        !text.contains("compte rendu est joint"),
        "message in the recording"
    );
    assert!(events.iter().any(|e| e.service == "imap"
        && e.kind == "auth"
        && e.detail["mechanism"] == "XOAUTH2"
        && e.detail["ok"] == true));
    assert!(events.iter().any(|e| e.kind == "command"
        && e.detail["command"] == "FETCH"
        && e.detail["uid"] == true
        && e.detail["set"] == "1:*"));
    assert!(
        events
            .iter()
            .any(|e| e.kind == "response" && e.detail["status"] == "OK")
    );
}

#[tokio::test]
async fn uids_and_uidvalidity_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (address, hint) = {
        let sandbox = start(dir, None).await;
        let (address, hint) = per(dir);
        let token = token(dir, &hint).await;
        let mut session = login(&sandbox, dir, &address, &token).await;
        session
            .append("INBOX", None, None, b"Subject: a\r\n\r\nA\r\n")
            .await
            .unwrap();
        session.append("INBOX", None, None, MESSAGE).await.unwrap();
        session.select("INBOX").await.unwrap();
        session
            .uid_store("1", "+FLAGS (\\Seen)")
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        session.logout().await.unwrap();
        (address, hint)
    };
    let first_validity = {
        // Read the validity from a second start, then compare with a third.
        let sandbox = start(dir, None).await;
        let token = token(dir, &hint).await;
        let mut session = login(&sandbox, dir, &address, &token).await;
        let selected = session.select("INBOX").await.unwrap();
        assert_eq!(selected.exists, 2);
        assert_eq!(selected.uid_next, Some(3));
        let fetched = fetch_all(&mut session, "1:*", "(UID FLAGS BODY.PEEK[])").await;
        assert_eq!(
            fetched.iter().map(|f| f.uid.unwrap()).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(fetched[1].body(), Some(MESSAGE));
        assert!(
            fetched[0]
                .flags()
                .any(|f| f == async_imap::types::Flag::Seen)
        );
        session.append("INBOX", None, None, b"x\r\n").await.unwrap();
        session.logout().await.unwrap();
        selected.uid_validity.unwrap()
    };
    let sandbox = start(dir, None).await;
    let token = token(dir, &hint).await;
    let mut session = login(&sandbox, dir, &address, &token).await;
    let selected = session.select("INBOX").await.unwrap();
    assert_eq!(selected.uid_validity, Some(first_validity));
    assert_eq!(selected.uid_next, Some(4));
}

#[tokio::test]
async fn idle_is_woken_by_an_append_from_another_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let mut watcher = login(&sandbox, dir, &address, &token).await;
    watcher.select("INBOX").await.unwrap();
    let mut idle = watcher.idle();
    idle.init().await.unwrap();

    let mut writer = login(&sandbox, dir, &address, &token).await;
    let appended = Instant::now();
    let (wait, _stop) = idle.wait_with_timeout(WAIT);
    let (woken, ()) = tokio::join!(wait, async {
        writer.append("INBOX", None, None, MESSAGE).await.unwrap();
    });
    match woken.unwrap() {
        IdleResponse::NewData(data) => {
            assert!(
                matches!(
                    data.parsed(),
                    async_imap::imap_proto::Response::MailboxData(
                        async_imap::imap_proto::MailboxDatum::Exists(1)
                    )
                ),
                "{:?}",
                data.parsed()
            );
        }
        other => panic!("IDLE not woken: {other:?}"),
    }
    assert!(appended.elapsed() < Duration::from_secs(5));
    let mut watcher = idle.done().await.unwrap();
    // Flags changed elsewhere come as FETCH during IDLE too.
    let mut idle = {
        watcher.noop().await.unwrap();
        watcher.idle()
    };
    idle.init().await.unwrap();
    let (wait, _stop) = idle.wait_with_timeout(WAIT);
    writer.select("INBOX").await.unwrap();
    let (woken, ()) = tokio::join!(wait, async {
        writer
            .uid_store("1", "+FLAGS (\\Seen)")
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    });
    match woken.unwrap() {
        IdleResponse::NewData(data) => assert!(
            matches!(data.parsed(), async_imap::imap_proto::Response::Fetch(1, _)),
            "{:?}",
            data.parsed()
        ),
        other => panic!("IDLE not woken by STORE: {other:?}"),
    }
    idle.done().await.unwrap().logout().await.unwrap();
}

#[tokio::test]
async fn external_with_the_app_certificate_over_implicit_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, chain, key) = app(dir);

    let client = implicit(dir, &sandbox, Some(pem_identity(&chain, &key))).await;
    let mut sasl = Sasl::external();
    let mut session = tokio::time::timeout(WAIT, client.authenticate("EXTERNAL", &mut sasl))
        .await
        .unwrap()
        .map_err(|(e, _)| e)
        .expect("EXTERNAL with the AUTH_CLI certificate");
    session.select("INBOX").await.unwrap();
    session
        .append("Sent", Some("(\\Seen)"), None, MESSAGE)
        .await
        .unwrap();
    session.logout().await.unwrap();
    let events = sandbox.operator.context.recorder.since(0);
    assert!(events.iter().any(|e| e.kind == "auth"
        && e.detail["mechanism"] == "EXTERNAL"
        && e.detail["mailbox"] == address.as_str()
        && e.detail["ok"] == true));

    // Without a certificate, EXTERNAL is refused.
    let client = implicit(dir, &sandbox, None).await;
    let mut sasl = Sasl::external();
    let refused = client.authenticate("EXTERNAL", &mut sasl).await;
    assert!(matches!(refused, Err((async_imap::error::Error::No(_), _))));

    // A PSC token does not open an APP mailbox.
    let (_, hint) = per(dir);
    let token = token(dir, &hint).await;
    let client = starttls(&sandbox, dir).await;
    let mut sasl = Sasl::xoauth2(&address, &token);
    let refused = client.authenticate("XOAUTH2", &mut sasl).await;
    assert!(matches!(refused, Err((async_imap::error::Error::No(_), _))));
}

#[tokio::test]
async fn refusals_token_of_another_mailbox_login_foreign_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let other = info(dir)["bals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "per")
        .map(|b| b["address"].as_str().unwrap().to_owned())
        .find(|a| *a != address)
        .expect("a second PER mailbox");

    // The token of Jeanne does not open Karim's mailbox; the error challenge comes first.
    let client = starttls(&sandbox, dir).await;
    let mut sasl = Sasl::xoauth2(&other, &token);
    let refused = client.authenticate("XOAUTH2", &mut sasl).await;
    assert!(matches!(refused, Err((async_imap::error::Error::No(_), _))));
    assert!(
        sasl.error
            .as_deref()
            .unwrap_or_default()
            .contains("invalid_token"),
        "{:?}",
        sasl.error
    );

    // LOGIN is always refused, and recorded without the password.
    let client = starttls(&sandbox, dir).await;
    let refused = client.login(&address, "motdepasse-secret").await;
    assert!(matches!(refused, Err((async_imap::error::Error::No(_), _))));
    let events = sandbox.operator.context.recorder.since(0);
    assert!(
        events.iter().any(|e| e.kind == "auth"
            && e.detail["mechanism"] == "LOGIN"
            && e.detail["ok"] == false)
    );
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("motdepasse-secret"));
    assert!(events.iter().any(|e| e.kind == "auth"
        && e.detail["mechanism"] == "XOAUTH2"
        && e.detail["reason"] == "token of a professional who does not hold this mailbox"));

    // A client certificate from another CA, even naming the APP mailbox: no TLS session.
    let (app_address, _, _) = app(dir);
    let foreign = foreign_identity(&app_address);
    let tcp = TcpStream::connect(("127.0.0.1", port(&sandbox, "imaps")))
        .await
        .unwrap();
    match handshake(tls_config(dir, Some(foreign)), tcp).await {
        Err(_) => {}
        Ok(tls) => {
            // TLS 1.3: the server's verdict on the client certificate arrives after the
            // client's side of the handshake; the first read fails.
            let mut lines = BufReader::new(tls);
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, lines.read_line(&mut line))
                .await
                .unwrap();
            assert!(read.is_err() || read.unwrap() == 0, "greeted: {line}");
        }
    }
}

/// A client certificate for `mailbox` under a CA the sandbox never heard of.
fn foreign_identity(mailbox: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, SanType,
    };
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "AUTRE AC");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, mailbox);
    params.subject_alt_names = vec![SanType::Rfc822Name(mailbox.to_owned().try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (
        vec![cert.der().clone(), ca.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, Some(Duration::from_secs(1))).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let client = starttls(&sandbox, dir).await;
    let mut sasl = Sasl::xoauth2(&address, &token);
    let refused = client.authenticate("XOAUTH2", &mut sasl).await;
    assert!(matches!(refused, Err((async_imap::error::Error::No(_), _))));
    let events = sandbox.operator.context.recorder.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.kind == "auth" && e.detail["reason"] == "token expired")
    );
}

/// A raw line-oriented connection for what real clients never send.
struct Raw<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.get_mut().write_all(bytes))
            .await
            .unwrap()
            .unwrap();
    }

    /// Lines until one starts with `prefix` (returned); panics on timeout or close.
    async fn until(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("answer in time")
                .expect("readable");
            assert!(n > 0, "closed while waiting for {prefix}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// True if the server closes the connection (after whatever it still sends).
    async fn closes(&mut self) -> bool {
        loop {
            let mut line = String::new();
            match tokio::time::timeout(WAIT, self.stream.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[tokio::test]
async fn before_starttls_only_starttls_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let tcp = TcpStream::connect(("127.0.0.1", port(&sandbox, "imap")))
        .await
        .unwrap();
    let mut raw = Raw {
        stream: BufReader::new(tcp),
    };
    let greeting = raw.until("* OK").await;
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    assert!(!greeting.contains("AUTH="), "{greeting}");
    let ir = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("user={address}\x01auth=Bearer {token}\x01\x01"),
    );
    raw.send(format!("a1 AUTHENTICATE XOAUTH2 {ir}\r\n").as_bytes())
        .await;
    assert!(raw.until("a1 ").await.starts_with("a1 NO"));
    raw.send(b"a2 SELECT INBOX\r\n").await;
    assert!(raw.until("a2 ").await.starts_with("a2 BAD"));
    // A line longer than what is accepted before TLS: BAD, then BYE and close.
    let mut long = b"a3 NOOP ".to_vec();
    long.resize(200_000, b'x');
    long.extend_from_slice(b"\r\n");
    raw.send(&long).await;
    let answer = raw.until("").await;
    assert!(answer.contains("BAD") || answer.contains("BYE"), "{answer}");
    assert!(raw.closes().await);
    let events = sandbox.operator.context.recorder.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.kind == "auth" && e.detail["reason"] == "before STARTTLS")
    );
}

#[tokio::test]
async fn hostile_input_gets_bad_or_bye_never_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let tcp = TcpStream::connect(("127.0.0.1", port(&sandbox, "imaps")))
        .await
        .unwrap();
    let tls = handshake(tls_config(dir, None), tcp).await.unwrap();
    let mut raw = Raw {
        stream: BufReader::new(tls),
    };
    raw.until("* OK").await;

    // Garbage bytes.
    raw.send(b"\x00\xff\xfe\x01 garbage (((\r\n").await;
    assert!(raw.until("* BAD").await.starts_with("* BAD"));
    // A 10 MB line.
    let mut long = b"b1 NOOP ".to_vec();
    long.resize(10 * 1024 * 1024, b'a');
    long.extend_from_slice(b"\r\n");
    raw.send(&long).await;
    assert!(raw.until("b1 ").await.starts_with("b1 BAD"));
    // A literal over the limit is refused before a byte of it is sent.
    raw.send(b"b2 APPEND INBOX {4000000000}\r\n").await;
    assert!(raw.until("b2 ").await.starts_with("b2 BAD"));
    // A bare LF.
    raw.send(b"b3 NOOP\n").await;
    assert!(raw.until("b3 ").await.starts_with("b3 BAD"));
    // Still serving.
    raw.send(b"b4 NOOP\r\n").await;
    assert!(raw.until("b4 ").await.starts_with("b4 OK"));
    // Too many bad lines in a row: BYE and close.
    for i in 0..12 {
        raw.send(format!("c{i} FROB\r\n").as_bytes()).await;
    }
    assert!(raw.closes().await);
    // The server still takes new connections.
    let tcp = TcpStream::connect(("127.0.0.1", port(&sandbox, "imaps")))
        .await
        .unwrap();
    let tls = handshake(tls_config(dir, None), tcp).await.unwrap();
    let mut raw = Raw {
        stream: BufReader::new(tls),
    };
    raw.until("* OK").await;
    raw.send(b"d1 LOGOUT\r\n").await;
    assert!(raw.until("d1 ").await.starts_with("d1 OK"));
}

/// Message numbers change only when a session is told (RFC 3501 §7.4.1): an EXPUNGE made by
/// another session is held back during FETCH and reported by the next NOOP. Also EXAMINE
/// (read-only), COPY and CLOSE.
#[tokio::test]
async fn sequence_numbers_follow_what_each_session_was_told() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let mut a = login(&sandbox, dir, &address, &token).await;
    for i in 1..=3 {
        let body = format!("Subject: {i}\r\n\r\n{i}\r\n");
        a.append("INBOX", None, None, body.as_bytes())
            .await
            .unwrap();
    }
    a.select("INBOX").await.unwrap();
    let mut b = login(&sandbox, dir, &address, &token).await;
    b.select("INBOX").await.unwrap();
    b.uid_store("2", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let gone: Vec<u32> = b.expunge().await.unwrap().try_collect().await.unwrap();
    assert_eq!(gone, [2]);
    while a.unsolicited_responses.try_recv().is_ok() {}

    // A still numbers the messages 1, 2, 3 until told.
    let seq3: Vec<_> = a
        .fetch("3", "(UID)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seq3[0].uid, Some(3));
    let mut during_fetch = Vec::new();
    while let Ok(u) = a.unsolicited_responses.try_recv() {
        during_fetch.push(format!("{u:?}"));
    }
    assert!(
        !during_fetch.iter().any(|t| t.starts_with("Expunge")),
        "EXPUNGE sent during FETCH: {during_fetch:?}"
    );
    a.noop().await.unwrap();
    let mut told = Vec::new();
    while let Ok(u) = a.unsolicited_responses.try_recv() {
        told.push(format!("{u:?}"));
    }
    assert!(told.iter().any(|t| t == "Expunge(2)"), "{told:?}");
    let seq2: Vec<_> = a
        .fetch("2", "(UID)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seq2[0].uid, Some(3));

    // COPY to a user folder, then EXAMINE it: read-only, BODY[] leaves \Seen alone.
    a.create("Archives").await.unwrap();
    a.uid_copy("1:*", "Archives").await.unwrap();
    let status = a.status("Archives", "(MESSAGES)").await.unwrap();
    assert_eq!(status.exists, 2);
    a.examine("Archives").await.unwrap();
    // async-imap's fetch and store streams drop the tagged status: ask for it.
    let refused = a
        .run_command_and_check_ok("UID STORE 1 +FLAGS (\\Flagged)")
        .await
        .is_err();
    assert!(refused, "STORE in a read-only folder");
    let read: Vec<_> = a
        .uid_fetch("1:*", "(FLAGS BODY[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].body(), Some(&b"Subject: 1\r\n\r\n1\r\n"[..]));
    assert_eq!(a.uid_search("SEEN").await.unwrap().len(), 0);

    // CLOSE expunges \Deleted messages of a read-write folder, silently.
    a.select("Archives").await.unwrap();
    a.uid_store("1", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    a.close().await.unwrap();
    let status = a.status("Archives", "(MESSAGES)").await.unwrap();
    assert_eq!(status.exists, 1);
    a.logout().await.unwrap();
}

/// The bounds of `ImapSettings`, on a second listener over the same operator: a connection
/// over the cap gets `* BYE`, a silent client is logged out, an IDLE too long ends.
#[tokio::test]
async fn connection_cap_and_timeouts_are_enforced() {
    use mss_sandbox::operator::imap::{ImapSettings, serve_with};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sandbox = start(dir, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let settings = ImapSettings {
        max_connections: 2,
        inactivity_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        ..ImapSettings::default()
    };
    let server = tokio::spawn(serve_with(
        listener,
        sandbox.operator.context.clone(),
        false,
        settings,
    ));
    let connect = || async move {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        Raw {
            stream: BufReader::new(tcp),
        }
    };
    let mut first = connect().await;
    first.until("* OK").await;
    let mut second = connect().await;
    second.until("* OK").await;
    let mut third = connect().await;
    assert!(third.until("* ").await.starts_with("* BYE"));
    assert!(third.closes().await);

    // Silence: autologout after the inactivity timeout (2 s here).
    let started = Instant::now();
    assert!(first.until("* BYE").await.starts_with("* BYE"));
    assert!(first.closes().await);
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(second);

    // IDLE lasts at most idle_timeout (3 s here), even on a client that says nothing.
    let (address, hint) = per(dir);
    let token = token(dir, &hint).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    client
        .run_command_and_check_ok("STARTTLS", None)
        .await
        .unwrap();
    let tls = handshake(tls_config(dir, None), client.into_inner())
        .await
        .unwrap();
    let mut raw = Raw {
        stream: BufReader::new(tls),
    };
    let ir = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("user={address}\x01auth=Bearer {token}\x01\x01"),
    );
    raw.send(format!("i1 AUTHENTICATE XOAUTH2 {ir}\r\n").as_bytes())
        .await;
    assert!(raw.until("i1 ").await.starts_with("i1 OK"));
    raw.send(b"i2 SELECT INBOX\r\n").await;
    assert!(raw.until("i2 ").await.starts_with("i2 OK"));
    raw.send(b"i3 IDLE\r\n").await;
    raw.until("+ ").await;
    let idling = Instant::now();
    assert!(raw.until("* BYE").await.starts_with("* BYE"));
    let waited = idling.elapsed();
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    server.abort();
}
