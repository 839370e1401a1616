//! Stratified, group-aware, reproducible splits.
//!
//! The unit of assignment is a *group*: all samples sharing the task's `group_key` value (a
//! creator, a listing seller), or else a single sample (which keeps all of its files). A unit's
//! stratum is its majority label. Within each stratum, units are shuffled with an RNG seeded from
//! the task seed and the stratum name (so adding a class does not reshuffle the others), larger
//! units are placed first, and each unit goes to the side with the largest remaining quota.
//! Quotas come from the largest-remainder method, so with ungrouped samples every class
//! matches its requested share to within one sample.
//!
//! Multi-label samples are stratified by their label combination (the first label set of each
//! dimension, joined); combinations rarer than the number of sides share one "rare" stratum.
//! This is simpler than iterative stratification and keeps frequent combinations balanced.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::manifest::{LabelValue, Sample, Split};

/// Largest-remainder apportionment of `total` items over `weights`; ties go to the earlier slot.
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || total == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let assigned: usize = counts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.partial_cmp(&fa)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    for &slot in order.iter().take(total.saturating_sub(assigned)) {
        counts[slot] += 1;
    }
    counts
}

struct Unit {
    members: Vec<usize>,
}

/// Groups samples into units and units into strata: stratum -> units.
fn strata(
    samples: &[&Sample],
    group_key: Option<&str>,
    sides: usize,
) -> BTreeMap<String, Vec<Unit>> {
    let mut units: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, sample) in samples.iter().enumerate() {
        let key = group_key
            .and_then(|key| sample.group_value(key))
            .map(|group| format!("group:{group}"))
            .unwrap_or_else(|| format!("sample:{}", sample.sample_id));
        units.entry(key).or_default().push(index);
    }
    let stratum_of = |sample: &Sample| match &sample.label {
        Some(LabelValue::PerDimension(map)) => map
            .iter()
            .map(|(dim, labels)| format!("{dim}={}", labels.first().map_or("", String::as_str)))
            .collect::<Vec<_>>()
            .join(";"),
        Some(label) => label.stratum(),
        None => String::from("(unlabelled)"),
    };
    let mut by_stratum: BTreeMap<String, Vec<Unit>> = BTreeMap::new();
    for members in units.into_values() {
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for &member in &members {
            *votes.entry(stratum_of(samples[member])).or_default() += 1;
        }
        // Majority label; ties go to the alphabetically first stratum.
        let stratum = votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        by_stratum
            .entry(stratum)
            .or_default()
            .push(Unit { members });
    }
    let is_multi = samples
        .iter()
        .any(|s| matches!(s.label, Some(LabelValue::PerDimension(_))));
    if is_multi {
        let rare: Vec<String> = by_stratum
            .iter()
            .filter(|(_, units)| units.iter().map(|u| u.members.len()).sum::<usize>() < sides)
            .map(|(name, _)| name.clone())
            .collect();
        for name in rare {
            let units = by_stratum.remove(&name).unwrap_or_default();
            by_stratum
                .entry("(rare combinations)".into())
                .or_default()
                .extend(units);
        }
    }
    by_stratum
}

fn stratum_rng(seed: u64, stratum: &str) -> ChaCha8Rng {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(stratum.as_bytes())
        .finalize();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(bytes)
}

/// Assigns every sample to a side; `quota(stratum_size)` gives each side's target for a stratum.
fn assign(
    samples: &[&Sample],
    sides: usize,
    group_key: Option<&str>,
    seed: u64,
    quota: &dyn Fn(&str, usize) -> Vec<usize>,
) -> Vec<usize> {
    let mut side_of = vec![0usize; samples.len()];
    for (stratum, mut units) in strata(samples, group_key, sides) {
        let size: usize = units.iter().map(|u| u.members.len()).sum();
        let targets = quota(&stratum, size);
        units.shuffle(&mut stratum_rng(seed, &stratum));
        units.sort_by_key(|unit| std::cmp::Reverse(unit.members.len()));
        let mut filled = vec![0usize; sides];
        for unit in units {
            let side = (0..sides)
                .max_by(|&a, &b| {
                    let deficit = |s: usize| targets[s] as i64 - filled[s] as i64;
                    deficit(a).cmp(&deficit(b)).then(b.cmp(&a))
                })
                .unwrap_or(0);
            filled[side] += unit.members.len();
            for member in unit.members {
                side_of[member] = side;
            }
        }
    }
    side_of
}

