//! The CRLs kept on disk (SC.MSS/CONF.22: "conservation de la dernière CRL non expirée").
//!
//! One file per issuing CA in `crl_dir`. A CRL is used only while it is not expired. A new
//! CRL (fetched from a distribution point or handed over by the caller) replaces the stored
//! one only if its signature checks against a known CA certificate, it is not expired, and it
//! is newer (higher CRL number, or later `thisUpdate` when neither has a number); the
//! replacement is a write to a temporary file then a rename, so a crash never leaves half a
//! CRL. Expired CRLs stay on disk (they say something about the past) but are never used.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Largest CRL accepted (IGC Santé CRLs weigh a few megabytes at most).
pub const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;

/// Tolerance for a CRL issued by a CA whose clock runs slightly ahead of ours.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// A parsed CRL and what decides whether it is used.
#[derive(Clone)]
pub(crate) struct StoredCrl {
    pub der: CertificateRevocationListDer<'static>,
    /// Raw DER of the issuer name: CRLs of the same CA compare on it.
    pub issuer: Vec<u8>,
    pub issuer_text: String,
    pub number: Option<Vec<u8>>,
    pub this_update: i64,
    pub next_update: Option<i64>,
}

impl StoredCrl {
    pub(crate) fn parse(bytes: &[u8]) -> Result<StoredCrl, String> {
        if bytes.len() > MAX_CRL_BYTES {
            return Err(format!("larger than {MAX_CRL_BYTES} bytes"));
        }
        let der = if bytes.starts_with(b"-----")
            || bytes.first().is_some_and(|b| b.is_ascii_whitespace())
        {
            CertificateRevocationListDer::from_pem_slice(bytes)
                .map_err(|e| format!("not a PEM CRL: {e}"))?
        } else {
            CertificateRevocationListDer::from(bytes.to_vec())
        };
        let (_, crl) =
            CertificateRevocationList::from_der(&der).map_err(|e| format!("not a CRL: {e}"))?;
        let number = crl.crl_number().map(|n| {
            let bytes = n.to_bytes_be();
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            bytes[start..].to_vec()
        });
        Ok(StoredCrl {
            issuer: crl.issuer().as_raw().to_vec(),
            issuer_text: crl.issuer().to_string(),
            number,
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            der: der.clone(),
        })
    }

    /// A CRL without `nextUpdate` never expires by its own account; we refuse to believe that.
    pub(crate) fn is_current(&self, now: i64) -> bool {
        self.next_update.is_some_and(|next| next > now)
            && self.this_update <= now + CLOCK_SKEW_SECONDS
    }

    fn is_newer_than(&self, other: &StoredCrl) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => (a.len(), a) > (b.len(), b),
            _ => self.this_update > other.this_update,
        }
    }

    /// Checks the signature against the certificate among `issuers` whose subject is this
    /// CRL's issuer.
    fn verify(&self, issuers: &[CertificateDer<'_>]) -> Result<(), String> {
        let (_, crl) = CertificateRevocationList::from_der(&self.der)
            .map_err(|e| format!("not a CRL: {e}"))?;
        let mut known = false;
        for issuer in issuers {
            let Ok((_, cert)) = X509Certificate::from_der(issuer) else {
                continue;
            };
            if cert.subject().as_raw() != self.issuer.as_slice() {
                continue;
            }
            known = true;
            if crl.verify_signature(cert.public_key()).is_ok() {
                return Ok(());
            }
        }
        Err(if known {
            "its signature does not match its issuer's key".to_owned()
        } else {
            format!(
                "its issuer ({}) is not a known CA certificate",
                self.issuer_text
            )
        })
    }

    fn file_name(&self) -> String {
        // FNV-1a of the issuer name: stable, short, and safe as a file name.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in &self.issuer {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}.crl")
    }
}

/// What happened to a CRL offered to the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum CrlUpdate {
    /// Stored: it replaces the previous CRL of that CA (or is the first one).
    Stored { issuer: String },
    /// The stored CRL of that CA is as new or newer: nothing changed.
    KeptStored { issuer: String },
    /// Refused, with the reason (expired, bad signature, unknown issuer, not a CRL…).
    Rejected(String),
}

/// CRLs in memory, mirrored in `crl_dir` when there is one.
pub(crate) struct CrlStore {
    dir: Option<PathBuf>,
    crls: Vec<StoredCrl>,
    /// Bumped when the set of CRLs changes, so a cached verifier knows it is stale.
    pub generation: u64,
}

