//! The wss listener's certificate: the chain and private key read from the operator's PEM
//! files, checked against each other, and swapped in place on reload. Handshakes ask the
//! [`WssCertificate`] for the certificate each time, so a reload reaches every new connection
//! while connections already open keep the TLS session they have.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use thiserror::Error;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The PEM files the wss listener serves (`clients_wss_certificate_file`,
/// `clients_wss_private_key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (e.g. certbot's `fullchain.pem`).
    pub certificate_chain: PathBuf,
    /// The leaf's private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub private_key: PathBuf,
}

/// Why the certificate or key cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The chain file is unreadable or holds no certificate.
    #[error("cannot use the wss certificate chain {path:?}: {reason}")]
    Certificates {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file is unreadable, holds no key, or a key rustls cannot sign with.
    #[error("cannot use the wss private key {path:?}: {reason}")]
    PrivateKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the one the leaf certificate was issued for.
    #[error("the wss private key {key:?} does not belong to the first certificate in {certificate:?}: {reason}")]
    Mismatch {
        /// The chain file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The certificate and key new wss handshakes use; [`reload`](Self::reload) replaces them.
#[derive(Debug)]
pub struct WssCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl WssCertificate {
    /// Reads and checks `files`.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        // ring: the provider the rustls in our tree is built with (no process-wide default is
        // installed, so it is named here).
        let provider = Arc::new(ring::default_provider());
        let current = read(&files, &provider)?;
        Ok(Arc::new(Self {
            files,
            provider,
            current: RwLock::new(current),
        }))
    }

    /// The files this certificate is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again; on success new handshakes use what they hold now. On failure
    /// the certificate in use is kept: a half-renewed or mistyped file must not take the
    /// listener down.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A TLS acceptor (TLS 1.2 and 1.3, no client certificates) that serves whatever this
    /// certificate holds at each handshake.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, rustls::Error> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for WssCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The chain and key in `files`, checked to belong together.
fn read(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let certificates = |reason: String| TlsError::Certificates {
        path: files.certificate_chain.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.certificate_chain)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| certificates(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(certificates("no CERTIFICATE block in the file".into()));
    }
    let key_error = |reason: String| TlsError::PrivateKey {
        path: files.private_key.clone(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            key_error("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in the file".into())
        }
        e => key_error(pem_reason(e)),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(format!("not a usable key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key type that cannot tell its public key is let through, as rustls does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(e) => Err(TlsError::Mismatch {
            certificate: files.certificate_chain.clone(),
            key: files.private_key.clone(),
            reason: e.to_string(),
        }),
    }
}

/// A PEM reading error as an operator reads it.
fn pem_reason(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        e => format!("not a valid PEM file: {e}"),
    }
}
