//! Sharding arithmetic: every item is done by exactly one shard, whatever the split.

use verdict_dist::{key_bucket, ShardSpec};

fn shards(count: usize) -> Vec<ShardSpec> {
    (0..count)
        .map(|i| ShardSpec::new(i, count).unwrap())
        .collect()
}

#[test]
fn positions_cover_every_item_exactly_once() {
    for len in [0usize, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 1001] {
        for count in [1usize, 2, 3, 4, 5, 7, 8, 16, 64, 100, 1500] {
            let mut seen = vec![0u32; len];
            let mut sizes = Vec::new();
            for shard in shards(count) {
                let positions: Vec<usize> = shard.positions(len).collect();
                sizes.push(positions.len());
                for p in positions {
                    seen[p] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "len {len} count {count}");
            // Round-robin keeps shards within one item of each other.
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "len {len} count {count}: {sizes:?}");
        }
    }
}

#[test]
fn select_by_position_returns_the_items() {
    let items: Vec<String> = (0..10).map(|i| format!("item-{i}")).collect();
    let shard = ShardSpec::new(1, 3).unwrap();
    let picked: Vec<&str> = shard
        .select_by_position(&items)
        .into_iter()
        .map(String::as_str)
        .collect();
    assert_eq!(picked, ["item-1", "item-4", "item-7"]);
}

#[test]
fn key_hashing_covers_every_key_once_and_ignores_listing_order() {
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("s3://bucket/renders/model-{i:05}/view-{}.png", i % 6))
        .collect();
    let mut reversed = keys.clone();
    reversed.reverse();
    // A deterministic shuffle (listing order from another object-store page size).
    let mut shuffled = keys.clone();
    let mut state = 0x2545F4914F6CDD1Du64;
    for i in (1..shuffled.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        shuffled.swap(i, (state % (i as u64 + 1)) as usize);
    }
    for count in [1usize, 2, 3, 8, 13, 64] {
        let assign = |listing: &[String]| -> std::collections::BTreeMap<String, usize> {
            let mut owner = std::collections::BTreeMap::new();
            for shard in shards(count) {
                for key in shard.select_by_key(listing, |k| k.as_str()) {
                    assert!(
                        owner.insert(key.clone(), shard.index()).is_none(),
                        "{key} twice"
                    );
                }
            }
            owner
        };
        let original = assign(&keys);
        assert_eq!(
            original.len(),
            keys.len(),
            "count {count}: every key has a shard"
        );
        assert_eq!(assign(&reversed), original);
        assert_eq!(assign(&shuffled), original);
        // Spread: no shard gets more than twice its fair share on 2000 keys.
        let mut sizes = vec![0usize; count];
        for shard in original.values() {
            sizes[*shard] += 1;
        }
        let fair = keys.len() / count;
        assert!(
            sizes.iter().all(|&s| s <= 2 * fair + 10),
            "count {count}: {sizes:?}"
        );
        for key in keys.iter().take(50) {
            assert_eq!(original[key], key_bucket(key, count));
        }
    }
}
