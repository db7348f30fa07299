//! The sandbox's test PKI, shaped like IGC Santé: a "TEST" root, an "ÉLÉMENTAIRE
//! ORGANISATIONS" intermediate issuing the server certificate and the AUTH_CLI certificates
//! of application mailboxes, plus an unrelated CA and its server certificate for the
//! "IGC Santé only" check.
//!
//! Generated at the first start under `<dir>/pki/` and reused afterwards, so a client that
//! trusted the root once keeps trusting it. Keys are PKCS#8 PEM files with mode 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::error::SandboxError;
use crate::fsio;

/// Subject CN of the sandbox root (the test IGC Santé root's name).
pub const ROOT_CN: &str = "TEST AC RACINE IGC-SANTE ELEMENTAIRE";
/// Subject CN of the intermediate that issues server and AUTH_CLI certificates.
pub const INTERMEDIATE_CN: &str = "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS";
/// Subject CN of the CA that nobody should trust.
pub const UNTRUSTED_CN: &str = "AC HORS IGC-SANTE (SANDBOX)";

/// A certificate and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The certificate alone (PEM).
    pub cert: PathBuf,
    /// The certificate then its issuer (PEM): what a server or a client presents.
    pub chain: PathBuf,
    /// The private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

/// The PKI files of one sandbox directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// The only anchor a client of the sandbox should trust.
    pub root: PathBuf,
    pub intermediate: PathBuf,
    /// Root then intermediate: a client-CA file for servers checking AUTH_CLI certificates.
    pub ca_bundle: PathBuf,
    /// Server certificate for 127.0.0.1, localhost and the sandbox host names.
    pub server: Leaf,
    /// The unrelated CA (never to be trusted).
    pub untrusted_ca: PathBuf,
    /// A server certificate for the same names, issued by `untrusted_ca`.
    pub untrusted_server: Leaf,
    /// Whether this start created the PKI (false: reused from an earlier start).
    pub created: bool,
}

impl Pki {
    /// Opens the PKI of `dir` (`<dir>/pki`), creating whatever is missing. `server_names`
    /// are IP addresses or DNS names for the server certificates (used when they are made).
    pub fn open(dir: &Path, server_names: &[String]) -> Result<Pki, SandboxError> {
        let dir = dir.join("pki");
        let root = dir.join("root.pem");
        let root_key = dir.join("root.key");
        let intermediate = dir.join("intermediate.pem");
        let intermediate_key = dir.join("intermediate.key");
        let mut created = false;
        if !root.exists()
            || !root_key.exists()
            || !intermediate.exists()
            || !intermediate_key.exists()
        {
            // A new root: everything issued under an older one is stale.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(SandboxError::io(&dir))?;
            }
            create_authorities(&dir)?;
            created = true;
        }
        let pki = Pki {
            ca_bundle: dir.join("ca-bundle.pem"),
            server: leaf(&dir, "server"),
            untrusted_ca: dir.join("untrusted-ca.pem"),
            untrusted_server: leaf(&dir, "untrusted-server"),
            root,
            intermediate,
            dir,
            created,
        };
        if !pki.ca_bundle.exists() {
            let bundle = fsio::read(&pki.root)? + &fsio::read(&pki.intermediate)?;
            fsio::write(&pki.ca_bundle, bundle.as_bytes(), false)?;
        }
        if !pki.server.exists() {
            let params = server_params(server_names)?;
            pki.issue(&pki.server, params)?;
        }
        if !pki.untrusted_server.exists() {
            pki.issue_untrusted(server_names)?;
        }
        Ok(pki)
    }

    /// The AUTH_CLI certificate of an application mailbox, issued on first use: CN and
    /// e-mail SAN are the mailbox address, the only extended key usage is clientAuth.
    pub fn client(&self, mailbox: &str) -> Result<Leaf, SandboxError> {
        let name = format!("bal/{}", file_safe(mailbox));
        let leaf = leaf(&self.dir, &name);
        if leaf.exists() {
            return Ok(leaf);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = org_dn(mailbox);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ORG AUTH_CLI SANDBOX");
        params.subject_alt_names = vec![SanType::Rfc822Name(mailbox.to_owned().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&leaf, leaf_validity(params))?;
        Ok(leaf)
    }

    fn intermediate_issuer(&self) -> Result<Issuer<'static, KeyPair>, SandboxError> {
        let key = KeyPair::from_pem(&fsio::read(&self.dir.join("intermediate.key"))?)?;
        Ok(Issuer::from_ca_cert_pem(
            &fsio::read(&self.intermediate)?,
            key,
        )?)
    }

    fn issue(&self, leaf: &Leaf, mut params: CertificateParams) -> Result<(), SandboxError> {
        params.serial_number = Some(random_serial()?);
        let issuer = self.intermediate_issuer()?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?.pem();
        let chain = cert.clone() + &fsio::read(&self.intermediate)?;
        write_leaf(leaf, &cert, &chain, &key)
    }

    fn issue_untrusted(&self, server_names: &[String]) -> Result<(), SandboxError> {
        let mut params = ca_params(UNTRUSTED_CN);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "AUTRE AUTORITE");
        params.serial_number = Some(random_serial()?);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        fsio::write(&self.untrusted_ca, ca.pem().as_bytes(), false)?;
        let mut params = server_params(server_names)?;
        params.serial_number = Some(random_serial()?);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?.pem();
        let chain = cert.clone() + &ca.pem();
        write_leaf(&self.untrusted_server, &cert, &chain, &key)
    }
}

