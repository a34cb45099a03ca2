//! The index built from a table snapshot and kept alive, for the footprint
//! micro-benchmark (`bench/benches/footprint.rs`), which counts the bytes it holds.

use meridian_config::Config;
use meridian_model::table::Snapshot;

use crate::builder::Builder;
use crate::error::Result;
use crate::index::Index;

/// Everything the DNS server keeps for a table: the builder's bookkeeping and the
/// published index (which shares its name maps with the builder).
pub struct Built {
    _builder: Builder,
    index: Index,
}

impl Built {
    /// How many names the table publishes.
    pub fn names(&self) -> usize {
        self.index.table.names.len()
    }
}

/// Builds the index of `snap` under `config`, as the server does at start.
pub fn build(config: &Config, snap: &Snapshot) -> Result<Built> {
    let mut builder = Builder::new(config)?;
    builder.rebuild(snap);
    let index = builder.index();
    Ok(Built { _builder: builder, index })
}
