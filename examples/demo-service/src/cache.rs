//! The item cache in front of the (simulated, slow) backend, and its hit
//! ratio over the last lookups. Think of it as a cache shared by the
//! replicas (a Redis beside the service): a restart leaves it as it is, only
//! `POST /admin/cache/clear` empties it. Imports only `rng`.

use crate::rng::Rng;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Items the cache holds; a miss on a full cache evicts one at random.
/// By default 512.
pub const CACHE_CAPACITY: usize = 512;

/// Lookups the hit ratio is computed over (the latest ones). By default 200:
/// 4 seconds of the default built-in traffic.
pub const HIT_WINDOW: usize = 200;

/// Whether a lookup found the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    Hit,
    Miss,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
        }
    }
}

impl std::fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cache {
    /// The cached item ids, in no order; `index` maps an id to its slot.
    slots: Vec<u32>,
    index: HashMap<u32, usize>,
    /// Outcomes of the last [`HIT_WINDOW`] lookups, true for a hit.
    window: VecDeque<bool>,
    window_hits: usize,
    hits: u64,
    misses: u64,
}

impl Cache {
    /// Looks `id` up; a miss fetches it and stores it. A poisoned cache holds
    /// entries that fail validation: every lookup misses, and what it stores
    /// is poisoned too, until the cache is cleared.
    pub fn lookup(&mut self, id: u32, poisoned: bool, rng: &mut Rng) -> CacheOutcome {
        let found = !poisoned && self.index.contains_key(&id);
        if !found && !self.index.contains_key(&id) {
            if self.slots.len() >= CACHE_CAPACITY {
                let victim = rng.below(self.slots.len() as u64) as usize;
                let evicted = self.slots.swap_remove(victim);
                self.index.remove(&evicted);
                if let Some(moved) = self.slots.get(victim) {
                    self.index.insert(*moved, victim);
                }
            }
            self.index.insert(id, self.slots.len());
            self.slots.push(id);
        }
        self.record(found);
        if found { CacheOutcome::Hit } else { CacheOutcome::Miss }
    }

    fn record(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        self.window.push_back(hit);
        self.window_hits += usize::from(hit);
        if self.window.len() > HIT_WINDOW && self.window.pop_front() == Some(true) {
            self.window_hits -= 1;
        }
    }

    /// Empties the cache; returns how many items it held. The hit ratio's
    /// window is kept: it moves with the lookups that follow.
    pub fn clear(&mut self) -> usize {
        let held = self.slots.len();
        self.slots.clear();
        self.index.clear();
        held
    }

    /// Share of the last [`HIT_WINDOW`] lookups that hit; None before the first.
    pub fn hit_ratio(&self) -> Option<f64> {
        (!self.window.is_empty()).then(|| self.window_hits as f64 / self.window.len() as f64)
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_ratio_help_names_the_window() {
        let help = crate::metrics::render(
            &crate::sim::Sim::new(
                crate::sim::Config {
                    replicas: crate::sim::DEFAULT_REPLICAS,
                    restart_time: Default::default(),
                    seed: 1,
                },
                std::time::Instant::now(),
            )
            .snapshot(std::time::Instant::now()),
        );
        assert!(help.contains(&format!("Share of the last {HIT_WINDOW} cache lookups that hit")), "{help}");
    }

    #[test]
    fn the_second_lookup_of_an_item_hits() {
        let (mut cache, mut rng) = (Cache::default(), Rng::new(1));
        assert_eq!(cache.hit_ratio(), None);
        assert_eq!(cache.lookup(7, false, &mut rng), CacheOutcome::Miss);
        assert_eq!(cache.lookup(7, false, &mut rng), CacheOutcome::Hit);
        assert_eq!((cache.hits(), cache.misses(), cache.len()), (1, 1, 1));
        assert_eq!(cache.hit_ratio(), Some(0.5));
    }

    #[test]
    fn a_poisoned_cache_misses_items_it_holds() {
        let (mut cache, mut rng) = (Cache::default(), Rng::new(1));
        cache.lookup(7, false, &mut rng);
        assert_eq!(cache.lookup(7, true, &mut rng), CacheOutcome::Miss);
        assert_eq!(cache.lookup(7, true, &mut rng), CacheOutcome::Miss);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_evicts_to_stay_within_its_capacity() {
        let (mut cache, mut rng) = (Cache::default(), Rng::new(1));
        for id in 0..(CACHE_CAPACITY as u32 * 3) {
            cache.lookup(id, false, &mut rng);
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        assert_eq!(cache.index.len(), CACHE_CAPACITY);
        for (slot, id) in cache.slots.iter().enumerate() {
            assert_eq!(cache.index[id], slot);
        }
    }

    #[test]
    fn the_hit_ratio_covers_only_the_latest_lookups() {
        let (mut cache, mut rng) = (Cache::default(), Rng::new(1));
        for id in 0..HIT_WINDOW as u32 {
            cache.lookup(1_000 + id, true, &mut rng);
        }
        assert_eq!(cache.hit_ratio(), Some(0.0));
        cache.lookup(1, false, &mut rng);
        for _ in 0..HIT_WINDOW {
            cache.lookup(1, false, &mut rng);
        }
        assert_eq!(cache.hit_ratio(), Some(1.0));
        assert_eq!(cache.clear(), HIT_WINDOW + 1);
        assert!(cache.is_empty());
        assert_eq!(cache.hit_ratio(), Some(1.0));
    }
}
