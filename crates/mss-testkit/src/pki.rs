//! A test PKI shaped like IGC Santé: a root, an "ÉLÉMENTAIRE ORGANISATIONS" intermediate that
//! issues the server and AUTH_CLI client certificates, and the bad cases the TLS policy must
//! refuse (another CA, expired, revoked with a CRL that lists it).
//!
//! Everything is written as PEM files in the given directory, so real servers (Dovecot,
//! Postfix, `openssl s_server`) can read them as well as our client. Keys are test keys in a
//! temporary directory: they protect nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    CrlDistributionPoint, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("test PKI: cannot build a certificate: {0}")]
    Build(#[from] rcgen::Error),
    #[error("test PKI: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A certificate with its key, as files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate alone (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The certificate followed by the certificate of its issuer (PEM), what a server sends.
    pub chain: PathBuf,
    /// The certificate in DER, for tests that compare what the peer received.
    pub der: Vec<u8>,
    /// Its serial number (big-endian), as a CRL lists it.
    pub serial: Vec<u8>,
}

/// The test PKI. Build it once per test with [`TestPki::generate`].
pub struct TestPki {
    pub dir: PathBuf,
    /// "TEST AC RACINE IGC-SANTE ELEMENTAIRE": the only trust anchor a client should configure.
    pub root: PathBuf,
    /// "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", issued by the root.
    pub intermediate: PathBuf,
    /// Root then intermediate, in one PEM file (what Dovecot's `ssl_client_ca_file` wants).
    pub ca_bundle: PathBuf,
    /// Server certificate for `127.0.0.1` and `localhost` (IP and DNS names), by the intermediate.
    pub server: Leaf,
    /// An unrelated self-signed root, trusted by nobody.
    pub other_ca: PathBuf,
    /// A server certificate for `127.0.0.1`/`localhost` issued by `other_ca`.
    pub untrusted_server: Leaf,
    /// A server certificate for `127.0.0.1`/`localhost` that expired yesterday.
    pub expired_server: Leaf,
    /// A server certificate for `127.0.0.1`/`localhost` listed in [`TestPki::crl`].
    pub revoked_server: Leaf,
    /// A server certificate only valid for `mail.other.test`: a wrong-host case on 127.0.0.1.
    pub wrong_host_server: Leaf,
    /// The intermediate's CRL (PEM), valid for 7 days, listing `revoked_server`.
    pub crl: PathBuf,
    /// The intermediate's CRL (PEM), valid for 7 days, listing nothing (an older number).
    pub empty_crl: PathBuf,
    /// The root's CRL (PEM), listing nothing: with it, every CA of the chain has a CRL
    /// (Dovecot's `ssl_require_crl` wants one for each).
    pub root_crl: PathBuf,
    /// `ca_bundle` followed by the root's CRL and `crl`: a client-CA file for Dovecot that
    /// checks client certificates against CRLs.
    pub ca_bundle_with_crls: PathBuf,
    root_ca: CertifiedIssuer<'static, KeyPair>,
    intermediate_ca: CertifiedIssuer<'static, KeyPair>,
    intermediate_pem: String,
    next_serial: AtomicU32,
    crl_number: AtomicU32,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The two names every test server certificate carries.
pub const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

impl TestPki {
    /// Generates the whole PKI into `dir` (which must exist).
    pub fn generate(dir: &Path) -> Result<TestPki, PkiError> {
        let now = OffsetDateTime::now_utc();
        let serials = AtomicU32::new(1);
        let next = |s: &AtomicU32| serial(s.fetch_add(1, Ordering::Relaxed));

        let mut root_params = ca_params("TEST AC RACINE IGC-SANTE ELEMENTAIRE", now);
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        root_params.serial_number = Some(next(&serials));
        let root_ca = CertifiedIssuer::self_signed(root_params, KeyPair::generate()?)?;

        let mut int_params = ca_params("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", now);
        int_params.serial_number = Some(next(&serials));
        let intermediate_ca =
            CertifiedIssuer::signed_by(int_params, KeyPair::generate()?, &root_ca)?;

        let mut other_params = ca_params("AC SANS RAPPORT AVEC IGC-SANTE", now);
        other_params
            .distinguished_name
            .push(DnType::OrganizationName, "Autre AC");
        other_params.serial_number = Some(next(&serials));
        let other_ca = CertifiedIssuer::self_signed(other_params, KeyPair::generate()?)?;

        let write_pem = |name: &str, pem: &str| -> Result<PathBuf, PkiError> {
            let path = dir.join(name);
            write(&path, pem)?;
            Ok(path)
        };
        let root_pem = root_ca.pem();
        let intermediate_pem = intermediate_ca.pem();
        let root = write_pem("root.pem", &root_pem)?;
        let intermediate = write_pem("intermediate.pem", &intermediate_pem)?;
        let ca_bundle = write_pem("ca-bundle.pem", &format!("{root_pem}{intermediate_pem}"))?;
        let other_ca_path = write_pem("other-ca.pem", &other_ca.pem())?;

        let mut pki = TestPki {
            dir: dir.to_owned(),
            root,
            intermediate,
            ca_bundle,
            other_ca: other_ca_path,
            server: placeholder(),
            untrusted_server: placeholder(),
            expired_server: placeholder(),
            revoked_server: placeholder(),
            wrong_host_server: placeholder(),
            crl: PathBuf::new(),
            empty_crl: PathBuf::new(),
            root_crl: PathBuf::new(),
            ca_bundle_with_crls: PathBuf::new(),
            root_ca,
            intermediate_ca,
            intermediate_pem,
            next_serial: serials,
            crl_number: AtomicU32::new(1),
        };

        pki.server = pki.issue_server("server", &SERVER_NAMES, None)?;
        pki.revoked_server = pki.issue_server("revoked-server", &SERVER_NAMES, None)?;
        pki.wrong_host_server =
            pki.issue_server("wrong-host-server", &["mail.other.test"], None)?;
        pki.expired_server = pki.issue(
            "expired-server",
            server_params(
                &SERVER_NAMES,
                now - Duration::days(30),
                now - Duration::days(1),
            )?,
        )?;
        {
            let mut params = server_params(&SERVER_NAMES, now, now + Duration::days(365))?;
            params.serial_number = Some(pki.next_serial());
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &other_ca)?;
            pki.untrusted_server = pki.write_leaf(
                "untrusted-server",
                &cert.pem(),
                &key,
                &other_ca.pem(),
                cert.der().to_vec(),
                params,
            )?;
        }

