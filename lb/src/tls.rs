//! TLS termination: certificates from PEM files chosen by SNI, swapped atomically on
//! reload; a self-signed certificate when none is configured.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use meridian_config::Config;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};

/// The certificates in force.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` certificates by suffix `.example.com`.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    /// Served when no name matches (or the client sent no SNI).
    default: Option<Arc<CertifiedKey>>,
    /// The names of the generated certificate, when none is configured.
    generated_for: Option<Vec<String>>,
}

impl CertStore {
    /// Loads the configured certificates, or generates a self-signed one for the route
    /// hosts and `localhost` when none is configured.
    pub(crate) fn load(config: &Config) -> Result<Self> {
        let lb = &config.lb;
        let mut store = CertStore::default();
        if lb.certificates.is_empty() {
            return CertStore::generated(lb.routes.iter().map(|r| r.host.clone()).collect());
        }
        for c in &lb.certificates {
            let key = Arc::new(load_pair(&config.resolve(&c.cert), &config.resolve(&c.key))?);
            if c.names.is_empty() || store.default.is_none() {
                store.default.get_or_insert_with(|| key.clone());
            }
            for n in &c.names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix('*') {
                    Some(suffix) => store.wildcard.push((suffix.to_owned(), key.clone())),
                    None => {
                        store.by_name.entry(n).or_insert_with(|| key.clone());
                    }
                }
            }
        }
        Ok(store)
    }

    /// A self-signed certificate for `hosts` and `localhost`.
    pub(crate) fn generated(mut hosts: Vec<String>) -> Result<Self> {
        hosts.push("localhost".into());
        hosts.sort();
        hosts.dedup();
        let default = Some(self_signed(hosts.clone())?);
        Ok(CertStore { default, generated_for: Some(hosts), ..CertStore::default() })
    }

    /// A generated store whose names are not `hosts` (and `localhost`): the route hosts
    /// changed, and the certificate should follow them.
    pub(crate) fn generated_for_other_than(&self, hosts: &[String]) -> bool {
        let Some(names) = &self.generated_for else { return false };
        let mut want: Vec<&str> = hosts.iter().map(String::as_str).chain(["localhost"]).collect();
        want.sort_unstable();
        want.dedup();
        want != names.iter().map(String::as_str).collect::<Vec<_>>()
    }

    fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.by_name.get(&name) {
                return Some(k.clone());
            }
            for (suffix, k) in &self.wildcard {
                if let Some(label) = name.strip_suffix(suffix.as_str())
                    && !label.is_empty()
                    && !label.contains('.')
                {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

fn cert_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Certificate { path: path.to_path_buf(), message: message.into() }
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let file = std::fs::File::open(cert).map_err(|e| cert_error(cert, e.to_string()))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error(cert, "no CERTIFICATE in the file"));
    }
    let file = std::fs::File::open(key).map_err(|e| cert_error(key, e.to_string()))?;
    let der = rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| cert_error(key, format!("bad PEM: {e}")))?
        .ok_or_else(|| cert_error(key, "no PRIVATE KEY in the file"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| cert_error(key, format!("unusable key: {e}")))?;
    let pair = CertifiedKey::new(chain, signer);
    // A key that is not the certificate's would fail every handshake, not the load.
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(e) => Err(cert_error(key, format!("not the key of {}: {e}", cert.display()))),
    }
}

fn self_signed(names: Vec<String>) -> Result<Arc<CertifiedKey>> {
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| Error::SelfSigned(e.to_string()))?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| Error::SelfSigned(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![generated.cert.der().clone()], signer)))
}

/// rustls asks this for a certificate on every handshake; reloads swap the store.
#[derive(Debug)]
pub(crate) struct Resolver(pub(crate) ArcSwap<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().find(hello.server_name())
    }
}

/// rustls server settings: ring, TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub(crate) fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
