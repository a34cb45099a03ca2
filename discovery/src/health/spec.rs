//! The check a shard's addresses get: the cluster's settings, the Service's annotation
//! over them, and the port.

use std::ops::Deref;

use meridian_config::health::{CheckKind, CheckSettings, HealthConfig};

use super::annotation::{AnnotationCheck, HEALTH_CHECK_ANNOTATION, parse_annotation};
use crate::rank::Problem;
use crate::table::{ObjectKey, Protocol, Shard};

/// What one shard's addresses are checked with: the configuration's settings for its
/// cluster, with the kind and path the annotation gives, and the port to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Thresholds are at least 1 here, whatever the file says.
    pub settings: CheckSettings,
    pub port: u16,
}

/// A spec reads as the settings it applies (`spec.kind`, `spec.timeout`), plus `port`.
impl Deref for CheckSpec {
    type Target = CheckSettings;

    fn deref(&self) -> &CheckSettings {
        &self.settings
    }
}

/// The check for a shard, or `None` when it is not probed. Malformed annotations are
/// appended to `problems` (the cluster's settings then apply).
pub fn spec_for(
    health: &HealthConfig,
    key: &ObjectKey,
    shard: &Shard,
    problems: &mut Vec<Problem>,
) -> Option<CheckSpec> {
    let mut settings = health.for_cluster(&shard.cluster.name);
    let ann = annotation(key, shard, settings.kind, problems);
    let kind = ann.as_ref().map_or(settings.kind, |a| a.kind);
    if kind == CheckKind::Off || shard.headless || shard.addresses.is_empty() {
        return None;
    }
    let first_tcp = shard.ports.iter().find(|p| p.protocol == Protocol::Tcp).map(|p| p.port);
    let port = ann.as_ref().and_then(|a| a.port).or(first_tcp)?;
    settings.kind = kind;
    if let Some(path) = ann.and_then(|a| a.path) {
        settings.path = path;
    }
    settings.healthy_threshold = settings.healthy_threshold.max(1);
    settings.unhealthy_threshold = settings.unhealthy_threshold.max(1);
    Some(CheckSpec { settings, port })
}

/// The shard's annotation, if it has a well-formed one; a malformed one is a problem
/// that names the check applying instead (`fallback`).
fn annotation(
    key: &ObjectKey,
    shard: &Shard,
    fallback: CheckKind,
    problems: &mut Vec<Problem>,
) -> Option<AnnotationCheck> {
    let value = shard.annotations.get(HEALTH_CHECK_ANNOTATION)?;
    match parse_annotation(value) {
        Ok(a) => Some(a),
        Err(reason) => {
            problems.push(Problem {
                object: key.to_string(),
                cluster: shard.cluster.name.to_string(),
                annotation: HEALTH_CHECK_ANNOTATION.to_owned(),
                value: value.clone(),
                reason: format!("{reason}; the cluster's {} check applies", fallback.as_str()),
            });
            None
        }
    }
}
