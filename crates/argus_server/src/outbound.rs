//! Requests Argus makes to other services: the outbox's webhooks and OpenID Connect (discovery,
//! keys, tokens, user info). HTTP/1.1, one connection per request, over TLS for `https` URLs (rustls
//! with the ring provider and the system's root certificates, the same stack async-nats uses), with a
//! deadline for the whole exchange and a cap on the answer's size.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// An answer: its status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The TLS configuration for every outbound connection: the system's roots, built once.
fn tls() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<tokio_rustls::rustls::ClientConfig>, String>> =
        OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use tokio_rustls::rustls;
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no trusted root certificates on this machine ({} errors reading them)",
                    found.errors.len()
                ));
            }
            // ring, as async-nats already builds it (rustls deprecates it only for lacking
            // post-quantum key exchange, which aws-lc-rs would add at a large build cost).
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS: {e}"))
        })
        .clone()
}

/// Whether `host` is this machine (where plain `http` is acceptable for an identity provider).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sends one request and reads the whole answer (at most `max_bytes`), within `timeout`.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(HeaderName, String)],
    body: Option<(&str, Vec<u8>)>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Answer, String> {
    let uri: Uri = url.parse().map_err(|e| format!("url `{url}`: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("url `{url}`: expected http:// or https://")),
    };
    // An IPv6 literal comes with its brackets, which neither a socket address nor TLS takes.
    let host = uri
        .host()
        .ok_or("a url without a host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let authority = uri
        .authority()
        .map_or(host.clone(), |a| a.as_str().to_string());
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, "argus");
    for (k, v) in headers {
        req = req.header(k, HeaderValue::from_str(v).map_err(|e| e.to_string())?);
    }
    let bytes = match body {
        Some((ctype, b)) => {
            req = req.header(header::CONTENT_TYPE, ctype);
            b
        }
        None => Vec::new(),
    };
    let req = req
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| e.to_string())?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        if https {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(tls()?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            exchange(tls, req, max_bytes).await
        } else {
            exchange(tcp, req, max_bytes).await
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer from {host} within {} s", timeout.as_secs()))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
    max_bytes: usize,
) -> Result<Answer, String> {
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    let c = tokio::spawn(conn);
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| format!("reading the answer (at most {max_bytes} bytes): {e}"))?
        .to_bytes();
    c.abort();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.8.0.1", "[::1]", "::1"] {
            assert!(super::is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "localhost.example.com", "[::2]"] {
            assert!(!super::is_loopback(h), "{h}");
        }
    }
}
