//! The names of the objects a control plane puts into namespaces by itself
//! (`controllers::seed` makes them), apart so the store can tell them without
//! depending on the controller.

use crate::key::Key;
use crate::resources;

/// The ServiceAccount every namespace gets.
pub(crate) const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap with the CA bundle pods use to verify the API server.
pub(crate) const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The API server's own Service (and Endpoints and EndpointSlice) in `default`.
pub(crate) const API_SERVICE: &str = "kubernetes";

/// Whether a change of `key` must bring its namespace's defaults back: it is one of them.
pub(crate) fn is_seeded(key: &Key) -> bool {
    match key.0 {
        resources::SERVICEACCOUNTS => key.2 == DEFAULT_SERVICE_ACCOUNT,
        resources::CONFIGMAPS => key.2 == ROOT_CA_CONFIGMAP,
        resources::SERVICES | resources::ENDPOINTS | resources::ENDPOINTSLICES => {
            key.1 == "default" && key.2 == API_SERVICE
        }
        _ => false,
    }
}
