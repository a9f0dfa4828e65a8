//! Redundancy policies and the codec that turns one chunk into the shards of its stripe.
//!
//! Erasure coding is Reed–Solomon over GF(2^16) as `reed-solomon-simd` 3 implements it
//! (Leopard-RS, O(n log n), SIMD). Data shards are the chunk cut into `k` equal pieces (the
//! last zero-padded), so a read that finds every data shard it needs never decodes.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use reed_solomon_simd::ReedSolomonEncoder;

use crate::DataError;

/// How a chunk is protected: the policy recorded with every stripe it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Redundancy {
    /// One shard, the chunk itself: a one-drive node.
    None,
    /// `copies` identical shards on distinct drives.
    Replica { copies: u8 },
    /// `data` shards of the chunk plus `parity` Reed–Solomon shards, on distinct drives; any
    /// `data` of them rebuild the chunk.
    ErasureCoded { data: u8, parity: u8 },
}

impl Redundancy {
    /// The policy a node with `drives` drives uses unless told otherwise: as much parity as
    /// keeps at least half of the raw capacity usable.
    pub fn default_for(drives: usize) -> Self {
        match drives {
            0 | 1 => Self::None,
            2 => Self::Replica { copies: 2 },
            3 => Self::ErasureCoded { data: 2, parity: 1 },
            4 | 5 => Self::ErasureCoded {
                data: (drives - 2) as u8,
                parity: 2,
            },
            6..=11 => Self::ErasureCoded { data: 4, parity: 2 },
            _ => Self::ErasureCoded { data: 8, parity: 4 },
        }
    }

    /// Shards per stripe, each on its own drive.
    pub fn shard_count(self) -> usize {
        match self {
            Self::None => 1,
            Self::Replica { copies } => usize::from(copies),
            Self::ErasureCoded { data, parity } => usize::from(data) + usize::from(parity),
        }
    }

    /// Shards a read needs to rebuild the chunk.
    pub fn shards_needed(self) -> usize {
        match self {
            Self::None | Self::Replica { .. } => 1,
            Self::ErasureCoded { data, .. } => usize::from(data),
        }
    }

    /// Shards that must be durable before a write is acknowledged: enough to read the chunk
    /// back, and a majority of the stripe, so two writers can never both believe they hold it.
    pub fn write_quorum(self) -> usize {
        let majority = self.shard_count() / 2 + 1;
        self.shards_needed().max(majority)
    }

    /// Bytes in each shard of a chunk of `len` bytes.
    pub fn shard_len(self, len: usize) -> usize {
        match self {
            Self::None | Self::Replica { .. } => len,
            // The codec works on 2-byte symbols: shards have an even length.
            Self::ErasureCoded { data, .. } => len.div_ceil(usize::from(data)).next_multiple_of(2),
        }
    }

    /// The byte range of the chunk that data shard `index` holds (empty for parity).
    pub fn data_range(self, len: usize, index: usize) -> std::ops::Range<usize> {
        match self {
            Self::None | Self::Replica { .. } => 0..len,
            Self::ErasureCoded { data, .. } if index < usize::from(data) => {
                let shard_len = self.shard_len(len);
                (index * shard_len).min(len)..((index + 1) * shard_len).min(len)
            }
            Self::ErasureCoded { .. } => 0..0,
        }
    }

    fn check(self) -> Result<(), String> {
        match self {
            Self::None => Ok(()),
            Self::Replica { copies } if copies >= 2 => Ok(()),
            Self::Replica { .. } => Err("replica needs at least 2 copies".into()),
            Self::ErasureCoded { data, parity } if u16::from(data) + u16::from(parity) > 255 => {
                Err("a stripe has at most 255 shards".into())
            }
            Self::ErasureCoded { data, parity } if data >= 1 && parity >= 1 => {
                if ReedSolomonEncoder::supports(usize::from(data), usize::from(parity)) {
                    Ok(())
                } else {
                    Err(format!("ec:{data}+{parity} is not supported by the codec"))
                }
            }
            Self::ErasureCoded { .. } => Err("erasure coding needs k ≥ 1 and m ≥ 1".into()),
        }
    }

