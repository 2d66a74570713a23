//! `host.tls-inspect`: a TLS handshake with a granted host, reported.
//!
//! The sandbox has no sockets, so a plugin that checks certificates asks the
//! host. The host checks `host:port` against the step's `hosts` grant (the
//! same grant as `http-fetch`), connects within the step's deadline, makes
//! the handshake accepting any certificate (so that an expired or
//! self-signed one can still be described), then verifies the presented
//! chain against the webpki (Mozilla) roots plus the PEM roots the request
//! gives, and the leaf against the server name, and says why it failed.
//! Nothing is sent after the handshake.
//!
//! Built on rustls with the ring provider (what reqwest already uses),
//! `rustls-webpki` for the name check, and `x509-parser` for what webpki does
//! not expose (subject, issuer, validity, SANs).
//!
//! By default TLS connections are denied: with an empty `hosts` grant every
//! call fails with an error naming the host to grant.

use super::Denials;
use super::http::check_host;
use crate::runtime::bindings::types;
use crate::runtime::grants::HostPattern;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timeout of the connection and handshake unless the guest asks for another.
/// By default 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A handshake as the guest asked for it (mirrors the WIT record).
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub port: u16,
    pub server_name: Option<String>,
    pub trusted_ca_pem: Option<String>,
    pub timeout: Option<Duration>,
}

/// One presented certificate (mirrors the WIT record).
#[derive(Debug, Clone)]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub subject_alt_names: Vec<String>,
    pub self_signed: bool,
    pub sha256_fingerprint: String,
}

/// What the handshake showed (mirrors the WIT record).
#[derive(Debug, Clone)]
pub struct Report {
    pub protocol_version: String,
    pub cipher_suite: String,
    pub server_name: String,
    pub chain: Vec<Certificate>,
    pub chain_valid: bool,
    pub hostname_valid: bool,
    pub verify_error: Option<String>,
}

/// Per-step TLS access.
pub struct TlsCap {
    hosts: Vec<HostPattern>,
    deadline: Instant,
    denials: Denials,
}

impl TlsCap {
    /// Part two: per-step state from the `hosts` grant.
    pub fn new(hosts: &[HostPattern], deadline: Instant, denials: Denials) -> Self {
        TlsCap { hosts: hosts.to_vec(), deadline, denials }
    }

    /// Part three: `host.tls-inspect`.
    pub async fn inspect(&mut self, req: Request) -> Result<Report, String> {
        let host = req.host.trim().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("host {:?} is empty", req.host));
        }
        check_host(&self.hosts, &self.denials, &host, req.port)?;
        let name_text = req.server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name_text.clone())
            .map_err(|_| format!("server name {name_text:?} is not a valid DNS name or IP address"))?;
        let roots = roots(req.trusted_ca_pem.as_deref())?;
        let shown = if host.contains(':') { format!("[{host}]:{}", req.port) } else { format!("{host}:{}", req.port) };

        let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let now = Instant::now();
        let by_deadline = self.deadline < now + timeout;
        let remaining = self.deadline.min(now + timeout).saturating_duration_since(now);
        let timed_out = || {
            if by_deadline {
                format!("TLS connection to {shown} timed out at the step's deadline")
            } else {
                format!("TLS connection to {shown} timed out after {}", crate::units::format_duration(timeout))
            }
        };
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let handshake = handshake(provider.clone(), &host, req.port, server_name.clone(), &shown);
        let (chain, protocol_version, cipher_suite) =
            tokio::time::timeout(remaining, handshake).await.map_err(|_| timed_out())??;

        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(format!("TLS server {shown} presented no certificate"));
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        let verified = verifier.verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now());
        let hostname_valid = webpki::EndEntityCert::try_from(leaf)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&server_name).is_ok());
        // webpki builds the path first and checks the name last, so a name
        // error means the chain itself verified.
        let chain_valid = match &verified {
            Ok(_) => true,
            Err(rustls::Error::InvalidCertificate(e)) => matches!(
                e,
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }
            ),
            Err(_) => false,
        };
        let verify_error = match verified {
            Err(e) => Some(e.to_string()),
            Ok(_) if !hostname_valid => Some(format!("certificate not valid for name {name_text:?}")),
            Ok(_) => None,
        };
        Ok(Report {
            protocol_version,
            cipher_suite,
            server_name: name_text,
            chain: chain.iter().map(describe).collect::<Result<_, _>>()?,
            chain_valid,
            hostname_valid,
            verify_error,
        })
    }
}

