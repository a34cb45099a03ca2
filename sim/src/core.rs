//! [`Core`]: what the HTTP handlers, watches and controllers of one cluster share.

use std::sync::atomic::{AtomicU16, Ordering};

use parking_lot::Mutex;

use crate::backends::Backends;
use crate::pools::Pools;
use crate::store::Store;

/// Everything the HTTP handlers, watches and controllers of one cluster share.
pub(crate) struct Core {
    pub(crate) name: String,
    /// Position among the simulator's clusters; picks default address ranges.
    pub(crate) index: usize,
    pub(crate) region: String,
    pub(crate) zone: String,
    /// [`crate::ClusterSpec::workload_controllers`].
    pub(crate) workload_controllers: bool,
    pub(crate) store: Store,
    /// Addresses the controllers hand out. Lock order: `pools` before the store lock.
    pub(crate) pools: Mutex<Pools>,
    pub(crate) backends: Backends,
    /// Bumped to end every open watch stream (`drop_watches`, `stop`).
    pub(crate) kill_watches: tokio::sync::watch::Sender<u64>,
    /// What clients asked of this cluster, as RBAC names it.
    pub(crate) audit: crate::audit::Audit,
    /// The load clients put on the API: connections, watches, requests.
    pub(crate) load: std::sync::Arc<crate::load::Counters>,
    /// HTTPS and the bearer token, for a [`crate::ClusterSpec::secure`] cluster.
    pub(crate) security: Option<crate::secure::Security>,
    /// The API port; 0 until the first start binds one.
    port: AtomicU16,
}

impl Core {
    pub(crate) fn new(
        spec: &crate::ClusterSpec,
        index: usize,
        store: Store,
        pools: Pools,
        backends: Backends,
    ) -> crate::error::Result<Self> {
        let (kill_watches, _) = tokio::sync::watch::channel(0);
        let security =
            if spec.secure { Some(crate::secure::Security::generate(&spec.name, spec.http1_only)?) } else { None };
        Ok(Self {
            name: spec.name.clone(),
            index,
            region: spec.region.clone(),
            zone: spec.zone.clone(),
            workload_controllers: spec.workload_controllers,
            store,
            pools: Mutex::new(pools),
            backends,
            kill_watches,
            audit: crate::audit::Audit::default(),
            load: Default::default(),
            security,
            port: AtomicU16::new(spec.port),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Records the port the listener bound, so later starts reuse it.
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }
}
