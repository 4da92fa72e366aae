//! The registry of destinations: every kind an integration's `type` can name. Adding a destination
//! is its own crate implementing [`DestinationKind`], and one line in [`KINDS`].

use sender::DestinationKind;

/// Every kind of destination, the default (an integration without `type`) first.
pub static KINDS: &[&dyn DestinationKind] = &[&moengage::MoEngage];

/// The kind an integration without `type` is.
pub fn default_kind() -> &'static dyn DestinationKind {
    // The registry is a constant that is never empty, so the first entry is always there.
    KINDS[0]
}

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static dyn DestinationKind> {
    KINDS.iter().copied().find(|kind| kind.name() == name)
}

/// The names of all kinds, the default first.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|kind| kind.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moengage_is_the_default_and_names_are_unique() {
        assert_eq!(default_kind().name(), "moengage");
        let mut names = names();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(kind("moengage").is_some() && kind("webhook").is_none());
    }
}
