//! Row hash → row id, for exact duplicates over millions of rows.
//!
//! Written by hand because the lookups are the whole cost: a table of ten
//! million rows is hundreds of megabytes, so nearly every probe misses the
//! caches and waits on memory. Here a batch of hashes is probed in order with
//! the slot of the hash some places ahead prefetched, so those waits overlap
//! instead of following one another. No hash map crate offers batched,
//! prefetched probes (hashbrown hides its slot positions).
//!
//! Open addressing with linear probing; a slot holds both halves of the
//! 128-bit row hash and the row id plus one (zero marks a free slot). The
//! hashes are uniform (xxh3), so the low bits of the first half pick the slot.

/// How many probes ahead the slot is prefetched: enough to cover a miss to
/// memory at the rate the loop consumes hashes, few enough that the line is
/// still cached when its turn comes.
const AHEAD: usize = 16;

/// Row hash → row id.
#[derive(Debug, Default)]
pub(crate) struct RowTable {
    /// `[hash low, hash high, row id + 1]`; a zero id marks a free slot.
    slots: Vec<[u64; 3]>,
    len: usize,
}

impl RowTable {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Forgets every entry, keeping the room.
    pub fn clear(&mut self) {
        self.slots.fill([0; 3]);
        self.len = 0;
    }

    /// Makes room for `more` entries without growing while they are added.
    pub fn reserve(&mut self, more: usize) {
        let need = self.len.saturating_add(more);
        // At most three quarters full: linear probes stay short.
        if need.saturating_mul(4) <= self.slots.len().saturating_mul(3) {
            return;
        }
        let cap = (need.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(1024);
        // Written, not calloc'ed: the probes read a slot before writing it,
        // and a fresh page read first faults twice (zero page, then copy).
        let mut slots = Vec::with_capacity(cap);
        slots.resize(cap, [0; 3]);
        let old = std::mem::replace(&mut self.slots, slots);
        self.len = 0;
        for s in old.into_iter().filter(|s| s[2] != 0) {
            self.upsert(&[s[0], s[1]], s[2] - 1, |_| {});
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn prefetch(&self, h: &[u64; 2]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = self.slots.get(h[0] as usize & self.mask()) {
            safe_arch::prefetch_t0(s);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// Finds `h`: calls `found` with its slot if present, else adds it with `id`.
    /// The table must have room (see `reserve`).
    #[inline]
    fn upsert(&mut self, h: &[u64; 2], id: u64, found: impl FnOnce(&mut [u64; 3])) {
        let mask = self.mask();
        let mut s = h[0] as usize & mask;
        loop {
            let slot = &mut self.slots[s];
            if slot[2] == 0 {
                *slot = [h[0], h[1], id + 1];
                self.len += 1;
                return;
            }
            if slot[0] == h[0] && slot[1] == h[1] {
                found(slot);
                return;
            }
            s = (s + 1) & mask;
        }
    }

    /// For each row in order: a hash seen before calls `dup(i, first id)`; a
    /// new one is added with `ids[i]` (the first occurrence is kept).
    pub fn insert_first(&mut self, hs: &[[u64; 2]], ids: &[u64], mut dup: impl FnMut(usize, u64)) {
        self.reserve(hs.len());
        for (i, (h, id)) in hs.iter().zip(ids).enumerate() {
            if let Some(next) = hs.get(i + AHEAD) {
                self.prefetch(next);
            }
            self.upsert(h, *id, |s| dup(i, s[2] - 1));
        }
    }

    /// Adds each row, a later row replacing an earlier one with the same hash
    /// (the last occurrence is kept).
    pub fn insert_last(&mut self, hs: &[[u64; 2]], ids: &[u64]) {
        self.reserve(hs.len());
        for (i, (h, id)) in hs.iter().zip(ids).enumerate() {
            if let Some(next) = hs.get(i + AHEAD) {
                self.prefetch(next);
            }
            self.upsert(h, *id, |s| s[2] = id + 1);
        }
    }

    /// The id held for each hash, in order.
    pub fn get_each(&self, hs: &[[u64; 2]], mut each: impl FnMut(usize, Option<u64>)) {
        if self.slots.is_empty() {
            (0..hs.len()).for_each(|i| each(i, None));
            return;
        }
        let mask = self.mask();
        for (i, h) in hs.iter().enumerate() {
            if let Some(next) = hs.get(i + AHEAD) {
                self.prefetch(next);
            }
            let mut s = h[0] as usize & mask;
            let found = loop {
                let slot = &self.slots[s];
                if slot[2] == 0 {
                    break None;
                }
                if slot[0] == h[0] && slot[1] == h[1] {
                    break Some(slot[2] - 1);
                }
                s = (s + 1) & mask;
            };
            each(i, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a HashMap: hashes from a small space (many repeats, shared
        /// low bits so probes run long), batches of any size, the table grown
        /// from empty or reserved ahead.
        #[test]
        fn agrees_with_a_hash_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u64..64, 0u64..4), 0..300), 1..6),
            reserve in 0usize..2000,
            last in any::<bool>(),
        ) {
            let mut t = RowTable::default();
            t.reserve(reserve);
            let mut m: HashMap<[u64; 2], u64> = HashMap::new();
            let mut id = 0u64;
            for b in &batches {
                // Equal low halves, different high halves: distinct rows that collide.
                let hs: Vec<[u64; 2]> = b.iter().map(|&(x, y)| [x << 20, y]).collect();
                let ids: Vec<u64> = (id..id + hs.len() as u64).collect();
                id += hs.len() as u64;
                if last {
                    t.insert_last(&hs, &ids);
                    for (h, i) in hs.iter().zip(&ids) {
                        m.insert(*h, *i);
                    }
                } else {
                    let mut dups = Vec::new();
                    t.insert_first(&hs, &ids, |i, first| dups.push((i, first)));
                    let mut want = Vec::new();
                    for (i, (h, rid)) in hs.iter().zip(&ids).enumerate() {
                        match m.get(h) {
                            Some(first) => want.push((i, *first)),
                            None => {
                                m.insert(*h, *rid);
                            }
                        }
                    }
                    prop_assert_eq!(dups, want);
                }
                prop_assert_eq!(t.len(), m.len());
            }
            let probe: Vec<[u64; 2]> = (0..64).flat_map(|x| (0..5).map(move |y| [x << 20, y])).collect();
            let mut got = Vec::new();
            t.get_each(&probe, |_, v| got.push(v));
            let want: Vec<Option<u64>> = probe.iter().map(|h| m.get(h).copied()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let t = RowTable::default();
        let mut got = Vec::new();
        t.get_each(&[[1, 2], [3, 4]], |i, v| got.push((i, v)));
        assert_eq!(got, vec![(0, None), (1, None)]);
    }
}
