//! A whole MSSanté-shaped mail world for end-to-end tests: the test PKI, the stand-in Pro
//! Santé Connect, Dovecot (IMAP, submission with EXTERNAL, LMTP) and Postfix (submission
//! with XOAUTH2), all on 127.0.0.1, plus a way to write the `mss.toml` a client needs.

use crate::dovecot::{Dovecot, DovecotConfig, OAuth2};
use crate::oidc::{OidcOptions, OidcProvider};
use crate::pki::{Leaf, TestPki};
use crate::postfix::{Postfix, PostfixConfig};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The mail domain of every test mailbox.
pub const DOMAIN: &str = "test.local";

pub struct MailWorld {
    pub pki: TestPki,
    pub idp: OidcProvider,
    pub dovecot: Dovecot,
    pub postfix: Postfix,
    /// Scratch space for the test (configurations, data directories).
    pub dir: PathBuf,
    _temp: tempfile::TempDir,
}

/// Dovecot as an MSSanté operator of the test world: the PKI's server certificate, client
/// certificates of the PKI for EXTERNAL, and tokens of `idp` checked locally (by `email`).
pub fn dovecot_config(pki: &TestPki, idp: &OidcProvider) -> DovecotConfig {
    let mut config = DovecotConfig::new(&pki.server.chain, &pki.server.key, &pki.ca_bundle);
    config.oauth2 = Some(OAuth2 {
        key_dir: idp.keys_dir().to_owned(),
        issuers: vec![idp.issuer().to_owned()],
        username_attribute: "email".to_owned(),
    });
    config
}

/// One `[[bal]]` of a generated configuration.
#[derive(Debug, Clone)]
pub struct Bal {
    pub address: String,
    /// `per`, `org` or `app`.
    pub kind: &'static str,
    pub imap_port: u16,
    pub smtp_port: u16,
    /// The AUTH_CLI certificate of an application mailbox.
    pub certificate: Option<Leaf>,
}

impl MailWorld {
    /// Starts everything for `accounts` (national id, address), with access tokens living
    /// `token_ttl`. `None` when a server is missing locally (a failure under scripts/test).
    pub fn start(accounts: &[(&str, &str)], token_ttl: Duration) -> Option<MailWorld> {
        let temp = tempfile::Builder::new()
            .prefix("mss-world-")
            .tempdir()
            .expect("temporary directory");
        let dir = temp.path().to_path_buf();
        // Dovecot's and Postfix's unprivileged processes read certificates from here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("pki")).expect("pki directory");
        for sub in ["", "pki"] {
            std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let pki = TestPki::generate(&dir.join("pki")).expect("test PKI");
        let mut options = OidcOptions::default().access_token_ttl(token_ttl);
        for (id, address) in accounts {
            options = options.account(id, address);
        }
        let idp = OidcProvider::start(options)?;
        let dovecot = Dovecot::start_or_skip(dovecot_config(&pki, &idp))?;
        let postfix = Postfix::start_or_skip(
            &dovecot,
            PostfixConfig::new(&pki.server.chain, &pki.server.key, DOMAIN),
        )?;
        Some(MailWorld {
            pki,
            idp,
            dovecot,
            postfix,
            dir,
            _temp: temp,
        })
    }

    /// A personal mailbox that submits through Postfix with XOAUTH2.
    pub fn per(&self, address: &str) -> Bal {
        Bal {
            address: address.to_owned(),
            kind: "per",
            imap_port: self.dovecot.imap_port,
            smtp_port: self.postfix.submission_port,
            certificate: None,
        }
    }

    /// An application mailbox with its AUTH_CLI certificate; it submits through Dovecot's
    /// submission service, the one that does EXTERNAL.
    pub fn app(&self, address: &str) -> Bal {
        Bal {
            address: address.to_owned(),
            kind: "app",
            imap_port: self.dovecot.imap_port,
            smtp_port: self.dovecot.submission_port,
            certificate: Some(self.pki.issue_client(address).expect("client certificate")),
        }
    }

    /// Writes `name/mss.toml` for a user who logs in to PSC as `login_hint` and uses `bals`;
    /// its data directory is `name/data`. Returns the configuration's path.
    pub fn write_config(&self, name: &str, login_hint: &str, bals: &[Bal]) -> PathBuf {
        let home = self.dir.join(name);
        std::fs::create_dir_all(&home).expect("config directory");
        let mut text = String::new();
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        writeln!(
            text,
            "[software]\nnil = \"MSS-TEST-NIL\"\ntest_identities = true\ndata_dir = \"data\"\n"
        )
        .unwrap();
        writeln!(text, "[tls]\nanchors = [{}]\n", q(&self.pki.root)).unwrap();
        writeln!(
            text,
            "[psc]\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nflow = \"ciba\"\nlogin_hint = \"{login_hint}\"\n",
            self.idp.issuer(),
            self.idp.client_id(),
            self.idp.client_secret()
        )
        .unwrap();
        for bal in bals {
            writeln!(
                text,
                "[[bal]]\naddress = \"{}\"\nkind = \"{}\"\nimap = \"127.0.0.1:{}\"\nsmtp = \"127.0.0.1:{}\"\nsecurity = \"starttls\"",
                bal.address, bal.kind, bal.imap_port, bal.smtp_port
            )
            .unwrap();
            if let Some(leaf) = &bal.certificate {
                writeln!(
                    text,
                    "client_cert = {}\nclient_key = {}",
                    q(&leaf.chain),
                    q(&leaf.key)
                )
                .unwrap();
            }
            text.push('\n');
        }
        let path = home.join("mss.toml");
        std::fs::write(&path, text).expect("write mss.toml");
        path
    }

    /// Everything the servers logged, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- postfix\n{}\n--- dovecot\n{}\n--- oidc\n{}",
            self.postfix.logs(),
            self.dovecot.logs(),
            self.idp.log()
        )
    }
}
