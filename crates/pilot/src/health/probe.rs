//! The probes of health checks: TCP connect, HTTP(S) request, exec in the
//! container. Each returns `Ok(output)` when the check passes and `Err(reason)`
//! when it fails; the caller applies the timeout.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::plan::HttpProbe;

/// Connects to the machine's own `port` on IPv4 loopback, then IPv6 loopback.
pub async fn connect(port: u16) -> Result<TcpStream, String> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect(v4).await {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect(v6)
                .await
                .map_err(|_| format!("connect to port {port}: {e4}"))
        }
    }
}

/// `tcp`: passes when the port accepts a connection.
pub async fn tcp(port: u16) -> Result<String, String> {
    connect(port)
        .await
        .map(|_| format!("port {port} accepted a connection"))
}

/// `http`: passes on a 2xx answer; redirects are answers that fail.
pub async fn http(p: &HttpProbe) -> Result<String, String> {
    let stream = connect(p.port).await?;
    let host = p.host.clone().unwrap_or_else(|| "localhost".to_string());
    if p.https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake on port {}: {e}", p.port))?;
        request(tls, p, &host).await
    } else {
        request(stream, p, &host).await
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the status line.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    p: &HttpProbe,
    host: &str,
) -> Result<String, String> {
    let path = if p.path.starts_with('/') {
        p.path.clone()
    } else {
        format!("/{}", p.path)
    };
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: hangar-pilot\r\nAccept: */*\r\nConnection: close\r\n",
        p.method, path, host, p.port
    );
    for (k, v) in &p.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > 8192 {
            return Err("status line longer than 8 KiB".into());
        }
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| format!("read answer: {e}"))?;
        if n == 0 {
            return Err("connection closed before an HTTP status line".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]).into_owned();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    if (200..300).contains(&code) {
        Ok(format!("{} {} -> {line}", p.method, path))
    } else {
        Err(format!("{} {} -> {line}", p.method, path))
    }
}

/// TLS without certificate verification: the check talks to the machine's own
/// port, whose certificate is whatever the app serves (often self-signed).
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
