//! Value frequencies: exact while a column has few distinct values, a sketch after.
//!
//! Up to [`EXACT_LIMIT`] distinct values per column, every value and its
//! count is kept: distinct counts, top values, case/whitespace variants and
//! shape patterns are then exact. Past it the state degrades, once, to a
//! HyperLogLog (distinct, ±2.5 % at 99 %) and a Misra–Gries summary of
//! [`MG_CAPACITY`] counters (top values: every value more frequent than
//! n / `MG_CAPACITY` is kept, each count low by at most the reported
//! `topk_error`). Both degrade and merge deterministically.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::hll::Hll;

/// Distinct values kept exactly per column (and per partition) before the sketch takes over.
/// Names, dates and codes (tens of thousands of values) stay exact: a sketch
/// of only [`MG_CAPACITY`] counters would churn on them at every row.
pub const EXACT_LIMIT: usize = 65_536;
/// Distinct values past which a column whose values are mostly new (more
/// than one distinct value in four) turns to the sketch at once.
pub const EXACT_EARLY: usize = 16_384;
/// Counters kept by the Misra–Gries summary.
pub const MG_CAPACITY: usize = 1_024;

/// Value -> (count, first row id seen).
/// A fast string-keyed map. foldhash with a fixed seed: far quicker than SipHash
/// on short values, and the same layout every run (determinism). hashbrown's
/// own map rather than std's, for lookups by [`Probe`].
pub type FastMap = hashbrown::HashMap<Key, (u64, u64), foldhash::fast::FixedState>;

fn new_map(cap: usize) -> FastMap {
    FastMap::with_capacity_and_hasher(cap, foldhash::fast::FixedState::default())
}

/// A value held by an exact map. Values of up to 24 bytes are stored in
/// the map's own slot (`CompactString`), so a lookup does not follow a
/// pointer to the text: most columns' values are that short. It hashes as
/// its text does, so a map of them is looked up by [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(pub compact_str::CompactString);

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.as_str().hash(h)
    }
}

/// A value looked up in an exact map, compared by [`short_eq`]: std's `str`
/// equality calls `memcmp`, which costs more than the compare itself on the
/// short values most columns hold (names, codes, dates).
#[derive(Hash)]
struct Probe<'a>(&'a str);

impl hashbrown::Equivalent<Key> for Probe<'_> {
    #[inline]
    fn equivalent(&self, k: &Key) -> bool {
        short_eq(self.0.as_bytes(), k.0.as_bytes())
    }
}

