//! Creation order: owners before the objects they own, in layers that may each be created
//! in parallel.

use std::collections::{BTreeMap, BTreeSet};

/// Layers `nodes` so that every node comes in a later layer than all of its owners that are
/// among `nodes` (owners outside are ignored). A node's layer is the length of its longest
/// owner chain, so each layer is as early as it can be.
///
/// On a cycle, returns the nodes on it (and between cycles): the ones no order can satisfy.
pub(super) fn layers<'a>(
    nodes: &BTreeSet<&'a str>,
    owners_of: impl Fn(&'a str) -> Vec<&'a str>,
) -> Result<Vec<Vec<&'a str>>, BTreeSet<&'a str>> {
    let mut dependents: BTreeMap<&'a str, BTreeSet<&'a str>> = BTreeMap::new();
    let mut owners_left: BTreeMap<&'a str, usize> = BTreeMap::new();
    for &node in nodes {
        let owners: BTreeSet<&'a str> = owners_of(node)
            .into_iter()
            .filter(|owner| nodes.contains(owner))
            .collect();
        owners_left.insert(node, owners.len());
        for owner in owners {
            dependents.entry(owner).or_default().insert(node);
        }
    }
    let mut layers = Vec::new();
    let mut layer: Vec<&'a str> = owners_left
        .iter()
        .filter(|(_, left)| **left == 0)
        .map(|(node, _)| *node)
        .collect();
    while !layer.is_empty() {
        let mut next = Vec::new();
        for node in &layer {
            for dependent in dependents.get(node).into_iter().flatten() {
                if let Some(left) = owners_left.get_mut(dependent) {
                    *left -= 1;
                    if *left == 0 {
                        next.push(*dependent);
                    }
                }
            }
        }
        layers.push(layer);
        layer = next;
    }
    let mut unplaced: BTreeSet<&'a str> = owners_left
        .into_iter()
        .filter(|(_, left)| *left > 0)
        .map(|(node, _)| node)
        .collect();
    if unplaced.is_empty() {
        return Ok(layers);
    }
    // Objects merely owned by something on a cycle are not part of the problem; naming
    // them would send the reader after the wrong objects.
    loop {
        let tails: Vec<&'a str> = unplaced
            .iter()
            .copied()
            .filter(|node| {
                !dependents
                    .get(node)
                    .is_some_and(|deps| deps.iter().any(|dep| unplaced.contains(dep)))
            })
            .collect();
        if tails.is_empty() {
            return Err(unplaced);
        }
        for tail in tails {
            unplaced.remove(tail);
        }
    }
}