impl Leaf {
    fn exists(&self) -> bool {
        self.cert.exists() && self.chain.exists() && self.key.exists()
    }
}

fn leaf(dir: &Path, name: &str) -> Leaf {
    Leaf {
        cert: dir.join(format!("{name}.pem")),
        chain: dir.join(format!("{name}.chain.pem")),
        key: dir.join(format!("{name}.key")),
    }
}

fn write_leaf(leaf: &Leaf, cert: &str, chain: &str, key: &KeyPair) -> Result<(), SandboxError> {
    fsio::write(&leaf.key, key.serialize_pem().as_bytes(), true)?;
    fsio::write(&leaf.chain, chain.as_bytes(), false)?;
    fsio::write(&leaf.cert, cert.as_bytes(), false)
}

fn create_authorities(dir: &Path) -> Result<(), SandboxError> {
    let mut root_params = ca_params(ROOT_CN);
    // The root signs only the intermediate, which signs only leaves.
    root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root_params.serial_number = Some(random_serial()?);
    let root = CertifiedIssuer::self_signed(root_params, KeyPair::generate()?)?;
    let mut int_params = ca_params(INTERMEDIATE_CN);
    int_params.serial_number = Some(random_serial()?);
    let int_key = KeyPair::generate()?;
    let intermediate = CertifiedIssuer::signed_by(int_params, int_key, &root)?;
    fsio::write(
        &dir.join("root.key"),
        root.key().serialize_pem().as_bytes(),
        true,
    )?;
    fsio::write(&dir.join("root.pem"), root.pem().as_bytes(), false)?;
    fsio::write(
        &dir.join("intermediate.key"),
        intermediate.key().serialize_pem().as_bytes(),
        true,
    )?;
    fsio::write(
        &dir.join("intermediate.pem"),
        intermediate.pem().as_bytes(),
        false,
    )
}

/// The distinguished name of the IGC Santé test authorities.
fn igc_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, "ASIP-SANTE");
    dn.push(DnType::OrganizationalUnitName, "IGC-SANTE TEST");
    dn.push(DnType::CommonName, cn);
    dn
}

/// The distinguished name of an organisation's certificate (a fictitious health body).
fn org_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, "ETABLISSEMENT SANDBOX MSS");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = igc_dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params
}

fn server_params(names: &[String]) -> Result<CertificateParams, SandboxError> {
    let mut params = CertificateParams::default();
    let cn = names
        .iter()
        .find(|n| n.parse::<IpAddr>().is_err())
        .map_or("localhost", String::as_str);
    params.distinguished_name = org_dn(cn);
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(leaf_validity(params))
}

fn leaf_validity(mut params: CertificateParams) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(825);
    params
}

/// A positive 16-byte serial from the system's random source.
fn random_serial() -> Result<SerialNumber, SandboxError> {
    let mut bytes = crate::random::bytes::<16>()?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A file name for a mailbox address: letters, digits, `.`, `-`, `_` and `@` kept.
pub(crate) fn file_safe(address: &str) -> String {
    address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_inside_the_directory() {
        assert_eq!(file_safe("dpi@hopital.fr"), "dpi@hopital.fr");
        assert_eq!(file_safe("../../x/y@z"), ".._.._x_y@z");
    }
}
