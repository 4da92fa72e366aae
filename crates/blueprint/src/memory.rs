//! Remembered traits. Real SDKs send a user's traits once (Segment's analytics.js only with
//! `identify`), so the interpreter keeps each user's latest known traits and fills the identity
//! fields of later events from them when those events carry none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::{Raw, RawObject};

/// Each user's latest known traits in one workspace, keyed by `user_id`, as compact JSON objects.
/// [`crate::Mapper::with_memory`] reads and updates it as events are mapped.
pub trait TraitMemory: Send + Sync {
    /// The traits remembered for `user`.
    fn recall(&self, user: &str) -> Option<Arc<str>>;

    /// Remembers `traits` for `user`: the traits recalled before, with an event's laid on them.
    fn remember(&self, user: &str, traits: Arc<str>);

    /// `merged` is now `retained` (an alias call): the traits of `merged` are laid under
    /// `retained`'s.
    fn merge(&self, merged: &str, retained: &str);
}

impl std::fmt::Debug for dyn TraitMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraitMemory")
    }
}

/// Traits remembered for one run (`signal map`, `signal send`), in memory, in input order.
#[derive(Debug, Default)]
pub struct RunMemory {
    users: Mutex<HashMap<Box<str>, Arc<str>>>,
}

impl RunMemory {
    /// How many users it remembers.
    pub fn len(&self) -> usize {
        self.users.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Forgets everyone.
    pub fn clear(&self) {
        self.users.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether it remembers no one.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TraitMemory for RunMemory {
    fn recall(&self, user: &str) -> Option<Arc<str>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner).get(user).cloned()
    }

    fn remember(&self, user: &str, traits: Arc<str>) {
        self.users.lock().unwrap_or_else(PoisonError::into_inner).insert(user.into(), traits);
    }

    fn merge(&self, merged: &str, retained: &str) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(old) = users.get(merged).cloned() else { return };
        let traits = match users.get(retained) {
            Some(current) => overlaid_json(&old, current),
            None => old,
        };
        users.insert(retained.into(), traits);
    }
}

/// `over` laid on `base`, name by name (a `null` hides nothing): both compact JSON objects, as
/// remembered. An unreadable side counts as empty.
pub fn overlaid_json(base: &str, over: &str) -> Arc<str> {
    overlaid_text(base, over).into()
}

/// [`overlaid_json`] as a `String`: the one rule by which remembered traits are laid on each other,
/// in a node's memory and in the store (`store::TraitOverlay`) alike. Each of `over`'s members
/// replaces `base`'s of that name whole (nested objects included), as an event's traits do.
pub fn overlaid_text(base: &str, over: &str) -> String {
    fn parse(text: &str) -> RawObject<'_> {
        RawObject::parse(Raw::trusted(text)).unwrap_or_default()
    }
    let (base_object, over_object) = (parse(base), parse(over));
    remembered_json(&base_object.overlaid(over_object))
}

/// An object written as compact JSON, the last of duplicate names kept.
pub(crate) fn object_json(object: &RawObject<'_>) -> String {
    written(object, true)
}

/// Traits as remembered: compact JSON without `null`s, which say nothing about a user.
pub(crate) fn remembered_json(object: &RawObject<'_>) -> String {
    written(object, false)
}

fn written(object: &RawObject<'_>, with_nulls: bool) -> String {
    let mut out = vec![b'{'];
    let members = &object.members;
    for (index, (key, value)) in members.iter().enumerate() {
        if members[index + 1..].iter().any(|(later, _)| later == key)
            || (!with_nulls && value.kind() == crate::event::JsonKind::Null)
        {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        crate::event::write_str(&mut out, key);
        out.push(b':');
        value.write_compact(&mut out);
    }
    out.push(b'}');
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_lays_the_merged_users_traits_under_the_retained_users() {
        let memory = RunMemory::default();
        memory.remember("anon", r#"{"email":"old@x.y","plan":"free"}"#.into());
        memory.remember("u1", r#"{"plan":"pro"}"#.into());
        memory.merge("anon", "u1");
        assert_eq!(memory.recall("u1").as_deref(), Some(r#"{"email":"old@x.y","plan":"pro"}"#));
        memory.merge("nobody", "u1");
        assert_eq!(memory.recall("u1").as_deref(), Some(r#"{"email":"old@x.y","plan":"pro"}"#));
        memory.merge("anon", "u2");
        assert_eq!(memory.recall("u2").as_deref(), Some(r#"{"email":"old@x.y","plan":"free"}"#));
    }

    #[test]
    fn a_member_is_replaced_whole_and_the_rest_kept() {
        let base = r#"{"address":{"city":"Leeds","street":"Park Row"},"email":"a@b.test"}"#;
        let over = r#"{"address":{"city":"York"},"plan":"pro"}"#;
        assert_eq!(overlaid_text(base, over), r#"{"email":"a@b.test","address":{"city":"York"},"plan":"pro"}"#);
    }

    #[test]
    fn overlaying_keeps_what_a_null_would_hide() {
        assert_eq!(&*overlaid_json(r#"{"a":1,"b":2}"#, r#"{"b":null,"c":3}"#), r#"{"a":1,"b":2,"c":3}"#);
        assert_eq!(&*overlaid_json("not json", r#"{"c":3}"#), r#"{"c":3}"#);
    }
}