/// Byte equality, inline for up to 16 bytes (two overlapping words from 8).
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    match n {
        0..=7 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// An exact map in states: a map of value to (count, first row), as a std
/// map would be written (hashbrown's serde support is not built here).
mod exact_serde {
    use super::{FastMap, Key, new_map};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &FastMap, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, c)| (k.0.as_str(), c)))
    }

    /// Entries go into the fixed-seed map in the order they were written,
    /// so the map (and the order it is walked in) is the same every run.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FastMap, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FastMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of value to (count, first row)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FastMap, A::Error> {
                let mut out = new_map(a.size_hint().unwrap_or(0).min(super::EXACT_LIMIT + 1));
                while let Some((k, c)) = a.next_entry::<String, (u64, u64)>()? {
                    out.insert(Key(k.into()), c);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// Frequencies of a column's non-missing values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Freq {
    /// Every distinct value with its count.
    Exact(#[serde(with = "exact_serde")] FastMap),
    /// A distinct-count sketch plus heavy hitters.
    Sketch {
        /// Distinct values.
        hll: Hll,
        /// Misra–Gries counters (lower bounds).
        mg: Heavy,
        /// Total decrement applied, plus one per [`Door`] window: the most
        /// any counter is low by.
        error: u64,
        /// Turns away a value's first occurrence in each window (a
        /// partition's transient filter, not part of the state).
        #[serde(skip)]
        door: Door,
    },
}

/// Bits of the [`Door`] filter (32 KiB: it stays in the L1 cache).
const DOOR_BITS: usize = 1 << 18;
/// Values per [`Door`] window: past it the filter starts empty again.
const DOOR_WINDOW: u32 = 1 << 15;

/// A doorkeeper in front of the Misra–Gries counters: a value reaches them
/// only from its second occurrence within a window of [`DOOR_WINDOW`]
/// values (a bit per hash slot, cleared at each window). On a column of
/// mostly unique values (ids, e-mails) nearly every value is turned away by
/// one bit test instead of taking a counter that the next shrink throws
/// out, which was most of the sketch's cost. A frequent value loses at most
/// its first occurrence per window, so each window adds one to the
/// reported error; a value seen twice in a window passes (TinyLFU's
/// doorkeeper, without its counts). A value sharing a bit with another
/// passes early, which only makes its count more exact.
#[derive(Debug, Clone, Default)]
pub struct Door {
    bits: Vec<u64>,
    /// Values seen in the current window.
    seen: u32,
}

impl Door {
    /// Whether the value hashed to `h` may reach the counters; `windows` is
    /// incremented when a window starts.
    #[inline]
    fn pass(&mut self, h: u64, windows: &mut u64) -> bool {
        if self.seen == 0 {
            if self.bits.is_empty() {
                self.bits = vec![0; DOOR_BITS / 64];
            } else {
                self.bits.fill(0);
            }
            *windows += 1;
        }
        self.seen = (self.seen + 1) % DOOR_WINDOW;
        // The top bits: the HyperLogLog indexes by the low ones.
        let i = (h >> (64 - DOOR_BITS.trailing_zeros())) as usize;
        let (w, m) = (&mut self.bits[i / 64], 1u64 << (i % 64));
        let again = *w & m != 0;
        *w |= m;
        again
    }
}

impl Default for Freq {
    fn default() -> Self {
        Freq::Exact(new_map(64))
    }
}

/// The hash a sketch keys a value by (also the HyperLogLog's).
#[inline]
pub fn value_hash(v: &str) -> u64 {
    xxh3_64(v.as_bytes())
}

impl Freq {
    /// Counts one value (an exact state past [`EXACT_LIMIT`] becomes a sketch).
    #[inline]
    pub fn add(&mut self, v: &str, row: u64) {
        if !self.bump(v) {
            self.add_new(v, row);
        }
    }

    /// Counts one more occurrence of a value an exact state already holds;
    /// false (nothing counted) for a new value or a sketch.
    #[inline]
    pub fn bump(&mut self, v: &str) -> bool {
        match self {
            Freq::Exact(m) => m.get_mut(&Probe(v)).map(|c| c.0 += 1).is_some(),
            Freq::Sketch { .. } => false,
        }
    }

    /// Counts the first occurrence of a value (one [`Freq::bump`] found
    /// missing): an exact state inserts it without looking it up again.
    #[inline]
    pub fn add_new(&mut self, v: &str, row: u64) {
        match self {
            Freq::Exact(m) => {
                m.insert(Key(v.into()), (1, row));
                if m.len() > EXACT_LIMIT {
                    self.degrade();
                }
            }
            Freq::Sketch { .. } => self.add_hashed(v, value_hash(v), row),
        }
    }

    /// Counts one value whose [`value_hash`] is `h`, once the state is a
    /// sketch (an exact state counts it as [`Freq::add`] does).
    #[inline]
    pub fn add_hashed(&mut self, v: &str, h: u64, row: u64) {
        match self {
            Freq::Exact(_) => self.add(v, row),
            Freq::Sketch {
                hll,
                mg,
                error,
                door,
            } => {
                hll.add_hash(h);
                if door.pass(h, error) && mg.add(h, v, 1, row) && mg.len() >= 2 * MG_CAPACITY {
                    *error += mg.shrink(MG_CAPACITY);
                }
            }
        }
    }

    /// Whether the state is still exact.
    pub fn is_exact(&self) -> bool {
        matches!(self, Freq::Exact(_))
    }

    /// Turns an exact state into a sketch (a sketch stays as it is).
    pub fn degrade(&mut self) {
        if let Freq::Exact(m) = self {
            let mut hll = Hll::default();
            let mut mg = Heavy::default();
            absorb(&mut hll, &mut mg, std::mem::replace(m, new_map(0)));
            let error = mg.shrink(MG_CAPACITY);
            *self = Freq::Sketch {
                hll,
                mg,
                error,
                door: Door::default(),
            };
        }
    }

    /// Merges another partition's frequencies.
    pub fn merge(&mut self, other: Freq) {
        match other {
            Freq::Exact(om) => {
                if let Freq::Exact(m) = self {
                    for (k, c) in om {
                        add_entry(m, k, c);
                    }
                    if m.len() > EXACT_LIMIT {
                        self.degrade();
                    }
                } else if let Freq::Sketch { hll, mg, error, .. } = self {
                    absorb(hll, mg, om);
                    *error += mg.shrink(MG_CAPACITY);
                }
            }
            Freq::Sketch {
                hll: oh,
                mg: om,
                error: oe,
                ..
            } => {
                self.degrade();
                if let Freq::Sketch { hll, mg, error, .. } = self {
                    hll.merge(&oh);
                    for (h, k, c, row) in om.entries() {
                        mg.add(h, k, c, row);
                    }
                    *error += oe;
                    *error += mg.shrink(MG_CAPACITY);
                }
            }
        }
    }

    /// Distinct non-missing values (exact, or the HyperLogLog estimate).
    pub fn distinct(&self) -> u64 {
        match self {
            Freq::Exact(m) => m.len() as u64,
            Freq::Sketch { hll, .. } => hll.estimate(),
        }
    }

    /// The `k` most frequent values, most frequent first, ties by value.
    pub fn top(&self, k: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(&str, u64)> = self.known().into_iter().map(|(s, c, _)| (s, c)).collect();
        let k = k.min(v.len());
        if k == 0 {
            return Vec::new();
        }
        let cmp = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        v.select_nth_unstable_by(k - 1, cmp);
        v.truncate(k);
        v.sort_by(cmp);
        v.into_iter().map(|(s, c)| (s.to_string(), c)).collect()
    }

    /// The most a reported top count may be low by (0 when exact).
    pub fn error(&self) -> u64 {
        match self {
            Freq::Exact(_) => 0,
            Freq::Sketch { error, .. } => *error,
        }
    }

    /// The exact map, if still exact.
    pub fn exact(&self) -> Option<&FastMap> {
        match self {
            Freq::Exact(m) => Some(m),
            Freq::Sketch { .. } => None,
        }
    }

    /// The values known with their counts and first rows (all when exact,
    /// the heavy hitters otherwise), in no set order.
    pub fn known(&self) -> Vec<(&str, u64, u64)> {
        match self {
            Freq::Exact(m) => m.iter().map(|(k, c)| (k.0.as_str(), c.0, c.1)).collect(),
            Freq::Sketch { mg, .. } => mg.entries().map(|(_, k, c, r)| (k, c, r)).collect(),
        }
    }
}

/// Counts an exact map's values into a sketch, in value order, so that the
/// arena (and so the state) is the same every run.
fn absorb(hll: &mut Hll, mg: &mut Heavy, m: FastMap) {
    let mut entries: Vec<_> = m.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (Key(k), c) in entries {
        let h = value_hash(&k);
        hll.add_hash(h);
        mg.add(h, &k, c.0, c.1);
    }
}

fn add_entry(m: &mut FastMap, k: Key, c: (u64, u64)) {
    let e = m.entry(k).or_insert((0, c.1));
    e.0 += c.0;
    e.1 = e.1.min(c.1);
}

/// Passes a `u64` key through as its own hash: [`Heavy`]'s keys are already
/// xxh3 hashes of the values. (std has no identity hasher; this is all of one.)
#[derive(Default, Clone, Copy)]
struct KeyIsHash(u64);

impl std::hash::Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in, still deterministic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// One heavy-hitter counter: count, first row, and where the value's bytes are.
#[derive(Debug, Clone, Copy)]
struct Slot {
    count: u64,
    row: u64,
    start: usize,
    len: usize,
}

/// Misra–Gries counters keyed by the value's 64-bit hash, the values' bytes
/// end to end in one arena.
///
/// Most values of a high-cardinality column are new to the counters: keyed
/// by hash, such a value costs one probe and a copy into the arena rather
/// than a string hash, an allocation and, at the next shrink, a free. Two
/// values share a counter only if their 64-bit hashes collide (about n²/2⁶⁵
/// expected pairs among n distinct values: 3·10⁻⁶ at 10 M).
#[derive(Debug, Clone, Default)]
pub struct Heavy {
    map: HeavyMap,
    /// The map a shrink refills with the survivors (kept to be reused):
    /// removing entries in place would leave tombstones that lengthen
    /// probes and force a rehash every round.
    spare: HeavyMap,
    arena: Vec<u8>,
    /// The counts a shrink ranks (kept to be reused).
    counts: Vec<u64>,
}

type HeavyMap = std::collections::HashMap<u64, Slot, std::hash::BuildHasherDefault<KeyIsHash>>;

impl Heavy {
    /// Counters held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no counter.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds `n` occurrences of `v` (hash `h`, first seen at `row`); returns
    /// whether it made a new counter.
    #[inline]
    pub fn add(&mut self, h: u64, v: &str, n: u64, row: u64) -> bool {
        match self.map.entry(h) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let s = e.get_mut();
                s.count += n;
                s.row = s.row.min(row);
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let start = self.arena.len();
                self.arena.extend_from_slice(v.as_bytes());
                e.insert(Slot {
                    count: n,
                    row,
                    start,
                    len: v.len(),
                });
                true
            }
        }
    }

    fn value(&self, s: &Slot) -> &str {
        let b = &self.arena[s.start..s.start + s.len];
        // The arena holds only whole `&str`s copied in.
        std::str::from_utf8(b).unwrap_or_default()
    }

    /// `(hash, value, count, first row)` of every counter, in no set order.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &str, u64, u64)> + '_ {
        self.map
            .iter()
            .map(|(h, s)| (*h, self.value(s), s.count, s.row))
    }

    /// Misra–Gries reduction to `capacity` counters: subtracts the
    /// (capacity+1)-th largest count from every counter and drops those that
    /// reach zero. Returns the amount subtracted.
    pub fn shrink(&mut self, capacity: usize) -> u64 {
        if self.map.len() <= capacity {
            return 0;
        }
        let mut counts = std::mem::take(&mut self.counts);
        counts.clear();
        counts.extend(self.map.values().map(|s| s.count));
        counts.select_nth_unstable_by(capacity, |a, b| b.cmp(a));
        let cut = counts[capacity];
        self.counts = counts;
        // The survivors, lowered by `cut`, into the spare map and a fresh arena.
        let mut spare = std::mem::take(&mut self.spare);
        spare.clear();
        let mut arena = Vec::with_capacity(self.arena.len() / 2);
        for (h, s) in &self.map {
            if s.count > cut {
                let start = arena.len();
                arena.extend_from_slice(&self.arena[s.start..s.start + s.len]);
                spare.insert(
                    *h,
                    Slot {
                        count: s.count - cut,
                        row: s.row,
                        start,
                        len: s.len,
                    },
                );
            }
        }
        self.spare = std::mem::replace(&mut self.map, spare);
        self.arena = arena;
        cut
    }
}

