//! Writing results back into a test file as block YAML, members in the order the blueprint wrote
//! them (a body reads as MoEngage receives it: `type`, `customer_id`, ... `actions`).

use std::fmt::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// JSON with its members in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    /// `null`, `true`, `false` or a number, as written.
    Scalar(String),
    /// A string.
    Text(String),
    /// An array.
    List(Vec<Ordered>),
    /// An object, in order.
    Members(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Reads JSON text; `None` when it is not JSON.
    pub fn parse(text: &str) -> Option<Ordered> {
        serde_json::from_str(text).ok()
    }

    /// From a value whose order is lost already (serde_json's maps are sorted).
    pub fn from_value(value: &serde_json::Value) -> Ordered {
        use serde_json::Value;
        match value {
            Value::Null => Ordered::Scalar("null".into()),
            Value::Bool(flag) => Ordered::Scalar(flag.to_string()),
            Value::Number(number) => Ordered::Scalar(number.to_string()),
            Value::String(text) => Ordered::Text(text.clone()),
            Value::Array(items) => Ordered::List(items.iter().map(Ordered::from_value).collect()),
            Value::Object(members) => {
                Ordered::Members(members.iter().map(|(key, value)| (key.clone(), Ordered::from_value(value))).collect())
            }
        }
    }

    fn is_block(&self) -> bool {
        match self {
            Ordered::List(items) => !items.is_empty(),
            Ordered::Members(members) => !members.is_empty(),
            _ => false,
        }
    }

    /// As one line of flow YAML (JSON).
    fn inline(&self) -> String {
        match self {
            Ordered::Scalar(text) => text.clone(),
            Ordered::Text(text) => scalar_text(text),
            Ordered::List(items) => {
                let parts: Vec<String> = items.iter().map(Ordered::inline).collect();
                format!("[{}]", parts.join(", "))
            }
            Ordered::Members(members) => {
                let parts: Vec<String> =
                    members.iter().map(|(key, value)| format!("{}: {}", key_text(key), value.inline())).collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
    }

    /// Writes the value as the block under a key, each line starting with `indent` spaces.
    pub fn write_block(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Ordered::Members(members) => {
                for (key, value) in members {
                    write_member(&pad, key, value, indent, out);
                }
            }
            Ordered::List(items) => {
                for item in items {
                    match item {
                        Ordered::Members(members) if !members.is_empty() => {
                            // The first member shares the dash's line; the rest line up under it.
                            let inner = " ".repeat(indent + 2);
                            for (index, (key, value)) in members.iter().enumerate() {
                                let lead = if index == 0 { format!("{pad}- ") } else { inner.clone() };
                                write_member(&lead, key, value, indent + 2, out);
                            }
                        }
                        other => {
                            let _ = writeln!(out, "{pad}- {}", other.inline());
                        }
                    }
                }
            }
            scalar => {
                let _ = writeln!(out, "{pad}{}", scalar.inline());
            }
        }
    }
}

fn write_member(lead: &str, key: &str, value: &Ordered, indent: usize, out: &mut String) {
    if value.is_block() {
        let _ = writeln!(out, "{lead}{}:", key_text(key));
        value.write_block(indent + 2, out);
    } else {
        let _ = writeln!(out, "{lead}{}: {}", key_text(key), value.inline());
    }
}

/// Words YAML readers may take for something other than text.
const RESERVED: [&str; 14] = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "nan", "inf", "-inf", "+inf"];

/// Text that reads back as the same text written plain: letters first, then letters, digits, and
/// a few marks, with single spaces inside.
fn plain(text: &str) -> bool {
    let mut characters = text.chars();
    let starts_well = characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    starts_well
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | '@' | '/' | '+'))
        && !text.ends_with(' ')
        && !text.contains("  ")
        && !RESERVED.contains(&text.to_ascii_lowercase().as_str())
}

fn scalar_text(text: &str) -> String {
    if plain(text) { text.to_owned() } else { serde_json::Value::String(text.to_owned()).to_string() }
}

fn key_text(key: &str) -> String {
    scalar_text(key)
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("JSON")
            }

            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar("null".into()))
            }

            fn visit_bool<E>(self, flag: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(flag.to_string()))
            }

            fn visit_i64<E>(self, number: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(number.to_string()))
            }

            fn visit_u64<E>(self, number: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(number.to_string()))
            }

            fn visit_f64<E>(self, number: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(serde_json::Number::from_f64(number).map_or_else(|| "null".into(), |n| n.to_string())))
            }

            fn visit_str<E>(self, text: &str) -> Result<Ordered, E> {
                Ok(Ordered::Text(text.to_owned()))
            }

            fn visit_string<E>(self, text: String) -> Result<Ordered, E> {
                Ok(Ordered::Text(text))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Ordered, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = items.next_element()? {
                    list.push(item);
                }
                Ok(Ordered::List(list))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = entries.next_entry::<String, Ordered>()? {
                    members.push((key, value));
                }
                Ok(Ordered::Members(members))
            }
        }

        deserializer.deserialize_any(OrderedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_written_as_block_yaml_in_its_own_order_and_reads_back_the_same() {
        let json = r#"{"type":"event","customer_id":"u_8842","user_identifiers":{"u_em":"jane@example.com"},"actions":[{"action":"Order Completed","platform":"web","attributes":{"value":89.99,"on":true,"note":"yes","empty":{},"tags":["a","b"],"n":null,"path":"/x: y"}}]}"#;
        let ordered = Ordered::parse(json).expect("json");
        let mut out = String::new();
        ordered.write_block(2, &mut out);
        assert!(out.starts_with("  type: event\n  customer_id: u_8842\n"), "{out}");
        assert!(out.contains("  actions:\n    - action: Order Completed\n      platform: web\n"), "{out}");
        assert!(out.contains(r#"note: "yes""#), "a word YAML could read as a boolean is quoted: {out}");
        assert!(out.contains(r#"path: "/x: y""#), "{out}");
        let read = diagnostics::yaml::parse(&out).expect("valid YAML");
        let expected: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(read.value, expected);
    }
}
