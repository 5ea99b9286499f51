//! Sticky splits, shared by campaigns and Canvases: which variant (or experiment path) a user
//! gets, by percentage, from a stable hash of ids, kept across sends and entries.

use sha2::{Digest, Sha256};

/// Where a user falls in a split.
pub(crate) enum Assignment<'a, V> {
    Variant(&'a V),
    Control,
}

/// A stable number in `0..total` for these parts (ids): the same on every process, run and
/// version of Herald (the first 8 bytes of SHA-256 over the parts joined by `:`, big-endian).
pub(crate) fn bucket(parts: &[&str], total: u64) -> u64 {
    let mut hash = Sha256::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hash.update(b":");
        }
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % total.max(1)
}

/// The user's share of `variants`: the one they had before (`previous`, as `is_previous` tells;
/// `Some(None)` for the control group) while it still takes a share (and the control group stays
/// sticky while there is one), else the bucket of `parts` laid over the variants' percentages in
/// order, then the control group. `None` when nothing takes a share.
pub(crate) fn assign<'a, V>(
    variants: &'a [V],
    percent: impl Fn(&V) -> u8,
    control_percent: u8,
    previous: Option<Option<&str>>,
    is_previous: impl Fn(&V, &str) -> bool,
    parts: &[&str],
) -> Option<Assignment<'a, V>> {
    match previous {
        Some(Some(previous)) => {
            if let Some(variant) = variants
                .iter()
                .find(|v| percent(v) > 0 && is_previous(v, previous))
            {
                return Some(Assignment::Variant(variant));
            }
        }
        Some(None) if control_percent > 0 => return Some(Assignment::Control),
        _ => {}
    }
    let total =
        variants.iter().map(|v| u64::from(percent(v))).sum::<u64>() + u64::from(control_percent);
    if total == 0 {
        return None;
    }
    let point = bucket(parts, total);
    let mut edge = 0;
    for variant in variants {
        edge += u64::from(percent(variant));
        if point < edge {
            return Some(Assignment::Variant(variant));
        }
    }
    Some(Assignment::Control)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket(&["c1", "p1"], 100), bucket(&["c1", "p1"], 100));
        let seen: HashSet<u64> = (0..1000)
            .map(|i| bucket(&["c1", &format!("p{i}")], 100))
            .collect();
        assert!(seen.len() > 90, "only {} buckets used", seen.len());
    }

    #[test]
    fn a_previous_variant_sticks_while_it_takes_a_share() {
        let shares = [("a", 50), ("b", 50)];
        let pick =
            |previous| match assign(&shares, |s| s.1, 0, previous, |s, p| s.0 == p, &["c", "u"]) {
                Some(Assignment::Variant(share)) => Some(share.0),
                _ => None,
            };
        assert_eq!(pick(Some(Some("b"))), Some("b"));
        assert_eq!(pick(Some(Some("a"))), Some("a"));
        // Unknown previous variants and no previous receipt fall back to the bucket.
        assert_eq!(pick(Some(Some("gone"))), pick(None));
        assert!(assign(&shares, |_| 0, 0, None, |_, _| false, &["c", "u"]).is_none());
    }
}
