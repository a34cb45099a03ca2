//! Client location for `geo` answers (`meridian_model::geo`): opened from the
//! configuration, and reopened on a reload only when what it was opened from changed.

use std::path::PathBuf;
use std::sync::Arc;

use meridian_config::Config;
use meridian_config::ranking::NetworkLocation;
use meridian_model::geo::{DbStatus, Geo};

/// The location data in use, with what it was opened from.
pub(crate) struct GeoSource {
    geo: Arc<Geo>,
    inputs: GeoInputs,
}

/// The configuration a [`Geo`] depends on.
#[derive(Debug, Clone, PartialEq)]
struct GeoInputs {
    path: Option<PathBuf>,
    networks: Vec<NetworkLocation>,
    candidates: Vec<PathBuf>,
}

impl GeoInputs {
    fn of(config: &Config) -> Self {
        GeoInputs {
            path: config.ranking.geoip_path(config),
            networks: config.ranking.networks.clone(),
            candidates: config.ranking.geoip_candidates(config),
        }
    }
}

impl GeoSource {
    pub(crate) fn open(config: &Config) -> Self {
        GeoSource { geo: load_geo(config), inputs: GeoInputs::of(config) }
    }

    /// Reopens the data when `config` asks for other data than it was opened from.
    pub(crate) fn update(&mut self, config: &Config) {
        let inputs = GeoInputs::of(config);
        if inputs != self.inputs {
            self.geo = load_geo(config);
            self.inputs = inputs;
        }
    }

    /// The data, to publish with the index.
    pub(crate) fn geo(&self) -> &Arc<Geo> {
        &self.geo
    }

    /// The GeoIP database's state.
    pub(crate) fn status(&self) -> DbStatus {
        self.geo.status().clone()
    }
}

/// Opens the client-location data and says in the log what geo answers will do.
fn load_geo(config: &Config) -> Arc<Geo> {
    let geo = Geo::from_config(config);
    match geo.status() {
        DbStatus::Loaded { .. } => tracing::info!("dns: {}", geo.status()),
        DbStatus::NotConfigured => {
            tracing::debug!("dns: no GeoIP database configured; geo answers use ranking.networks only")
        }
        status => tracing::warn!(
            "dns: {status}; geo answers locate clients by ranking.networks only and otherwise fall back to {}",
            config.ranking.default_policy
        ),
    }
    Arc::new(geo)
}
