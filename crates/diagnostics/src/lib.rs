//! The toolkit for files that people write and Signal checks — blueprints and the configuration:
//! YAML read with the line and column of every key and value ([`yaml`]), diagnostics that say what
//! is wrong, where (`FILE:LINE:COL`) and how to fix it ([`diagnostic`]), and JSON Schema errors
//! translated into such diagnostics, in each file's own words ([`schema_check`]), and the files
//! those files name read only where they may be ([`files`]).

pub mod diagnostic;
pub mod files;
pub mod schema_check;
pub mod yaml;

pub use diagnostic::{Diagnostic, DiagnosticKind, Diagnostics, did_you_mean};
