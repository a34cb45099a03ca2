//! Errors: [`Error`] for the Rust API, [`ApiError`] for Kubernetes `Status` failures.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// Result alias used across the crate's public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Failures of the simulator's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secure cluster's certificates could not be made.
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The API listener or a load-balancer backend could not bind; names the address
    /// so "port in use" is actionable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A cluster with this name was already added.
    #[error("a cluster named {0:?} already exists")]
    DuplicateCluster(String),
    /// No cluster with this name.
    #[error("no cluster named {0:?}")]
    NoSuchCluster(String),
    /// The load-balancer pool is not a usable IPv4 CIDR inside 127.0.0.0/8.
    #[error("invalid load-balancer CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    /// The API server refused the request, as a real one would (conflict, not found, invalid…).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// Reading or writing a file (kubeconfig, state directory).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The object (or its namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(e) if e.code == 404)
    }

    /// A resourceVersion precondition failed or the object already exists.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api(e) if e.code == 409)
    }
}

/// One field's problem in a 422 Invalid (a `StatusCause`), worded like Go's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldCause {
    /// The field path, e.g. `spec.names.plural`.
    pub(crate) field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ….
    pub(crate) reason: &'static str,
    /// `Required value`, `Invalid value: "x": why`, ….
    pub(crate) message: String,
}

impl FieldCause {
    pub(crate) fn required(field: impl Into<String>, why: &str) -> Self {
        let message = if why.is_empty() { "Required value".to_string() } else { format!("Required value: {why}") };
        Self { field: field.into(), reason: "FieldValueRequired", message }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Self { field: field.into(), reason: "FieldValueInvalid", message: format!("Invalid value: {value:?}: {why}") }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let message = format!("Unsupported value: {value:?}: supported values: {}", list.join(", "));
        Self { field: field.into(), reason: "FieldValueNotSupported", message }
    }

    pub(crate) fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Self { field: field.into(), reason: "FieldValueForbidden", message: format!("Forbidden: {why}") }
    }

    /// `ValidateImmutableField`: `value` as Go prints the new value (`%#v`-like).
    pub(crate) fn immutable(field: impl Into<String>, value: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: field is immutable"),
        }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self { field: field.into(), reason: "FieldValueDuplicate", message: format!("Duplicate value: {value:?}") }
    }
}

/// A failure answered to API clients as a `meta/v1 Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} ({reason}, {code})")]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// Machine-readable `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`…).
    pub reason: &'static str,
    /// What kubectl prints.
    pub message: String,
    /// `Status.details` (name, group, kind), when known.
    pub details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn invalid(kind: &str, name: &str, cause: impl Into<String>) -> Self {
        let cause = cause.into();
        Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {cause}"))
            .with_details(json!({"name": name, "kind": kind, "causes": [{"message": cause}]}))
    }

    /// 422 Invalid listing every field's problem, as kube-apiserver's `NewInvalid` does:
    /// the message joins the causes (in brackets when there are several), the details
    /// carry one cause per field.
    pub(crate) fn invalid_fields(group: &str, kind: &str, name: &str, causes: &[FieldCause]) -> Self {
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let texts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let joined = match texts.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let details: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        Self::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {joined}"))
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": details}))
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// History no longer covers the requested resourceVersion (etcd compaction).
    pub(crate) fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `Status` object sent on the wire.
    pub(crate) fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(d), Some(map)) = (&self.details, s.as_object_mut()) {
            map.insert("details".into(), d.clone());
        }
        s
    }
}
