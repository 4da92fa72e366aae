//! Comparing a result with an expectation: exact, or a subset; with parts left out by path; and
//! what differs, path by path.

use serde_json::Value;

/// One step of an `ignore` path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Index(usize),
    Any,
}

/// A parsed `ignore` path, such as `actions[0].current_time` or `actions[*].attributes.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnorePath(Vec<Step>);

impl IgnorePath {
    /// Reads a path; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<IgnorePath, String> {
        let mut steps = Vec::new();
        if text.trim().is_empty() {
            return Err("the path is empty".into());
        }
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(open) => (&part[..open], &part[open..]),
                None => (part, ""),
            };
            match name {
                "" if rest.is_empty() => return Err(format!("`{text}` has an empty step (two dots, or a dot at an end)")),
                "" => {}
                "*" => steps.push(Step::Any),
                name => steps.push(Step::Member(name.to_owned())),
            }
            while let Some(inside) = rest.strip_prefix('[') {
                let close = inside.find(']').ok_or_else(|| format!("`{text}` has a `[` without its `]`"))?;
                let index = &inside[..close];
                steps.push(match index {
                    "*" => Step::Any,
                    number => Step::Index(number.parse().map_err(|_| {
                        format!("`[{number}]` in `{text}` is not an element number such as [0], or [*] for any")
                    })?),
                });
                rest = &inside[close + 1..];
            }
            if !rest.is_empty() {
                return Err(format!("`{rest}` in `{text}` is not a step: write `name`, `name[0]` or `name[*]`"));
            }
        }
        Ok(IgnorePath(steps))
    }

    /// Removes what the path names from `value` (nothing, when it names nothing).
    pub fn remove_from(&self, value: &mut Value) {
        remove(value, &self.0);
    }
}

fn remove(value: &mut Value, steps: &[Step]) {
    let Some((step, rest)) = steps.split_first() else { return };
    let last = rest.is_empty();
    match (value, step) {
        (Value::Object(members), Step::Member(name)) => {
            if last {
                members.remove(name);
            } else if let Some(inner) = members.get_mut(name) {
                remove(inner, rest);
            }
        }
        (Value::Object(members), Step::Any) => {
            if last {
                members.clear();
            } else {
                members.values_mut().for_each(|inner| remove(inner, rest));
            }
        }
        (Value::Array(items), Step::Index(index)) => {
            if last {
                if *index < items.len() {
                    // Kept in place so that the elements after it keep their numbers.
                    items[*index] = Value::Null;
                }
            } else if let Some(inner) = items.get_mut(*index) {
                remove(inner, rest);
            }
        }
        (Value::Array(items), Step::Any) => {
            if last {
                items.iter_mut().for_each(|item| *item = Value::Null);
            } else {
                items.iter_mut().for_each(|inner| remove(inner, rest));
            }
        }
        _ => {}
    }
}

/// Equal as JSON values: numbers by value (`10` and `10.0` are equal), objects whatever their
/// order.
pub fn equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, x)| b.get(key).is_some_and(|y| equal(x, y)))
        }
        (a, b) => a == b,
    }
}

/// Whether `actual` has every member of `expected` with an equal value (recursively; arrays of the
/// same length, element by element).
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(key, x)| a.get(key).is_some_and(|y| contains(y, x))),
        (Value::Array(a), Value::Array(e)) => a.len() == e.len() && a.iter().zip(e).all(|(y, x)| contains(y, x)),
        (a, e) => equal(a, e),
    }
}

/// One difference: where, what was expected and what came (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `actions[0].attributes.value`, or empty for the whole.
    pub path: String,
    /// Expected here.
    pub expected: Option<Value>,
    /// Found here.
    pub actual: Option<Value>,
}

/// Every place where `actual` differs from `expected`; with `subset`, members `expected` does not
/// name are not differences.
pub fn differences(expected: &Value, actual: &Value, subset: bool) -> Vec<Difference> {
    let mut found = Vec::new();
    walk(String::new(), Some(expected), Some(actual), subset, &mut found);
    found
}

fn join(path: &str, key: &str) -> String {
    let simple = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (path.is_empty(), simple) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_owned())),
    }
}

fn walk(path: String, expected: Option<&Value>, actual: Option<&Value>, subset: bool, found: &mut Vec<Difference>) {
    match (expected, actual) {
        (Some(Value::Object(e)), Some(Value::Object(a))) => {
            for (key, x) in e {
                walk(join(&path, key), Some(x), a.get(key), subset, found);
            }
            if !subset {
                for (key, y) in a.iter().filter(|(key, _)| !e.contains_key(*key)) {
                    walk(join(&path, key), None, Some(y), subset, found);
                }
            }
        }
        (Some(Value::Array(e)), Some(Value::Array(a))) if e.len() == a.len() || !subset => {
            for index in 0..e.len().max(a.len()) {
                walk(format!("{path}[{index}]"), e.get(index), a.get(index), subset, found);
            }
        }
        (Some(x), Some(y)) if if subset { contains(y, x) } else { equal(x, y) } => {}
        (None, None) => {}
        (expected, actual) => {
            found.push(Difference { path, expected: expected.cloned(), actual: actual.cloned() });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ignore_paths_read_and_remove() {
        let mut body = json!({"actions": [{"current_time": "x", "attributes": {"a": 1, "b": 2}}, {"current_time": "y"}]});
        IgnorePath::parse("actions[*].current_time").expect("path").remove_from(&mut body);
        IgnorePath::parse("actions[0].attributes.b").expect("path").remove_from(&mut body);
        IgnorePath::parse("no.such[3].thing").expect("path").remove_from(&mut body);
        assert_eq!(body, json!({"actions": [{"attributes": {"a": 1}}, {}]}));
        for wrong in ["", "a..b", "a[x]", "a[0", "a[0]b", "."] {
            assert!(IgnorePath::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn differences_name_each_path() {
        let expected = json!({"customer_id": "u1", "actions": [{"attributes": {"value": 10, "currency": "GBP"}}]});
        let actual = json!({"customer_id": "u2", "actions": [{"attributes": {"value": 10.0, "coupon": "X", "currency": "GBP"}}]});
        let found = differences(&expected, &actual, false);
        let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["actions[0].attributes.coupon", "customer_id"]);
        assert_eq!(found[0].expected, None);
        assert!(contains(&actual, &json!({"actions": [{"attributes": {"currency": "GBP"}}]})));
        assert!(!contains(&actual, &json!({"actions": []})), "arrays keep their length");
        let subset = differences(&json!({"customer_id": "u1"}), &actual, true);
        assert_eq!(subset.len(), 1);
        assert_eq!(subset[0].path, "customer_id");
    }
}
