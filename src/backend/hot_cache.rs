//! A bounded in-memory map of rendered messages, oldest out first: repeat fetches by
//! one client (headers, then bodies) skip the database and the decryption. Memory
//! only: nothing decrypted is ever written to disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;

/// Rendered messages by account and SMIMP message id, at most `limit` bytes in all.
pub struct HotCache {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bytes: usize,
    map: HashMap<Address, HashMap<Id32, Arc<[u8]>>>,
    order: VecDeque<(Address, Id32)>,
}

impl Inner {
    fn remove(&mut self, address: &Address, id: &Id32) {
        if let Some(gone) = self.map.get_mut(address).and_then(|m| m.remove(id)) {
            self.bytes -= gone.len();
        }
    }
}

impl HotCache {
    pub fn new(limit: usize) -> Self {
        Self { limit, inner: Default::default() }
    }

    pub fn get(&self, address: &Address, id: &Id32) -> Option<Arc<[u8]>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.get(address)?.get(id).cloned()
    }

    /// Keeps `bytes`, dropping the oldest entries past the limit. A message larger than
    /// a quarter of the limit is not kept, so one huge mail cannot empty the cache.
    pub fn put(&self, address: &Address, id: &Id32, bytes: Arc<[u8]>) {
        if bytes.len() > self.limit / 4 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let added = bytes.len();
        match inner.map.entry(address.clone()).or_default().insert(*id, bytes) {
            Some(old) => inner.bytes -= old.len(),
            None => inner.order.push_back((address.clone(), *id)),
        }
        inner.bytes += added;
        while inner.bytes > self.limit {
            let Some((address, id)) = inner.order.pop_front() else { break };
            inner.remove(&address, &id);
        }
    }

    pub fn forget(&self, address: &Address, id: &Id32) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(address, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message id from a short name.
    fn id(name: &str) -> Id32 {
        let mut bytes = [0u8; 32];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Id32(bytes)
    }

    #[test]
    fn the_cache_keeps_its_bound_and_forgets_on_request() {
        let alice: Address = "alice#example.org".parse().unwrap();
        let bob: Address = "bob#example.org".parse().unwrap();
        let cache = HotCache::new(100);
        cache.put(&alice, &id("one"), Arc::from(vec![1u8; 20]));
        cache.put(&bob, &id("one"), Arc::from(vec![2u8; 20]));
        assert_eq!(cache.get(&alice, &id("one")).unwrap()[0], 1);
        assert_eq!(cache.get(&bob, &id("one")).unwrap()[0], 2, "accounts never share entries");
        cache.put(&alice, &id("huge"), Arc::from(vec![0u8; 26]));
        assert!(cache.get(&alice, &id("huge")).is_none(), "more than a quarter of the bound is not kept");
        for n in 0..4 {
            cache.put(&alice, &id(&format!("m{n}")), Arc::from(vec![3u8; 20]));
        }
        assert!(cache.get(&alice, &id("one")).is_none(), "the oldest went first");
        assert!(cache.get(&alice, &id("m3")).is_some());
        cache.forget(&alice, &id("m3"));
        assert!(cache.get(&alice, &id("m3")).is_none());
        let held = ["one", "m0", "m1", "m2", "m3"].iter().filter(|name| cache.get(&alice, &id(name)).is_some()).count()
            + usize::from(cache.get(&bob, &id("one")).is_some());
        assert!(held * 20 <= 100);
    }
}
