//! Snapshot tests of blueprint mappings, for integrators: the `*.tests.yaml` files beside their
//! blueprints, each case an event and what the blueprint must make of it.

pub mod compare;
pub mod model;
pub mod render;
