//! Envoy's retry budget: retries in flight may be at most a share of the requests in
//! flight (with a floor), so retries cannot multiply load during an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use meridian_config::lb::RetryConfig;

#[derive(Debug, Default)]
pub(crate) struct RetryBudget {
    active: AtomicU32,
    retries: AtomicU32,
}

impl RetryBudget {
    /// Counts a request as active until the guard drops.
    pub(crate) fn request(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }

    /// A retry, if the budget allows one now; it counts until the guard drops.
    pub(crate) fn try_retry(self: &Arc<Self>, cfg: &RetryConfig) -> Option<Retrying> {
        let active = self.active.load(Ordering::Relaxed);
        let allowed = (u64::from(active) * u64::from(cfg.budget_percent) / 100).max(u64::from(cfg.min_concurrent));
        let prev = self.retries.fetch_add(1, Ordering::Relaxed);
        if u64::from(prev) < allowed {
            Some(Retrying(self.clone()))
        } else {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }

    pub(crate) fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
}

pub(crate) struct Active(Arc<RetryBudget>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct Retrying(Arc<RetryBudget>);

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(percent: u32, min: u32) -> RetryConfig {
        RetryConfig { max_retries: 2, budget_percent: percent, min_concurrent: min }
    }

    /// With few requests the floor applies; with many, the percentage.
    #[test]
    fn budget_is_a_share_of_active_requests_with_a_floor() {
        let b = Arc::new(RetryBudget::default());
        let active: Vec<_> = (0..50).map(|_| b.request()).collect();
        // 20% of 50 = 10 retries at once.
        let held: Vec<_> = (0..10).map_while(|_| b.try_retry(&cfg(20, 3))).collect();
        assert_eq!(held.len(), 10);
        assert!(b.try_retry(&cfg(20, 3)).is_none(), "11th concurrent retry must be refused");
        drop(held);
        drop(active);
        // No active requests: the floor of 3 still allows retries.
        let held: Vec<_> = (0..5).map_while(|_| b.try_retry(&cfg(20, 3))).collect();
        assert_eq!(held.len(), 3);
        drop(held);
        assert!(b.try_retry(&cfg(20, 3)).is_some(), "a finished retry frees its slot");
        assert!(b.try_retry(&cfg(0, 0)).is_none(), "a zero budget allows none");
    }
}
