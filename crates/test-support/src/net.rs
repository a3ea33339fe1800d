//! Network pieces for transport tests, all on loopback: a TLS front with a certificate from a
//! test CA generated per run, and an HTTP `CONNECT` proxy that records what it was asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::{Error, Result};

fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Setup(format!("{what}: {error}"))
}

/// A TLS server on loopback that forwards each connection's plaintext to `target` (a devnet),
/// with a certificate for the names it was given, issued by a CA made for this run.
#[derive(Debug)]
pub struct TlsFront {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The test CA's certificate (PEM), which a client must be told to trust.
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    /// Serves TLS for `names` (DNS names or IP addresses) in front of `target`.
    ///
    /// # Errors
    /// When the certificates cannot be made or the port cannot be bound.
    pub async fn start(target: SocketAddr, names: &[&str]) -> Result<TlsFront> {
        crate::http(); // installs the crypto provider
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| failed("CA parameters", e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "x402 test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| failed("CA certificate", e))?;
        let mut leaf_params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .map_err(|e| failed("certificate parameters", e))?;
        leaf_params.is_ca = rcgen::IsCa::ExplicitNoCa;
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| failed("key", e))?;
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .map_err(|e| failed("certificate", e))?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .map_err(|e| failed("private key", e))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .map_err(|e| failed("TLS server", e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed("binding the TLS front", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| failed("the TLS front's port", e))?
            .port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to do.
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                });
            }
        });
        Ok(TlsFront {
            port,
            ca_pem: ca.pem(),
            task,
        })
    }
}

/// An HTTP proxy on loopback that serves `CONNECT host:port` by tunnelling to
/// `127.0.0.1:port` (every name resolves to loopback here), and records each target.
#[derive(Debug)]
pub struct ConnectProxy {
    /// Its URL, `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Starts the proxy.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start() -> Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed("binding the proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| failed("the proxy's port", e))?
            .port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let _ = tunnel(stream, &record).await;
                });
            }
        });
        Ok(ConnectProxy {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            task,
        })
    }

    /// Every `host:port` asked for so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

async fn tunnel(mut client: TcpStream, record: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    record
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(target.to_owned());
    let port = target
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok());
    let Some(port) = port else {
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
