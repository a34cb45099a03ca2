//! A member taken out of the configuration (`meridian unjoin`, then a reload): its copies
//! are released as an orphaning delete releases them, with Meridian's marks removed and
//! the objects left in place, so nothing in a cluster that left the federation still
//! claims to be managed by it.
//!
//! The release waits one request timeout first, so a reconcile already writing to the
//! member when it left does not mark a copy again after it. A member that does not
//! answer keeps its marks (logged): its connection settings are gone with its entry.

use std::sync::Arc;

use kube::Client;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use tracing::{info, warn};

use super::Shared;
use super::shared::api;
use crate::kinds::Kind;
use crate::template;

/// Copies listed per request.
const PAGE: u32 = 500;

/// Releases every Meridian-managed copy in `cluster`, which just left the configuration.
pub(super) async fn release_member(sh: Arc<Shared>, cluster: String, client: Client) {
    let timeout = sh.settings().request_timeout;
    tokio::time::sleep(timeout).await;
    if !sh.is_leader() {
        return;
    }
    let kinds = sh.kinds.borrow().clone();
    let (mut released, mut failed) = (0usize, 0usize);
    for (_, kind) in kinds.iter() {
        match release_kind(&client, kind, timeout).await {
            Ok((ok, bad)) => {
                released += ok;
                failed += bad;
            }
            Err(e) => {
                warn!(cluster = %cluster, kind = kind.kind, error = %e, "cluster left the configuration; cannot list its copies, which keep Meridian's marks");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        info!(cluster = %cluster, released, "cluster left the configuration; its copies are released (left in place, unmarked)");
    } else {
        warn!(cluster = %cluster, released, failed, "cluster left the configuration; some copies keep Meridian's marks");
    }
}

/// Why a request of the release failed.
#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
}

async fn bounded<T>(
    limit: std::time::Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ReleaseError> {
    tokio::time::timeout(limit, request).await.map_err(|_| ReleaseError::TimedOut(limit))?.map_err(ReleaseError::Api)
}

/// Unmarks the managed copies of one type; how many were released and how many failed.
async fn release_kind(
    client: &Client,
    kind: &Kind,
    limit: std::time::Duration,
) -> Result<(usize, usize), ReleaseError> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
    let selector = format!("{}={}", template::MANAGED_LABEL, template::MANAGED_VALUE);
    let (mut released, mut failed) = (0, 0);
    let mut lp = ListParams::default().labels(&selector).limit(PAGE);
    loop {
        let page = match bounded(limit, all.list(&lp)).await {
            Ok(page) => page,
            // A type the member does not serve has no copies there.
            Err(ReleaseError::Api(kube::Error::Api(s))) if s.code == 404 => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        for o in &page.items {
            let one = api(client, kind, &o.namespace().unwrap_or_default());
            let patch = Patch::Merge(template::unmark_patch());
            match bounded(limit, one.patch(&o.name_any(), &PatchParams::default(), &patch)).await {
                Ok(_) => released += 1,
                Err(ReleaseError::Api(kube::Error::Api(s))) if s.code == 404 => {}
                Err(_) => failed += 1,
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok((released, failed)),
        }
    }
}
