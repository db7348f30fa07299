//! A private Dovecot 2.3 on 127.0.0.1: IMAP with STARTTLS and IMAPS, a submission service
//! (XOAUTH2 and EXTERNAL, relaying to Postfix), LMTP delivery and a SASL socket for Postfix.
//!
//! Tokens are checked by the oauth2 passdb with local JWT validation against the public
//! keys of the stand-in Pro Santé Connect ([`OAuth2`]); client certificates (EXTERNAL) are
//! checked against the given CA and the mailbox is the certificate's CN. The auth penalty
//! is off so tests of refused tokens do not slow each other down.
//!
//! ```no_run
//! use mss_testkit::dovecot::{Dovecot, DovecotConfig};
//! # fn demo(config: DovecotConfig) {
//! let Some(dovecot) = Dovecot::start_or_skip(config) else { return };
//! println!("IMAP STARTTLS on 127.0.0.1:{}", dovecot.imap_port);
//! # }
//! ```

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_program, free_port, missing};

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0} did not start: {1}")]
    Start(&'static str, String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// Local JWT validation of access tokens (Dovecot `introspection_mode = local`).
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// Public keys laid out as `DIR/<azp>/<alg>/<kid>` (PEM), the layout of Dovecot's
    /// `local_validation_key_dict = fs:posix:prefix=DIR/`.
    pub key_dir: PathBuf,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// The claim that names the mailbox (`email` for the stand-in provider).
    pub username_attribute: String,
}

/// What the instance is built from.
#[derive(Debug, Clone)]
pub struct DovecotConfig {
    /// Server certificate followed by its chain (PEM).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The CA certificates that issue client certificates (PEM bundle), for EXTERNAL.
    pub client_ca: PathBuf,
    /// Token validation; `None` leaves XOAUTH2/OAUTHBEARER refusing everything.
    pub oauth2: Option<OAuth2>,
    /// `auth_mechanisms`; `None` offers `xoauth2 oauthbearer external`.
    pub mechanisms: Option<String>,
}

impl DovecotConfig {
    /// TLS files and the client-certificate CA; no token validation, every mechanism.
    pub fn new(server_cert: &Path, server_key: &Path, client_ca: &Path) -> Self {
        DovecotConfig {
            server_cert: server_cert.to_owned(),
            server_key: server_key.to_owned(),
            client_ca: client_ca.to_owned(),
            oauth2: None,
            mechanisms: None,
        }
    }
}

/// A running Dovecot; stopped (by PID) when dropped.
pub struct Dovecot {
    pub dir: PathBuf,
    /// IMAP with STARTTLS.
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// Submission (STARTTLS), relaying to 127.0.0.1:`relay_port`.
    pub submission_port: u16,
    /// Where the submission service relays: a Postfix started with this Dovecot listens there.
    pub relay_port: u16,
    /// LMTP socket (Postfix delivers there).
    pub lmtp_socket: PathBuf,
    /// Dovecot SASL socket for Postfix (`smtpd_sasl_path`).
    pub auth_socket: PathBuf,
    pub log: PathBuf,
    mail_uid: u32,
    mail_gid: u32,
    child: Option<Child>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("dir", &self.dir)
            .field("imap_port", &self.imap_port)
            .finish_non_exhaustive()
    }
}

