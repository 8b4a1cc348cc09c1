//! Merkle roots and inclusion proofs over a block's entries.
//!
//! The tree is the one of RFC 6962 (Certificate Transparency): leaves are hashed as
//! `H(0x00 || leaf)` and inner nodes as `H(0x01 || left || right)`, and a tree of `n`
//! leaves splits at the largest power of two below `n`. Domain separation makes a leaf
//! impossible to pass off as an inner node, and there is no duplicated last leaf, so two
//! different lists of entries never share a root (the weakness of Bitcoin's tree).

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

/// Hash of a leaf.
fn leaf(entry: &Hash) -> Hash {
    Hash::of_parts(&[&[0x00], entry.as_bytes()])
}

/// Hash of an inner node.
fn node(left: &Hash, right: &Hash) -> Hash {
    Hash::of_parts(&[&[0x01], left.as_bytes(), right.as_bytes()])
}

/// Largest power of two strictly less than `n` (for `n >= 2`): the highest bit of
/// `n - 1`, in closed form (no loop to run away).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle root of `entries`; the root of no entries is the hash of nothing.
pub fn merkle_root(entries: &[Hash]) -> Hash {
    if entries.is_empty() {
        return Hash::of(&[]);
    }
    // Bottom-up: hash the leaves, then combine level by level. Combining adjacent pairs
    // and carrying an odd last node up unchanged yields exactly the RFC 6962 tree.
    let mut level: Vec<Hash> = entries.iter().map(leaf).collect();
    // Each pass halves the level (rounding up), so a slice of any length is done in at
    // most `usize::BITS` passes: the bound is explicit.
    for _ in 0..usize::BITS {
        if level.len() <= 1 {
            break;
        }
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [left, right] => next.push(node(left, right)),
                [single] => next.push(*single),
                _ => unreachable!("chunks(2) yields one or two items"),
            }
        }
        level = next;
    }
    level[0]
}

/// Proof that one entry is at position `index` in a list of `size` entries with a
/// given Merkle root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Position of the entry.
    pub index: u64,
    /// Number of entries in the tree.
    pub size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash>,
}

/// Builds the inclusion proof for `entries[index]`, or `None` if out of range.
pub fn prove_index(entries: &[Hash], index: usize) -> Option<MerkleProof> {
    if index >= entries.len() {
        return None;
    }
    let mut path = Vec::new();
    audit_path(entries, index, &mut path);
    Some(MerkleProof {
        index: index as u64,
        size: entries.len() as u64,
        path,
    })
}

fn audit_path(entries: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if entries.len() <= 1 {
        return;
    }
    let k = split(entries.len());
    if index < k {
        audit_path(&entries[..k], index, path);
        path.push(subtree_root(&entries[k..]));
    } else {
        audit_path(&entries[k..], index - k, path);
        path.push(subtree_root(&entries[..k]));
    }
}

fn subtree_root(entries: &[Hash]) -> Hash {
    match entries {
        [single] => leaf(single),
        _ => {
            let k = split(entries.len());
            node(&subtree_root(&entries[..k]), &subtree_root(&entries[k..]))
        }
    }
}

/// Checks that `entry` is in the tree with root `root` as `proof` claims.
pub fn verify_proof(root: &Hash, entry: &Hash, proof: &MerkleProof) -> bool {
    if proof.index >= proof.size {
        return false;
    }
    // RFC 9162 section 2.1.3.2 verification algorithm.
    let (mut fn_, mut sn) = (proof.index, proof.size - 1);
    let mut r = leaf(entry);
    for p in &proof.path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            // Right-shift both until `fn_` is odd (RFC 9162's inner loop, in closed
            // form; nothing to do when it is odd already). `fn_` is not zero here: it
            // is odd, or equal to `sn`, which is not zero.
            let shift = fn_.trailing_zeros();
            fn_ >>= shift;
            sn >>= shift;
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Hash::of(&i.to_le_bytes())).collect()
    }

    #[test]
    fn bottom_up_root_equals_recursive_definition() {
        for n in 1..40 {
            let e = entries(n);
            assert_eq!(merkle_root(&e), subtree_root(&e), "n = {n}");
        }
    }

    #[test]
    fn every_proof_verifies_and_wrong_ones_do_not() {
        for n in 1..35 {
            let e = entries(n);
            let root = merkle_root(&e);
            for i in 0..n {
                let proof = prove_index(&e, i).expect("in range");
                assert!(verify_proof(&root, &e[i], &proof), "n = {n}, i = {i}");
                let other = Hash::of(b"not there");
                assert!(!verify_proof(&root, &other, &proof));
                let mut moved = proof.clone();
                moved.index = (moved.index + 1) % moved.size;
                if n > 1 {
                    assert!(!verify_proof(&root, &e[i], &moved));
                }
            }
        }
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        for n in 2..300usize {
            let k = split(n);
            assert!(
                k.is_power_of_two() && k < n && 2 * k >= n,
                "n = {n}, k = {k}"
            );
        }
        assert_eq!(split(usize::MAX), 1 << (usize::BITS - 1));
    }

    #[test]
    fn a_duplicated_last_entry_changes_the_root() {
        let mut e = entries(3);
        let root = merkle_root(&e);
        e.push(e[2]);
        assert_ne!(root, merkle_root(&e));
    }
}