/// Picks a stratified subset of exactly `size` samples (fewer only if groups force it).
/// Used for the sealed benchmark and the mini-train subset.
pub fn stratified_take(
    samples: &[&Sample],
    size: usize,
    group_key: Option<&str>,
    seed: u64,
) -> Result<BTreeSet<String>> {
    if size > samples.len() {
        return Err(CoreError::Split(format!(
            "asked for {size} samples but only {} are available",
            samples.len()
        )));
    }
    let by_stratum = strata(samples, group_key, 2);
    let names: Vec<&String> = by_stratum.keys().collect();
    let sizes: Vec<f64> = by_stratum
        .values()
        .map(|units| units.iter().map(|u| u.members.len()).sum::<usize>() as f64)
        .collect();
    let quotas: BTreeMap<String, usize> = names
        .iter()
        .map(|n| (*n).clone())
        .zip(apportion(size, &sizes))
        .collect();
    let side_of = assign(samples, 2, group_key, seed, &|stratum, stratum_size| {
        let taken = quotas.get(stratum).copied().unwrap_or(0);
        vec![taken, stratum_size - taken]
    });
    Ok(samples
        .iter()
        .zip(side_of)
        .filter(|(_, side)| *side == 0)
        .map(|(sample, _)| sample.sample_id.clone())
        .collect())
}

/// Splits samples by fractions, e.g. `[(Train, 0.8), (Val, 0.1), (Test, 0.1)]`.
pub fn split_by_fractions(
    samples: &[&Sample],
    fractions: &[(Split, f64)],
    group_key: Option<&str>,
    seed: u64,
) -> BTreeMap<String, Split> {
    let weights: Vec<f64> = fractions.iter().map(|(_, f)| *f).collect();
    let side_of = assign(samples, fractions.len(), group_key, seed, &|_, size| {
        apportion(size, &weights)
    });
    samples
        .iter()
        .zip(side_of)
        .map(|(sample, side)| (sample.sample_id.clone(), fractions[side].0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(per_class: &[(&str, usize)]) -> Vec<Sample> {
        let mut out = Vec::new();
        for (label, count) in per_class {
            for i in 0..*count {
                let mut s = Sample::new(format!("{label}-{i}"));
                s.label = Some(LabelValue::Single(label.to_string()));
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn apportion_is_exact_and_fair() {
        assert_eq!(apportion(10, &[0.8, 0.1, 0.1]), [8, 1, 1]);
        assert_eq!(apportion(7, &[1.0, 1.0, 1.0]), [3, 2, 2]);
        assert_eq!(apportion(500, &[400.0, 300.0, 300.0]), [200, 150, 150]);
        assert_eq!(apportion(3, &[0.0, 0.0]), [0, 0]);
        assert_eq!(apportion(5, &[0.9, 0.1]).iter().sum::<usize>(), 5);
    }

    #[test]
    fn benchmark_draw_is_stratified_and_exact() {
        let all = samples(&[("nsfw", 400), ("sfw", 300), ("grey_area", 300)]);
        let refs: Vec<&Sample> = all.iter().collect();
        let taken = stratified_take(&refs, 500, None, 7).unwrap();
        assert_eq!(taken.len(), 500);
        let count = |p: &str| taken.iter().filter(|id| id.starts_with(p)).count();
        assert_eq!(
            (count("nsfw"), count("sfw"), count("grey")),
            (200, 150, 150)
        );
        assert_eq!(taken, stratified_take(&refs, 500, None, 7).unwrap());
        assert_ne!(taken, stratified_take(&refs, 500, None, 8).unwrap());
    }

    #[test]
    fn fractions_match_within_one_per_class() {
        let all = samples(&[("a", 97), ("b", 41), ("c", 13)]);
        let refs: Vec<&Sample> = all.iter().collect();
        let fractions = [(Split::Train, 0.8), (Split::Val, 0.1), (Split::Test, 0.1)];
        let assigned = split_by_fractions(&refs, &fractions, None, 1);
        for (class, n) in [("a", 97usize), ("b", 41), ("c", 13)] {
            for (split, fraction) in fractions {
                let got = assigned
                    .iter()
                    .filter(|(id, s)| id.starts_with(class) && **s == split)
                    .count();
                let want = n as f64 * fraction;
                assert!(
                    (got as f64 - want).abs() <= 1.0,
                    "{class} {split:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn groups_stay_on_one_side() {
        let mut all = samples(&[("a", 60), ("b", 60)]);
        for (i, s) in all.iter_mut().enumerate() {
            s.meta
                .insert("creator".into(), format!("c{}", i % 17).into());
        }
        let refs: Vec<&Sample> = all.iter().collect();
        let assigned = split_by_fractions(
            &refs,
            &[(Split::Train, 0.7), (Split::Val, 0.3)],
            Some("creator"),
            3,
        );
        let mut side_of_group: BTreeMap<String, Split> = BTreeMap::new();
        for sample in &all {
            let group = sample.group_value("creator").unwrap();
            let split = assigned[&sample.sample_id];
            assert_eq!(*side_of_group.entry(group).or_insert(split), split);
        }
        let val = assigned.values().filter(|s| **s == Split::Val).count();
        assert!((20..=52).contains(&val), "val size {val}");
    }

    #[test]
    fn too_large_benchmark_is_an_error() {
        let all = samples(&[("a", 3)]);
        let refs: Vec<&Sample> = all.iter().collect();
        assert!(stratified_take(&refs, 4, None, 0).is_err());
    }
}
