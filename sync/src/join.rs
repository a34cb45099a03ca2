//! `meridian join` and `meridian unjoin`: registering member clusters (the seed's hybrid
//! cloud section) by editing the configuration file in place.
//!
//! Edits go through `toml_edit`, so the file keeps its comments and layout. The result
//! is validated with [`Config::parse`] before anything is written, and written through a
//! temporary file and a rename, so a running server that reloads on change never reads
//! half a file.

use std::path::{Path, PathBuf};

use meridian_config::Config;
use meridian_discovery::registry;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::error::{Error, Result};

/// How long the reachability check waits for `/readyz`.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn file_error(path: &Path, reason: impl ToString) -> Error {
    Error::ConfigFile { path: path.to_path_buf(), reason: reason.to_string() }
}

fn read(path: &Path) -> Result<DocumentMut> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    text.parse::<DocumentMut>().map_err(|e| file_error(path, e.to_string().trim()))
}

/// Checks the edited document as a whole configuration, then replaces the file.
fn validate_and_write(path: &Path, doc: &DocumentMut) -> Result<()> {
    let text = doc.to_string();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Config::parse(&text, path, &base).map_err(|errors| Error::Invalid { path: path.to_path_buf(), errors })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".meridian-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| file_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
}

fn cluster_names(doc: &DocumentMut) -> Vec<String> {
    doc.get("clusters")
        .and_then(Item::as_array_of_tables)
        .map(|a| a.iter().filter_map(|t| t.get("name").and_then(Item::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Adds member cluster `name` to the configuration file at `config_path`, after checking
/// that the result is a valid configuration and that the cluster answers `/readyz`
/// through `kubeconfig` (and `context`). `kubeconfig` is written as given.
pub async fn join(
    config_path: &Path,
    name: &str,
    kubeconfig: &Path,
    context: Option<&str>,
    region: Option<&str>,
    zone: Option<&str>,
) -> Result<()> {
    let mut doc = read(config_path)?;
    if cluster_names(&doc).iter().any(|n| n == name) {
        return Err(Error::AlreadyJoined(name.to_owned()));
    }
    let mut entry = Table::new();
    entry.insert("name", value(name));
    entry.insert("kubeconfig", value(kubeconfig.to_string_lossy().as_ref()));
    if let Some(c) = context {
        entry.insert("context", value(c));
    }
    if let Some(r) = region {
        entry.insert("region", value(r));
    }
    if let Some(z) = zone {
        entry.insert("zone", value(z));
    }
    match doc.get_mut("clusters") {
        Some(item) => match item.as_array_of_tables_mut() {
            Some(list) => list.push(entry),
            None => return Err(file_error(config_path, "`clusters` is not an array of tables ([[clusters]])")),
        },
        None => {
            let mut list = ArrayOfTables::new();
            list.push(entry);
            doc.insert("clusters", Item::ArrayOfTables(list));
        }
    }
    // Validate before contacting the cluster: a bad name should not wait for a timeout.
    let text = doc.to_string();
    let base = config_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let config = Config::parse(&text, config_path, &base)
        .map_err(|errors| Error::Invalid { path: config_path.to_path_buf(), errors })?;
    let resolved = config.resolve(kubeconfig);
    check_reachable(name, &resolved, context).await?;
    validate_and_write(config_path, &doc)
}

async fn check_reachable(name: &str, kubeconfig: &Path, context: Option<&str>) -> Result<()> {
    let client = registry::connect(name, kubeconfig, context).await?;
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| Error::Unreachable { cluster: name.to_owned(), reason: e.to_string() })?;
    match tokio::time::timeout(PROBE_TIMEOUT, client.request_text(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Unreachable {
            cluster: name.to_owned(),
            reason: format!("/readyz failed: {}", e.to_string().lines().next().unwrap_or_default()),
        }),
        Err(_) => Err(Error::Unreachable {
            cluster: name.to_owned(),
            reason: format!("/readyz did not answer within {PROBE_TIMEOUT:?}"),
        }),
    }
}

/// Removes member cluster `name` from the configuration file at `config_path`.
pub fn unjoin(config_path: &Path, name: &str) -> Result<()> {
    let mut doc = read(config_path)?;
    let Some(list) = doc.get_mut("clusters").and_then(Item::as_array_of_tables_mut) else {
        return Err(Error::NotJoined(name.to_owned()));
    };
    let Some(index) = list.iter().position(|t| t.get("name").and_then(Item::as_str) == Some(name)) else {
        return Err(Error::NotJoined(name.to_owned()));
    };
    list.remove(index);
    validate_and_write(config_path, &doc)
}
