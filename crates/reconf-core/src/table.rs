//! The session table: every open session's record, keyed by session id.
//!
//! Open addressing with linear probing, key and record inline in one 32-byte slot (large
//! tables are page-aligned, so no slot straddles two cache lines), so a lookup reads one
//! cache line and one page in the common case. A
//! general-purpose hash map keeps its control bytes apart from its entries, which costs a
//! second, dependent cache miss per lookup; at a million sessions those misses, not the
//! rules, are most of what a delegation costs.
//!
//! Removal shifts later entries of the same run back instead of leaving tombstones, so
//! probe lengths depend only on the current load, never on the history of the table.

use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroU32;

use crate::ids::SessionId;
use crate::state::{Ix, Record};

/// One slot, four words: the session id's high and low halves, then the record packed as
/// `holder | delegator << 32` and `bundle | generation << 32` (index 0 = none). A holder of
/// 0 marks the slot empty, so a zeroed allocation is an empty table.
type Slot = [u64; 4];

const MIN_SLOTS: usize = 16;

/// Tables at least this large (one 2 MiB huge page) live in their own anonymous mapping
/// with huge pages requested: at a million sessions a lookup is otherwise mostly a TLB
/// miss, and on a virtual machine the page walks behind TLB misses are few at a time, so
/// they also cap how many lookups of a batch can overlap. Smaller tables stay on the heap.
const MAPPED_BYTES: usize = 2 << 20;

fn encode(key: SessionId, r: Record) -> Slot {
    let k = key.0.as_u128();
    // The truncations split the 128-bit id into its two halves.
    [
        (k >> 64) as u64,
        k as u64,
        u64::from(r.holder.0.get()) | u64::from(r.delegator.map_or(0, |d| d.0.get())) << 32,
        u64::from(r.bundle.map_or(0, |b| b.0.get())) | u64::from(r.generation) << 32,
    ]
}

fn ix(word: u64) -> Option<Ix> {
    // The low 32 bits hold the index; 0 is "none".
    NonZeroU32::new(word as u32).map(Ix)
}

fn decode(slot: &Slot) -> Option<(SessionId, Record)> {
    let holder = ix(slot[2])?;
    let key = SessionId::from_u128(u128::from(slot[0]) << 64 | u128::from(slot[1]));
    Some((
        key,
        Record {
            holder,
            delegator: ix(slot[2] >> 32),
            bundle: ix(slot[3]),
            generation: (slot[3] >> 32) as u32,
        },
    ))
}

fn is_empty(slot: &Slot) -> bool {
    slot[2] as u32 == 0
}

fn key_is(slot: &Slot, key: u128) -> bool {
    // The truncations split the 128-bit id into its two halves.
    slot[0] == (key >> 64) as u64 && slot[1] == key as u64 && !is_empty(slot)
}

/// Where the slots live.
enum Storage {
    Heap(Vec<Slot>),
    Mapped(memmap2::MmapMut),
}

impl Storage {
    /// `n` empty slots.
    fn zeroed(n: usize) -> Self {
        if n.saturating_mul(32) >= MAPPED_BYTES {
            if let Some(m) = Self::mapped(n) {
                return m;
            }
        }
        Self::Heap(vec![[0; 4]; n])
    }

    /// A fresh anonymous mapping (zero-filled by the kernel) of `n` slots, with huge pages
    /// requested where the platform has them. `None` if the mapping cannot be made or read
    /// as slots; the caller falls back to the heap.
    fn mapped(n: usize) -> Option<Self> {
        let mut map = memmap2::MmapMut::map_anon(n.checked_mul(32)?).ok()?;
        #[cfg(target_os = "linux")]
        {
            // Only a hint: without huge pages the table works the same, slower.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        // A mapping starts on a page boundary, so the cast cannot fail; checked anyway.
        if bytemuck::try_cast_slice_mut::<u8, Slot>(&mut map[..]).ok()?.len() != n {
            return None;
        }
        Some(Self::Mapped(map))
    }

    fn slots(&self) -> &[Slot] {
        match self {
            Self::Heap(v) => v,
            // Checked when the mapping was made; its length and address do not change.
            Self::Mapped(m) => bytemuck::try_cast_slice(&m[..]).unwrap_or_default(),
        }
    }

    fn slots_mut(&mut self) -> &mut [Slot] {
        match self {
            Self::Heap(v) => v,
            Self::Mapped(m) => bytemuck::try_cast_slice_mut(&mut m[..]).unwrap_or_default(),
        }
    }
}

impl Clone for Storage {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.slots().len());
        copy.slots_mut().copy_from_slice(self.slots());
        copy
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self::Heap(Vec::new())
    }
}

