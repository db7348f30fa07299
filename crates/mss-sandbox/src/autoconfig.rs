//! Mozilla autoconfig (`config-v1.1.xml`) for the sandbox domains, served at
//! `/mail/config-v1.1.xml` and `/.well-known/autoconfig/mail/config-v1.1.xml`. It points
//! at the operator's ports: IMAP and submission with STARTTLS (the MSSanté default, 143 and
//! 587 in production), IMAP over implicit TLS, each with OAuth2 (PSC token, BAL PER/ORG)
//! and client-certificate (BAL APP) authentication.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::SandboxError;
use crate::psc::page::escape;

/// What the document says.
#[derive(Debug, Clone)]
pub struct AutoconfigSettings {
    /// Mail domains served; the first one names the provider.
    pub domains: Vec<String>,
    /// Host name of the operator's servers (a DNS name: clients refuse IP literals).
    pub hostname: String,
    /// IMAP with STARTTLS (143-style).
    pub imap_port: u16,
    /// IMAP over implicit TLS (993-style).
    pub imaps_port: u16,
    /// Submission with STARTTLS (587-style).
    pub smtp_port: u16,
    /// PSC issuer and token endpoint, for clients that read `<oAuth2>`.
    pub psc_issuer: String,
}

/// The document for these settings.
pub fn document(s: &AutoconfigSettings) -> String {
    let provider = s.domains.first().map_or("sandbox", String::as_str);
    let domains: String = s
        .domains
        .iter()
        .map(|d| format!("    <domain>{}</domain>\n", escape(d)))
        .collect();
    // Thunderbird's name for certificate authentication is TLS-client-cert; MSSanté
    // operator documents say client-certificate. Both are given, OAuth2 first: a client
    // takes the first value it knows.
    let auth = "      <authentication>OAuth2</authentication>\n      \
                <authentication>TLS-client-cert</authentication>\n      \
                <authentication>client-certificate</authentication>\n";
    let server = |kind: &str, tag: &str, port: u16, socket: &str| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      \
             <port>{port}</port>\n      <socketType>{socket}</socketType>\n{auth}      \
             <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            host = escape(&s.hostname),
        )
    };
    let issuer = escape(&s.psc_issuer);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <clientConfig version=\"1.1\">\n  <emailProvider id=\"{id}\">\n{domains}    \
         <displayName>Bac à sable MSSanté (mss)</displayName>\n    \
         <displayShortName>MSS sandbox</displayShortName>\n{imap}{imaps}{smtp}  \
         </emailProvider>\n  <oAuth2>\n    <issuer>{issuer}</issuer>\n    \
         <scope>openid scope_all</scope>\n    <authURL>{issuer}/auth</authURL>\n    \
         <tokenURL>{issuer}/token</tokenURL>\n  </oAuth2>\n</clientConfig>\n",
        id = escape(provider),
        imap = server("imap", "incomingServer", s.imap_port, "STARTTLS"),
        imaps = server("imap", "incomingServer", s.imaps_port, "SSL"),
        smtp = server("smtp", "outgoingServer", s.smtp_port, "STARTTLS"),
    )
}

/// A running autoconfig server; stops when dropped.
#[derive(Debug)]
pub struct AutoconfigServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>/mail/config-v1.1.xml`
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl AutoconfigServer {
    pub fn start(
        listener: tokio::net::TcpListener,
        settings: AutoconfigSettings,
    ) -> Result<AutoconfigServer, SandboxError> {
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen { port: 0, source })?;
        let shared = Arc::new(settings);
        let app = Router::new()
            .route("/mail/config-v1.1.xml", get(serve))
            .route("/.well-known/autoconfig/mail/config-v1.1.xml", get(serve))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(AutoconfigServer {
            addr,
            url: format!("http://{addr}/mail/config-v1.1.xml"),
            task,
        })
    }
}

impl Drop for AutoconfigServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Thunderbird adds `?emailaddress=…`: an address outside the sandbox domains gets 404.
async fn serve(
    State(settings): State<Arc<AutoconfigSettings>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(address) = query.get("emailaddress") {
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !settings
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            return (StatusCode::NOT_FOUND, "unknown domain\n").into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        document(&settings),
    )
        .into_response()
}
