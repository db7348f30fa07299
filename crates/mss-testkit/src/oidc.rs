//! A real OpenID Connect provider (oidc-provider 9.x on node) standing in for Pro Santé Connect.
//!
//! How a test uses it (agent "mail": Dovecot XOAUTH2 with local JWT validation):
//!
//! ```no_run
//! use mss_testkit::oidc::{OidcOptions, OidcProvider};
//! use std::time::Duration;
//!
//! let Some(idp) = OidcProvider::start(
//!     OidcOptions::default()
//!         .account("899700000001", "jean.dupont@test.local")
//!         .access_token_ttl(Duration::from_secs(5)),
//! ) else {
//!     return; // node modules missing: `missing()` already said so (or panicked under scripts/test)
//! };
//! // Dovecot: passdb oauth2 args file, local validation against the exported public key.
//! let oauth2_conf_ext = idp.dovecot_oauth2_conf();
//! // A signed JWT access token whose `email` claim is the mailbox address:
//! let tokens = idp.token("jean.dupont@test.local"); // or the RPPS-like id "899700000001"
//! let xoauth2 = format!("user=jean.dupont@test.local\x01auth=Bearer {}\x01\x01", tokens.access_token);
//! // Later: make every refresh of that user fail (refresh token refused → PSC session over).
//! idp.revoke("jean.dupont@test.local");
//! ```
//!
//! What the provider offers:
//! - one confidential client ([`OidcProvider::client_id`] / [`OidcProvider::client_secret`],
//!   `client_secret_basic` by default), registered as a `native` application so that the
//!   loopback redirect `http://127.0.0.1:<any port>/callback` matches; grants
//!   `authorization_code` (PKCE S256 required), `refresh_token` and CIBA poll
//!   (`urn:openid:params:grant-type:ciba`) with an `interval` (1 s by default) that it
//!   enforces by answering `slow_down` to polls that come too early (the gap can be set
//!   apart with [`OidcOptions::ciba_min_poll_gap`]);
//! - CIBA approval after a configurable delay, or `access_denied` for chosen login hints;
//! - the built-in development login and consent pages (`devInteractions`) for the code flow:
//!   any login from [`OidcOptions::account`] (id or address) with any password;
//! - access tokens as RS256 JWTs with header `typ: JWT` (what Dovecot 2.3 demands) and
//!   claims `iss`, `sub` (the account id), `email` (the mailbox address), `azp` (the client
//!   id), `aud` ([`OidcOptions::audience`]), `iat`, `exp`, `scope`, `client_id`; the ID token
//!   carries `sub` and `email`;
//! - the public signing key as PEM at `<keys_dir>/<client_id>/RS256/k1`, the layout of
//!   Dovecot's `local_validation_key_dict = fs:posix:prefix=<keys_dir>/`;
//! - discovery at `<issuer>/.well-known/openid-configuration`, revocation, end session.
//!
//! The process runs in its own temporary directory on `127.0.0.1:<port chosen by the OS>`;
//! commands go through its stdin/stdout. Dropping the handle stops it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How the client authenticates at the token endpoint (the provider refuses any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with id and secret (the default).
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
    /// Mutual TLS (`tls_client_auth`): needs [`OidcOptions::https`]; the client certificate
    /// must chain to its `client_ca` and carry [`OidcOptions::tls_client_san_email`] as an
    /// e-mail SAN.
    Tls,
}

/// Files for serving HTTPS (PEM).
#[derive(Debug, Clone)]
pub struct OidcHttps {
    /// Server certificate followed by its issuer (names 127.0.0.1).
    pub cert_chain: PathBuf,
    pub key: PathBuf,
    /// CAs that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// One person who can log in: `id` is the RPPS-like identifier (the token's `sub`), `email`
/// the mailbox address (the token's `email` claim). Either works as `login_hint`.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub id: String,
    pub email: String,
}

