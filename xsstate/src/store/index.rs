//! The name index: an open-addressing hash table from (parent, name) to a node's slot, keyed
//! with a per-store secret seed so that guests cannot aim collisions at it. Each entry holds
//! the slot number and 32 bits of the hash (a probe reads the arena only when those match);
//! keys are read back from the arena. Growth is fallible.

use alloc::vec::Vec;

use super::arena::{Arena, OutOfMemory};

const EMPTY: u64 = u32::MAX as u64;
const TOMB: u64 = (u32::MAX - 1) as u64;

/// An entry: the hash's high half (which also picks the bucket) and the slot (also what
/// [`Index::insert_many`] takes).
pub(crate) fn entry(h: u64, id: u32) -> u64 {
    (h & TAG) | u64::from(id)
}

/// The first bucket of a hash (or of an entry: both keep the high half).
fn bucket(h: u64, mask: usize) -> usize {
    (h >> 32) as usize & mask
}

fn slot_of(e: u64) -> u32 {
    e as u32
}

fn occupied(e: u64) -> bool {
    slot_of(e) < u32::MAX - 1
}
const MIN_CAPACITY: usize = 64;
/// The half of an entry that holds hash bits.
const TAG: u64 = 0xffff_ffff_0000_0000;

/// Why [`Index::insert_many`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BulkError {
    /// The table could not grow.
    OutOfMemory,
    /// Two nodes with the same parent and name.
    Duplicate,
}

/// Whether slots `a` and `b` have the same parent and name.
fn same_key(arena: &Arena, a: u32, b: u32) -> bool {
    match (arena.get(a), arena.get(b)) {
        (Some(x), Some(y)) => x.parent == y.parent && x.name() == y.name(),
        _ => false,
    }
}

/// Sorts entries by their first bucket under `mask` (a stable radix sort in passes of at
/// most 11 bits). Left unsorted, which is only slower, when its scratch space cannot be had.
fn sort_by_bucket(entries: &mut Vec<u64>, mask: usize) {
    let bits = mask.count_ones() as usize;
    if bits == 0 || entries.len() < 2 {
        return;
    }
    let passes = bits.div_ceil(11);
    let digit = bits.div_ceil(passes);
    let radix = 1usize << digit;
    let mut scratch: Vec<u64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    if scratch.try_reserve_exact(entries.len()).is_err() || counts.try_reserve_exact(radix).is_err()
    {
        return;
    }
    scratch.resize(entries.len(), 0);
    counts.resize(radix, 0);
    let key = |e: u64, shift: usize| (bucket(e, mask) >> shift) & (radix - 1);
    for pass in 0..passes {
        let shift = pass * digit;
        counts.fill(0);
        for &e in entries.iter() {
            if let Some(c) = counts.get_mut(key(e, shift)) {
                *c += 1;
            }
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &e in entries.iter() {
            if let Some(c) = counts.get_mut(key(e, shift)) {
                if let Some(dst) = scratch.get_mut(*c) {
                    *dst = e;
                }
                *c += 1;
            }
        }
        core::mem::swap(entries, &mut scratch);
    }
}

/// The folded 128-bit product of two words (the mixing step of wyhash and foldhash).
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

/// The keyed hash of a child name under `parent`.
pub(crate) fn hash(seed: u64, parent: u32, name: &[u8]) -> u64 {
    let mut h = fold(seed ^ K0, u64::from(parent) ^ K1);
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), seed ^ K1);
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    if let Some(dst) = w.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    fold(h ^ u64::from_le_bytes(w), (name.len() as u64) ^ seed ^ K0)
}

/// The table.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    table: Vec<u64>,
    len: usize,
    tombs: usize,
    seed: u64,
}

impl Index {
    pub(crate) fn new(seed: u64) -> Index {
        Index {
            table: Vec::new(),
            len: 0,
            tombs: 0,
            seed,
        }
    }

