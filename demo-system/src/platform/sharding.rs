//! Data sharding: which shard of a service holds a key. A sharded service runs one instance
//! per shard, each with its own database, and keeps only the keys of its shard; callers
//! route each call by its key to that shard's instance ([`super::discovery`]), and a call
//! without the key (order-history's `GET /orders/{id}/history`: the order ID does not say
//! whose it is) asks every shard.
//!
//! The shard of a key is its CRC-32 (IEEE, `crc32fast`) modulo the number of shards: a
//! published function, the same in every process and every release, unlike the standard
//! library's hasher, whose output is unspecified and may change between Rust versions.
//! Every instance and every caller must agree on it for as long as the data lives.

use serde::{Deserialize, Serialize};

/// One shard of a sharded service: `index` of `of`, counted from 1. An instance whose index
/// is past `of` holds no key (`--disable sharding` leaves every key on the first shard, and
/// a second instance idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u16,
    pub of: u16,
}

impl Shard {
    /// The shard (1-based) that holds `key` among `of` shards (1 when `of` is 0 or 1).
    pub fn index_of(key: &str, of: u16) -> u16 {
        if of <= 1 {
            return 1;
        }
        (crc32fast::hash(key.as_bytes()) % u32::from(of)) as u16 + 1
    }

    /// Whether this shard holds `key`.
    pub fn holds(&self, key: &str) -> bool {
        self.index <= self.of && Self::index_of(key, self.of) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The function is pinned: data written by one release is found by the next.
    #[test]
    fn the_shard_of_a_key_is_crc32_modulo_the_count() {
        // CRC-32/ISO-HDLC's check value: crc32("123456789") = 0xCBF43926, even.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(Shard::index_of("123456789", 2), 1);
        assert_eq!(
            Shard::index_of("123456789", 3),
            (0xCBF4_3926u32 % 3 + 1) as u16
        );
        assert_eq!(Shard::index_of("123456789", 1), 1);
        assert_eq!(Shard::index_of("anything", 0), 1);
        let first = Shard { index: 1, of: 2 };
        let second = Shard { index: 2, of: 2 };
        assert!(first.holds("123456789") && !second.holds("123456789"));
    }

    /// Random customer IDs spread about evenly, and each is held by exactly one shard; an
    /// instance past the count holds none.
    #[test]
    fn keys_spread_over_the_shards_and_each_is_held_once() {
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, of: 3 }).collect();
        let idle = Shard { index: 2, of: 1 };
        let mut per_shard = [0usize; 3];
        for _ in 0..3_000 {
            let key = uuid::Uuid::now_v7().to_string();
            let holders: Vec<&Shard> = shards.iter().filter(|s| s.holds(&key)).collect();
            assert_eq!(holders.len(), 1, "{key}");
            per_shard[usize::from(holders[0].index - 1)] += 1;
            assert!(!idle.holds(&key));
        }
        assert!(
            per_shard.iter().all(|n| (850..=1150).contains(n)),
            "{per_shard:?}"
        );
    }
}
