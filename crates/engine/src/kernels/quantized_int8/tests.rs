//! Every path against the portable loop (bit for bit) and the loop against
//! candle's dequantized weights.

use std::borrow::Cow;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::Device;

use super::gemm::gemm_with;
use super::q4_0x8;
use super::*;

/// `n` weight rows of `k` values in `dtype`: random bytes (every pattern a
/// file may hold, Q8_0's -128 included) with finite f16 scales of either sign.
fn weight_rows(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out: Vec<u8> = (0..n * row_bytes(dtype, k)).map(|_| next() as u8).collect();
    let (unit, scales): (usize, &[usize]) = match dtype {
        GgmlDType::Q8_0 => (34, &[0]),
        GgmlDType::Q4_0 => (18, &[0]),
        GgmlDType::Q6K => (210, &[208]),
        _ => (144, &[0, 2]),
    };
    for block in out.chunks_exact_mut(unit) {
        for &at in scales {
            let scale = half::f16::from_f32((next() % 2000) as f32 / 1e5 - 0.01);
            block[at..at + 2].copy_from_slice(&scale.to_bits().to_le_bytes());
        }
    }
    out
}

fn activations(m: usize, k: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| ((i * 7919 % 1009) as f32 - 504.0) * 0.013 * if i % 97 == 0 { 40.0 } else { 1.0 })
        .collect()
}

/// The independent definition: candle's dequantized weights against the
/// quantized activations (`q * d`), summed in f64; and the sum of the
/// terms' magnitudes, the scale of f32 rounding.
fn reference(
    dtype: GgmlDType,
    w: &[u8],
    (n, k): (usize, usize),
    x: &QuantizedRows,
    m: usize,
) -> Vec<(f64, f64)> {
    let storage = QStorage::from_data(Cow::Borrowed(w), &Device::Cpu, dtype).unwrap();
    let dense = QTensor::new(storage, (n, k))
        .unwrap()
        .dequantize(&Device::Cpu)
        .unwrap();
    let dense: Vec<f32> = dense.flatten_all().unwrap().to_vec1().unwrap();
    let mut out = Vec::new();
    for j in 0..n {
        for r in 0..m {
            let terms = (0..k).map(|c| {
                let i = r * x.blocks + c / QK;
                dense[j * k + c] as f64 * x.q[i].0[c % QK] as f64 * x.d[i] as f64
            });
            out.push(terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs())));
        }
    }
    out
}

#[test]
fn quantized_activations_round_like_ggml() {
    let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.5) * 0.25).collect();
    let rows = QuantizedRows::with_scheme(&x, 32, Scheme::Q8_0);
    assert_eq!((rows.blocks, rows.rows()), (1, 2));
    for (i, values) in x.chunks_exact(QK).enumerate() {
        let (q, d) = (rows.q[i].0, rows.d[i]);
        let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(d, half::f16::from_f32(amax / 127.0).to_f32());
        for (&qi, &v) in q.iter().zip(values) {
            assert_eq!(qi as f32, (v * (127.0 / amax)).round_ties_even(), "{v}");
        }
        assert_eq!(rows.lo[i], q[..16].iter().map(|&v| v as i32).sum::<i32>());
        assert_eq!(rows.hi[i], q[16..].iter().map(|&v| v as i32).sum::<i32>());
        assert!(
            q.iter().any(|&v| v.abs() == 127),
            "the largest value maps to 127"
        );
    }
    // Ties go to even, as _mm256_round_ps rounds: 2.5 -> 2 with amax 127.
    let mut tie = [0f32; 32];
    (tie[0], tie[1]) = (127.0, 2.5);
    assert_eq!(
        QuantizedRows::with_scheme(&tie, 32, Scheme::Q8_0).q[0].0[1],
        2
    );
    let zeros = QuantizedRows::with_scheme(&[0.0; 32], 32, Scheme::Q8_0);
    assert_eq!((zeros.d[0], zeros.q[0].0, zeros.lo[0]), (0.0, [0; 32], 0));
}

/// ggml's `quantize_row_q8_K_ref` transliterated: the scale from the first
/// value of largest magnitude, with its sign; `nearest_int` as its float trick.
fn ggml_q8_k(x: &[f32]) -> Vec<(f32, [i8; 256])> {
    let nearest_int = |f: f32| (((f + 12582912.0).to_bits() & 0x007f_ffff) as i32) - 0x0040_0000;
    x.chunks_exact(256)
        .map(|block| {
            let (mut max, mut amax) = (0f32, 0f32);
            for &v in block {
                if v.abs() > amax {
                    (amax, max) = (v.abs(), v);
                }
            }
            let mut q = [0i8; 256];
            if amax == 0.0 {
                return (0.0, q);
            }
            let iscale = -127.0 / max;
            for (q, &v) in q.iter_mut().zip(block) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            (1.0 / iscale, q)
        })
        .collect()
}

