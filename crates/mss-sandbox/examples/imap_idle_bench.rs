//! The "holds 50 concurrent IMAP sessions with IDLE": starts a sandbox, opens
//! SESSIONS sessions (XOAUTH2 with one PSC token got by CIBA, INBOX selected, IDLE), then
//! appends MESSAGES messages one after the other from another session and measures, for
//! each message and each idling session, the time from the start of the APPEND to the
//! `* n EXISTS` the idling session receives. Prints p50/p99/max and the process's resident
//! memory (server and clients share the process; the sessions' share is the difference).
//!
//! cargo run --release -p mss-sandbox --example imap_idle_bench -- [SESSIONS] [MESSAGES]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use mss_sandbox::{Sandbox, SandboxOptions};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut options = SandboxOptions::new(tmp.path());
    options.ciba_delay = Duration::ZERO;
    let sandbox = Sandbox::start(options).await.expect("sandbox");
    let info: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("sandbox.json")).unwrap()).unwrap();
    let bal = info["bals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "per")
        .unwrap()
        .clone();
    let address = bal["address"].as_str().unwrap().to_owned();
    let token = ciba(&info, bal["login_hint"].as_str().unwrap()).await;
    let tls = tls_config(&info);
    let port = sandbox.operator.imaps.port();
    let rss_start = rss_kib();

    let opened = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut ready = Vec::new();
    for _ in 0..sessions {
        let mut session = login(&tls, port, &address, &token).await;
        session.select("INBOX").await.expect("SELECT");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut idle = session.idle();
            idle.init().await.expect("IDLE");
            let _ = ready_tx.send(());
            let mut seen = 0;
            while seen < messages {
                let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(60));
                match wait.await {
                    Ok(IdleResponse::NewData(data)) => {
                        if let async_imap::imap_proto::Response::MailboxData(
                            async_imap::imap_proto::MailboxDatum::Exists(n),
                        ) = data.parsed()
                        {
                            let now = Instant::now();
                            while seen < *n as usize {
                                let _ = tx.send((seen, now));
                                seen += 1;
                            }
                        }
                    }
                    other => panic!("IDLE ended: {other:?}"),
                }
            }
            let _ = idle.done().await;
        });
    }
    for r in ready {
        r.await.expect("session idling");
    }
    let open_time = opened.elapsed();
    let rss_idle = rss_kib();

    let mut writer = login(&tls, port, &address, &token).await;
    let body = b"From: bench@sandbox.mssante.fr\r\nSubject: bench\r\n\r\nHello\r\n";
    let mut latencies = Vec::with_capacity(sessions * messages);
    for i in 0..messages {
        let started = Instant::now();
        writer
            .append("INBOX", None, None, body)
            .await
            .expect("APPEND");
        for _ in 0..sessions {
            let (n, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("every session woken in time")
                .expect("sessions alive");
            assert_eq!(n, i, "wake-ups in order");
            latencies.push(at.duration_since(started));
        }
    }
    let rss_end = rss_kib();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "sessions in IDLE: {sessions}, messages appended: {messages}, wake-ups: {}",
        latencies.len()
    );
    println!(
        "opening {sessions} sessions (TLS + XOAUTH2 + SELECT + IDLE): {:.0} ms",
        open_time.as_secs_f64() * 1e3
    );
    println!(
        "wake-up latency (APPEND start to EXISTS): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "RSS: {} MiB before the sessions, {} MiB with them idling, {} MiB after the appends",
        rss_start / 1024,
        rss_idle / 1024,
        rss_end / 1024
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn ciba(info: &Value, hint: &str) -> String {
    let psc = &info["psc"];
    let issuer = psc["issuer"].as_str().unwrap();
    let (id, secret) = (
        psc["client_id"].as_str().unwrap(),
        psc["client_secret"].as_str(),
    );
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{issuer}/bc-authorize"))
        .basic_auth(id, secret)
        .form(&[("scope", "openid scope_all"), ("login_hint", hint)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request = started["auth_req_id"].as_str().unwrap().to_owned();
    loop {
        let answer: Value = http
            .post(format!("{issuer}/token"))
            .basic_auth(id, secret)
            .form(&[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", request.as_str()),
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
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

fn tls_config(info: &Value) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(info["ca_pem"].as_str().unwrap()).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

struct XOAuth2(Option<Vec<u8>>);

impl async_imap::Authenticator for &mut XOAuth2 {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.0.take().unwrap_or_default()
    }
}

async fn login(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    user: &str,
    token: &str,
) -> async_imap::Session<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.unwrap();
    let mut sasl = XOAuth2(Some(
        format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes(),
    ));
    client
        .authenticate("XOAUTH2", &mut sasl)
        .await
        .map_err(|(e, _)| e)
        .expect("XOAUTH2")
}
