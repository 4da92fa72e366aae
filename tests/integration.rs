//! Signal's integration tests, as users meet it: the `signal` binary, a real HTTP server, a real
//! SQLite file, a real PostgreSQL, a real browser. One test binary with a module per subject (as
//! ripgrep's `tests/tests.rs`), so that the whole program is linked once, not once per file.
//! `cargo test --test integration -- serve::` runs one subject.

mod common;

mod anonymous;
mod apps;
mod browser;
mod cli;
mod collector;
mod crash;
mod debugger;
mod delivery;
mod editors;
mod house;
mod identity;
mod keeps;
mod nodes;
mod open_port;
mod presets;
mod promises;
mod readme;
mod sandbox;
mod send;
mod serve;
mod signal_test;
mod tag;
