//! `meridian sim` as a process of its own, for tests where several Meridians (or a
//! fault proxy) share simulated clusters the way they would share real ones.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use meridian_testkit::wait::eventually_blocking;

use crate::binary;

/// `meridian sim --clusters <names>` in its own state directory, killed when dropped.
pub struct SimProcess {
    pub child: Child,
    /// Written by the simulator once its clusters listen.
    pub kubeconfig: PathBuf,
    /// The state directory (its kubeconfig, saved objects and `sim.log`).
    pub dir: tempfile::TempDir,
}

impl SimProcess {
    /// Starts the clusters (comma-separated names) and waits for the kubeconfig.
    pub fn start(clusters: &str) -> Result<SimProcess> {
        let dir = tempfile::tempdir()?;
        let log = std::fs::File::create(dir.path().join("sim.log"))?;
        let child = Command::new(binary())
            .args(["sim", "--clusters", clusters, "--state-dir"])
            .arg(dir.path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("run meridian sim")?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut sim = SimProcess { child, kubeconfig, dir };
        eventually_blocking(Duration::from_secs(20), "meridian sim wrote its kubeconfig", || {
            match sim.child.try_wait() {
                Ok(None) => sim.kubeconfig.exists().then_some(Ok(())),
                Ok(Some(st)) => Some(Err(anyhow!("meridian sim exited with {st}"))),
                Err(e) => Some(Err(e.into())),
            }
        })??;
        // The file is written before every cluster has finished starting its watchers.
        std::thread::sleep(Duration::from_millis(200));
        Ok(sim)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
