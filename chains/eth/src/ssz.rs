//! The few SSZ hash tree roots deposits need (consensus spec, phase0):
//! `DepositMessage`, `DepositData`, `ForkData`, `SigningData`, and the
//! deposit domain. Checked against @chainsafe/ssz (tests/vectors/eth).

use sha2::{Digest, Sha256};

/// SHA-256 of `a || b`.
pub fn hash2(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// Merkle root of `chunks`, padded with zero chunks to a power of two.
pub fn merkleize(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut layer: Vec<[u8; 32]> = chunks.to_vec();
    let size = layer.len().max(1).next_power_of_two();
    layer.resize(size, [0u8; 32]);
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| hash2(&p[0], &p[1])).collect();
    }
    layer[0]
}

/// Root of a fixed-size byte vector (packed into 32-byte chunks).
pub fn bytes_root(b: &[u8]) -> [u8; 32] {
    let chunks: Vec<[u8; 32]> = b
        .chunks(32)
        .map(|c| {
            let mut out = [0u8; 32];
            out[..c.len()].copy_from_slice(c);
            out
        })
        .collect();
    merkleize(&chunks)
}

/// Root of a uint64.
pub fn u64_root(v: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&v.to_le_bytes());
    out
}

/// `hash_tree_root(DepositMessage(pubkey, withdrawal_credentials, amount))`.
pub fn deposit_message_root(pubkey: &[u8; 48], wc: &[u8; 32], amount_gwei: u64) -> [u8; 32] {
    merkleize(&[bytes_root(pubkey), *wc, u64_root(amount_gwei)])
}

/// `hash_tree_root(DepositData(pubkey, withdrawal_credentials, amount, signature))`.
pub fn deposit_data_root(
    pubkey: &[u8; 48],
    wc: &[u8; 32],
    amount_gwei: u64,
    signature: &[u8; 96],
) -> [u8; 32] {
    merkleize(&[
        bytes_root(pubkey),
        *wc,
        u64_root(amount_gwei),
        bytes_root(signature),
    ])
}

/// `compute_domain(DOMAIN_DEPOSIT, fork_version, ZERO_HASH)`: deposits are
/// signed for the genesis fork version with an empty validators root, so
/// they stay valid across forks.
pub fn deposit_domain(fork_version: [u8; 4]) -> [u8; 32] {
    let mut version = [0u8; 32];
    version[..4].copy_from_slice(&fork_version);
    let fork_data_root = merkleize(&[version, [0u8; 32]]);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&[0x03, 0, 0, 0]);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    domain
}

/// `compute_signing_root(object_root, domain)`.
pub fn signing_root(object_root: &[u8; 32], domain: &[u8; 32]) -> [u8; 32] {
    merkleize(&[*object_root, *domain])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkleization_pads_to_a_power_of_two() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        assert_eq!(merkleize(&[a]), a);
        assert_eq!(merkleize(&[a, b]), hash2(&a, &b));
        assert_eq!(
            merkleize(&[a, b, c]),
            hash2(&hash2(&a, &b), &hash2(&c, &[0u8; 32]))
        );
        // 48 bytes: two chunks, the second zero-padded.
        let mut second = [0u8; 32];
        second[..16].copy_from_slice(&[9u8; 16]);
        assert_eq!(bytes_root(&[9u8; 48]), hash2(&[9u8; 32], &second));
        assert_ne!(
            deposit_domain([0, 0, 0, 0]),
            deposit_domain([0x10, 0, 0, 0x38])
        );
    }
}