/// Connects and makes the handshake; returns the presented chain, the
/// protocol version and the cipher suite.
async fn handshake(
    provider: Arc<CryptoProvider>,
    host: &str,
    port: u16,
    server_name: ServerName<'static>,
    shown: &str,
) -> Result<(Vec<CertificateDer<'static>>, String, String), String> {
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("TLS connection to {shown} failed: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls =
        connector.connect(server_name, tcp).await.map_err(|e| format!("TLS handshake with {shown} failed: {e}"))?;
    let conn = tls.get_ref().1;
    let chain = conn.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| s.suite().as_str().map(str::to_string).unwrap_or_else(|| format!("{:?}", s.suite())))
        .unwrap_or_else(|| "unknown".to_string());
    // A polite close; the report does not depend on it.
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
    Ok((chain, protocol, suite))
}

/// The webpki roots plus the certificates of `pem`.
fn roots(pem: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let Some(pem) = pem else { return Ok(roots) };
    let mut added = 0;
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| format!("trusted CA PEM: certificate {} cannot be read: {e}", i + 1))?;
        roots.add(cert).map_err(|e| format!("trusted CA PEM: certificate {} is not a usable root: {e}", i + 1))?;
        added += 1;
    }
    if added == 0 {
        return Err("trusted CA PEM: expected at least one \"-----BEGIN CERTIFICATE-----\" block, found none".into());
    }
    Ok(roots)
}

/// Reads what a report shows of one certificate.
fn describe(der: &CertificateDer<'_>) -> Result<Certificate, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the server presented a certificate that cannot be parsed: {e}"))?;
    let mut subject_alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => subject_alt_names.push(dns.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        subject_alt_names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let fingerprint = Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect();
    Ok(Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject_alt_names,
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        sha256_fingerprint: fingerprint,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// Accepts any certificate during the handshake (it is verified afterwards,
/// to describe it either way) but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `host.tls-inspect`'s request, in the contract's types.
impl From<types::TlsRequest> for Request {
    fn from(req: types::TlsRequest) -> Request {
        Request {
            host: req.host,
            port: req.port,
            server_name: req.server_name,
            trusted_ca_pem: req.trusted_ca_pem,
            timeout: req.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
        }
    }
}

impl From<Report> for types::TlsReport {
    fn from(r: Report) -> types::TlsReport {
        types::TlsReport {
            protocol_version: r.protocol_version,
            cipher_suite: r.cipher_suite,
            server_name: r.server_name,
            chain: r
                .chain
                .into_iter()
                .map(|c| types::TlsCertificate {
                    subject: c.subject,
                    issuer: c.issuer,
                    serial: c.serial,
                    not_before: c.not_before,
                    not_after: c.not_after,
                    subject_alt_names: c.subject_alt_names,
                    self_signed: c.self_signed,
                    sha256_fingerprint: c.sha256_fingerprint,
                })
                .collect(),
            chain_valid: r.chain_valid,
            hostname_valid: r.hostname_valid,
            verify_error: r.verify_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: u16) -> Request {
        Request { host: "127.0.0.1".into(), port, server_name: None, trusted_ca_pem: None, timeout: None }
    }

    fn cap(grant: &str, deadline: Duration) -> TlsCap {
        let hosts = [HostPattern::parse(grant).unwrap()];
        TlsCap::new(&hosts, Instant::now() + deadline, Denials::default())
    }

    #[tokio::test]
    async fn the_steps_deadline_bounds_a_handshake_that_never_ends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let started = Instant::now();
        let err = cap("127.0.0.1", Duration::from_millis(300)).inspect(request(port)).await.unwrap_err();
        assert_eq!(err, format!("TLS connection to 127.0.0.1:{port} timed out at the step's deadline"));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_host_not_granted_is_denied_and_recorded() {
        let mut cap = cap("127.0.0.1:1", Duration::from_secs(5));
        let err = cap.inspect(request(8443)).await.unwrap_err();
        assert_eq!(err, "hosts: 127.0.0.1:8443 is not granted to this step (granted: 127.0.0.1:1)");
        assert_eq!(cap.denials.list(), [err]);
    }

    #[test]
    fn bad_trusted_roots_are_named() {
        assert_eq!(
            roots(Some("not pem")).unwrap_err(),
            "trusted CA PEM: expected at least one \"-----BEGIN CERTIFICATE-----\" block, found none"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(roots(Some(garbage)).unwrap_err().starts_with("trusted CA PEM: certificate 1 is not a usable root: "));
        assert_eq!(roots(None).unwrap().len(), webpki_roots::TLS_SERVER_ROOTS.len());
    }
}
