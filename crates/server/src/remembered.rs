//! Remembered traits in `signal serve`: kept in the store, so they survive restarts, with a bounded
//! cache in front of it, so memory stays bounded however many users there are. A worker reads the
//! traits of the users in a claimed slice before mapping it, and writes what mapping changed after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use blueprint::TraitMemory;
use blueprint::memory::{overlaid_json, overlaid_text};
use store::{Claimed, Queue, TraitChange};

/// Users whose traits (or the fact that none are remembered) are kept in memory per workspace.
pub const CACHED_USERS: usize = 50_000;

/// One workspace's remembered traits.
pub struct StoredTraits {
    workspace: String,
    inner: Mutex<Inner>,
    /// Held while the store is written or read: with several workers on one workspace, a read
    /// must not see the store before another worker's pending changes are in it.
    store: tokio::sync::Mutex<()>,
}

struct Inner {
    cache: Cache,
    /// What mapping changed since the last [`StoredTraits::flush`], in order.
    changes: Vec<TraitChange>,
}

/// Two generations of entries: when the young one fills half the room, it becomes the old one and
/// the previous old one goes. An entry read from the old generation moves back to the young one,
/// so users seen recently stay. `None`: the store remembers nothing for the user.
struct Cache {
    young: HashMap<Box<str>, Option<Arc<str>>>,
    old: HashMap<Box<str>, Option<Arc<str>>>,
    half: usize,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Cache { young: HashMap::new(), old: HashMap::new(), half: (capacity / 2).max(1) }
    }

    fn get(&mut self, user: &str) -> Option<Option<Arc<str>>> {
        if let Some(entry) = self.young.get(user) {
            return Some(entry.clone());
        }
        let entry = self.old.remove(user)?;
        self.insert(user, entry.clone());
        Some(entry)
    }

    fn insert(&mut self, user: &str, traits: Option<Arc<str>>) {
        if self.young.len() >= self.half && !self.young.contains_key(user) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(user.into(), traits);
    }

    fn forget(&mut self, user: &str) {
        self.young.remove(user);
        self.old.remove(user);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

impl StoredTraits {
    /// The workspace whose users these are.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The remembered traits of `workspace`, with room for `capacity` users in memory.
    pub fn new(workspace: impl Into<String>, capacity: usize) -> Self {
        StoredTraits {
            workspace: workspace.into(),
            inner: Mutex::new(Inner { cache: Cache::new(capacity), changes: Vec::new() }),
            store: tokio::sync::Mutex::new(()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many users' entries are in memory.
    pub fn cached(&self) -> usize {
        self.inner().cache.len()
    }

    /// Reads from the store the traits of the users of `events` that are not in memory, of the
    /// events whose mapping `needs` them.
    pub async fn prefetch<Q: Queue>(
        &self,
        queue: &Q,
        events: &[Claimed],
        needs: impl Fn(&Claimed) -> bool,
    ) -> Result<(), store::StoreError> {
        let _store = self.store.lock().await;
        // What is pending is stored first: a merge done by the store must be there to be read.
        self.flush_held(queue).await?;
        let mut missing: Vec<String> = {
            let mut inner = self.inner();
            events
                .iter()
                .filter(|event| needs(event))
                .filter_map(|event| event.user_id.as_deref())
                .filter(|user| inner.cache.get(user).is_none())
                .map(str::to_owned)
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        let found = queue.recall_traits(self.workspace.clone(), missing.clone()).await?;
        let mut found: HashMap<String, String> = found.into_iter().collect();
        let mut inner = self.inner();
        for user in missing {
            let traits = found.remove(&user).map(Arc::from);
            inner.cache.insert(&user, traits);
        }
        Ok(())
    }

    /// Writes to the store what mapping changed since the last flush.
    pub async fn flush<Q: Queue>(&self, queue: &Q) -> Result<(), store::StoreError> {
        let _store = self.store.lock().await;
        self.flush_held(queue).await
    }

    async fn flush_held<Q: Queue>(&self, queue: &Q) -> Result<(), store::StoreError> {
        let changes = std::mem::take(&mut self.inner().changes);
        if changes.is_empty() {
            return Ok(());
        }
        let result = queue.remember_traits(self.workspace.clone(), changes.clone(), overlaid_text).await;
        if result.is_err() {
            // Kept, before anything mapped since, for the next flush.
            let mut inner = self.inner();
            let later = std::mem::replace(&mut inner.changes, changes);
            inner.changes.extend(later);
        }
        result
    }
}

impl TraitMemory for StoredTraits {
    fn recall(&self, user: &str) -> Option<Arc<str>> {
        self.inner().cache.get(user).flatten()
    }

    fn remember(&self, user: &str, traits: Arc<str>) {
        let mut inner = self.inner();
        // A user not read from the store may have more there than this event says: the store lays
        // these on what it has, and the user is read whole when next needed.
        if inner.cache.get(user).is_some() {
            inner.cache.insert(user, Some(traits.clone()));
        }
        inner.changes.push(TraitChange::Set { user: user.to_owned(), traits: traits.to_string() });
    }

    fn merge(&self, merged: &str, retained: &str) {
        let mut inner = self.inner();
        match inner.cache.get(merged) {
            // Nothing remembered for the merged user: nothing moves.
            Some(None) => {}
            Some(Some(old)) => match inner.cache.get(retained) {
                Some(current) => {
                    let traits = match current {
                        Some(current) => overlaid_json(&old, &current),
                        None => old,
                    };
                    inner.cache.insert(retained, Some(traits.clone()));
                    inner.changes.push(TraitChange::Set { user: retained.to_owned(), traits: traits.to_string() });
                }
                None => {
                    inner.changes.push(TraitChange::Merge { merged: merged.to_owned(), retained: retained.to_owned() });
                }
            },
            // Not in memory: the store merges, and the retained user is read again after.
            None => {
                inner.cache.forget(retained);
                inner.changes.push(TraitChange::Merge { merged: merged.to_owned(), retained: retained.to_owned() });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_room_and_keeps_users_read_lately() {
        let mut cache = Cache::new(4);
        for user in ["a", "b", "c", "d", "e"] {
            cache.insert(user, None);
        }
        assert!(cache.len() <= 4, "{}", cache.len());
        assert!(cache.get("e").is_some());
        for user in 0..1000 {
            cache.insert(&user.to_string(), None);
            assert!(cache.len() <= 4);
        }
    }

    #[test]
    fn a_user_not_read_from_the_store_is_stored_but_not_cached_as_known() {
        let traits = StoredTraits::new("ws", 16);
        traits.remember("u1", r#"{"plan":"pro"}"#.into());
        assert_eq!(traits.recall("u1"), None, "the store may know more of u1 than this event said");
        assert_eq!(traits.cached(), 0);
        assert_eq!(
            traits.inner().changes,
            [TraitChange::Set { user: "u1".into(), traits: r#"{"plan":"pro"}"#.into() }],
            "laid on what the store has"
        );
        traits.inner().cache.insert("u2", None);
        traits.remember("u2", r#"{"plan":"free"}"#.into());
        assert_eq!(traits.recall("u2").as_deref(), Some(r#"{"plan":"free"}"#), "read from the store: known whole");
    }

    #[test]
    fn a_merge_of_users_in_memory_is_one_change_of_the_retained_user() {
        let traits = StoredTraits::new("ws", 16);
        // As read from the store: nothing remembered for either.
        for user in ["anon", "u1"] {
            traits.inner().cache.insert(user, None);
        }
        traits.remember("anon", r#"{"email":"a@b.c"}"#.into());
        traits.remember("u1", r#"{"plan":"pro"}"#.into());
        traits.merge("anon", "u1");
        assert_eq!(traits.recall("u1").as_deref(), Some(r#"{"email":"a@b.c","plan":"pro"}"#));
        let changes = std::mem::take(&mut traits.inner().changes);
        assert_eq!(
            changes.last(),
            Some(&TraitChange::Set { user: "u1".into(), traits: r#"{"email":"a@b.c","plan":"pro"}"#.into() })
        );
        traits.merge("stranger", "u1");
        assert_eq!(traits.recall("u1"), None, "read again from the store after it merges");
        assert_eq!(
            traits.inner().changes,
            [TraitChange::Merge { merged: "stranger".into(), retained: "u1".into() }]
        );
    }
}