    /// Bytes the table holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * 8
    }

    fn hash_of(&self, arena: &Arena, id: u32) -> u64 {
        arena
            .get(id)
            .map_or(0, |s| hash(self.seed, s.parent, s.name()))
    }

    /// The hash of `name` under `parent` (for [`Index::find_hashed`] and
    /// [`Index::insert_hashed`]: a create hashes once).
    pub(crate) fn hash(&self, parent: u32, name: &[u8]) -> u64 {
        hash(self.seed, parent, name)
    }

    /// The slot of `name` under `parent`.
    pub(crate) fn find(&self, arena: &Arena, parent: u32, name: &[u8]) -> Option<u32> {
        self.find_hashed(arena, self.hash(parent, name), parent, name)
    }

    /// [`Index::find`] with the hash computed already.
    pub(crate) fn find_hashed(
        &self,
        arena: &Arena,
        h: u64,
        parent: u32,
        name: &[u8],
    ) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let tag = h & TAG;
        let mut i = bucket(h, mask);
        loop {
            let e = *self.table.get(i)?;
            if slot_of(e) == u32::MAX {
                return None;
            }
            if occupied(e) && e & TAG == tag {
                let id = slot_of(e);
                if let Some(s) = arena.get(id) {
                    if s.parent == parent && s.name() == name {
                        return Some(id);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Whether `additional` more entries fit without growing.
    fn fits(&self, additional: usize) -> bool {
        let used = self.len + self.tombs + additional;
        used.saturating_mul(4) <= self.table.len().saturating_mul(3)
    }

    /// Bytes [`Index::reserve`] would allocate for `additional` more entries.
    pub(crate) fn growth_bytes(&self, additional: usize) -> usize {
        if self.fits(additional) {
            return 0;
        }
        let need = (self.len + additional).saturating_mul(4) / 3 + 1;
        let mut cap = self.table.len().max(MIN_CAPACITY);
        while cap < need {
            cap = cap.saturating_mul(2);
        }
        cap.saturating_mul(8)
    }

    /// Makes room for `additional` more entries (rehashing, fallibly, when needed).
    pub(crate) fn reserve(&mut self, arena: &Arena, additional: usize) -> Result<(), OutOfMemory> {
        if self.fits(additional) {
            return Ok(());
        }
        let need = (self.len + additional).saturating_mul(4) / 3 + 1;
        let mut cap = self.table.len().max(MIN_CAPACITY);
        while cap < need {
            cap = cap.checked_mul(2).ok_or(OutOfMemory)?;
        }
        // Mostly tombstones: the same size again clears them.
        let mut table: Vec<u64> = Vec::new();
        table.try_reserve_exact(cap).map_err(|_| OutOfMemory)?;
        table.resize(cap, EMPTY);
        let old = core::mem::replace(&mut self.table, table);
        self.tombs = 0;
        let mask = cap - 1;
        let _ = arena;
        for e in old.into_iter().filter(|&e| occupied(e)) {
            let mut i = bucket(e, mask);
            while let Some(slot) = self.table.get_mut(i) {
                if *slot == EMPTY {
                    *slot = e;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        Ok(())
    }

    /// Adds slot `id` (its parent and name already in the arena) with its hash
    /// ([`Index::hash`] of its parent and name), after [`Index::reserve`].
    pub(crate) fn insert_hashed(
        &mut self,
        arena: &Arena,
        h: u64,
        id: u32,
    ) -> Result<(), OutOfMemory> {
        self.reserve(arena, 1)?;
        let mask = self.table.len() - 1;
        let mut i = bucket(h, mask);
        loop {
            let slot = self.table.get_mut(i).ok_or(OutOfMemory)?;
            if !occupied(*slot) {
                if *slot == TOMB {
                    self.tombs -= 1;
                }
                *slot = entry(h, id);
                self.len += 1;
                return Ok(());
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts the entries in `pending` (made by [`entry`] from [`Index::hash`] and the
    /// slot, for nodes already in the arena) and empties it. They go in in bucket order, so
    /// the table is written front to back instead of at one random place per node: a
    /// restore's bulk load. `Duplicate` when a (parent, name) is already indexed or comes
    /// twice (what was inserted before it stays).
    pub(crate) fn insert_many(
        &mut self,
        arena: &Arena,
        pending: &mut Vec<u64>,
    ) -> Result<(), BulkError> {
        if pending.is_empty() {
            return Ok(());
        }
        self.reserve(arena, pending.len())
            .map_err(|_| BulkError::OutOfMemory)?;
        let mask = self.table.len() - 1;
        sort_by_bucket(pending, mask);
        for &e in pending.iter() {
            self.insert_unique(arena, e, mask)?;
        }
        pending.clear();
        Ok(())
    }

    /// Inserts entry `e` after checking its run for the same (parent, name); the arena is
    /// read only where 32 bits of hash match.
    fn insert_unique(&mut self, arena: &Arena, e: u64, mask: usize) -> Result<(), BulkError> {
        let tag = e & TAG;
        let id = slot_of(e);
        let mut i = bucket(e, mask);
        let mut free = None;
        loop {
            let cur = *self.table.get(i).ok_or(BulkError::OutOfMemory)?;
            if cur == EMPTY {
                break;
            }
            if cur == TOMB {
                free = free.or(Some(i));
            } else if cur & TAG == tag && same_key(arena, slot_of(cur), id) {
                return Err(BulkError::Duplicate);
            }
            i = (i + 1) & mask;
        }
        let at = match free {
            Some(t) => {
                self.tombs -= 1;
                t
            }
            None => i,
        };
        let slot = self.table.get_mut(at).ok_or(BulkError::OutOfMemory)?;
        *slot = e;
        self.len += 1;
        Ok(())
    }

    /// Removes slot `id` (call while its parent and name are still in the arena).
    pub(crate) fn remove(&mut self, arena: &Arena, id: u32) {
        if self.table.is_empty() {
            return;
        }
        let mask = self.table.len() - 1;
        let mut i = bucket(self.hash_of(arena, id), mask);
        while let Some(slot) = self.table.get_mut(i) {
            if *slot == EMPTY {
                return;
            }
            if occupied(*slot) && slot_of(*slot) == id {
                *slot = TOMB;
                self.len -= 1;
                self.tombs += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_hash_differs() {
        assert_ne!(hash(1, 0, b"abc"), hash(2, 0, b"abc"));
        assert_ne!(hash(1, 0, b"abc"), hash(1, 1, b"abc"));
        assert_ne!(hash(1, 0, b"abcdefgh1"), hash(1, 0, b"abcdefgh2"));
        assert_ne!(hash(1, 0, b""), hash(1, 0, b"\0"));
    }
}
