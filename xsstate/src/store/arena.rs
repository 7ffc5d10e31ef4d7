//! The node arena: fixed-size chunks of node slots addressed by a `u32` index, with a free
//! list; chunks are allocated fallibly, so running out of memory is an error, not a panic.
//! Trailing chunks that empty are given back (all but one spare), so that a store that grew
//! and shrank again (a guest's nodes removed at its death) returns its memory.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::bytes::NodeBytes;

/// "No node": the end of a list, the root's parent.
pub(crate) const NIL: u32 = u32::MAX;
/// The `perms` value of a free slot.
pub(crate) const FREE: u32 = u32::MAX;

/// Slots per chunk (a power of two): 16 KiB chunks, so that a store that shrank gives back
/// all but a few pages.
const CHUNK_SHIFT: u32 = 8;
const CHUNK_SLOTS: usize = 1 << CHUNK_SHIFT;
const CHUNK_MASK: u32 = (1 << CHUNK_SHIFT) - 1;

/// One node. Children form a doubly linked list in creation order; `next` also links free
/// slots. 64 bytes, with the name and value of most nodes inside (see [`NodeBytes`]): the
/// dump's walk reads about one cache line per node.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// The name (last path component), then the value.
    pub(crate) data: NodeBytes,
    /// Changes whenever the node is written.
    pub(crate) generation: u64,
    pub(crate) parent: u32,
    pub(crate) first_child: u32,
    pub(crate) last_child: u32,
    pub(crate) next: u32,
    pub(crate) prev: u32,
    /// Index into the permission table; [`FREE`] marks a free slot.
    pub(crate) perms: u32,
    /// Sum of the children's name lengths plus one each (the `DIRECTORY` payload size).
    pub(crate) children_bytes: u32,
    pub(crate) name_len: u16,
    /// Length of the node's absolute path.
    pub(crate) path_len: u16,
}

impl Slot {
    fn free(next: u32) -> Slot {
        Slot {
            data: NodeBytes::default(),
            generation: 0,
            parent: NIL,
            first_child: NIL,
            last_child: NIL,
            next,
            prev: NIL,
            perms: FREE,
            children_bytes: 0,
            name_len: 0,
            path_len: 0,
        }
    }

    /// Whether the slot holds a node.
    pub(crate) fn live(&self) -> bool {
        self.perms != FREE
    }

    /// The name bytes.
    pub(crate) fn name(&self) -> &[u8] {
        self.data.name(self.name_len)
    }

    /// The value bytes.
    pub(crate) fn value(&self) -> &[u8] {
        self.data.value(self.name_len)
    }
}

/// The slots.
#[derive(Clone, Debug, Default)]
pub(crate) struct Arena {
    chunks: Vec<Box<[Slot]>>,
    /// Live slots per chunk.
    live: Vec<u16>,
    /// Head of the free list.
    free: u32,
    /// Free slots.
    free_count: usize,
}

/// The arena could not grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutOfMemory;

impl Arena {
    /// An empty arena.
    pub(crate) fn new() -> Arena {
        Arena {
            chunks: Vec::new(),
            live: Vec::new(),
            free: NIL,
            free_count: 0,
        }
    }

