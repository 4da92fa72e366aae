//! A secret — a source's write key, a destination's API key — held in a type whose `Debug` and
//! `Display` print `[redacted]`, so that no log line, error or panic message can show it; read only
//! where it is used, with [`Secret::expose`], and compared with [`Secret::matches`] in time that
//! does not depend on where the texts differ.

use std::fmt;

/// Text that must never be shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends or stores it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` (what a request sent) is this secret. Every byte is compared whatever
    /// the first difference, so the time taken does not tell a guesser how much was right.
    pub fn matches(&self, candidate: &str) -> bool {
        let (secret, candidate) = (self.0.as_bytes(), candidate.as_bytes());
        let mut difference = u8::from(secret.len() != candidate.len());
        for (index, byte) in secret.iter().enumerate() {
            difference |= byte ^ candidate.get(index).copied().unwrap_or(!byte);
        }
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_never_prints() {
        let secret = Secret::new("s3cr3t");
        for shown in [format!("{secret}"), format!("{secret:?}"), format!("{:?}", Some(&secret))] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert_eq!(secret.expose(), "s3cr3t");
    }

    #[test]
    fn only_the_same_text_matches() {
        let secret = Secret::new("wk-live-123");
        assert!(secret.matches("wk-live-123"));
        for other in ["", "wk-live-12", "wk-live-1234", "wk-live-124", "Wk-live-123"] {
            assert!(!secret.matches(other), "{other}");
        }
        assert!(Secret::new("").matches(""));
        assert!(!Secret::new("").matches("x"));
    }
}
