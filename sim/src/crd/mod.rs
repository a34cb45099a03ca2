//! CustomResourceDefinitions as kube-apiserver's apiextensions server handles them:
//! defaulting and validation of a CRD (`spec`, `validation`), the status its naming and
//! establishing controllers keep (`status`), the resource definitions an established CRD
//! serves (`views`), and the Multi-Cluster Services CRDs every cluster has (`mcs`).
//!
//! Serving the custom objects needs nothing of its own: they go through the same write
//! path, store, watches and deletion as built-in objects. The registry (`registry`)
//! follows the stored CRDs; the finalizer controller (`controllers::crds`) deletes a
//! deleted CRD's objects.

pub(crate) mod gateway;
mod mcs;
mod spec;
mod status;
mod validation;
mod views;

use serde_json::Value;

pub(crate) use gateway::gateway_crds;
pub(crate) use mcs::mcs_crds;
pub(crate) use spec::set_defaults;
pub(crate) use status::{set_condition, settle};
pub(crate) use validation::validate;
pub(crate) use views::{Views, views};

/// The finalizer a CRD gets when deleted; the finalizer controller removes it once every
/// object of the CRD is gone.
pub(crate) const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Everything the API server does to a CRD being written (`old`: its stored state on an
/// update) under the store lock, where `others` are the other CRDs: validation, then the
/// status the controllers would settle.
pub(crate) fn admit(crd: &mut Value, old: Option<&Value>, others: &[&Value]) -> Result<(), crate::error::ApiError> {
    validate(crd, old)?;
    settle(crd, old, others);
    Ok(())
}
