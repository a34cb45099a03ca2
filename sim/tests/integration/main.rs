//! Integration tests of the simulator: real kubectl and kube-rs clients against a
//! `Simulator` started in-process on ephemeral ports.

mod admission;
mod apply;
mod auth;
mod backends;
mod crd;
mod defaulting;
mod deletion;
mod gateway;
mod kube_client;
mod kubectl;
mod namespaces;
mod patch;
mod rollout;
mod scale;
mod secure;
mod selectors;
mod state;
mod support;
mod validation;