impl Serialize for Heavy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As (value, count, first row), by value: the same state, the same bytes.
        let mut v: Vec<(&str, u64, u64)> = self.entries().map(|(_, k, c, r)| (k, c, r)).collect();
        v.sort_unstable();
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Heavy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Heavy, D::Error> {
        let v: Vec<(String, u64, u64)> = Vec::deserialize(d)?;
        let mut h = Heavy::default();
        for (k, c, r) in v {
            h.add(value_hash(&k), &k, c, r);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_eq_is_byte_equality() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            assert!(short_eq(&a, &a.clone()));
            for i in 0..n {
                for flip in [1u8, 0x80] {
                    let mut b = a.clone();
                    b[i] ^= flip;
                    assert!(!short_eq(&a, &b), "len {n}, byte {i}");
                }
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!short_eq(&a, &longer));
        }
    }

    #[test]
    fn a_decoded_exact_state_is_walked_in_the_same_order_every_time() {
        let mut f = Freq::default();
        for i in 0..3000u64 {
            f.add(&format!("value {}", i * 7919 % 3001), i);
        }
        let text = serde_json::to_string(&f).unwrap();
        let a: Freq = serde_json::from_str(&text).unwrap();
        let b: Freq = serde_json::from_str(&text).unwrap();
        assert_eq!(a.known(), b.known());
        assert_eq!(a.known().len(), 3000);
    }

    #[test]
    fn exact_state_round_trips_through_serde() {
        let mut f = Freq::default();
        for (i, v) in ["a", "bb", "a", "twelve bytes", "a"].iter().enumerate() {
            f.add(v, i as u64);
        }
        let back: Freq = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        let mut k = back.known();
        k.sort();
        assert_eq!(k, vec![("a", 3, 0), ("bb", 1, 1), ("twelve bytes", 1, 3)]);
    }

    #[test]
    fn exact_then_sketch() {
        let mut f = Freq::default();
        for i in 0..(EXACT_LIMIT as u64 + 10) {
            f.add(&format!("v{i}"), i);
            if i % 2 == 0 {
                f.add("hot", i);
            }
        }
        assert!(!f.is_exact());
        let d = f.distinct() as f64;
        assert!((d - (EXACT_LIMIT as f64 + 11.0)).abs() / d < 0.03, "{d}");
        let top = f.top(1);
        assert_eq!(top[0].0, "hot");
        let true_hot = (EXACT_LIMIT as u64 + 10).div_ceil(2);
        assert!(top[0].1 <= true_hot && top[0].1 + f.error() >= true_hot);
    }

    /// Counts of a sketch stay lower bounds within the reported error, with
    /// the doorkeeper turning unique values away: over several windows, two
    /// partitions, and values frequent, rare and unique.
    #[test]
    fn sketch_counts_stay_within_the_error_bound() {
        let n = 5 * DOOR_WINDOW as u64 + 123;
        let value = |i: u64| -> String {
            if i.is_multiple_of(3) {
                "hot".into()
            } else if i.is_multiple_of(101) {
                "warm".into()
            } else if i % 40_000 == 7 {
                "rare".into()
            } else {
                format!("unique {i}")
            }
        };
        let mut parts = [Freq::default(), Freq::default()];
        for i in 0..n {
            parts[(i % 2) as usize].add(&value(i), i);
        }
        let [mut a, b] = parts;
        a.merge(b);
        assert!(!a.is_exact());
        let truth = |v: &str| (0..n).filter(|&i| value(i) == v).count() as u64;
        let known: std::collections::HashMap<&str, u64> =
            a.known().into_iter().map(|(k, c, _)| (k, c)).collect();
        for v in ["hot", "warm"] {
            let (got, t) = (known[v], truth(v));
            assert!(
                got <= t && got + a.error() >= t,
                "{v}: {got} of {t}, error {}",
                a.error()
            );
        }
        // Anything held is a lower bound too, and most unique values never got a counter.
        for (k, c) in &known {
            assert!(*c <= truth(k), "{k}");
        }
        assert!(known.len() <= 2 * MG_CAPACITY);
        assert_eq!(a.top(2)[0].0, "hot");
        assert_eq!(a.top(2)[1].0, "warm");
    }

    #[test]
    fn the_door_lets_a_value_in_from_its_second_occurrence_in_a_window() {
        let mut d = Door::default();
        let mut windows = 0;
        let h = |i: u64| xxh3_64(&i.to_le_bytes());
        assert!(!d.pass(h(1), &mut windows));
        assert!(d.pass(h(1), &mut windows));
        assert_eq!(windows, 1);
        for i in 2..DOOR_WINDOW as u64 {
            d.pass(h(i), &mut windows);
        }
        assert_eq!(windows, 1);
        // A new window forgets what the last one saw, and counts itself.
        assert!(!d.pass(h(1), &mut windows));
        assert_eq!(windows, 2);
        assert!(d.pass(h(1), &mut windows));
    }

    #[test]
    fn merge_exact_is_exact() {
        let (mut a, mut b) = (Freq::default(), Freq::default());
        a.add("x", 0);
        a.add("y", 1);
        b.add("x", 2);
        a.merge(b);
        assert_eq!(a.top(2), vec![("x".to_string(), 2), ("y".to_string(), 1)]);
        assert_eq!(a.distinct(), 2);
    }
}