    /// Cuts `chunk` into the shards of its stripe, in shard order. Full data shards share the
    /// chunk's memory; only the padded last one and the parity shards are new buffers.
    pub fn encode(self, chunk: &Bytes) -> Result<Vec<Bytes>, DataError> {
        match self {
            Self::None => Ok(vec![chunk.clone()]),
            Self::Replica { copies } => Ok(vec![chunk.clone(); usize::from(copies)]),
            Self::ErasureCoded { data, parity } => {
                let (k, m) = (usize::from(data), usize::from(parity));
                let shard_len = self.shard_len(chunk.len());
                let mut shards: Vec<Bytes> = (0..k)
                    .map(|i| {
                        let range = self.data_range(chunk.len(), i);
                        if range.len() == shard_len {
                            chunk.slice(range)
                        } else {
                            let mut padded = vec![0u8; shard_len];
                            padded[..range.len()].copy_from_slice(&chunk[range]);
                            Bytes::from(padded)
                        }
                    })
                    .collect();
                if shard_len == 0 {
                    shards.extend((0..m).map(|_| Bytes::new()));
                    return Ok(shards);
                }
                let parity = encode_parity(k, m, shard_len, &shards)?;
                shards.extend(parity);
                Ok(shards)
            }
        }
    }

    /// Fills in every missing shard (data and parity) of a stripe from the ones present.
    /// `shards` holds one entry per shard, `None` where the shard is lost; `len` is the chunk's
    /// length. Fails when fewer than [`Redundancy::shards_needed`] are present.
    pub fn reconstruct(self, len: usize, shards: &mut [Option<Bytes>]) -> Result<(), DataError> {
        self.reconstruct_data(len, shards)?;
        if let Self::ErasureCoded { data, parity } = self {
            let (k, m) = (usize::from(data), usize::from(parity));
            let shard_len = self.shard_len(len);
            if shards[k..].iter().any(Option::is_none) {
                let originals: Vec<Bytes> = shards[..k].iter().flatten().cloned().collect();
                let parity = if shard_len == 0 {
                    vec![Bytes::new(); m]
                } else {
                    encode_parity(k, m, shard_len, &originals)?
                };
                for (slot, shard) in shards[k..].iter_mut().zip(parity) {
                    slot.get_or_insert(shard);
                }
            }
        }
        Ok(())
    }

    /// Fills in the missing data shards only: what a read needs. Replicas fill every copy.
    pub fn reconstruct_data(
        self,
        len: usize,
        shards: &mut [Option<Bytes>],
    ) -> Result<(), DataError> {
        let present = shards.iter().filter(|s| s.is_some()).count();
        let needed = self.shards_needed();
        if shards.len() != self.shard_count() || present < needed {
            return Err(DataError::TooFewShards {
                readable: present,
                needed,
            });
        }
        if present == shards.len() {
            return Ok(());
        }
        match self {
            Self::None | Self::Replica { .. } => {
                let copy = shards.iter().flatten().next().cloned().unwrap_or_default();
                for shard in shards.iter_mut().filter(|s| s.is_none()) {
                    *shard = Some(copy.clone());
                }
                Ok(())
            }
            Self::ErasureCoded { data, parity } => {
                let (k, m) = (usize::from(data), usize::from(parity));
                if self.shard_len(len) == 0 {
                    shards.iter_mut().for_each(|s| *s = Some(Bytes::new()));
                    return Ok(());
                }
                if shards[..k].iter().any(Option::is_none) {
                    let originals = shards[..k]
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| Some((i, s.as_ref()?)));
                    let recovery = shards[k..]
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| Some((i, s.as_ref()?)));
                    let restored = reed_solomon_simd::decode(k, m, originals, recovery)
                        .map_err(|e| DataError::Codec(e.to_string()))?;
                    for (i, shard) in restored {
                        if let Some(slot) = shards.get_mut(i) {
                            *slot = Some(Bytes::from(shard));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

thread_local! {
    /// The encoder's work space is several shards large: each blocking thread keeps one.
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
}

fn encode_parity(
    k: usize,
    m: usize,
    shard_len: usize,
    originals: &[Bytes],
) -> Result<Vec<Bytes>, DataError> {
    let codec_error = |e: reed_solomon_simd::Error| DataError::Codec(e.to_string());
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let encoder = match slot.as_mut() {
            Some(encoder) => {
                encoder.reset(k, m, shard_len).map_err(codec_error)?;
                encoder
            }
            None => slot.insert(ReedSolomonEncoder::new(k, m, shard_len).map_err(codec_error)?),
        };
        for shard in originals {
            encoder.add_original_shard(shard).map_err(codec_error)?;
        }
        let result = encoder.encode().map_err(codec_error)?;
        Ok(result.recovery_iter().map(Bytes::copy_from_slice).collect())
    })
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Replica { copies } => write!(f, "replica:{copies}"),
            Self::ErasureCoded { data, parity } => write!(f, "ec:{data}+{parity}"),
        }
    }
}

impl FromStr for Redundancy {
    type Err = String;

