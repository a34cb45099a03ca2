//! The `meridian.io/health-check` Service annotation: which check a Service asks for.

use meridian_config::health::{self, CheckKind};

pub const HEALTH_CHECK_ANNOTATION: &str = "meridian.io/health-check";

/// The `meridian.io/health-check` annotation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationCheck {
    pub kind: CheckKind,
    pub port: Option<u16>,
    pub path: Option<String>,
}

/// Why an annotation value is not a check. The message quotes the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error(transparent)]
    Kind(#[from] health::ParseError),
    #[error("invalid port {0:?} (1..65535)")]
    Port(String),
    #[error("path {0:?} contains spaces or control characters")]
    Path(String),
    #[error("`off` takes no port or path")]
    OffWithTarget,
    #[error("a tcp check takes a port, not a path")]
    TcpWithPath,
}

/// Parses `off`, `tcp[:port]`, `http[:[port][/path]]`, `https[:[port][/path]]`.
pub fn parse_annotation(value: &str) -> Result<AnnotationCheck, AnnotationError> {
    let v = value.trim();
    let (kind, rest) = v.split_once(':').unwrap_or((v, ""));
    let kind: CheckKind = kind.trim().to_ascii_lowercase().parse()?;
    let split = rest.find('/').unwrap_or(rest.len());
    let (port, path) = rest.split_at(split);
    let port = parse_port(port.trim())?;
    let path = (!path.is_empty()).then(|| path.to_owned());
    if let Some(p) = &path
        && p.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(AnnotationError::Path(p.clone()));
    }
    match kind {
        CheckKind::Off if port.is_some() || path.is_some() => Err(AnnotationError::OffWithTarget),
        CheckKind::Tcp if path.is_some() => Err(AnnotationError::TcpWithPath),
        _ => Ok(AnnotationCheck { kind, port, path }),
    }
}

/// An empty port is none; otherwise it must be 1..65535.
fn parse_port(p: &str) -> Result<Option<u16>, AnnotationError> {
    match p {
        "" => Ok(None),
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(AnnotationError::Port(p.to_owned())),
        },
    }
}
