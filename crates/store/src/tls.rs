//! PostgreSQL over TLS, as libpq reads a URL's `sslmode` and `sslrootcert`: rustls (with *ring*),
//! trusting the system's roots unless `sslrootcert` names a file of its own. Managed databases
//! (RDS, Cloud SQL, Azure) require TLS.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How much of the server's certificate is checked: libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// `disable`: no TLS.
    Disable,
    /// `prefer`: TLS when the server offers it, the certificate not checked.
    Prefer,
    /// `require`: TLS, the certificate not checked (checked as `verify-ca` when `sslrootcert` is
    /// given, as libpq does).
    Require,
    /// `verify-ca`: TLS, the certificate signed by a trusted root; any host name.
    VerifyCa,
    /// `verify-full`: TLS, the certificate signed by a trusted root and naming the host.
    VerifyFull,
}

impl Verify {
    fn parse(value: &str) -> Option<Verify> {
        Some(match value {
            "disable" => Verify::Disable,
            "prefer" => Verify::Prefer,
            "require" => Verify::Require,
            "verify-ca" => Verify::VerifyCa,
            "verify-full" => Verify::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres negotiates; the checks are the connector's.
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            Verify::Disable => SslMode::Disable,
            Verify::Prefer => SslMode::Prefer,
            Verify::Require | Verify::VerifyCa | Verify::VerifyFull => SslMode::Require,
        }
    }
}

/// A URL's TLS settings, taken out of it (tokio-postgres reads neither `verify-*` nor `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) verify: Verify,
    /// `sslrootcert`: a PEM file of roots, or `system`.
    pub(crate) root_cert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` out of a URL's query: the URL without them, and the settings
/// (`prefer` by default, as libpq).
pub(crate) fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let mut settings = TlsSettings { verify: Verify::Prefer, root_cert: None };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), settings));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decoded(value);
        match key {
            "sslmode" => {
                settings.verify = Verify::parse(&value).ok_or_else(|| {
                    format!("`sslmode={value}` is not one of disable, prefer, require, verify-ca, verify-full")
                })?;
            }
            "sslrootcert" => settings.root_cert = Some(value),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, settings))
}

fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match (bytes[at], hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for these settings.
pub(crate) fn connector(settings: &TlsSettings) -> Result<RustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let checks_chain = matches!(settings.verify, Verify::VerifyCa | Verify::VerifyFull)
        || (settings.verify == Verify::Require && settings.root_cert.is_some());
    let config = if checks_chain {
        let roots = Arc::new(roots(settings.root_cert.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|error| format!("cannot check certificates: {error}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = if settings.verify == Verify::VerifyFull {
            webpki
        } else {
            Arc::new(AnyHostName(webpki))
        };
        builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
    } else {
        let algorithms = provider.signature_verification_algorithms;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(Unchecked(algorithms))).with_no_client_auth()
    };
    Ok(RustlsConnect { config: Arc::new(config) })
}

/// The roots to trust: the PEM file `sslrootcert` names, or the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("cannot read `sslrootcert` {path}: {error}"))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("`sslrootcert` {path} holds no certificate"));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("the system has no root certificates: name a file of them with `sslrootcert`".into());
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain checked, the host name not.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: encrypted, the certificate not checked (the
/// handshake's signatures still are), as libpq does.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Makes a TLS connection per server, named for SNI and the host name check.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("host {domain}: {error}")))?;
        Ok(RustlsConnectOne { config: self.config.clone(), name })
    }
}

/// One TLS handshake.
pub(crate) struct RustlsConnectOne {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(|tls| RustlsStream(Box::new(tls))) })
    }
}

/// A TLS session with the server.
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(context, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(context, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, settings) =
            split_url("postgres://u@db:5432/signal?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
                .expect("read");
        assert_eq!(url, "postgres://u@db:5432/signal?application_name=x");
        assert_eq!(settings, TlsSettings { verify: Verify::VerifyFull, root_cert: Some("/etc/ca.pem".into()) });
        let (url, settings) = split_url("postgres://u@db/signal").expect("read");
        assert_eq!((url.as_str(), settings.verify), ("postgres://u@db/signal", Verify::Prefer));
        let refused = split_url("postgres://u@db/signal?sslmode=verify").expect_err("refused");
        assert!(refused.contains("disable, prefer, require, verify-ca, verify-full"), "{refused}");
    }
}
