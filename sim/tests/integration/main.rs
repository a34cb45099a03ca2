//! Integration tests of the simulator: real kubectl and kube-rs clients against a
//! `Simulator` started in-process on ephemeral ports.

mod backends;
mod kube_client;
mod kubectl;
mod support;