impl Dovecot {
    /// Starts Dovecot, or returns `None` after [`missing`] when it is not installed (which
    /// fails the test under `scripts/test`). Panics with the log if it does not start.
    pub fn start_or_skip(config: DovecotConfig) -> Option<Dovecot> {
        if find_program("dovecot").is_none() {
            missing("dovecot (apt: dovecot-core dovecot-imapd dovecot-submissiond dovecot-lmtpd)");
            return None;
        }
        match Dovecot::start(config) {
            Ok(d) => Some(d),
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a private instance in a new temporary directory.
    pub fn start(config: DovecotConfig) -> Result<Dovecot, ServerError> {
        let temp = tempfile::Builder::new()
            .prefix("mss-dovecot-")
            .tempdir()
            .map_err(io("temporary directory"))?;
        let dir = temp.path().to_path_buf();
        // Dovecot's unprivileged processes must be able to enter every directory.
        for sub in ["", "run", "state", "mail", "pki"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("chmod {}", path.display())))?;
        }
        let (mail_uid, mail_gid, users) = identities(&dir)?;
        fs::set_permissions(dir.join("mail"), fs::Permissions::from_mode(0o777))
            .map_err(io("chmod mail"))?;

        let mut dovecot = Dovecot {
            imap_port: free_port(),
            imaps_port: free_port(),
            submission_port: free_port(),
            relay_port: free_port(),
            lmtp_socket: dir.join("run/lmtp"),
            auth_socket: dir.join("run/auth-postfix"),
            log: dir.join("dovecot.log"),
            dir,
            mail_uid,
            mail_gid,
            child: None,
            _temp: Some(temp),
        };
        let conf = dovecot.write_config(&config, &users)?;
        let program = find_program("dovecot")
            .ok_or_else(|| ServerError::Start("dovecot", "not installed".to_owned()))?;
        let out = fs::File::create(dovecot.dir.join("stdout.log")).map_err(io("stdout.log"))?;
        let err = out.try_clone().map_err(io("stdout.log"))?;
        let child = Command::new(program)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io("spawn dovecot"))?;
        dovecot.child = Some(child);
        dovecot.wait_ready()?;
        Ok(dovecot)
    }

    fn write_config(&self, c: &DovecotConfig, users: &Users) -> Result<PathBuf, ServerError> {
        let d = self.dir.display();
        let oauth2_conf = self.dir.join("oauth2.conf.ext");
        let (oauth2, validation) = match &c.oauth2 {
            Some(o) => (
                format!(
                    "introspection_mode = local\n\
                     local_validation_key_dict = fs:posix:prefix={}/\n\
                     issuers = {}\n\
                     username_attribute = {}\n",
                    o.key_dir.display(),
                    o.issuers.join(" "),
                    o.username_attribute
                ),
                true,
            ),
            // Validation against an empty key directory: every token is refused.
            None => (
                format!(
                    "introspection_mode = local\n\
                     local_validation_key_dict = fs:posix:prefix={d}/no-keys/\n\
                     issuers = https://nobody.invalid\n\
                     username_attribute = email\n"
                ),
                false,
            ),
        };
        if !validation {
            fs::create_dir_all(self.dir.join("no-keys")).map_err(io("no-keys"))?;
        }
        fs::write(&oauth2_conf, oauth2).map_err(io("oauth2.conf.ext"))?;
        let conf = format!(
            r#"# Written by mss-testkit: a private instance for one test.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap submission lmtp
listen = 127.0.0.1
{users_settings}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_ca = <{ca}
ssl_min_protocol = TLSv1.2
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_username_from_cert = yes
ssl_cert_username_field = commonName
auth_mechanisms = {mechanisms}
auth_verbose = yes
auth_failure_delay = 0
disable_plaintext_auth = yes
mail_location = maildir:{d}/mail/%u
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth2}
}}
passdb {{
  driver = static
  mechanisms = external
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \Sent
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service submission-login {{
  chroot =
  inet_listener submission {{
    port = {submission}
  }}
}}
submission_relay_host = 127.0.0.1
submission_relay_port = {relay}
submission_relay_trusted = yes
hostname = localhost
service anvil {{
  chroot =
  # No penalty socket: no growing delay after refused logins (tests refuse on purpose).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"#,
            users_settings = users.settings,
            mechanisms = c
                .mechanisms
                .as_deref()
                .unwrap_or("xoauth2 oauthbearer external"),
            cert = c.server_cert.display(),
            key = c.server_key.display(),
            ca = c.client_ca.display(),
            oauth2 = oauth2_conf.display(),
            uid = self.mail_uid,
            gid = self.mail_gid,
            imap = self.imap_port,
            imaps = self.imaps_port,
            submission = self.submission_port,
            relay = self.relay_port,
        );
        let path = self.dir.join("dovecot.conf");
        fs::write(&path, conf).map_err(io("dovecot.conf"))?;
        Ok(path)
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let listening = [self.imap_port, self.imaps_port, self.submission_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if listening && self.auth_socket.exists() && self.lmtp_socket.exists() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ServerError::Start(
                    "dovecot",
                    format!("exited with {status}: {}", self.log_tail()),
                ));
            }
            if Instant::now() > deadline {
                return Err(ServerError::Start(
                    "dovecot",
                    format!("not listening after 15 s: {}", self.log_tail()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log (Dovecot's own file and its standard output).
    pub fn logs(&self) -> String {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        text.push_str(&fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default());
        text
    }

    fn log_tail(&self) -> String {
        let logs = self.logs();
        let start = logs.len().saturating_sub(2000);
        logs[logs.floor_char_boundary(start)..].to_owned()
    }

    /// The maildir of a mailbox.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user)
    }

    /// Writes messages straight into a mailbox's maildir `new/` (fast: 10,000 messages in
    /// about a second); Dovecot assigns UIDs when the folder is next opened.
    pub fn deliver_maildir<'a>(
        &self,
        user: &str,
        messages: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize, ServerError> {
        let root = self.maildir(user);
        for sub in ["", "new", "cur", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
            chown(&p, self.mail_uid, self.mail_gid)?;
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut n = 0;
        for message in messages {
            n += 1;
            let name = format!(
                "{stamp}.M{n}P{}.mss-testkit,S={}",
                std::process::id(),
                message.len()
            );
            let tmp = root.join("tmp").join(&name);
            let mut f = fs::File::create(&tmp).map_err(io("maildir tmp"))?;
            f.write_all(message).map_err(io("maildir write"))?;
            drop(f);
            chown(&tmp, self.mail_uid, self.mail_gid)?;
            fs::rename(&tmp, root.join("new").join(&name)).map_err(io("maildir rename"))?;
        }
        Ok(n)
    }

    /// Runs `doveadm` against this instance (e.g. `["expunge", "-u", user, "mailbox",
    /// "INBOX", "uid", "3"]`) and returns its output.
    pub fn doveadm(&self, args: &[&str]) -> Result<String, ServerError> {
        let doveadm = find_program("doveadm")
            .ok_or_else(|| ServerError::Start("doveadm", "not installed".to_owned()))?;
        let out = Command::new(doveadm)
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run doveadm"))?;
        if !out.status.success() {
            return Err(ServerError::Start(
                "doveadm",
                format!(
                    "{}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Delivers one message through `doveadm save` (as LMTP would: IDLE sessions see it).
    pub fn deliver(&self, user: &str, message: &[u8]) -> Result<(), ServerError> {
        let doveadm = find_program("doveadm")
            .ok_or_else(|| ServerError::Start("doveadm", "not installed".to_owned()))?;
        let mut child = Command::new(doveadm)
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .args(["save", "-u", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("spawn doveadm"))?;
        child
            .stdin
            .take()
            .ok_or_else(|| ServerError::Start("doveadm", "no stdin".to_owned()))?
            .write_all(message)
            .map_err(io("doveadm stdin"))?;
        let out = child.wait_with_output().map_err(io("doveadm"))?;
        if !out.status.success() {
            return Err(ServerError::Start(
                "doveadm save",
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
        if std::env::var_os("MSS_KEEP_SERVERS").is_some()
            && let Some(temp) = self._temp.take()
        {
            eprintln!("kept {}", temp.keep().display());
        }
    }
}

/// SIGTERM by PID, then SIGKILL if it is still there after 5 s.
pub(crate) fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

struct Users {
    settings: String,
}

/// Root runs mail as `nobody`; anyone else runs everything as themselves.
fn identities(dir: &Path) -> Result<(u32, u32, Users), ServerError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).map_err(io("stat temporary directory"))?;
    if meta.uid() == 0 {
        return Ok((
            65534,
            65534,
            Users {
                settings: String::new(),
            },
        ));
    }
    let name = std::env::var("USER").unwrap_or_else(|_| "nobody".to_owned());
    Ok((
        meta.uid(),
        meta.gid(),
        Users {
            settings: format!(
                "default_internal_user = {name}\ndefault_login_user = {name}\nfirst_valid_uid = {uid}\n",
                uid = meta.uid()
            ),
        },
    ))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), ServerError> {
    match std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        // Not root: the files are already ours.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(ServerError::Io {
            what: format!("chown {}", path.display()),
            source: e,
        }),
    }
}
