//! TLS (rustls, through tonic) for the gRPC port and for the calls a
//! service makes to the others. A process serves TLS when it is given a
//! certificate and key; it calls `https://` addresses trusting the
//! certificate authority it is given. Plain `http://` keeps working for
//! loopback and development.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// A process's TLS material, read once at startup.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    identity: Option<Identity>,
    ca: Option<Certificate>,
}

impl Tls {
    /// From PEM text: the port's certificate chain and key, and the
    /// authority trusted for `https://` calls.
    pub fn from_pem(identity: Option<(&[u8], &[u8])>, ca: Option<&[u8]>) -> Tls {
        Tls {
            identity: identity.map(|(cert, key)| Identity::from_pem(cert, key)),
            ca: ca.map(Certificate::from_pem),
        }
    }

    /// From PEM files; a certificate needs its key and the other way round.
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Tls, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => return Err("TLS needs both a certificate and its key".into()),
        };
        let ca = ca.map(read).transpose()?;
        Ok(Tls::from_pem(
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
            ca.as_deref(),
        ))
    }

    /// Whether the gRPC port speaks TLS.
    pub fn serves(&self) -> bool {
        self.identity.is_some()
    }

    /// The port's TLS settings, when it has a certificate.
    pub fn server(&self) -> Option<ServerTlsConfig> {
        self.identity
            .clone()
            .map(|id| ServerTlsConfig::new().identity(id))
    }

    /// An endpoint for `addr`: TLS for `https://`, trusting the configured
    /// authority (an `https://` address without one is refused, since
    /// nothing else would be trusted).
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::from_shared(addr.to_string())
            .map_err(|e| format!("{addr:?} is not a URL: {e}"))?;
        if !addr.starts_with("https://") {
            return Ok(endpoint);
        }
        let ca = self.ca.clone().ok_or_else(|| {
            format!("{addr} uses TLS: give the certificate authority to trust (JIXIAO_TLS_CA)")
        })?;
        endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(ca))
            .map_err(|e| format!("{addr}: {e}"))
    }
}