impl CrlStore {
    /// Loads every CRL found in `dir` (`*.crl`, `*.pem`, `*.der`); unreadable files are
    /// reported and skipped, so one bad file does not disable the others.
    pub(crate) fn load(dir: Option<&Path>) -> Result<(CrlStore, Vec<String>), String> {
        let mut store = CrlStore {
            dir: dir.map(Path::to_owned),
            crls: Vec::new(),
            generation: 0,
        };
        let mut warnings = Vec::new();
        let Some(dir) = dir else {
            return Ok((store, warnings));
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the CRL directory {}: {e}", dir.display()))?;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the CRL directory {}: {e}", dir.display()))?;
        for entry in entries.flatten().take(10_000) {
            let path = entry.path();
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "crl" | "pem" | "der"));
            if !wanted || !path.is_file() {
                continue;
            }
            let parsed = std::fs::metadata(&path)
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    if m.len() > MAX_CRL_BYTES as u64 {
                        Err(format!("larger than {MAX_CRL_BYTES} bytes"))
                    } else {
                        std::fs::read(&path).map_err(|e| e.to_string())
                    }
                })
                .and_then(|bytes| StoredCrl::parse(&bytes));
            match parsed {
                Ok(crl) => store.keep_newest(crl),
                Err(e) => warnings.push(format!("CRL {} skipped: {e}", path.display())),
            }
        }
        Ok((store, warnings))
    }

    fn keep_newest(&mut self, crl: StoredCrl) {
        match self.crls.iter_mut().find(|c| c.issuer == crl.issuer) {
            Some(old) if crl.is_newer_than(old) => *old = crl,
            Some(_) => {}
            None => self.crls.push(crl),
        }
    }

    /// Until when the answer of [`CrlStore::current`] stays the same: the first moment a
    /// used CRL expires or a stored one becomes valid.
    pub(crate) fn stable_until(&self, now: i64) -> i64 {
        self.crls
            .iter()
            .filter_map(|crl| {
                if crl.is_current(now) {
                    crl.next_update
                } else if crl.this_update > now + CLOCK_SKEW_SECONDS {
                    Some(crl.this_update - CLOCK_SKEW_SECONDS)
                } else {
                    None
                }
            })
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The CRLs usable at `now`, and the issuers whose CRL has expired.
    pub(crate) fn current(
        &self,
        now: i64,
    ) -> (Vec<CertificateRevocationListDer<'static>>, Vec<String>) {
        let mut usable = Vec::new();
        let mut expired = Vec::new();
        for crl in &self.crls {
            if crl.is_current(now) {
                usable.push(crl.der.clone());
            } else {
                expired.push(crl.issuer_text.clone());
            }
        }
        (usable, expired)
    }

    /// Offers a CRL (DER or PEM); `issuers` are the CA certificates its signature may come from.
    pub(crate) fn offer(
        &mut self,
        bytes: &[u8],
        issuers: &[CertificateDer<'_>],
        now: i64,
    ) -> CrlUpdate {
        let crl = match StoredCrl::parse(bytes) {
            Ok(crl) => crl,
            Err(e) => return CrlUpdate::Rejected(e),
        };
        if let Err(e) = crl.verify(issuers) {
            return CrlUpdate::Rejected(format!("CRL of {}: {e}", crl.issuer_text));
        }
        if !crl.is_current(now) {
            return CrlUpdate::Rejected(format!(
                "CRL of {} is expired or not yet valid",
                crl.issuer_text
            ));
        }
        let issuer = crl.issuer_text.clone();
        if let Some(old) = self.crls.iter().find(|c| c.issuer == crl.issuer)
            && old.is_current(now)
            && !crl.is_newer_than(old)
        {
            return CrlUpdate::KeptStored { issuer };
        }
        if let Some(dir) = &self.dir
            && let Err(e) = write_atomically(&dir.join(crl.file_name()), &crl.der)
        {
            return CrlUpdate::Rejected(format!("CRL of {issuer} not saved: {e}"));
        }
        self.crls.retain(|c| c.issuer != crl.issuer);
        self.crls.push(crl);
        self.generation += 1;
        CrlUpdate::Stored { issuer }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result.map_err(|e| format!("cannot write {}: {e}", path.display()))
}