        let week = Duration::days(7);
        pki.empty_crl = pki.write_crl("intermediate-empty.crl.pem", &[], now, now + week)?;
        let revoked = [pki.revoked_server.serial.as_slice()];
        pki.crl = pki.write_crl("intermediate.crl.pem", &revoked, now, now + week)?;
        pki.root_crl = {
            let params = crl_params(&[], now, now + week, pki.next_crl_number());
            let pem = params.signed_by(&pki.root_ca)?.pem()?;
            write_pem("root.crl.pem", &pem)?
        };
        let bundle = [&pki.ca_bundle, &pki.root_crl, &pki.crl]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<String>();
        pki.ca_bundle_with_crls = write_pem("ca-bundle-with-crls.pem", &bundle)?;
        Ok(pki)
    }

    /// Issues a server certificate by the intermediate for `names` (IP addresses or DNS
    /// names), valid from now for a year, with an optional CRL distribution point URL.
    /// Files are `<name>.pem`, `<name>.key`, `<name>.chain.pem`.
    pub fn issue_server(
        &self,
        name: &str,
        names: &[&str],
        crl_url: Option<&str>,
    ) -> Result<Leaf, PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut params = server_params(names, now - Duration::hours(1), now + Duration::days(365))?;
        if let Some(url) = crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.to_owned()],
            }];
        }
        self.issue(name, params)
    }

    /// Issues an ORG AUTH_CLI client certificate for an application mailbox: CN is the
    /// mailbox address (Dovecot takes it as the user name with
    /// `ssl_cert_username_field = commonName`), the address is also an e-mail SAN, and the
    /// only extended key usage is clientAuth. Files are named after the address.
    pub fn issue_client(&self, mailbox: &str) -> Result<Leaf, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.issue_client_valid(mailbox, now - Duration::hours(1), now + Duration::days(365))
    }

    /// Same as [`TestPki::issue_client`] with a chosen validity (for expired client certificates).
    pub fn issue_client_valid(
        &self,
        mailbox: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Leaf, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(mailbox);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ORG AUTH_CLI MSS TEST");
        params.subject_alt_names = vec![SanType::Rfc822Name(
            mailbox.to_owned().try_into().map_err(PkiError::Build)?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let file = format!("client-{}", file_safe(mailbox));
        self.issue(&file, params)
    }

    /// Writes a CRL of the intermediate listing `revoked` serial numbers, with the given
    /// validity, under `file_name` in the PKI directory. Each call takes a higher CRL number,
    /// so a later CRL is "newer" than an earlier one.
    pub fn write_crl(
        &self,
        file_name: &str,
        revoked: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<PathBuf, PkiError> {
        let pem = self.crl_pem(revoked, this_update, next_update)?;
        let path = self.dir.join(file_name);
        write(&path, &pem)?;
        Ok(path)
    }

    /// A CRL of the intermediate as PEM text, not written anywhere (what a distribution point
    /// serves, or what a test hands to the client directly).
    pub fn crl_pem(
        &self,
        revoked: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let params = crl_params(revoked, this_update, next_update, self.next_crl_number());
        Ok(params.signed_by(&self.intermediate_ca)?.pem()?)
    }

    /// The same CRL as [`TestPki::crl_pem`] in DER.
    pub fn crl_der(
        &self,
        revoked: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        let params = crl_params(revoked, this_update, next_update, self.next_crl_number());
        Ok(params.signed_by(&self.intermediate_ca)?.der().to_vec())
    }

    /// The root certificate in DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root_ca.der().to_vec()
    }

    /// The intermediate certificate in DER.
    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate_ca.der().to_vec()
    }

    fn issue(&self, name: &str, mut params: CertificateParams) -> Result<Leaf, PkiError> {
        params.serial_number = Some(self.next_serial());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.intermediate_ca)?;
        self.write_leaf(
            name,
            &cert.pem(),
            &key,
            &self.intermediate_pem,
            cert.der().to_vec(),
            params,
        )
    }

    fn write_leaf(
        &self,
        name: &str,
        cert_pem: &str,
        key: &KeyPair,
        issuer_pem: &str,
        der: Vec<u8>,
        params: CertificateParams,
    ) -> Result<Leaf, PkiError> {
        let cert = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        let chain = self.dir.join(format!("{name}.chain.pem"));
        write(&cert, cert_pem)?;
        write(&key_path, &key.serialize_pem())?;
        write(&chain, &format!("{cert_pem}{issuer_pem}"))?;
        Ok(Leaf {
            cert,
            key: key_path,
            chain,
            der,
            serial: params
                .serial_number
                .map(|s| s.to_bytes())
                .unwrap_or_default(),
        })
    }

    fn next_serial(&self) -> SerialNumber {
        serial(self.next_serial.fetch_add(1, Ordering::Relaxed))
    }

    fn next_crl_number(&self) -> SerialNumber {
        serial(self.crl_number.fetch_add(1, Ordering::Relaxed))
    }
}

