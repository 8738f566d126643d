//! The session table: every open session's record, keyed by session id.
//!
//! Open addressing with linear probing, key and record inline in one 32-byte slot aligned
//! to 32 bytes, so a lookup reads one cache line (and one page) in the common case. A
//! general-purpose hash map keeps its control bytes apart from its entries, which costs a
//! second, dependent cache miss per lookup; at a million sessions those misses, not the
//! rules, are most of what a delegation costs.
//!
//! Removal shifts later entries of the same run back instead of leaving tombstones, so
//! probe lengths depend only on the current load, never on the history of the table.

use std::fmt;
use std::hash::BuildHasher;

use crate::ids::SessionId;
use crate::state::Record;

/// One slot. The record's holder is a `NonZeroU32`, so `None` costs no space.
#[derive(Clone, Copy)]
#[repr(align(32))]
struct Slot(Option<(SessionId, Record)>);

const EMPTY: Slot = Slot(None);
const MIN_SLOTS: usize = 16;

/// Session id → record, see the module docs.
#[derive(Clone, Default)]
pub(crate) struct SessionTable {
    slots: Vec<Slot>,
    len: usize,
    // Seeded per process like std's maps, so chosen session ids cannot force long runs.
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable").field("len", &self.len).field("slots", &self.slots.len()).finish()
    }
}

impl SessionTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (each 32 bytes).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot a key's probe run starts at. The top bits of a Fibonacci multiply spread
    /// the hash over the whole power-of-two table.
    fn home(&self, key: &SessionId) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        let h = self.hasher.hash_one(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The shift leaves `bits` (< 64) high bits, which fit the table's index range.
        (h >> (64 - bits)) as usize
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: &SessionId) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(key);
        // The load limit keeps at least a quarter of the slots empty, so every run ends.
        loop {
            match &self.slots.get(i)?.0 {
                None => return None,
                Some((k, _)) if k == key => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Loads the home slots of `keys` into the cache. All the slot addresses are computed
    /// first and then read back to back, a chunk at a time, with no load waiting on
    /// another or on a branch about another's contents, so the CPU keeps as many misses
    /// in flight as it can. A hint: most keys sit in their home slot's cache line.
    pub(crate) fn prefetch<'a, I>(&self, keys: I)
    where
        I: IntoIterator<Item = &'a SessionId>,
    {
        const CHUNK: usize = 16;
        if self.len == 0 {
            return;
        }
        let mut keys = keys.into_iter();
        let mut homes = [0usize; CHUNK];
        loop {
            let mut n = 0;
            for (slot, key) in homes.iter_mut().zip(keys.by_ref()) {
                *slot = self.home(key);
                n += 1;
            }
            if n == 0 {
                return;
            }
            let mut seen = 0usize;
            for h in homes.iter().take(n) {
                seen += usize::from(self.slots.get(*h).is_some_and(|s| s.0.is_some()));
            }
            std::hint::black_box(seen);
        }
    }

    pub(crate) fn get(&self, key: &SessionId) -> Option<&Record> {
        let i = self.find(key)?;
        self.slots.get(i)?.0.as_ref().map(|(_, r)| r)
    }

    /// Inserts or replaces; returns the replaced record.
    pub(crate) fn insert(&mut self, key: SessionId, record: Record) -> Option<Record> {
        if let Some(i) = self.find(&key) {
            if let Some((_, r)) = self.slots.get_mut(i).and_then(|s| s.0.as_mut()) {
                return Some(std::mem::replace(r, record));
            }
        }
        // At most three quarters full, so probe runs stay short.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(key, record);
        self.len += 1;
        None
    }

    /// Puts a key known to be absent into its run's first free slot.
    fn place(&mut self, key: SessionId, record: Record) {
        let mask = self.mask();
        let mut i = self.home(&key);
        while let Some(slot) = self.slots.get_mut(i) {
            if slot.0.is_none() {
                slot.0 = Some((key, record));
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        for (k, r) in old.into_iter().filter_map(|s| s.0) {
            self.place(k, r);
        }
    }

    pub(crate) fn remove(&mut self, key: &SessionId) -> Option<Record> {
        let mut hole = self.find(key)?;
        let removed = self.slots.get_mut(hole)?.0.take().map(|(_, r)| r);
        self.len -= 1;
        // Backward shift: move each later entry of the run into the hole when the hole
        // lies between its home slot and where it sits, so no lookup ever needs to skip a
        // tombstone.
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        while let Some(Some((k, _))) = self.slots.get(j).map(|s| s.0) {
            let home = self.home(&k);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots.swap(hole, j);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        removed
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SessionId, &Record)> + '_ {
        self.slots.iter().filter_map(|s| s.0.as_ref().map(|(k, r)| (k, r)))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &SessionId> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::num::NonZeroU32;

    use proptest::prelude::*;

    use super::*;
    use crate::state::Ix;

    fn rec(g: u32) -> Record {
        Record { holder: Ix(NonZeroU32::MIN), delegator: None, bundle: None, generation: g }
    }

    #[test]
    fn a_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::align_of::<Slot>(), 32);
    }

    #[test]
    fn survives_growth_and_removal_of_every_entry() {
        let mut t = SessionTable::default();
        for i in 0..10_000u32 {
            assert_eq!(t.insert(SessionId::from_u128(u128::from(i)), rec(i)), None);
        }
        assert_eq!(t.len(), 10_000);
        assert!(t.capacity() * 3 >= t.len() * 4);
        for i in (0..10_000u32).step_by(2) {
            assert_eq!(t.remove(&SessionId::from_u128(u128::from(i))), Some(rec(i)));
        }
        for i in 0..10_000u32 {
            let want = (i % 2 == 1).then(|| rec(i));
            assert_eq!(t.get(&SessionId::from_u128(u128::from(i))).copied(), want);
        }
        for i in (1..10_000u32).step_by(2) {
            assert_eq!(t.remove(&SessionId::from_u128(u128::from(i))), Some(rec(i)));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn prefetch_is_only_a_hint() {
        let mut t = SessionTable::default();
        let keys: Vec<SessionId> = (0..40).map(SessionId::from_u128).collect();
        t.prefetch(&keys);
        for (i, k) in keys.iter().enumerate().take(20) {
            t.insert(*k, rec(i as u32));
        }
        let before: Vec<_> = t.iter().map(|(k, r)| (*k, *r)).collect();
        t.prefetch(&keys);
        let after: Vec<_> = t.iter().map(|(k, r)| (*k, *r)).collect();
        assert_eq!(before, after);
        assert_eq!(t.len(), 20);
    }

    proptest! {
        // Small key space so inserts, replacements and removals collide often, and runs
        // wrap around the end of small tables.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((0u8..3, 0u128..64, any::<u32>()), 0..600)) {
            let mut t = SessionTable::default();
            let mut m: HashMap<SessionId, Record> = HashMap::new();
            for (op, k, g) in ops {
                let k = SessionId::from_u128(k);
                match op {
                    0 | 1 => prop_assert_eq!(t.insert(k, rec(g)), m.insert(k, rec(g))),
                    _ => prop_assert_eq!(t.remove(&k), m.remove(&k)),
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for (k, r) in &m {
                prop_assert_eq!(t.get(k), Some(r));
            }
            let mut seen: Vec<_> = t.iter().map(|(k, r)| (*k, *r)).collect();
            seen.sort_by_key(|(k, _)| *k);
            let mut want: Vec<_> = m.into_iter().collect();
            want.sort_by_key(|(k, _)| *k);
            prop_assert_eq!(seen, want);
        }
    }
}
