//! Black-box tests: the real `meridian` binary, driven over the network with real clients.

mod check;
mod demo;
mod dns;
mod geo;
mod proxy;
mod reload;
mod sync;