#[test]
fn k_quant_activations_round_like_ggml_q8_k() {
    // Two rows of two super-blocks: a positive and a negative extreme, ties
    // (x * iscale at k + 0.5), a repeated extreme of either sign, zeros.
    let mut x: Vec<f32> = (0..1024)
        .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 0.01)
        .collect();
    x[300] = 12.7;
    x[301] = -12.7;
    for (i, v) in x[512..768].iter_mut().enumerate() {
        *v = if i == 3 {
            -127.0
        } else {
            (i % 64) as f32 - 31.5
        };
    }
    x[768..].fill(0.0);
    let rows = QuantizedRows::with_scheme(&x, 512, Scheme::Q8K);
    assert_eq!((rows.blocks, rows.rows()), (16, 2));
    for (s, (d, q)) in ggml_q8_k(&x).into_iter().enumerate() {
        for c in 0..8 {
            let i = s * 8 + c;
            assert_eq!(rows.d[i].to_bits(), d.to_bits(), "super-block {s}");
            assert_eq!(rows.q[i].0, q[c * 32..][..32], "super-block {s}, block {c}");
            let half = |h: &[i8]| h.iter().map(|&v| v as i32).sum::<i32>();
            assert_eq!(
                (rows.lo[i], rows.hi[i]),
                (half(&q[c * 32..][..16]), half(&q[c * 32 + 16..][..16]))
            );
        }
    }
    // The second super-block's first extreme is +12.7: the scale is negative.
    assert!(rows.d[8] < 0.0 && rows.q[9].0[300 - 256 - 32] == -127);
    // The types' schemes: llama.cpp's vec_dot_type of each.
    assert_eq!(Scheme::of(GgmlDType::Q4K), Scheme::Q8K);
    assert_eq!(Scheme::of(GgmlDType::Q6K), Scheme::Q8K);
    assert_eq!(Scheme::of(GgmlDType::Q4_0), Scheme::Q8_0);
}

#[test]
#[should_panic(expected = "activations for Q4K")]
fn a_k_quant_refuses_q8_0_activations() {
    let w = weight_rows(GgmlDType::Q4K, 1, 256, 1);
    let x = QuantizedRows::with_scheme(&activations(1, 256), 256, Scheme::Q8_0);
    rows_with(Path::Portable, GgmlDType::Q4K, &w, 144, &x, &mut [0.0]);
}

#[test]
fn every_path_computes_the_fixed_order_to_the_bit_and_the_definition() {
    let mut ran = vec![];
    // (blocks, activation rows, weight rows) per type.
    type Shapes = &'static [(usize, usize, usize)];
    let cases: [(GgmlDType, Shapes); 4] = [
        (
            GgmlDType::Q8_0,
            &[(32, 1, 9), (13, 3, 5), (7, 2, 4), (96, 4, 3)],
        ),
        (
            GgmlDType::Q4_0,
            &[(32, 1, 9), (13, 3, 5), (7, 2, 4), (96, 4, 3)],
        ),
        (GgmlDType::Q6K, &[(8, 1, 5), (32, 3, 4), (24, 2, 3)]),
        (GgmlDType::Q4K, &[(8, 1, 5), (32, 3, 4), (24, 2, 3)]),
    ];
    for (dtype, shapes) in cases {
        // Block counts with and without a tail after the groups of eight.
        for &(blocks, m, n) in shapes {
            let k = blocks * QK;
            let w = weight_rows(dtype, n, k, (blocks * 31 + m) as u64);
            let x = QuantizedRows::for_weight(dtype, &activations(m, k), k);
            let bytes = row_bytes(dtype, k);
            let mut portable = vec![0f32; n * m];
            rows_with(Path::Portable, dtype, &w, bytes, &x, &mut portable);
            for (i, (exact, magnitude)) in
                reference(dtype, &w, (n, k), &x, m).into_iter().enumerate()
            {
                let got = portable[i] as f64;
                assert!(
                    (got - exact).abs() <= 1e-5 * magnitude.max(1e-3),
                    "{dtype:?} {blocks} blocks, output {i}: {got} vs {exact}"
                );
            }
            for p in [Path::Avx2, Path::Vnni] {
                let available = match p {
                    Path::Vnni => super::super::simd::has_avx512_vnni(),
                    _ => super::super::simd::has_avx2(),
                };
                if !available {
                    continue;
                }
                ran.push(p);
                let mut out = vec![0f32; n * m];
                rows_with(p, dtype, &w, bytes, &x, &mut out);
                let same = out
                    .iter()
                    .zip(&portable)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{p:?} {dtype:?} {blocks} blocks: {out:?} vs {portable:?}"
                );
            }
        }
    }
    ran.sort();
    ran.dedup();
    eprintln!(
        "integer paths checked: portable, {ran:?} (widest here: {:?})",
        path()
    );
    for p in [Path::Avx2, Path::Vnni] {
        if !ran.contains(&p) {
            eprintln!("skipped {p:?}: this CPU (or ALIGNTDS_CPU) lacks it");
        }
    }
}

