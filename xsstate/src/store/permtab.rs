//! Interned permission lists: nodes hold a table index, most nodes share a few lists.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::perms::Perms;

#[derive(Clone, Debug)]
struct Entry {
    perms: Perms,
    refs: u32,
}

/// The table.
#[derive(Clone, Debug, Default)]
pub(crate) struct PermTable {
    /// The list interned last (most nodes share their neighbour's list).
    last: Option<u32>,
    sets: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_perms: BTreeMap<Perms, u32>,
}

impl PermTable {
    /// The list at `index` (every index a node holds is valid).
    pub(crate) fn get(&self, index: u32) -> Option<&Perms> {
        self.sets
            .get(index as usize)
            .and_then(Option::as_ref)
            .map(|e| &e.perms)
    }

    /// Takes a reference on `perms`, adding it when new; returns its index.
    pub(crate) fn intern(&mut self, perms: &Perms) -> u32 {
        if let Some(i) = self.last {
            if let Some(Some(e)) = self.sets.get_mut(i as usize) {
                if &e.perms == perms {
                    e.refs = e.refs.saturating_add(1);
                    return i;
                }
            }
        }
        let i = self.intern_slow(perms);
        self.last = Some(i);
        i
    }

    fn intern_slow(&mut self, perms: &Perms) -> u32 {
        if let Some(&i) = self.by_perms.get(perms) {
            if let Some(Some(e)) = self.sets.get_mut(i as usize) {
                e.refs = e.refs.saturating_add(1);
            }
            return i;
        }
        let entry = Entry {
            perms: perms.clone(),
            refs: 1,
        };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.sets.get_mut(i as usize) {
                    *slot = Some(entry);
                }
                i
            }
            None => {
                self.sets.push(Some(entry));
                (self.sets.len() - 1) as u32
            }
        };
        self.by_perms.insert(perms.clone(), i);
        i
    }

    /// Drops a reference; the list goes when nobody holds it.
    pub(crate) fn release(&mut self, index: u32) {
        let Some(slot) = self.sets.get_mut(index as usize) else {
            return;
        };
        let gone = match slot {
            Some(e) if e.refs > 1 => {
                e.refs -= 1;
                None
            }
            Some(_) => slot.take(),
            None => None,
        };
        if let Some(e) = gone {
            self.by_perms.remove(&e.perms);
            self.free.push(index);
            if self.last == Some(index) {
                self.last = None;
            }
        }
    }

    /// Lists in use.
    pub(crate) fn len(&self) -> usize {
        self.by_perms.len()
    }

    /// References held on `index`.
    pub(crate) fn refs(&self, index: u32) -> u32 {
        self.sets
            .get(index as usize)
            .and_then(Option::as_ref)
            .map_or(0, |e| e.refs)
    }

    /// Rough bytes held (for memory reports).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sets
            .iter()
            .flatten()
            .map(|e| 2 * (e.perms.entries().len() * 4 + 64))
            .sum::<usize>()
            + self.sets.capacity() * core::mem::size_of::<Option<Entry>>()
    }
}
