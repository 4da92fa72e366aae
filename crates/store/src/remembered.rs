//! How remembered traits are laid on each other in the store: name by name, the way an event's
//! traits are laid on those remembered (an SDK's identify replaces a trait whole, nested objects
//! included), so that the store and a node's memory agree.

use serde_json::{Map, Value};

/// The JSON object `over` laid on the JSON object `under`, name by name: each of `over`'s
/// members replaces `under`'s of that name whole. Text that is not an object counts as empty.
pub(crate) fn overlaid(under: &str, over: &str) -> String {
    let object = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(members)) => members,
        _ => Map::new(),
    };
    let mut members = object(under);
    members.extend(object(over));
    Value::Object(members).to_string()
}

#[cfg(test)]
mod tests {
    use super::overlaid;

    #[test]
    fn members_are_replaced_whole_and_the_rest_kept() {
        let under = r#"{"address":{"city":"Leeds","street":"Park Row"},"email":"a@b.test"}"#;
        let over = r#"{"address":{"city":"York"},"plan":"pro"}"#;
        assert_eq!(overlaid(under, over), r#"{"address":{"city":"York"},"email":"a@b.test","plan":"pro"}"#);
        assert_eq!(overlaid("not json", r#"{"a":1}"#), r#"{"a":1}"#);
    }
}