/// The GEMM's tiles give the row kernels' bits for any number of activation
/// rows (micro-tile tails) and weight rows (a short last tile, several tasks).
#[test]
fn the_gemm_gives_the_row_kernels_bits() {
    for dtype in [
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q6K,
        GgmlDType::Q4K,
    ] {
        for &(blocks, m, n) in &[
            (8, 1, 16),
            (16, 13, 37),
            (24, 40, 5),
            (9 * 8, 9, 33),
            (8, 6, 83),
            // Q4_0 repacked: a task of four tiles, then half a tile.
            (16, 20, 72),
        ] {
            let k = blocks * QK;
            let w = weight_rows(dtype, n, k, (blocks + 7 * m + n) as u64);
            let both = RowsByScheme::new(&activations(m, k), k, [dtype]);
            let x = both.get(dtype);
            let weight = Weight {
                dtype,
                data: &w,
                n,
                tiled: false,
            };
            let plain = gemm_with(Path::Portable, &[weight], &both).pop().unwrap();
            // The portable fallback is the row kernel, transposed.
            let mut rows_out = vec![0f32; n * m.min(MAX_ROWS)];
            let first = x.slice_rows(0, m.min(MAX_ROWS));
            rows_with(
                Path::Portable,
                dtype,
                &w,
                row_bytes(dtype, k),
                &first,
                &mut rows_out,
            );
            for (j, column) in rows_out.chunks_exact(first.rows()).enumerate() {
                for (r, v) in column.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        plain[r * n + j].to_bits(),
                        "{dtype:?} ({r}, {j})"
                    );
                }
            }
            // Repacked Q4_0 (the layout `q8` loads) through every path too.
            let tiles = (dtype == GgmlDType::Q4_0 && q4_0x8::repacks(n))
                .then(|| q4_0x8::repack(&w, n, blocks));
            let tiled = tiles.as_ref().map(|t| Weight {
                dtype,
                data: t,
                n,
                tiled: true,
            });
            for p in [Path::Portable, Path::Avx2, Path::Vnni] {
                let mut got = gemm_with(p, &[weight, weight], &both);
                if let Some(t) = tiled {
                    got.extend(gemm_with(p, &[t, weight], &both));
                }
                for out in got {
                    let same = out
                        .iter()
                        .zip(&plain)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{p:?} {dtype:?} blocks {blocks} m {m} n {n}");
                }
            }
        }
    }
    eprintln!(
        "GEMM tiles checked: {}",
        if gemm_is_fast() {
            "VNNI"
        } else {
            "none (row kernels only)"
        }
    );
}

/// Q4_0 repacked eight rows at a time gives the row-major kernels' bits on
/// every path, for any number of activation rows and chunk tails.
#[test]
fn repacked_q4_0_tiles_give_the_row_kernels_bits() {
    for &(blocks, m, n) in &[(32, 1, 16), (13, 3, 8), (7, 2, 24), (96, 4, 8), (9, 1, 8)] {
        let k = blocks * QK;
        let w = weight_rows(GgmlDType::Q4_0, n, k, (blocks * 17 + m) as u64);
        let x = QuantizedRows::for_weight(GgmlDType::Q4_0, &activations(m, k), k);
        let bytes = row_bytes(GgmlDType::Q4_0, k);
        let mut rows = vec![0f32; n * m];
        rows_with(Path::Portable, GgmlDType::Q4_0, &w, bytes, &x, &mut rows);
        let tiles = q4_0x8::repack(&w, n, blocks);
        // A fused tensor split on load goes back to rows first.
        assert_eq!(q4_0x8::untile(&tiles, n, blocks), w);
        for (j, row) in w.chunks_exact(bytes).enumerate() {
            let tile = &tiles[j / 8 * blocks * q4_0x8::CHUNK..];
            for b in 0..blocks {
                assert_eq!(q4_0x8::block(tile, b, j % 8), row[b * 18..][..18]);
            }
        }
        for p in [Path::Portable, Path::Avx2, Path::Vnni] {
            let mut out = vec![0f32; n * m];
            q4_0x8::tiles_with(p, &tiles, &x, &mut out);
            let same = out
                .iter()
                .zip(&rows)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{p:?} {blocks} blocks, {m} rows: {out:?} vs {rows:?}");
        }
    }
}

/// Not a test: one thread's products from cache-resident Q4_0 rows, row-major
/// against repacked (`cargo test --release -p aligntds-engine repacked_speed
/// -- --ignored --nocapture`).
#[test]
#[ignore]
fn repacked_speed() {
    for (n, k) in [(64usize, 2048usize), (64, 8192), (4096, 2048)] {
        let blocks = k / QK;
        let w = weight_rows(GgmlDType::Q4_0, n, k, 7);
        let x = QuantizedRows::for_weight(GgmlDType::Q4_0, &activations(1, k), k);
        let bytes = row_bytes(GgmlDType::Q4_0, k);
        let tiles = q4_0x8::repack(&w, n, blocks);
        let mut out = vec![0f32; n];
        let reps = (200_000_000 / w.len()).max(3);
        let time = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        f();
                    }
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let a = time(&mut || rows(GgmlDType::Q4_0, &w, bytes, &x, &mut out));
        let b = time(&mut || q4_0x8::tiles(&tiles, &x, &mut out));
        let gb = (w.len() * reps) as f64 / 1e9;
        eprintln!(
            "{n}x{k}: row-major {:.1} GB/s, repacked {:.1} GB/s",
            gb / a,
            gb / b
        );
    }
}