/// Settings of a provider instance. Start from `OidcOptions::default()` and chain.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    pub accounts: Vec<TestAccount>,
    /// Lifetime of access and ID tokens (PSC: about 5 minutes).
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// CIBA poll interval announced and enforced (whole seconds, at least 1).
    pub ciba_interval: Duration,
    /// CIBA requests are approved this long after they arrive…
    pub ciba_approve_after: Duration,
    /// …unless their login hint (id or address) is in this list: then `access_denied`.
    pub ciba_deny: Vec<String>,
    /// How long a CIBA request lives before `expired_token`.
    pub ciba_request_ttl: Duration,
    /// Polls (and the first poll after the request) closer together than this get
    /// `slow_down`. Default: the interval. Set it above the interval to make a
    /// well-behaved client meet `slow_down`.
    pub ciba_min_poll_gap: Option<Duration>,
    /// Path of the loopback redirect URI (any port matches).
    pub redirect_path: String,
    /// `aud` of the access tokens.
    pub audience: String,
    /// Serve HTTPS instead of plain HTTP (the issuer becomes `https://127.0.0.1:<port>`).
    /// [`OidcProvider::token`] is then unavailable.
    pub https: Option<OidcHttps>,
    /// With [`ClientAuth::Tls`]: the e-mail SAN the client certificate must carry.
    pub tls_client_san_email: Option<String>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        OidcOptions {
            client_id: "mss-client".into(),
            client_secret: "mss-test-secret".into(),
            client_auth: ClientAuth::SecretBasic,
            accounts: Vec::new(),
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            ciba_interval: Duration::from_secs(1),
            ciba_approve_after: Duration::from_millis(500),
            ciba_deny: Vec::new(),
            ciba_request_ttl: Duration::from_secs(120),
            ciba_min_poll_gap: None,
            redirect_path: "/callback".into(),
            audience: "urn:mss:api-lps".into(),
            https: None,
            tls_client_san_email: None,
        }
    }
}

impl OidcOptions {
    /// Adds a person: `id` (RPPS-like, becomes `sub`) and mailbox address (`email`).
    pub fn account(mut self, id: &str, email: &str) -> Self {
        self.accounts.push(TestAccount {
            id: id.into(),
            email: email.into(),
        });
        self
    }
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }
    pub fn ciba_approve_after(mut self, delay: Duration) -> Self {
        self.ciba_approve_after = delay;
        self
    }
    pub fn ciba_deny(mut self, login_hint: &str) -> Self {
        self.ciba_deny.push(login_hint.into());
        self
    }
    pub fn ciba_min_poll_gap(mut self, gap: Duration) -> Self {
        self.ciba_min_poll_gap = Some(gap);
        self
    }
    /// Serves HTTPS with these files.
    pub fn https(mut self, files: OidcHttps) -> Self {
        self.https = Some(files);
        self
    }
    /// Mutual TLS client authentication: the client certificate must have this e-mail SAN.
    pub fn tls_client_auth(mut self, san_email: &str) -> Self {
        self.client_auth = ClientAuth::Tls;
        self.tls_client_san_email = Some(san_email.into());
        self
    }
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }
}

/// Tokens from [`OidcProvider::token`]. Debug output hides them.
#[derive(Clone)]
pub struct TestTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for TestTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestTokens {{ expires_in: {}, .. }}", self.expires_in)
    }
}

/// Counters kept by the provider, for assertions about how a client behaved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OidcStats {
    pub backchannel_requests: u64,
    pub ciba_polls: u64,
    /// Polls answered `slow_down` because they came sooner than the interval.
    pub slow_downs: u64,
    pub refreshes: u64,
    pub code_exchanges: u64,
}

struct Control {
    stdin: ChildStdin,
    replies: Receiver<Value>,
    next_id: u64,
}

/// A running provider; stops on Drop.
pub struct OidcProvider {
    child: Child,
    control: Mutex<Option<Control>>,
    issuer: String,
    port: u16,
    key_path: PathBuf,
    keys_dir: PathBuf,
    kid: String,
    client_id: String,
    client_secret: String,
    dir: tempfile::TempDir,
}

const WAIT: Duration = Duration::from_secs(20);

