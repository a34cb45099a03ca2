//! Black-box tests of the proxy: it runs on 127.0.0.1 port 0 over a table pointing at
//! real backends (hyper servers, nginx processes), driven by curl, h2load and a
//! WebSocket client.

mod failover;
mod fastpath;
mod hardening;
mod http1;
mod limits;
mod support;
mod tls;
mod websocket;