    /// Parses `none`, `replica:N` or `ec:K+M`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a redundancy policy (none, replica:N, ec:K+M)");
        let policy = match s.trim().to_ascii_lowercase().as_str() {
            "none" => Self::None,
            other => {
                if let Some(n) = other.strip_prefix("replica:") {
                    Self::Replica {
                        copies: n.parse().map_err(|_| bad())?,
                    }
                } else if let Some(km) = other.strip_prefix("ec:") {
                    let (k, m) = km.split_once('+').ok_or_else(bad)?;
                    Self::ErasureCoded {
                        data: k.parse().map_err(|_| bad())?,
                        parity: m.parse().map_err(|_| bad())?,
                    }
                } else {
                    return Err(bad());
                }
            }
        };
        policy.check()?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn policies() -> Vec<Redundancy> {
        [
            "none",
            "replica:2",
            "replica:3",
            "ec:1+1",
            "ec:2+1",
            "ec:3+2",
            "ec:4+2",
            "ec:8+4",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect()
    }

    #[test]
    fn policies_parse_and_print() {
        for p in policies() {
            assert_eq!(p.to_string().parse::<Redundancy>().unwrap(), p);
        }
        for bad in [
            "",
            "ec:4",
            "ec:0+2",
            "ec:4+0",
            "replica:1",
            "raid5",
            "ec:a+b",
        ] {
            assert!(bad.parse::<Redundancy>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn quorums() {
        let ec = |data, parity| Redundancy::ErasureCoded { data, parity };
        assert_eq!(ec(4, 2).write_quorum(), 4);
        assert_eq!(ec(8, 4).write_quorum(), 8);
        assert_eq!(ec(2, 2).write_quorum(), 3);
        assert_eq!(Redundancy::Replica { copies: 3 }.write_quorum(), 2);
        assert_eq!(Redundancy::None.write_quorum(), 1);
        assert_eq!(Redundancy::default_for(6), ec(4, 2));
        assert_eq!(Redundancy::default_for(12), ec(8, 4));
    }

    /// Property: for random chunk sizes (zero, odd, not multiples of k), random policies and
    /// any set of at most m lost shards, the chunk comes back exactly.
    #[test]
    fn any_loss_within_parity_rebuilds_the_exact_chunk() {
        let mut rng = StdRng::seed_from_u64(0xBA5A17);
        for round in 0..400 {
            let policies = policies();
            let policy = policies[rng.random_range(0..policies.len())];
            let len = match round % 4 {
                0 => rng.random_range(0..8),
                1 => rng.random_range(0..5000),
                _ => rng.random_range(0..300_000),
            };
            let chunk: Bytes = (0..len)
                .map(|_| rng.random::<u8>())
                .collect::<Vec<_>>()
                .into();
            let shards = policy.encode(&chunk).unwrap();
            assert_eq!(shards.len(), policy.shard_count());
            let tolerable = policy.shard_count() - policy.shards_needed();
            let losses = rng.random_range(0..=tolerable);
            let mut damaged: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            for _ in 0..losses {
                let i = rng.random_range(0..damaged.len());
                damaged[i] = None;
            }
            policy.reconstruct(len, &mut damaged).unwrap();
            let rebuilt: Vec<Bytes> = damaged.into_iter().map(Option::unwrap).collect();
            assert_eq!(rebuilt, shards, "{policy} len {len} round {round}");
            let mut joined = Vec::new();
            for i in 0..policy.shards_needed() {
                joined.extend_from_slice(&rebuilt[i][..policy.data_range(len, i).len()]);
            }
            assert_eq!(joined, chunk, "{policy} len {len}");
        }
    }

    #[test]
    fn too_many_losses_are_refused() {
        let policy: Redundancy = "ec:4+2".parse().unwrap();
        let shards = policy.encode(&Bytes::from(vec![7u8; 1000])).unwrap();
        let mut damaged: Vec<Option<Bytes>> = shards.into_iter().map(Some).collect();
        damaged[0] = None;
        damaged[3] = None;
        damaged[5] = None;
        assert!(matches!(
            policy.reconstruct(1000, &mut damaged),
            Err(DataError::TooFewShards {
                readable: 3,
                needed: 4
            })
        ));
    }
}
