//! Black-box tests of the DNS server: a table built in memory, the server on 127.0.0.1
//! port 0, and the real `dig` and `kdig` as clients (Debian packages `dnsutils` and
//! `knot-dnsutils`). `ranking` runs the whole stack instead: simulated clusters with real
//! HTTP backends, discovery, the health checker and the server.

mod delegation;
mod edns_options;
mod federation;
mod fuzz;
mod mcs;
mod protocol;
mod ranking;
mod robustness;
mod rrl;
mod support;
mod tcp_pressure;
mod zones;
