//! Change notification for the configuration file and the files it names.
//!
//! Editors often replace a file rather than write it in place, so the watcher follows
//! the parent directories and filters by file name. Bursts of events are coalesced: the
//! caller gets one notification, a short quiet period after the last event.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a change is reported. Long enough to cover
/// an editor's write-rename-chmod sequence, short enough that a reload feels immediate.
const SETTLE: Duration = Duration::from_millis(150);

/// Watches a set of files; dropping it stops the watch.
pub struct FileWatcher {
    _inner: notify::RecommendedWatcher,
}

impl FileWatcher {
    /// Starts watching `files`; a unit is sent on the returned channel after each burst of
    /// changes to any of them.
    pub fn new(files: &[PathBuf]) -> notify::Result<(Self, mpsc::Receiver<()>)> {
        let wanted: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
        let filter = wanted.clone();
        // The watched directories may hold busy files (logs next to the config): their
        // events are dropped by name before any path is resolved. Resolving every event
        // cost two `readlink` calls each, thousands per second beside a busy log.
        let names: BTreeSet<OsString> = wanted.iter().filter_map(|f| f.file_name().map(OsStr::to_owned)).collect();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            let ours = |p: &PathBuf| p.file_name().is_some_and(|n| names.contains(n)) && filter.contains(&absolute(p));
            if ev.paths.iter().any(ours) {
                let _ = raw_tx.send(());
            }
        })?;
        let dirs: BTreeSet<PathBuf> = wanted.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        for d in dirs {
            watcher.watch(&d, RecursiveMode::NonRecursive)?;
        }
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                // Coalesce the burst.
                loop {
                    match tokio::time::timeout(SETTLE, raw_rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        Ok((Self { _inner: watcher }, rx))
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    };
    // Canonicalise the directory (it exists) but not the file (it may be mid-replace).
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => dir.canonicalize().map(|d| d.join(name)).unwrap_or(p),
        _ => p,
    }
}
