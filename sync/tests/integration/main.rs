//! Sync against simulated clusters, driven with kubectl as a user would.

mod deletion;
mod drift;
mod faults;
mod join;
mod leader;
mod propagation;
mod support;