fn placeholder() -> Leaf {
    Leaf {
        cert: PathBuf::new(),
        key: PathBuf::new(),
        chain: PathBuf::new(),
        der: Vec::new(),
        serial: Vec::new(),
    }
}

/// Positive serial numbers, unique within one PKI.
fn serial(n: u32) -> SerialNumber {
    let mut bytes = vec![0x4d, 0x53];
    bytes.extend_from_slice(&n.to_be_bytes());
    SerialNumber::from_slice(&bytes)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, "ASIP-SANTE");
    dn.push(DnType::OrganizationalUnitName, "IGC-SANTE TEST");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(common_name: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params
}

fn server_params(
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = dn(names.first().copied().unwrap_or("server"));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

fn crl_params(
    revoked: &[&[u8]],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: SerialNumber,
) -> CertificateRevocationListParams {
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: number,
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: this_update - Duration::minutes(5),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
}

fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_verifies_the_chains_and_sees_the_revocation() {
        let Some(openssl) = crate::find_program("openssl") else {
            crate::missing("openssl");
            return;
        };
        let dir = tempdir();
        let pki = TestPki::generate(&dir).unwrap();
        let client = pki.issue_client("robot@hopital.mssante.test").unwrap();
        let verify = |leaf: &Path, extra: &[&str]| {
            std::process::Command::new(&openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(&pki.root)
                .arg("-untrusted")
                .arg(&pki.intermediate)
                .args(extra)
                .arg(leaf)
                .output()
                .unwrap()
        };
        for good in [&pki.server.cert, &client.cert] {
            let out = verify(good, &[]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let purpose = verify(&client.cert, &["-purpose", "sslserver"]);
        assert!(
            !purpose.status.success(),
            "a client certificate must not serve"
        );
        assert!(!verify(&pki.untrusted_server.cert, &[]).status.success());
        assert!(!verify(&pki.expired_server.cert, &[]).status.success());
        let crl_args = ["-crl_check", "-CRLfile"];
        let crl = pki.crl.to_str().unwrap();
        let empty = pki.empty_crl.to_str().unwrap();
        let revoked = verify(&pki.revoked_server.cert, &[crl_args[0], crl_args[1], crl]);
        assert!(
            !revoked.status.success(),
            "the CRL must list the revoked certificate"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&revoked.stdout),
            String::from_utf8_lossy(&revoked.stderr)
        );
        assert!(said.contains("revoked"), "{said}");
        let not_listed = verify(&pki.revoked_server.cert, &[crl_args[0], crl_args[1], empty]);
        assert!(
            not_listed.status.success(),
            "{}",
            String::from_utf8_lossy(&not_listed.stdout)
        );
        let subject = std::process::Command::new(&openssl)
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&client.cert)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&subject.stdout).contains("CN = robot@hopital.mssante.test")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mss-pki-{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
