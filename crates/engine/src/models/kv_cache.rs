//! Key/value caches: one per sequence, a buffer per layer written in place.

use candle_core::Tensor;

use crate::error::{EngineError, Result};

/// One layer's keys and values `[kv heads, capacity, head_dim]`, rows
/// `0..len` filled: preallocated and written in place, so a decode step
/// copies one row instead of the whole cache. `slice_set` writes into the
/// storage every clone of these tensors shares, so a cache is never cloned:
/// [`KvCache::fork`] copies.
pub(crate) struct LayerCache {
    pub(crate) k: Tensor,
    pub(crate) v: Tensor,
}

impl LayerCache {
    /// Writes `k`, `v` (`[kv heads, t, hd]`, contiguous) at rows `len..len + t`,
    /// first allocating `reserve` rows (or what is needed), then doubling when full.
    pub(crate) fn append(
        slot: &mut Option<LayerCache>,
        len: usize,
        reserve: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let (nkv, t, hd) = k.dims3()?;
        let need = len + t;
        let capacity = slot.as_ref().map_or(0, |c| c.k.dim(1).unwrap_or(0));
        if need > capacity {
            let grown = if capacity == 0 {
                need.max(reserve)
            } else {
                need.max(capacity * 2)
            };
            *slot = Some(Self::copy(slot.as_ref(), len, grown, (nkv, hd), k)?);
        }
        let cache = slot
            .as_ref()
            .ok_or_else(|| EngineError::Input("the key/value cache was not filled".into()))?;
        cache.k.slice_set(k, 1, len)?;
        cache.v.slice_set(v, 1, len)?;
        Ok(())
    }

    /// New buffers of `capacity` rows holding `old`'s first `len` rows.
    fn copy(
        old: Option<&LayerCache>,
        len: usize,
        capacity: usize,
        (nkv, hd): (usize, usize),
        like: &Tensor,
    ) -> Result<LayerCache> {
        let buffer = || Tensor::zeros((nkv, capacity, hd), like.dtype(), like.device());
        let (k, v) = (buffer()?, buffer()?);
        if let Some(old) = old {
            if len > 0 {
                k.slice_set(&old.k.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
                v.slice_set(&old.v.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
            }
        }
        Ok(LayerCache { k, v })
    }
}

/// Per-layer key/value cache of one sequence, for incremental decoding.
pub struct KvCache {
    pub(crate) layers: Vec<Option<LayerCache>>,
    pub(crate) len: usize,
    /// Positions to allocate at first (the prompt plus the tokens to come), so
    /// a sequence of known length never copies its cache to grow it.
    pub(crate) reserve: usize,
    /// Whether the cached keys took LongRoPE's long frequencies; set by the first pass.
    pub(crate) rope_long: Option<bool>,
    /// The model's LongRoPE original context, if it has one.
    long_rope_after: Option<usize>,
}

impl KvCache {
    pub(crate) fn new(layers: usize, reserve: usize, long_rope_after: Option<usize>) -> Self {
        Self {
            layers: (0..layers).map(|_| None).collect(),
            len: 0,
            reserve: reserve.max(1),
            rope_long: None,
            long_rope_after,
        }
    }

    /// Whether a sequence of `positions` positions may continue this cache:
    /// always, except where LongRoPE would give it the other regime than the
    /// cached keys took (a prefix short of the original context continued past it).
    pub fn continues_to(&self, positions: usize) -> bool {
        match (self.long_rope_after, self.rope_long) {
            (Some(after), Some(long)) => (positions > after) == long,
            _ => true,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An independent copy (a shared prefix continued by several sequences),
    /// with room for `extra` more positions before it grows.
    pub fn fork(&self, extra: usize) -> Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                None => Ok(None),
                Some(c) => {
                    let (nkv, _, hd) = c.k.dims3()?;
                    LayerCache::copy(Some(c), self.len, self.len + extra.max(1), (nkv, hd), &c.k)
                        .map(Some)
                }
            })
            .collect::<Result<_>>()?;
        Ok(KvCache {
            layers,
            len: self.len,
            reserve: self.len + extra.max(1),
            rope_long: self.rope_long,
            long_rope_after: self.long_rope_after,
        })
    }
}

/// One sequence of a packed forward pass: the next `len` tokens, continuing
/// `cache` (and appended to it), or from position 0 without one.
pub struct Segment<'c> {
    pub len: usize,
    pub cache: Option<&'c mut KvCache>,
}
