//! The fleet's integration tests: real instances gossiping over UDP on loopback, several
//! in one process, each test on its own addresses and bounded in time.

mod auth;
mod cost;
mod failure;
mod membership;
mod restart;
mod support;
mod verdicts;
mod withdraw;
