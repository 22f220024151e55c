//! Distinct-author counting for one term in one bucket: exact for the usual handful of authors,
//! a HyperLogLog once a term is huge, so a viral term's open buckets stay a few KiB.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Authors counted exactly up to this many; beyond it the set becomes a HyperLogLog.
pub const EXACT_AUTHORS: usize = 2048;

const HLL_BITS: u32 = 12;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

/// A stable 64-bit hash of an author id (FNV-1a, then a SplitMix64 finaliser for well-mixed
/// high bits). Stable across processes, so snapshots can hold hashes instead of ids.
pub fn hash_author(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Bits in each generation of [`RecentAuthors`].
const RECENT_BITS: usize = 512;

/// The authors a term had recently, as two generations of a small Bloom filter (512 bits, two
/// hash positions each): the current one takes the authors of `generation_buckets` active
/// buckets, then becomes the old one. "Seen" means in either, so an author counts as seen for
/// between one and two generations. 136 bytes per term; a term with hundreds of authors a
/// generation fills it, and then few authors look new (its bursts must persist instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentAuthors {
    generation: u64,
    current: [u64; RECENT_BITS / 64],
    old: [u64; RECENT_BITS / 64],
}

fn recent_bits(h: u64) -> [usize; 2] {
    [
        (h as usize) % RECENT_BITS,
        ((h >> 20) as usize) % RECENT_BITS,
    ]
}

impl RecentAuthors {
    /// An empty filter at `generation`.
    pub fn new(generation: u64) -> RecentAuthors {
        RecentAuthors {
            generation,
            current: [0; RECENT_BITS / 64],
            old: [0; RECENT_BITS / 64],
        }
    }

    /// Moves to `generation` (rotating or clearing what is older).
    pub fn roll(&mut self, generation: u64) {
        if generation == self.generation {
            return;
        }
        self.old = if generation == self.generation + 1 {
            self.current
        } else {
            [0; RECENT_BITS / 64]
        };
        self.current = [0; RECENT_BITS / 64];
        self.generation = generation;
    }

    /// Whether `h` (probably) was added in this or the previous generation.
    pub fn seen(&self, h: u64) -> bool {
        let has = |f: &[u64; RECENT_BITS / 64]| {
            recent_bits(h)
                .iter()
                .all(|&b| f[b / 64] & (1 << (b % 64)) != 0)
        };
        has(&self.current) || has(&self.old)
    }

    /// Adds `h` to the current generation.
    pub fn insert(&mut self, h: u64) {
        for b in recent_bits(h) {
            self.current[b / 64] |= 1 << (b % 64);
        }
    }
}

/// The distinct authors of one term in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AuthorSet {
    /// Author hashes, exact.
    Exact(HashSet<u64>),
    /// HyperLogLog registers (2^12, standard error about 1.6%).
    Approx(Vec<u8>),
}

impl Default for AuthorSet {
    fn default() -> Self {
        AuthorSet::Exact(HashSet::new())
    }
}

impl AuthorSet {
    /// Adds an author by [`hash_author`] hash.
    pub fn insert(&mut self, h: u64) {
        match self {
            AuthorSet::Exact(set) => {
                set.insert(h);
                if set.len() > EXACT_AUTHORS {
                    let mut regs = vec![0u8; HLL_REGISTERS];
                    for &x in set.iter() {
                        hll_insert(&mut regs, x);
                    }
                    *self = AuthorSet::Approx(regs);
                }
            }
            AuthorSet::Approx(regs) => hll_insert(regs, h),
        }
    }

    /// Number of distinct authors (estimated past [`EXACT_AUTHORS`]).
    pub fn len(&self) -> u32 {
        match self {
            AuthorSet::Exact(set) => set.len() as u32,
            AuthorSet::Approx(regs) => hll_estimate(regs).round() as u32,
        }
    }

    /// True when no author was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The author hashes, when counted exactly.
    pub fn exact(&self) -> Option<&HashSet<u64>> {
        match self {
            AuthorSet::Exact(set) => Some(set),
            AuthorSet::Approx(_) => None,
        }
    }

    /// Rough heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            AuthorSet::Exact(set) => set.capacity() * 9,
            AuthorSet::Approx(regs) => regs.len(),
        }
    }
}

fn hll_insert(regs: &mut [u8], h: u64) {
    let idx = (h >> (64 - HLL_BITS)) as usize;
    let rest = (h << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rho = rest.leading_zeros() as u8 + 1;
    if regs.len() == HLL_REGISTERS && regs[idx] < rho {
        regs[idx] = rho;
    }
}

fn hll_estimate(regs: &[u8]) -> f64 {
    let m = regs.len() as f64;
    if regs.is_empty() {
        return 0.0;
    }
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = regs.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
    let raw = alpha * m * m / sum;
    let zeros = regs.iter().filter(|&&r| r == 0).count();
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_then_approximately() {
        let mut s = AuthorSet::default();
        for _ in 0..500 {
            s.insert(hash_author("spammer"));
        }
        assert_eq!(s.len(), 1);
        for i in 0..EXACT_AUTHORS {
            s.insert(hash_author(&format!("user{i}")));
        }
        assert!(matches!(s, AuthorSet::Approx(_)));
        for i in 0..50_000 {
            s.insert(hash_author(&format!("user{i}")));
        }
        let n = f64::from(s.len());
        assert!((n - 50_001.0).abs() / 50_001.0 < 0.05, "estimate {n}");
        assert!(s.heap_bytes() <= HLL_REGISTERS);
    }

    #[test]
    fn author_hash_is_stable() {
        assert_eq!(hash_author("42"), hash_author("42"));
        assert_ne!(hash_author("42"), hash_author("43"));
    }
}