/// Folder of the node project (package.json, server.js, node_modules).
pub fn node_project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl OidcProvider {
    /// Starts a provider, or returns `None` after [`crate::missing`] when node or the node
    /// modules are absent (`scripts/setup/oidc.sh` installs them). Panics if it is installed
    /// but does not come up within 20 s.
    pub fn start(opts: OidcOptions) -> Option<OidcProvider> {
        let project = node_project_dir();
        let node = crate::find_program("node");
        let modules = project.join("node_modules/oidc-provider/package.json");
        let Some(node) = node.filter(|_| modules.is_file()) else {
            crate::missing("oidc-provider (node 20 and crates/mss-testkit/oidc/node_modules)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("mss-oidc-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let keys_dir = dir.path().join("keys");
        let auth_method = match opts.client_auth {
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::SecretPost => "client_secret_post",
            ClientAuth::Tls => "tls_client_auth",
        };
        let tls = opts
            .https
            .as_ref()
            .map(|h| json!({"cert": h.cert_chain, "key": h.key, "ca": h.client_ca}));
        let accounts: Vec<Value> = opts
            .accounts
            .iter()
            .map(|a| json!({"id": a.id, "email": a.email}))
            .collect();
        let config = json!({
            "client_id": opts.client_id,
            "client_secret": opts.client_secret,
            "auth_method": auth_method,
            "redirect_path": opts.redirect_path,
            "accounts": accounts,
            "access_token_ttl": opts.access_token_ttl.as_secs().max(1),
            "refresh_token_ttl": opts.refresh_token_ttl.as_secs().max(1),
            "ciba_request_ttl": opts.ciba_request_ttl.as_secs().max(1),
            "ciba_interval": opts.ciba_interval.as_secs().max(1),
            "ciba_min_gap_ms": opts
                .ciba_min_poll_gap
                .unwrap_or(Duration::from_secs(opts.ciba_interval.as_secs().max(1)))
                .as_millis() as u64,
            "ciba_approve_after_ms": opts.ciba_approve_after.as_millis() as u64,
            "ciba_deny": opts.ciba_deny,
            "keys_dir": keys_dir,
            "audience": opts.audience,
            "tls": tls,
            "tls_san_email": opts.tls_client_san_email,
        });
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).expect("cannot write the oidc config");
        let log =
            std::fs::File::create(dir.path().join("node.log")).expect("cannot create node.log");

        let mut child = Command::new(node)
            .arg(project.join("server.js"))
            .arg(&config_path)
            .current_dir(dir.path())
            .env_remove("DEBUG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cannot start node");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, replies) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(body) = line.strip_prefix("MSS ") else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(body) else {
                    continue;
                };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let ready = match replies.recv_timeout(WAIT) {
            Ok(v) if v["ready"] == true => v,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
                panic!("oidc-provider did not start ({other:?}); its log:\n{log}");
            }
        };
        let text = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        Some(OidcProvider {
            issuer: text("issuer"),
            port: ready["port"].as_u64().unwrap_or_default() as u16,
            key_path: PathBuf::from(text("key_path")),
            kid: text("kid"),
            keys_dir,
            client_id: opts.client_id,
            client_secret: opts.client_secret,
            control: Mutex::new(Some(Control {
                stdin,
                replies,
                next_id: 1,
            })),
            child,
            dir,
        })
    }

    /// `http://127.0.0.1:<port>` (`https` with [`OidcOptions::https`]), also the `iss` of
    /// every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }
    /// Folder to give Dovecot as `local_validation_key_dict = fs:posix:prefix=<this>/`.
    pub fn keys_dir(&self) -> &Path {
        &self.keys_dir
    }
    /// The PEM public key file, `<keys_dir>/<client_id>/RS256/<kid>`.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn public_key_pem(&self) -> String {
        std::fs::read_to_string(&self.key_path).expect("cannot read the exported public key")
    }
    /// The temporary directory of this instance (config, keys, node.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// What node printed on stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// Content of Dovecot's oauth2 passdb args file (`passdb { driver = oauth2 args = FILE }`)
    /// validating this provider's tokens locally, the user being the `email` claim.
    pub fn dovecot_oauth2_conf(&self) -> String {
        format!(
            "introspection_mode = local\n\
             local_validation_key_dict = fs:posix:prefix={}/\n\
             issuers = {}\n\
             username_attribute = email\n",
            self.keys_dir.display(),
            self.issuer
        )
    }

    /// Obtains tokens for an account (id or address) at once, through a real CIBA flow
    /// approved immediately. About 50 ms. Panics on failure (unknown account, denied hint).
    pub fn token(&self, login_hint: &str) -> TestTokens {
        let reply = self.command(json!({"cmd": "token", "login_hint": login_hint}));
        let t = &reply["tokens"];
        let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        TestTokens {
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
            id_token: text("id_token"),
            expires_in: t["expires_in"].as_u64().unwrap_or_default(),
        }
    }

    /// Revokes every grant of an account (id or address): its refresh tokens are refused
    /// from now on (`invalid_grant`). Access tokens already issued stay valid where they are
    /// checked locally (JWT). Returns how many grants were revoked.
    pub fn revoke(&self, login_hint: &str) -> u64 {
        let reply = self.command(json!({"cmd": "revoke", "login_hint": login_hint}));
        reply["revoked"].as_u64().unwrap_or_default()
    }

    /// Changes the delay before later CIBA requests are approved.
    pub fn set_ciba_approve_after(&self, delay: Duration) {
        self.command(json!({"cmd": "set_ciba", "approve_after_ms": delay.as_millis() as u64}));
    }

    /// Replaces the list of login hints whose CIBA requests are denied.
    pub fn set_ciba_deny(&self, login_hints: &[&str]) {
        self.command(json!({"cmd": "set_ciba", "deny": login_hints}));
    }

    pub fn stats(&self) -> OidcStats {
        let reply = self.command(json!({"cmd": "stats"}));
        let n = |k: &str| reply["stats"][k].as_u64().unwrap_or_default();
        OidcStats {
            backchannel_requests: n("backchannel_requests"),
            ciba_polls: n("ciba_polls"),
            slow_downs: n("slow_downs"),
            refreshes: n("refreshes"),
            code_exchanges: n("code_exchanges"),
        }
    }

    /// Sends one command line and waits (bounded) for its answer.
    fn command(&self, mut cmd: Value) -> Value {
        let mut guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let control = guard
            .as_mut()
            .expect("oidc-provider control channel closed");
        let id = control.next_id;
        control.next_id += 1;
        cmd["id"] = json!(id);
        writeln!(control.stdin, "{cmd}")
            .and_then(|_| control.stdin.flush())
            .unwrap_or_else(|e| panic!("oidc-provider is gone ({e}); log:\n{}", self.log()));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match control.replies.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if reply["ok"] != true {
                        panic!("oidc-provider command {cmd} failed: {}", reply["error"]);
                    }
                    return reply;
                }
                Ok(_) => continue, // late answer to an earlier command
                Err(RecvTimeoutError::Timeout) => {
                    panic!("oidc-provider did not answer {cmd} within {WAIT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("oidc-provider exited; log:\n{}", self.log())
                }
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Closing stdin makes node exit; kill anyway so nothing outlives the test.
        if let Ok(mut guard) = self.control.lock() {
            guard.take();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_issues_dovecot_shaped_jwt_and_revokes() {
        let Some(idp) = OidcProvider::start(
            OidcOptions::default()
                .account("899700000001", "jean@test.local")
                .access_token_ttl(Duration::from_secs(7)),
        ) else {
            return;
        };
        assert!(idp.issuer().starts_with("http://127.0.0.1:"));
        let pem = idp.public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        assert!(idp.key_path().ends_with("mss-client/RS256/k1"));
        assert!(idp.key_path().starts_with(idp.keys_dir()));

        let tokens = idp.token("899700000001");
        assert_eq!(tokens.expires_in, 7);
        assert!(!tokens.refresh_token.is_empty());
        assert!(!format!("{tokens:?}").contains(&tokens.access_token));
        let parts: Vec<&str> = tokens.access_token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT");
        let header = decode_segment(parts[0]);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        let claims = decode_segment(parts[1]);
        assert_eq!(claims["email"], "jean@test.local");
        assert_eq!(claims["sub"], "899700000001");
        assert_eq!(claims["azp"], "mss-client");
        assert_eq!(claims["iss"], idp.issuer());
        assert_eq!(claims["aud"], "urn:mss:api-lps");
        let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(ttl, 7);

        // The address works as a hint too, and revocation reaches both grants.
        idp.token("jean@test.local");
        assert_eq!(idp.revoke("jean@test.local"), 2);
        let stats = idp.stats();
        assert_eq!(stats.backchannel_requests, 2);
        assert_eq!(stats.ciba_polls, 2);
        assert_eq!(stats.slow_downs, 0);
        assert!(idp.dovecot_oauth2_conf().contains(idp.issuer()));
    }

    fn decode_segment(seg: &str) -> Value {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON segment")
    }
}
