//! Kubeconfig output: one cluster, user and context per simulated cluster.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::cluster::SimCluster;
use crate::error::{Error, Result};

/// Renders a kubeconfig whose contexts are named exactly after the clusters; the first
/// cluster is the current context. Users carry no credentials (the simulator does not
/// authenticate).
pub(crate) fn render(clusters: &[Arc<SimCluster>]) -> String {
    let cfg = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters.iter().map(|c| json!({"name": c.name(), "cluster": {"server": c.url()}})).collect::<Vec<_>>(),
        "users": clusters.iter().map(|c| json!({"name": c.name(), "user": {}})).collect::<Vec<_>>(),
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
