//! A private Postfix on 127.0.0.1 next to a [`Dovecot`]: submission with STARTTLS and
//! Dovecot SASL (XOAUTH2/OAUTHBEARER), a plain SMTP port where Dovecot's submission service
//! relays, and delivery into Dovecot over LMTP for the domains given.
//!
//! Traps handled here (see the test-servers notes): the data directory belongs to `postfix`,
//! the log file sits under `maillog_file_prefixes`, master.cf has no chroot, the temporary
//! directory is 0755, and the master's PID comes from `queue/pid/master.pid`.
//!
//! Test hooks: a header `X-Test-Reject:` is refused with `550 5.7.1`, any recipient
//! `nobody@…` with `550 5.1.1`, and
//! [`PostfixConfig::message_size_limit`] sets the SIZE announced in EHLO.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::dovecot::{Dovecot, ServerError, io};
use crate::{find_program, free_port, missing};

/// What the instance is built from.
#[derive(Debug, Clone)]
pub struct PostfixConfig {
    /// Server certificate followed by its chain (PEM), and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Domains delivered into Dovecot (e.g. `test.local`).
    pub domains: Vec<String>,
    /// Largest message accepted, announced as SIZE (bytes).
    pub message_size_limit: u64,
}

impl PostfixConfig {
    pub fn new(server_cert: &Path, server_key: &Path, domain: &str) -> Self {
        PostfixConfig {
            server_cert: server_cert.to_owned(),
            server_key: server_key.to_owned(),
            domains: vec![domain.to_owned()],
            message_size_limit: 10 * 1024 * 1024,
        }
    }
}

/// A running Postfix; stopped (by the master's PID) when dropped.
#[derive(Debug)]
pub struct Postfix {
    pub dir: PathBuf,
    /// Submission: STARTTLS required, then AUTH (Dovecot SASL).
    pub submission_port: u16,
    /// Plain SMTP for 127.0.0.1 (where Dovecot's submission service relays).
    pub smtp_port: u16,
    pub log: PathBuf,
    master_pid: Option<u32>,
    _temp: Option<tempfile::TempDir>,
}

impl Postfix {
    /// Starts Postfix for `dovecot`, or returns `None` after [`missing`] when it is not
    /// installed. Panics with the log if it does not start.
    pub fn start_or_skip(dovecot: &Dovecot, config: PostfixConfig) -> Option<Postfix> {
        if find_program("postfix").is_none() {
            missing("postfix (apt: postfix)");
            return None;
        }
        match Postfix::start(dovecot, config) {
            Ok(p) => Some(p),
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a private instance in a new temporary directory; its plain SMTP port is the
    /// one Dovecot's submission relays to.
    pub fn start(dovecot: &Dovecot, config: PostfixConfig) -> Result<Postfix, ServerError> {
        let temp = tempfile::Builder::new()
            .prefix("mss-postfix-")
            .tempdir()
            .map_err(io("temporary directory"))?;
        let dir = temp.path().to_path_buf();
        for sub in ["", "conf", "queue", "data"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("chmod {}", p.display())))?;
        }
        let mut postfix = Postfix {
            submission_port: free_port(),
            smtp_port: dovecot.relay_port,
            log: dir.join("postfix.log"),
            dir,
            master_pid: None,
            _temp: Some(temp),
        };
        postfix.write_config(dovecot, &config)?;
        let conf = postfix.dir.join("conf");
        // The data directory must belong to postfix, the queue gets its own permissions.
        if let Err(e) = chown_to_postfix(&postfix.dir.join("data")) {
            return Err(ServerError::Start("postfix", e));
        }
        postfix.run(&conf, &["set-permissions"])?;
        postfix.run(&conf, &["start"])?;
        postfix.wait_ready()?;
        Ok(postfix)
    }

    fn write_config(&self, dovecot: &Dovecot, c: &PostfixConfig) -> Result<(), ServerError> {
        let d = self.dir.display();
        let run = dovecot.dir.join("run");
        let main = format!(
            r#"# Written by mss-testkit: a private instance for one test.
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = localhost
mydomain = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
virtual_mailbox_domains = {domains}
virtual_transport = lmtp:unix:{run}/lmtp
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2
smtpd_sasl_type = dovecot
smtpd_sasl_path = {run}/auth-postfix
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
message_size_limit = {size}
header_checks = regexp:{d}/conf/header_checks
smtpd_recipient_restrictions = check_recipient_access regexp:{d}/conf/recipient_checks, permit
biff = no
append_dot_mydomain = no
delay_warning_time = 0h
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
smtputf8_enable = no
"#,
            domains = c.domains.join(", "),
            run = run.display(),
            cert = c.server_cert.display(),
            key = c.server_key.display(),
            size = c.message_size_limit,
        );
        let master = format!(
            r#"# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"#,
            smtp = self.smtp_port,
            submission = self.submission_port,
        );
        let conf = self.dir.join("conf");
        fs::write(conf.join("main.cf"), main).map_err(io("main.cf"))?;
        fs::write(conf.join("master.cf"), master).map_err(io("master.cf"))?;
        fs::write(
            conf.join("header_checks"),
            "/^X-Test-Reject:/ REJECT rejected by header_checks\n",
        )
        .map_err(io("header_checks"))?;
        fs::write(
            conf.join("recipient_checks"),
            "/^nobody@/ 550 5.1.1 unknown mailbox\n",
        )
        .map_err(io("recipient_checks"))?;
        Ok(())
    }

    fn run(&self, conf: &Path, args: &[&str]) -> Result<(), ServerError> {
        let program = find_program("postfix")
            .ok_or_else(|| ServerError::Start("postfix", "not installed".to_owned()))?;
        let out = Command::new(program)
            .arg("-c")
            .arg(conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run postfix"))?;
        if !out.status.success() {
            return Err(ServerError::Start(
                "postfix",
                format!(
                    "postfix {} failed: {}{} {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.logs()
                ),
            ));
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let pid_file = self.dir.join("queue/pid/master.pid");
        loop {
            if self.master_pid.is_none() {
                self.master_pid = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
            }
            let listening = [self.submission_port, self.smtp_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if listening && self.master_pid.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ServerError::Start(
                    "postfix",
                    format!("not listening after 15 s: {}", self.logs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Postfix's log so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `needle` (e.g. `status=sent`) at least `count` times.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().matches(needle).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(pid) = self.master_pid {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            // The master stops its children; wait so the queue directory can go.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline
                && Path::new(&format!("/proc/{pid}")).exists()
                && !is_zombie(pid)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::env::var_os("MSS_KEEP_SERVERS").is_some()
            && let Some(temp) = self._temp.take()
        {
            eprintln!("kept {}", temp.keep().display());
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn chown_to_postfix(path: &Path) -> Result<(), String> {
    let out = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .output()
        .map_err(|e| format!("chown postfix: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chown postfix {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