/// Session id → record, see the module docs.
#[derive(Clone, Default)]
pub(crate) struct SessionTable {
    storage: Storage,
    len: usize,
    // Seeded per process like std's maps, so chosen session ids cannot force long runs.
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("len", &self.len)
            .field("slots", &self.capacity())
            .field("mapped", &matches!(self.storage, Storage::Mapped(_)))
            .finish()
    }
}

impl SessionTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (each 32 bytes).
    pub(crate) fn capacity(&self) -> usize {
        self.storage.slots().len()
    }

    /// The slot a key's probe run starts at, in a table of `size` slots (a power of two).
    /// The top bits of a Fibonacci multiply spread the hash over the whole table.
    fn home_in(&self, key: &SessionId, size: usize) -> usize {
        let bits = size.trailing_zeros();
        if bits == 0 {
            return 0;
        }
        let h = self.hasher.hash_one(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The shift leaves `bits` (< 64) high bits, which fit the table's index range.
        (h >> (64 - bits)) as usize
    }

    /// Walks `key`'s probe run: `Ok` with the slot holding it, or `Err` with the empty slot
    /// that ends the run (where it would go; `None` for a table with no slots).
    fn probe(&self, key: &SessionId) -> Result<usize, Option<usize>> {
        let slots = self.storage.slots();
        let mask = slots.len().wrapping_sub(1);
        let k = key.0.as_u128();
        let mut i = self.home_in(key, slots.len());
        // The load limit keeps at least a quarter of the slots empty, so every run ends.
        loop {
            let slot = slots.get(i).ok_or(None)?;
            if is_empty(slot) {
                return Err(Some(i));
            }
            if key_is(slot, k) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: &SessionId) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.probe(key).ok()
    }

    /// Loads the home slots of `keys` into the cache. All the slot addresses are computed
    /// first and then read back to back, a chunk at a time, with no load waiting on
    /// another or on a branch about another's contents, so the CPU keeps as many misses
    /// in flight as it can. A hint: most keys sit in their home slot's cache line.
    pub(crate) fn prefetch<I>(&self, keys: I)
    where
        I: IntoIterator<Item = SessionId>,
    {
        const CHUNK: usize = 16;
        if self.len == 0 {
            return;
        }
        let slots = self.storage.slots();
        let mut keys = keys.into_iter();
        let mut homes = [0usize; CHUNK];
        loop {
            let mut n = 0;
            for (slot, key) in homes.iter_mut().zip(keys.by_ref()) {
                *slot = self.home_in(&key, slots.len());
                n += 1;
            }
            if n == 0 {
                return;
            }
            let mut seen = 0u64;
            for h in homes.iter().take(n) {
                seen = seen.wrapping_add(slots.get(*h).map_or(0, |s| s[2]));
            }
            std::hint::black_box(seen);
        }
    }

    pub(crate) fn get(&self, key: &SessionId) -> Option<Record> {
        let i = self.find(key)?;
        decode(self.storage.slots().get(i)?).map(|(_, r)| r)
    }

    /// Inserts or replaces; returns the replaced record.
    pub(crate) fn insert(&mut self, key: SessionId, record: Record) -> Option<Record> {
        let free = match self.probe(&key) {
            Ok(i) => {
                let slot = self.storage.slots_mut().get_mut(i)?;
                let prev = decode(slot).map(|(_, r)| r);
                *slot = encode(key, record);
                return prev;
            }
            Err(free) => free,
        };
        self.len += 1;
        // At most three quarters full, so probe runs stay short.
        if self.len * 4 > self.capacity() * 3 {
            self.grow();
            Self::place(self.home_in(&key, self.capacity()), self.storage.slots_mut(), encode(key, record));
        } else if let Some(slot) = free.and_then(|i| self.storage.slots_mut().get_mut(i)) {
            *slot = encode(key, record);
        }
        None
    }

    /// Puts a slot whose key is absent into its run's first free place.
    fn place(home: usize, slots: &mut [Slot], slot: Slot) {
        let mask = slots.len().wrapping_sub(1);
        let mut i = home;
        while let Some(s) = slots.get_mut(i) {
            if is_empty(s) {
                *s = slot;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.capacity() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.storage, Storage::zeroed(size));
        for slot in old.slots().iter().filter(|s| !is_empty(s)) {
            if let Some((k, _)) = decode(slot) {
                let home = self.home_in(&k, size);
                Self::place(home, self.storage.slots_mut(), *slot);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &SessionId) -> Option<Record> {
        let mut hole = self.find(key)?;
        let size = self.capacity();
        let mask = size.wrapping_sub(1);
        let removed = decode(self.storage.slots().get(hole)?).map(|(_, r)| r);
        self.len -= 1;
        // Backward shift: move each later entry of the run into the hole when the hole
        // lies between its home slot and where it sits, so no lookup ever needs to skip a
        // tombstone.
        let mut j = (hole + 1) & mask;
        while let Some((k, _)) = self.storage.slots().get(j).and_then(decode) {
            let home = self.home_in(&k, size);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.storage.slots_mut().swap(hole, j);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(s) = self.storage.slots_mut().get_mut(hole) {
            *s = [0; 4];
        }
        removed
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SessionId, Record)> + '_ {
        self.storage.slots().iter().filter_map(decode)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Whether the slots live in their own mapping (large tables).
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
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
    fn slots_round_trip_every_field_at_its_limits() {
        let big = Ix(NonZeroU32::MAX);
        for r in [
            rec(0),
            rec(u32::MAX),
            Record { holder: big, delegator: Some(big), bundle: Some(big), generation: u32::MAX },
            Record { holder: Ix(NonZeroU32::MIN), delegator: Some(big), bundle: None, generation: 7 },
        ] {
            for key in
                [SessionId::from_u128(0), SessionId::from_u128(u128::MAX), SessionId::from_u128(1 << 64)]
            {
                assert_eq!(decode(&encode(key, r)), Some((key, r)));
            }
        }
        assert_eq!(decode(&[0; 4]), None);
    }

    #[test]
    fn a_large_table_is_mapped_and_behaves_the_same() {
        let mut t = SessionTable::default();
        let n = 100_000u32;
        for i in 0..n {
            t.insert(SessionId::from_u128(u128::from(i)), rec(i));
        }
        assert!(t.is_mapped(), "{t:?}");
        let copy = t.clone();
        for i in (0..n).step_by(3) {
            assert_eq!(t.remove(&SessionId::from_u128(u128::from(i))), Some(rec(i)));
        }
        for i in 0..n {
            let k = SessionId::from_u128(u128::from(i));
            assert_eq!(t.get(&k), (i % 3 != 0).then(|| rec(i)));
            assert_eq!(copy.get(&k), Some(rec(i)), "a clone is independent");
        }
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
            assert_eq!(t.get(&SessionId::from_u128(u128::from(i))), want);
        }
        for i in (1..10_000u32).step_by(2) {
            assert_eq!(t.remove(&SessionId::from_u128(u128::from(i))), Some(rec(i)));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn a_table_grows_only_past_three_quarters_full() {
        // The load factor is the memory a million sessions cost: the table doubles exactly
        // when one more entry would pass three quarters, never earlier.
        let mut t = SessionTable::default();
        for n in 1..=5000u32 {
            t.insert(SessionId::from_u128(u128::from(n) << 64 | u128::from(n)), rec(n));
            let mut want = MIN_SLOTS;
            while n as usize * 4 > want * 3 {
                want *= 2;
            }
            assert_eq!(t.capacity(), want, "capacity after {n} entries");
        }
    }

    #[test]
    fn prefetch_is_only_a_hint() {
        let mut t = SessionTable::default();
        let keys: Vec<SessionId> = (0..40).map(SessionId::from_u128).collect();
        t.prefetch(keys.iter().copied());
        for (i, k) in keys.iter().enumerate().take(20) {
            t.insert(*k, rec(i as u32));
        }
        let before: Vec<_> = t.iter().collect();
        t.prefetch(keys.iter().copied());
        let after: Vec<_> = t.iter().collect();
        assert_eq!(before, after);
        assert_eq!(t.len(), 20);
    }

    proptest! {
        // Small key space so inserts, replacements and removals collide often, and runs
        // wrap around the end of small tables. The 64 keys are 8 low halves times 8 high
        // halves: keys that differ in one half only must stay apart.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((0u8..3, 0u128..64, any::<u32>()), 0..600)) {
            let mut t = SessionTable::default();
            let mut m: HashMap<SessionId, Record> = HashMap::new();
            for (op, k, g) in ops {
                let k = SessionId::from_u128((k % 8) << 64 | (k / 8));
                match op {
                    0 | 1 => prop_assert_eq!(t.insert(k, rec(g)), m.insert(k, rec(g))),
                    _ => prop_assert_eq!(t.remove(&k), m.remove(&k)),
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for (k, r) in &m {
                prop_assert_eq!(t.get(k), Some(*r));
            }
            let mut seen: Vec<_> = t.iter().collect();
            seen.sort_by_key(|(k, _)| *k);
            let mut want: Vec<_> = m.into_iter().collect();
            want.sort_by_key(|(k, _)| *k);
            prop_assert_eq!(seen, want);
        }
    }
}