    /// Bytes the arena holds (slots, live or free, and the chunk list).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK_SLOTS * core::mem::size_of::<Slot>()
            + self.chunks.capacity() * core::mem::size_of::<Box<[Slot]>>()
            + self.live.capacity() * core::mem::size_of::<u16>()
    }

    /// Every slot index ever handed out is below this.
    pub(crate) fn bound(&self) -> u32 {
        (self.chunks.len() << CHUNK_SHIFT) as u32
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Slot> {
        self.chunks
            .get((id >> CHUNK_SHIFT) as usize)?
            .get((id & CHUNK_MASK) as usize)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((id >> CHUNK_SHIFT) as usize)?
            .get_mut((id & CHUNK_MASK) as usize)
    }

    /// A live slot.
    pub(crate) fn live(&self, id: u32) -> Option<&Slot> {
        self.get(id).filter(|s| s.live())
    }

    /// Bytes [`Arena::reserve`] would allocate for `n` slots.
    pub(crate) fn growth_bytes(&self, n: usize) -> usize {
        let missing = n.saturating_sub(self.free_count);
        let chunks = missing.div_ceil(CHUNK_SLOTS);
        chunks * (CHUNK_SLOTS * core::mem::size_of::<Slot>() + 64)
            + if chunks > 0 {
                (self.chunks.len() + chunks) * 18
            } else {
                0
            }
    }

    /// Makes sure `n` slots can be taken without allocating.
    pub(crate) fn reserve(&mut self, n: usize) -> Result<(), OutOfMemory> {
        while self.free_count < n {
            let base = self.bound();
            if base as usize + CHUNK_SLOTS > (NIL as usize) {
                return Err(OutOfMemory);
            }
            self.chunks.try_reserve(1).map_err(|_| OutOfMemory)?;
            self.live.try_reserve(1).map_err(|_| OutOfMemory)?;
            let mut chunk: Vec<Slot> = Vec::new();
            chunk
                .try_reserve_exact(CHUNK_SLOTS)
                .map_err(|_| OutOfMemory)?;
            // Lowest index first on the free list.
            for i in 0..CHUNK_SLOTS as u32 {
                let next = if i + 1 < CHUNK_SLOTS as u32 {
                    base + i + 1
                } else {
                    self.free
                };
                chunk.push(Slot::free(next));
            }
            self.chunks.push(chunk.into_boxed_slice());
            self.live.push(0);
            self.free = base;
            self.free_count += CHUNK_SLOTS;
        }
        Ok(())
    }

    /// Takes a free slot for `slot` (after [`Arena::reserve`]); `None` when there is none.
    pub(crate) fn take(&mut self, slot: Slot) -> Option<u32> {
        let id = self.free;
        let s = self.get_mut(id)?;
        let next = s.next;
        *s = slot;
        self.free = next;
        self.free_count -= 1;
        if let Some(n) = self.live.get_mut((id >> CHUNK_SHIFT) as usize) {
            *n += 1;
        }
        Some(id)
    }

    /// Frees a slot (its data is dropped).
    pub(crate) fn release(&mut self, id: u32) {
        let head = self.free;
        if let Some(s) = self.get_mut(id) {
            if s.live() {
                *s = Slot::free(head);
                self.free = id;
                self.free_count += 1;
                if let Some(n) = self.live.get_mut((id >> CHUNK_SHIFT) as usize) {
                    *n = n.saturating_sub(1);
                }
                self.trim();
            }
        }
    }

    /// Gives back trailing chunks without a live slot, keeping one spare: when the last two
    /// chunks are empty, the free list is walked once to drop the last chunk's slots from it
    /// (a chunk's worth of creates and removals lies between two walks).
    fn trim(&mut self) {
        let empty_tail = self.live.iter().rev().take_while(|&&n| n == 0).count();
        if empty_tail < 2 {
            return;
        }
        // Every chunk of the empty tail but the first goes.
        let keep = self.chunks.len() - (empty_tail - 1);
        let bound = (keep << CHUNK_SHIFT) as u32;
        let (mut head, mut last) = (NIL, NIL);
        let mut id = self.free;
        let mut kept = 0usize;
        while id != NIL {
            let Some(next) = self.get(id).map(|s| s.next) else {
                break;
            };
            if id < bound {
                match self.get_mut(last) {
                    Some(l) => l.next = id,
                    None => head = id,
                }
                last = id;
                kept += 1;
            }
            id = next;
        }
        if let Some(l) = self.get_mut(last) {
            l.next = NIL;
        }
        self.free = head;
        self.free_count = kept;
        self.chunks.truncate(keep);
        self.live.truncate(keep);
    }

    /// Every slot index with a live node, in index order.
    pub(crate) fn live_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter(|(_, s)| s.live())
                .map(move |(i, _)| ((c << CHUNK_SHIFT) | i) as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn node(name: &[u8]) -> Slot {
        let mut s = Slot::free(NIL);
        s.data = NodeBytes::new(name, b"").unwrap();
        s.name_len = name.len() as u16;
        s.perms = 0;
        s
    }

    #[test]
    fn take_release_reuse() {
        let mut a = Arena::new();
        a.reserve(3).unwrap();
        let x = a.take(node(b"x")).unwrap();
        let y = a.take(node(b"y")).unwrap();
        assert_eq!((x, y), (0, 1));
        assert_eq!(a.live(y).unwrap().name(), b"y");
        a.release(x);
        assert!(a.live(x).is_none());
        assert_eq!(a.take(node(b"z")).unwrap(), x);
        assert_eq!(a.live_ids().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(core::mem::size_of::<Slot>(), 64);
    }

    #[test]
    fn emptied_tail_chunks_are_given_back() {
        let mut a = Arena::new();
        let n = 5 * CHUNK_SLOTS;
        a.reserve(n).unwrap();
        let ids: Vec<u32> = (0..n).map(|_| a.take(node(b"n")).unwrap()).collect();
        let full = a.heap_bytes();
        // Free the last three chunks: two go, one stays as a spare.
        let high = (2 * CHUNK_SLOTS) as u32;
        for &id in ids.iter().filter(|&&id| id >= high) {
            a.release(id);
        }
        assert_eq!(a.bound() as usize, 3 * CHUNK_SLOTS);
        assert!(a.heap_bytes() < full);
        assert_eq!(a.free_count, CHUNK_SLOTS);
        // The free list holds exactly the spare chunk's slots, all below the bound.
        let mut seen = 0;
        let mut id = a.free;
        while id != NIL {
            assert!(id < a.bound());
            seen += 1;
            id = a.get(id).unwrap().next;
        }
        assert_eq!(seen, CHUNK_SLOTS);
        // Slots still work: the first two chunks are live, new nodes reuse the spare.
        assert_eq!(a.live(0).unwrap().name(), b"n");
        a.reserve(1).unwrap();
        let again = a.take(node(b"m")).unwrap();
        assert!(again < a.bound());
        // Freeing everything leaves one spare chunk.
        for &id in ids.iter().filter(|&&id| id < high) {
            a.release(id);
        }
        a.release(again);
        assert_eq!(a.bound() as usize, CHUNK_SLOTS);
        assert_eq!(a.live_ids().count(), 0);
    }

    #[test]
    fn a_live_slot_in_the_last_chunk_keeps_the_chunks() {
        let mut a = Arena::new();
        a.reserve(3 * CHUNK_SLOTS).unwrap();
        let ids: Vec<u32> = (0..3 * CHUNK_SLOTS)
            .map(|_| a.take(node(b"n")).unwrap())
            .collect();
        let last = (3 * CHUNK_SLOTS - 1) as u32;
        for &id in ids.iter().filter(|&&id| id != last) {
            a.release(id);
        }
        assert_eq!(a.bound() as usize, 3 * CHUNK_SLOTS);
        assert_eq!(a.live_ids().collect::<Vec<_>>(), vec![last]);
    }
}
