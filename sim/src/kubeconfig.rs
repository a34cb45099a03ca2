//! Kubeconfig output: one cluster, user and context per simulated cluster.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::cluster::SimCluster;
use crate::error::{Error, Result};

/// Renders a kubeconfig whose contexts are named exactly after the clusters; the first
/// cluster is the current context. Users carry no credentials, except a secure
/// cluster's token (and its cluster its CA).
pub(crate) fn render(clusters: &[Arc<SimCluster>]) -> String {
    let cluster = |c: &SimCluster| match c.ca_pem() {
        Some(ca) => json!({"server": c.url(), "certificate-authority-data": BASE64.encode(ca)}),
        None => json!({"server": c.url()}),
    };
    let user = |c: &SimCluster| c.token().map_or_else(|| json!({}), |t| json!({"token": t}));
    let cfg = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters.iter().map(|c| json!({"name": c.name(), "cluster": cluster(c)})).collect::<Vec<_>>(),
        "users": clusters.iter().map(|c| json!({"name": c.name(), "user": user(c)})).collect::<Vec<_>>(),
        "contexts": clusters.iter().map(|c| json!({"name": c.name(), "context": {"cluster": c.name(), "user": c.name(), "namespace": "default"}})).collect::<Vec<_>>(),
        "current-context": clusters.first().map(|c| c.name().to_string()).unwrap_or_default(),
    });
    serde_yaml::to_string(&cfg).unwrap_or_default()
}

/// Writes the kubeconfig atomically (temp file + rename), so a reader never sees half a file.
pub(crate) fn write(path: &Path, clusters: &[Arc<SimCluster>]) -> Result<()> {
    let text = render(clusters);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|source| Error::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
