//! DNS SRV look-ups (RFC 6186) behind a trait, so tests can answer without a DNS server and
//! production can use the system's resolvers (hickory-resolver, reading /etc/resolv.conf).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Host name, lowercased, without the final dot; `.` alone means "no such service".
    pub target: String,
}

/// Why a look-up gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvError {
    /// The name has no SRV record (NXDOMAIN or an empty answer).
    NotFound,
    /// The look-up itself failed (timeout, server failure…).
    Failed(String),
}

/// Answers SRV queries such as `_imap._tcp.hopital.mssante.fr`.
pub trait SrvResolver: Send + Sync {
    fn lookup(&self, name: &str) -> impl Future<Output = Result<Vec<SrvRecord>, SrvError>> + Send;
}

/// The production resolver.
pub struct SystemResolver(hickory_resolver::TokioResolver);

impl std::fmt::Debug for SystemResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemResolver")
    }
}

fn options(timeout: Duration) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts
}

impl SystemResolver {
    /// Uses the system configuration (`/etc/resolv.conf`).
    pub fn from_system() -> Result<SystemResolver, String> {
        let builder = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?;
        Ok(SystemResolver(
            builder
                .with_options(options(Duration::from_secs(5)))
                .build(),
        ))
    }

    /// Asks one name server only (a test DNS server, or a resolver the administrator chose),
    /// waiting at most `timeout` per attempt (two attempts).
    pub fn with_server(server: SocketAddr, timeout: Duration) -> SystemResolver {
        let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, vec![], group);
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            TokioConnectionProvider::default(),
        )
        .with_options(options(timeout))
        .build();
        SystemResolver(resolver)
    }
}

impl SrvResolver for SystemResolver {
    async fn lookup(&self, name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        // A fully qualified name: no search-domain guessing.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.0.srv_lookup(fqdn).await {
            Ok(answer) => {
                let records: Vec<SrvRecord> = answer
                    .iter()
                    .take(32)
                    .map(|srv| SrvRecord {
                        priority: srv.priority(),
                        weight: srv.weight(),
                        port: srv.port(),
                        target: normalise(&srv.target().to_ascii()),
                    })
                    .collect();
                if records.is_empty() {
                    Err(SrvError::NotFound)
                } else {
                    Ok(records)
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Err(SrvError::NotFound),
            Err(e) => Err(SrvError::Failed(e.to_string())),
        }
    }
}

/// Lowercase, no final dot; the root name stays ".".
pub(crate) fn normalise(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "." {
        return lower;
    }
    lower.trim_end_matches('.').to_owned()
}
