//! TLS for `syslog+tls://` (RFC 5425) and `syslog+relp+tls://`: rustls, the collector's
//! certificate checked against the system trust store or a given CA, and a client
//! certificate when one is configured (`OutputConfig::tls`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// TLS settings of the TLS outputs (`[output.tls]` in the config file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CA certificate(s) the collector's certificate must chain to. `None`:
    /// the system trust store (`/etc/ssl/certs` on Debian; `SSL_CERT_FILE`/`SSL_CERT_DIR`
    /// override it).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) and its private key, for collectors that ask for one
    /// (rsyslog's `StreamDriver.AuthMode="x509/certvalid"` or `"x509/name"`). Both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the collector's certificate must carry. Default: the output's HOST.
    pub server_name: Option<String>,
}

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} file {path} holds no usable PEM {what}: {detail}")]
    Parse {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the system trust store has no usable CA certificate ({0}); give [output.tls] ca")]
    NoSystemRoots(String),
    #[error("[output.tls]: cert and key go together; give both or neither")]
    HalfClientAuth,
    #[error("TLS client setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS client configuration, built once when the outputs open so that a wrong file is
/// an error at start, not at the first connect.
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: TlsConnector,
    server_name: Option<String>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.connector.config(), other.connector.config())
    }
}
impl Eq for TlsClient {}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

impl TlsClient {
    pub fn new(s: &TlsSettings) -> Result<TlsClient, TlsSetupError> {
        let mut roots = rustls::RootCertStore::empty();
        match &s.ca_file {
            Some(path) => {
                let pem = read("CA", path)?;
                let parse = |detail: String| TlsSetupError::Parse {
                    what: "certificate",
                    path: path.clone(),
                    detail,
                };
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| parse(e.to_string()))?;
                    roots.add(cert).map_err(|e| parse(e.to_string()))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(parse("no CERTIFICATE block".into()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "none found".to_string(), |e| e.to_string());
                    return Err(TlsSetupError::NoSystemRoots(why));
                }
            }
        }
        // ring, not aws-lc-rs (rustls' default, which adds post-quantum key exchange): it
        // builds from a small C/asm core without cmake on the CI's Debian 12, and the
        // classical X25519/P-256 groups are what rsyslog's gnutls and openssl drivers offer.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match (&s.cert_file, &s.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let pem = read("certificate", cert)?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsSetupError::Parse {
                        what: "certificate",
                        path: cert.clone(),
                        detail: e.to_string(),
                    })?;
                if chain.is_empty() {
                    return Err(TlsSetupError::Parse {
                        what: "certificate",
                        path: cert.clone(),
                        detail: "no CERTIFICATE block".into(),
                    });
                }
                let key_pem = read("key", key)?;
                let key_der =
                    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsSetupError::Parse {
                        what: "key",
                        path: key.clone(),
                        detail: e.to_string(),
                    })?;
                builder.with_client_auth_cert(chain, key_der)?
            }
            _ => return Err(TlsSetupError::HalfClientAuth),
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: s.server_name.clone(),
        })
    }

    /// The TLS handshake on `tcp`, checking the certificate against `host` (or the
    /// configured server name).
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
        port: u16,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not a TLS server name: {e}"),
            )
        })?;
        self.connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "TLS handshake with {host}:{port} failed: {e}; the collector's certificate must chain to the configured CA ([output.tls] ca, or the system trust store) and name `{name}`"
                    ),
                )
            })
    }
}
