//! A test certificate authority for the wss tests: a CA made at run time and server
//! certificates it issues, as PEM files for the gateway and DER for the client to compare.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};
use tokio_rustls::rustls::pki_types::CertificateDer;

/// The host name the test certificates are issued for.
pub const HOST: &str = "gateway.test";

/// A CA trusted by the test client and nothing else.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate: its chain and key as PEM, and the leaf as DER.
pub struct ServerCert {
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// The CA certificate, for the client's root store.
    pub fn root(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for [`HOST`] with this `serial` and common name `subject`.
    pub fn issue(&self, serial: u64, subject: &str) -> ServerCert {
        let mut params = CertificateParams::new(vec![HOST.to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params.distinguished_name.push(DnType::CommonName, subject);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            chain_pem: pem::encode_many(&[
                pem::Pem::new("CERTIFICATE", cert.der().to_vec()),
                pem::Pem::new("CERTIFICATE", self.issuer.der().to_vec()),
            ]),
            key_pem: pem::encode(&pem::Pem::new("PRIVATE KEY", key.serialize_der())),
            der: cert.der().clone(),
        }
    }
}

/// Where a gateway's wss certificate and key files are.
#[derive(Clone)]
pub struct CertFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            chain: dir.join("fullchain.pem"),
            key: dir.join("privkey.pem"),
        }
    }

    /// Writes `cert` (each file replaced by a rename, as certbot's links switch at once).
    pub fn write(&self, cert: &ServerCert) {
        replace(&self.chain, &cert.chain_pem);
        replace(&self.key, &cert.key_pem);
    }
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
