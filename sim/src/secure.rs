//! A cluster that serves its API as a real one does: over HTTPS, with a certificate
//! signed by the cluster's own CA, to clients that present its bearer token. What a pod
//! finds in `/var/run/secrets/kubernetes.io/serviceaccount` (`ca.crt`, `token`) is what
//! [`Security::ca_pem`] and [`Security::token`] give, so in-cluster configuration can
//! be exercised against the simulator.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// The CA, serving certificate and token of one secure cluster.
pub(crate) struct Security {
    pub(crate) acceptor: TlsAcceptor,
    ca_pem: String,
    token: String,
}

impl Security {
    /// A fresh CA, a serving certificate for `127.0.0.1`, `localhost` and
    /// `kubernetes.default.svc` signed by it, and a random token; ALPN offers HTTP/2
    /// unless `http1_only`.
    pub(crate) fn generate(cluster: &str, http1_only: bool) -> Result<Self> {
        let bad = |e: rcgen::Error| Error::Tls(format!("cluster {cluster}: {e}"));
        let ca_key = KeyPair::generate().map_err(bad)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("{cluster}-ca"));
        let ca_cert = ca.self_signed(&ca_key).map_err(bad)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(bad)?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes.default.svc".to_owned()]).map_err(bad)?;
        leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let leaf_cert = leaf.signed_by(&key, &issuer).map_err(bad)?;
        let chain = vec![CertificateDer::from(leaf_cert.der().to_vec())];
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(chain, der)
                .map_err(|e| Error::Tls(e.to_string()))?;
        // As kube-apiserver: HTTP/2 for clients that offer it (client-go does), else 1.1.
        config.alpn_protocols =
            if http1_only { vec![b"http/1.1".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
        let token = format!("{:032x}", rand::random::<u128>());
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), ca_pem: ca_cert.pem(), token })
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token every request must carry.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Whether an `Authorization` header value carries this cluster's token.
    pub(crate) fn admits(&self, authorization: Option<&http::HeaderValue>) -> bool {
        let given = authorization.and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        given.is_some_and(|t| constant_time_eq(t.trim().as_bytes(), self.token.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
