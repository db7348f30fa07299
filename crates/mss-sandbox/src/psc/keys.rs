//! The simulator's RS256 signing key and its JWTs (compact JWS, header `typ: JWT`, which
//! Dovecot 2.3's local validation requires).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaKeyPair, RsaPublicKeyComponents};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::error::SandboxError;
use crate::fsio;

/// The signing key, loaded from (or first written to) `<dir>/psc/signing-key.pem`.
pub struct SigningKey {
    pair: RsaKeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key of `path`, or makes a 2048-bit one there (mode 0600).
    pub fn open(path: &Path) -> Result<SigningKey, SandboxError> {
        let key = if path.exists() {
            let pem = fsio::read(path)?;
            rsa::RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| SandboxError::Damaged {
                path: path.to_owned(),
                why: e.to_string(),
            })?
        } else {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| SandboxError::Key(e.to_string()))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| SandboxError::Key(e.to_string()))?;
            fsio::write(path, pem.as_bytes(), true)?;
            key
        };
        let der = key
            .to_pkcs8_der()
            .map_err(|e| SandboxError::Key(e.to_string()))?;
        let pair =
            RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| SandboxError::Key(e.to_string()))?;
        let n = key.n().to_bytes_be();
        let e = key.e().to_bytes_be();
        let digest = ring::digest::digest(&ring::digest::SHA256, &[n.as_slice(), &e].concat());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Ok(SigningKey { pair, n, e, kid })
    }

    /// The public key as a JWK set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        }]})
    }

    /// The public key in SubjectPublicKeyInfo PEM, for servers that validate tokens
    /// locally from a key file (Dovecot's `local_validation_key_dict`).
    pub fn public_pem(&self) -> Result<String, SandboxError> {
        use rsa::pkcs8::EncodePublicKey;
        let public = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&self.n),
            rsa::BigUint::from_bytes_be(&self.e),
        )
        .map_err(|e| SandboxError::Key(e.to_string()))?;
        public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SandboxError::Key(e.to_string()))
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, SandboxError> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| SandboxError::Key("RS256 signature failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The public half, for servers that check the tokens (the sandbox's operator).
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            n: self.n.clone(),
            e: self.e.clone(),
            kid: self.kid.clone(),
        }
    }

    /// The claims of a JWT this key signed, or `None` (bad shape, header or signature).
    /// Expiry is the caller's business.
    pub fn verify(&self, jwt: &str) -> Option<Value> {
        verify(&self.n, &self.e, &self.kid, jwt)
    }
}

/// The public key that checks the simulator's JWTs.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    n: Vec<u8>,
    e: Vec<u8>,
    pub kid: String,
}

impl VerifyingKey {
    /// The claims of a JWT the simulator signed, or `None`. Expiry is the caller's business.
    pub fn verify(&self, jwt: &str) -> Option<Value> {
        verify(&self.n, &self.e, &self.kid, jwt)
    }
}

fn verify(n: &[u8], e: &[u8], kid: &str, jwt: &str) -> Option<Value> {
    if jwt.len() > 16 * 1024 {
        return None;
    }
    let (input, sig) = jwt.rsplit_once('.')?;
    let (header, claims) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "RS256" || header["kid"] != kid {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    RsaPublicKeyComponents { n, e }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &sig,
        )
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}
