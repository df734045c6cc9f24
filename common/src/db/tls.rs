//! TLS to PostgreSQL, with libpq's `sslmode` meanings, so that a managed
//! database that requires encryption works with the same URLs as `psql`:
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default) and `require`: encrypted when the server offers
//!   it (`require`: or fail), the certificate not checked, as libpq does;
//! - `verify-ca` and `verify-full`: encrypted and the certificate verified
//!   against `sslrootcert=<file>` or, without it, the public web roots.
//!   Both check the host name too (stricter than libpq's `verify-ca`).
//!
//! tokio-postgres itself knows only disable/prefer/require, so these two
//! parameters are taken out of the URL here.

use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection target: settings plus the TLS connector they call for.
pub struct PgTarget {
    /// Host, database, credentials, `ssl_mode`.
    pub config: tokio_postgres::Config,
    /// Used whenever `ssl_mode` is not `Disable`.
    pub tls: MakeRustlsConnect,
}

/// `DATABASE_URL` could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// tokio-postgres refused the rest of the URL.
    #[error("{0}")]
    Url(#[from] tokio_postgres::Error),
    /// An `sslmode` libpq does not know.
    #[error("unknown sslmode {0:?}")]
    SslMode(String),
    /// `sslrootcert` could not be read.
    #[error("sslrootcert {path}: {reason}")]
    RootCert {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    None,
    Full,
}

/// Parses a `postgres://` URL (or a key=value string), honouring `sslmode`
/// and `sslrootcert`.
pub fn target(url: &str) -> Result<PgTarget, TargetError> {
    let (rest, sslmode, rootcert) = split_tls_params(url);
    let mut config = tokio_postgres::Config::from_str(&rest)?;
    let verification = match sslmode.as_deref() {
        Some("disable") => {
            config.ssl_mode(SslMode::Disable);
            Verification::None
        }
        None | Some("allow") | Some("prefer") => {
            config.ssl_mode(SslMode::Prefer);
            Verification::None
        }
        Some("require") => {
            config.ssl_mode(SslMode::Require);
            Verification::None
        }
        Some("verify-ca") | Some("verify-full") => {
            config.ssl_mode(SslMode::Require);
            Verification::Full
        }
        Some(other) => return Err(TargetError::SslMode(other.to_string())),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let client = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verification::Full => builder
            .with_root_certificates(roots(rootcert.as_deref())?)
            .with_no_client_auth(),
    };
    Ok(PgTarget {
        config,
        tls: MakeRustlsConnect::new(client),
    })
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query string.
fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let (Some((base, query)), true) = (url.split_once('?'), url.contains("://")) else {
        return (url.to_string(), None, None);
    };
    let (mut sslmode, mut rootcert, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => sslmode = Some(value.to_string()),
            Some(("sslrootcert", value)) => rootcert = Some(value.to_string()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, sslmode, rootcert)
}

fn roots(file: Option<&str>) -> Result<RootCertStore, TargetError> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let fail = |reason: String| TargetError::RootCert {
                path: path.to_string(),
                reason,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
                store
                    .add(cert.map_err(|e| fail(e.to_string()))?)
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// libpq's `prefer`/`require`: the channel is encrypted and the handshake
/// signatures are checked, but the certificate chain is not.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem",
        );
        assert_eq!(rest, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(
            (mode.as_deref(), root.as_deref()),
            (Some("verify-full"), Some("/ca.pem"))
        );
        assert_eq!(split_tls_params("postgres://h/db").0, "postgres://h/db");
        assert_eq!(
            split_tls_params("postgres://h/db?sslmode=disable").0,
            "postgres://h/db"
        );
    }

    #[test]
    fn modes_map_to_libpq_meanings() {
        let mode = |url: &str| target(url).map(|t| t.config.get_ssl_mode());
        assert_eq!(mode("postgres://h/db").ok(), Some(SslMode::Prefer));
        assert_eq!(
            mode("postgres://h/db?sslmode=disable").ok(),
            Some(SslMode::Disable)
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=require").ok(),
            Some(SslMode::Require)
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=verify-full").ok(),
            Some(SslMode::Require)
        );
        assert!(matches!(
            target("postgres://h/db?sslmode=sometimes"),
            Err(TargetError::SslMode(_))
        ));
        assert!(matches!(
            target("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem"),
            Err(TargetError::RootCert { .. })
        ));
    }
}
