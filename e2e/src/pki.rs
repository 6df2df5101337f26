//! A throwaway certificate authority for one test run: serving certificates for loopback
//! servers (apiserver, etcd, registry), client certificates with Kubernetes identities,
//! and the service-account signing key. Everything is ECDSA P-256, which etcd,
//! kube-apiserver, docker-registry and rustls all accept.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn generate(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_string(),
        source,
    }
}

/// A certificate and its private key, PEM-encoded, with the files they were written to.
#[derive(Debug, Clone)]
pub struct CertifiedKeyFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A certificate authority whose certificates are written under one folder.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    pub cert_pem: String,
    pub cert_file: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("dir", &self.dir).finish()
    }
}

/// Who a certificate is for.
pub enum CertUse<'a> {
    /// A server on loopback, also valid for these extra DNS names.
    Server { dns_names: &'a [&'a str] },
    /// A client; Kubernetes reads the user from CN and the groups from O.
    Client {
        user: &'a str,
        groups: &'a [&'a str],
    },
    /// Both (etcd peers and the apiserver's own etcd client use one pair).
    ServerAndClient { name: &'a str },
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

impl TestCa {
    /// Creates a CA named `name` and writes `ca.crt` into `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let key = KeyPair::generate().map_err(generate("the CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate("the CA parameters"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(params, key).map_err(generate("the CA certificate"))?;
        let cert_pem = issuer.pem();
        let cert_file = dir.join("ca.crt");
        write(&cert_file, &cert_pem)?;
        Ok(TestCa {
            issuer,
            dir: dir.to_path_buf(),
            cert_pem,
            cert_file,
        })
    }

    /// Issues a certificate and writes `<file_stem>.crt` and `<file_stem>.key`.
    pub fn issue(
        &self,
        file_stem: &str,
        usage: CertUse<'_>,
    ) -> Result<CertifiedKeyFiles, PkiError> {
        let what = format!("the {file_stem} certificate");
        let key = KeyPair::generate().map_err(generate(&what))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate(&what))?;
        let mut dn = DistinguishedName::new();
        let loopback_sans = |dns: &[&str]| -> Vec<SanType> {
            let mut sans = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
            sans.extend(
                std::iter::once(&"localhost")
                    .chain(dns)
                    .filter_map(|name| (*name).try_into().ok().map(SanType::DnsName)),
            );
            sans
        };
        match usage {
            CertUse::Server { dns_names } => {
                dn.push(DnType::CommonName, file_stem);
                params.subject_alt_names = loopback_sans(dns_names);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            CertUse::Client { user, groups } => {
                dn.push(DnType::CommonName, user);
                for group in groups {
                    dn.push(DnType::OrganizationName, *group);
                }
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            CertUse::ServerAndClient { name } => {
                dn.push(DnType::CommonName, name);
                params.subject_alt_names = loopback_sans(&[]);
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate(&what))?;
        let files = CertifiedKeyFiles {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: self.dir.join(format!("{file_stem}.crt")),
            key_file: self.dir.join(format!("{file_stem}.key")),
        };
        write(&files.cert_file, &files.cert_pem)?;
        write(&files.key_file, &files.key_pem)?;
        Ok(files)
    }

    /// A fresh key pair for signing service-account tokens: the private key
    /// (`<file_stem>.key`, PKCS#8) for the signers, and the public key (`<file_stem>.pub`)
    /// for the apiserver's verifier, which in 1.20 reads only public keys there.
    pub fn signing_key(&self, file_stem: &str) -> Result<SigningKeyFiles, PkiError> {
        let key = KeyPair::generate().map_err(generate("the service-account signing key"))?;
        let files = SigningKeyFiles {
            private_key: self.dir.join(format!("{file_stem}.key")),
            public_key: self.dir.join(format!("{file_stem}.pub")),
        };
        write(&files.private_key, &key.serialize_pem())?;
        write(&files.public_key, &key.public_key_pem())?;
        Ok(files)
    }
}

/// The files of a service-account signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}
