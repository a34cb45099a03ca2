//! Sync against simulated clusters, driven with kubectl as a user would.

mod deletion;
mod drift;
mod faults;
mod fields;
mod join;
mod kinds;
mod leader;
mod propagation;
mod rollup;
mod support;
