//! The sandbox's second operator: its own mail domain, mailboxes, IMAP and SMTP listeners
//! and mail directory, so that mail between two operators is exercised. Each operator also
//! listens for relay (plain SMTP with STARTTLS, like port 25) and knows where the other
//! one's relay is: mail for the other domain leaves over a real SMTP hop (relay.rs).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;

use super::relay::Peer;
use super::{Account, AccountKind, Operator, OperatorContext};
use crate::error::SandboxError;
use crate::identities::{BalKind, PATIENT_DOMAIN};
use crate::pki::Pki;
use crate::psc::VerifyingKey;
use crate::space::BalInfo;

/// The second operator's mail domain (below mssante.fr, like every operator's).
pub const SECOND_DOMAIN: &str = "operateur2.sandbox.mssante.fr";

/// The second operator in `sandbox.json`.
#[derive(Debug, Serialize)]
pub struct SecondOperatorInfo {
    pub domain: String,
    /// IMAP with STARTTLS, `host:port`.
    pub imap: String,
    /// IMAP over implicit TLS, `host:port`.
    pub imaps: String,
    /// SMTP submission with STARTTLS, `host:port`.
    pub smtp: String,
    /// Where other operators hand over mail (plain SMTP, STARTTLS offered), `host:port`.
    pub relay: String,
    pub bals: Vec<BalInfo>,
}

/// Listeners of the second operator, and the first operator's relay listener.
pub struct Listeners {
    pub first_relay: TcpListener,
    pub imap: TcpListener,
    pub imaps: TcpListener,
    pub smtp: TcpListener,
    pub relay: TcpListener,
}

/// A personal mailbox held by Karim BENALI (who also has one at the first operator).
fn accounts() -> Vec<Account> {
    vec![Account {
        address: format!("karim.benali@{SECOND_DOMAIN}"),
        kind: AccountKind::Per,
        holders: vec!["899700000002".to_owned()],
    }]
}

/// Starts the second operator (mail in `<dir>/operator2`), the relay listeners of both,
/// and tells each where the other is. `host` is the host name given in addresses.
#[allow(clippy::too_many_arguments)]
pub fn start(
    dir: &Path,
    host: &str,
    first: &mut Operator,
    listeners: Listeners,
    pki: &Pki,
    psc_issuer: &str,
    client_id: &str,
    tokens: VerifyingKey,
) -> Result<(Operator, SecondOperatorInfo), SandboxError> {
    let context = Arc::new(OperatorContext::new(
        &dir.join("operator2"),
        SECOND_DOMAIN,
        accounts(),
        pki,
        psc_issuer,
        client_id,
        tokens,
    )?);
    let mut second = Operator::start(context, listeners.imap, listeners.imaps, listeners.smtp)?;
    let first_relay = first.serve_relay(listeners.first_relay)?;
    let second_relay = second.serve_relay(listeners.relay)?;
    // The first operator also hosts Mon espace santé: the second reaches patients there.
    let first_domain = first.context.domain.clone();
    set_peers(
        &first.context,
        Peer::new(&[SECOND_DOMAIN], second_relay, &pki.root)?,
    );
    set_peers(
        &second.context,
        Peer::new(
            &[first_domain.as_str(), PATIENT_DOMAIN],
            first_relay,
            &pki.root,
        )?,
    );
    let at = |addr: SocketAddr| format!("{host}:{}", addr.port());
    let info = SecondOperatorInfo {
        domain: SECOND_DOMAIN.to_owned(),
        imap: at(second.imap),
        imaps: at(second.imaps),
        smtp: at(second.smtp),
        relay: at(second_relay),
        bals: accounts()
            .into_iter()
            .map(|a| BalInfo {
                address: a.address,
                kind: BalKind::Per,
                auth: "psc",
                login_hint: a.holders.first().cloned(),
                cert_pem: None,
                key_pem: None,
            })
            .collect(),
    };
    Ok((second, info))
}

fn set_peers(ctx: &OperatorContext, peer: Peer) {
    let mut peers = ctx.peers.write().unwrap_or_else(|p| p.into_inner());
    peers.retain(|p| p.addr != peer.addr);
    peers.push(peer);
}
