//! Drawing a token from a distribution instead of taking the greedy one:
//! temperature, top-k and top-p (nucleus) over a log-probability row, with
//! draws that depend on nothing but the row, the sequence's stream and the
//! draw's index. A stream is derived from a seed and names the caller
//! chooses (a record's id, a sample's index), and draw `i` of a stream is a
//! counter-based hash of the two, so an answer is the same whatever other
//! sequences share its batch, in whatever order records run, and after a
//! resume.

/// How a sequence's tokens are drawn (greedy where a sequence has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Divides the log-probabilities before drawing (> 0; 1 draws from the
    /// model's own distribution).
    pub temperature: f32,
    /// Draws only from the most probable tokens whose probabilities (after
    /// the temperature and top-k) first add up to `top_p` of the whole (0 < top_p <= 1).
    pub top_p: f32,
    /// Draws only from the `top_k` most probable tokens; 0 for no limit.
    pub top_k: usize,
    /// This sequence's stream (see [`Sampling::stream`]).
    pub stream: u64,
}

/// SplitMix64's finalizer: a bijection of u64 that mixes every input bit
/// into every output bit (Steele, Lea and Flood, 2014).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sampling {
    /// The stream of a sequence named by `parts` (e.g. a record's id and a
    /// sample's index) under `seed`: FNV-1a over the parts (each followed by
    /// a separator byte, so ("ab", "c") and ("a", "bc") differ), mixed with the seed.
    pub fn stream(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for &b in part.iter().chain(&[0xff]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        mix(mix(seed) ^ h)
    }

    /// Draw `index` of the stream as a uniform value in [0, 1) (53 bits).
    pub fn uniform(&self, index: usize) -> f64 {
        let bits = mix(self.stream ^ mix(index as u64 ^ 0x9e37_79b9_7f4a_7c15));
        (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// The token of draw `index` from a row of log-probabilities (or logits:
    /// only differences count). Probabilities are `exp((l - max) / T)` in
    /// f64; candidates are cut to the `top_k` largest (ties by id) and, in
    /// order of value, to the shortest prefix whose mass reaches `top_p` of
    /// what is left (summed in candidate order); the draw walks the kept
    /// candidates' cumulative mass (in id order when neither cut applies).
    pub fn choose(&self, row: &[f32], index: usize) -> usize {
        let mut order: Vec<u32> = (0..row.len() as u32)
            .filter(|&i| row[i as usize] > f32::NEG_INFINITY)
            .collect();
        if order.is_empty() {
            return crate::score::argmax(row);
        }
        let by_value =
            |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
        if self.top_k > 0 && self.top_k < order.len() {
            order.select_nth_unstable_by(self.top_k - 1, by_value);
            order.truncate(self.top_k);
        }
        let max = order
            .iter()
            .map(|&i| f64::from(row[i as usize]))
            .fold(f64::NEG_INFINITY, f64::max);
        let t = f64::from(self.temperature);
        let weight = |i: u32| ((f64::from(row[i as usize]) - max) / t).exp();
        if self.top_p < 1.0 {
            // The nucleus is a prefix of the candidates in order of value:
            // find the most probable `head` whose mass reaches the cut
            // (doubling from 64, a selection each time, not a whole sort),
            // then sort just those. The same prefix as a full sort gives.
            let target = f64::from(self.top_p) * order.iter().map(|&i| weight(i)).sum::<f64>();
            let mut head = 64.min(order.len());
            loop {
                if head < order.len() {
                    order.select_nth_unstable_by(head - 1, by_value);
                }
                let reached = order[..head].iter().map(|&i| weight(i)).sum::<f64>() >= target;
                if reached || head == order.len() {
                    order.truncate(head);
                    order.sort_unstable_by(by_value);
                    let mut cumulative = 0.0;
                    let kept = order
                        .iter()
                        .position(|&i| {
                            cumulative += weight(i);
                            cumulative >= target
                        })
                        .map_or(order.len(), |n| n + 1);
                    order.truncate(kept);
                    break;
                }
                head = (head * 2).min(order.len());
            }
        } else if self.top_k > 0 {
            order.sort_unstable_by(by_value);
        }
        // (Without a top-p cut the order only has to be fixed: id order
        // spares sorting a whole vocabulary at every step.)
        let mass: Vec<f64> = order.iter().map(|&i| weight(i)).collect();
        let kept = mass.len();
        let kept_mass: f64 = mass[..kept].iter().sum();
        let target = self.uniform(index) * kept_mass;
        let mut cumulative = 0.0;
        for (n, m) in mass[..kept].iter().enumerate() {
            cumulative += m;
            if target < cumulative {
                return order[n] as usize;
            }
        }
        order[kept - 1] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_p: f32, top_k: usize) -> Sampling {
        Sampling {
            temperature,
            top_p,
            top_k,
            stream: Sampling::stream(7, &[b"case"]),
        }
    }

    /// Frequencies of `draws` draws from `row` under `s`.
    fn frequencies(s: &Sampling, row: &[f32], draws: usize) -> Vec<f64> {
        let mut counts = vec![0usize; row.len()];
        for i in 0..draws {
            counts[s.choose(row, i)] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    fn ln(p: &[f64]) -> Vec<f32> {
        p.iter().map(|p| p.ln() as f32).collect()
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (ids in another order): the
        // nucleus of 0.79 is {0.5, 0.3} (0.5 falls short, 0.8 reaches it),
        // drawn 5:3; of 0.5 the top token alone.
        let row = ln(&[0.15, 0.5, 0.05, 0.3]);
        let f = frequencies(&sampling(1.0, 0.79, 0), &row, 20_000);
        assert_eq!((f[0], f[2]), (0.0, 0.0), "{f:?}");
        assert!(
            (f[1] - 0.625).abs() < 0.015 && (f[3] - 0.375).abs() < 0.015,
            "{f:?}"
        );
        let f = frequencies(&sampling(1.0, 0.5, 0), &row, 1000);
        assert_eq!(f, [0.0, 1.0, 0.0, 0.0]);
        // Just over 0.8: the third token joins (0.5 + 0.3 + 0.15 = 0.95).
        let f = frequencies(&sampling(1.0, 0.81, 0), &row, 20_000);
        assert!(f[0] > 0.1 && f[2] == 0.0, "{f:?}");
    }

    #[test]
    fn top_k_and_temperature_reshape_the_distribution() {
        let row = ln(&[0.15, 0.5, 0.05, 0.3]);
        // top-k 1 is greedy whatever the draw.
        assert_eq!(
            frequencies(&sampling(1.0, 1.0, 1), &row, 500),
            [0.0, 1.0, 0.0, 0.0]
        );
        // top-k 2 with temperature 0.5: p ∝ p², 0.25 : 0.09.
        let f = frequencies(&sampling(0.5, 1.0, 2), &row, 20_000);
        let want = 0.25 / 0.34;
        assert!(
            (f[1] - want).abs() < 0.015 && f[0] == 0.0 && f[2] == 0.0,
            "{f:?}"
        );
        // Temperature 1, no cuts: the row's own probabilities.
        let f = frequencies(&sampling(1.0, 1.0, 0), &row, 40_000);
        for (got, want) in f.iter().zip([0.15, 0.5, 0.05, 0.3]) {
            assert!((got - want).abs() < 0.01, "{f:?}");
        }
    }

    #[test]
    fn draws_depend_on_the_stream_and_index_alone() {
        let a = Sampling::stream(1, &[b"record-1", b"0"]);
        assert_eq!(a, Sampling::stream(1, &[b"record-1", b"0"]));
        assert_ne!(a, Sampling::stream(2, &[b"record-1", b"0"]));
        assert_ne!(a, Sampling::stream(1, &[b"record-1", b"1"]));
        assert_ne!(
            Sampling::stream(1, &[b"ab", b"c"]),
            Sampling::stream(1, &[b"a", b"bc"])
        );
        let s = Sampling {
            stream: a,
            ..sampling(1.0, 1.0, 0)
        };
        let u: Vec<f64> = (0..10_000).map(|i| s.uniform(i)).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert_eq!(s.uniform(42), s.uniform(42));
    }

    #[test]
    fn the_nucleus_of_a_large_row_is_a_full_sorts() {
        // A 50,000-token row with a long tail: the kept set must be the
        // shortest prefix of the fully sorted candidates reaching top-p.
        let row: Vec<f32> = (0..50_000u32)
            .map(|i| -((i.wrapping_mul(2_654_435_761) % 10_007) as f32) / 700.0)
            .collect();
        for top_p in [0.3f32, 0.9, 0.999] {
            let s = sampling(1.0, top_p, 0);
            let mut sorted: Vec<u32> = (0..row.len() as u32).collect();
            sorted.sort_by(|a, b| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b)));
            let max = f64::from(row[sorted[0] as usize]);
            let w: Vec<f64> = sorted
                .iter()
                .map(|&i| (f64::from(row[i as usize]) - max).exp())
                .collect();
            let target = f64::from(top_p)
                * (0..row.len())
                    .map(|i| (f64::from(row[i]) - max).exp())
                    .sum::<f64>();
            let mut c = 0.0;
            let kept = w
                .iter()
                .position(|x| {
                    c += x;
                    c >= target
                })
                .unwrap()
                + 1;
            let nucleus: std::collections::HashSet<usize> =
                sorted[..kept].iter().map(|&i| i as usize).collect();
            assert!(
                kept > 64,
                "{top_p}: {kept} tokens, past the first selection"
            );
            for i in 0..300 {
                assert!(nucleus.contains(&s.choose(&row, i)), "{top_p}");
            }
        }
    }

    #[test]
    fn masked_tokens_are_never_drawn() {
        let row = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, -1.0];
        let f = frequencies(&sampling(2.0, 1.0, 0), &row, 2000);
        assert_eq!((f[0], f[2]), (0.0, 0.0));
        assert!(f[1] > f[3] && f[3] > 0.2);
    }
}
