//! Integration tests of the simulator: real kubectl and kube-rs clients against a
//! `Simulator` started in-process on ephemeral ports.

mod admission;
mod apply;
mod backends;
mod crd;
mod deletion;
mod kube_client;
mod kubectl;
mod patch;
mod scale;
mod state;
mod support;
