//! Black-box tests: the real `meridian` binary, driven over the network with real clients.

mod check;
mod chromium;
mod demo;
mod deploy;
mod differential;
mod dns;
mod ednscomp;
mod explain;
mod fleet;
mod gateway;
mod geo;
mod incluster;
mod partition;
mod proxy;
mod rbac;
mod reload;
mod resolvers;
mod smuggling;
mod sync;
mod web;
mod xfr;
