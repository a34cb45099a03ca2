//! The fleet's shared key: read from the file or environment variable the configuration
//! names, held as an HMAC-SHA256 key, never printed.

use std::fmt;
use std::path::PathBuf;

use ring::hmac;

use crate::config::FleetConfig;

/// Shortest key accepted, in bytes: RFC 2104 §3 advises against HMAC keys shorter than
/// the hash output (32 bytes for SHA-256). `openssl rand -base64 48` gives 64.
pub const MIN_KEY_LEN: usize = 32;

/// The shared key and its id. `Debug` shows the id only.
#[derive(Clone)]
pub struct FleetKey {
    id: u8,
    key: hmac::Key,
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKey").field("id", &self.id).field("key", &"<redacted>").finish()
    }
}

/// Why the key could not be loaded. Messages name where it was looked for, never its
/// content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no shared key configured (set fleet.key_file or fleet.key = \"$VAR\")")]
    Missing,
    #[error("fleet.key must be an environment variable reference \"$NAME\", not the key itself")]
    Inline,
    #[error("environment variable {0} (fleet.key) is not set")]
    EnvUnset(String),
    #[error("cannot read the fleet key file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fleet key from {origin} is {len} bytes; at least {MIN_KEY_LEN} are required")]
    TooShort { origin: String, len: usize },
}

impl FleetKey {
    /// A key from its bytes (surrounding ASCII whitespace removed, so a file ending in a
    /// newline works).
    pub fn from_bytes(id: u8, bytes: &[u8], origin: &str) -> Result<Self, KeyError> {
        let bytes = bytes.trim_ascii();
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { origin: origin.to_owned(), len: bytes.len() });
        }
        Ok(Self { id, key: hmac::Key::new(hmac::HMAC_SHA256, bytes) })
    }

    /// Reads the key `config` names: `key_file`, or the variable in `key = "$NAME"`.
    pub fn load(config: &FleetConfig) -> Result<Self, KeyError> {
        if let Some(path) = &config.key_file {
            let bytes = std::fs::read(path).map_err(|source| KeyError::File { path: path.clone(), source })?;
            return Self::from_bytes(config.key_id, &bytes, &format!("file {}", path.display()));
        }
        let Some(reference) = &config.key else { return Err(KeyError::Missing) };
        if !crate::config::is_env_reference(reference) {
            return Err(KeyError::Inline);
        }
        let name = &reference[1..];
        let value = std::env::var_os(name).ok_or_else(|| KeyError::EnvUnset(reference.clone()))?;
        Self::from_bytes(config.key_id, value.as_encoded_bytes(), &format!("environment variable {reference}"))
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub(crate) fn sign(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, data)
    }

    /// Constant-time check of `tag` over `data`.
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, data, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key bytes appear in neither `Debug` output nor error messages.
    #[test]
    fn key_is_never_printed() {
        let secret = "correct-horse-battery-staple-0123456789";
        let key = FleetKey::from_bytes(3, secret.as_bytes(), "test").expect("long enough");
        let shown = format!("{key:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("id: 3"), "{shown}");
        let short = FleetKey::from_bytes(3, b"short-secret\n", "file k").expect_err("too short");
        assert!(!short.to_string().contains("short-secret"), "{short}");
        assert!(short.to_string().contains("12 bytes"), "{short}");
    }

    /// A file's trailing newline is not part of the key: both spellings sign alike.
    #[test]
    fn surrounding_whitespace_is_ignored() {
        let a = FleetKey::from_bytes(1, b"0123456789abcdef0123456789abcdef\n", "a").expect("key");
        let b = FleetKey::from_bytes(1, b"  0123456789abcdef0123456789abcdef", "b").expect("key");
        let tag = a.sign(b"datagram");
        assert!(b.verify(b"datagram", tag.as_ref()));
        assert!(!b.verify(b"datagram!", tag.as_ref()));
    }

    /// `key_file` is read; a missing file names its path.
    #[test]
    fn loads_from_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.key");
        std::fs::write(&path, "k".repeat(40)).expect("write");
        let mut config = FleetConfig::new("a", "r", "127.0.0.1:0".parse().expect("addr"));
        config.key_file = Some(path.clone());
        assert_eq!(FleetKey::load(&config).expect("loads").id(), 1);
        config.key_file = Some(dir.path().join("absent.key"));
        let err = FleetKey::load(&config).expect_err("missing");
        assert!(err.to_string().contains("absent.key"), "{err}");
        config.key_file = None;
        config.key = Some("inline-secret-value".into());
        assert!(matches!(FleetKey::load(&config), Err(KeyError::Inline)));
        config.key = Some("$MERIDIAN_FLEET_TEST_UNSET_VARIABLE".into());
        assert!(matches!(FleetKey::load(&config), Err(KeyError::EnvUnset(_))));
    }
}
