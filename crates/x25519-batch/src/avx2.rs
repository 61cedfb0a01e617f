//! Four ladders at once with AVX2: one field element per 64-bit lane of a 256-bit register,
//! ten limbs in radix 2^25.5 (26 and 25 bits alternately, as in ref10), multiplied 32 × 32 → 64
//! bits by `vpmuludq`.
//!
//! Bounds (`R`: 2^26 + 2^17 for an even limb, 2^25 + 2^16 for an odd one): a product's
//! column is at most ten terms of a limb (doubled when both indices are odd, below 2^27) times
//! a limb (×19 when the column wraps, below 2^31), so below 2^62; two carry passes leave every
//! limb below `R`. Sums and differences (`a + 2p - b`) are below 2^28, and one pass suffices.

use crate::ladder::ladder;
use crate::limbs::{bits, from_radix51};
use core::arch::x86_64::{
    __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_loadu_si256, _mm256_mul_epu32,
    _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_slli_epi64, _mm256_srli_epi64,
    _mm256_storeu_si256, _mm256_sub_epi64, _mm256_xor_si256,
};

/// Ladders per call.
pub(crate) const LANES: usize = 4;

/// Bit offset of limb k: ⌈25.5·k⌉.
const OFFSETS: [usize; 10] = [0, 26, 51, 77, 102, 128, 153, 179, 204, 230];

/// Proof that the CPU has AVX2: only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU has AVX2 (std caches the CPUID answer).
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Self(()))
    }

    /// X25519 of the clamped `scalar` with each of four points.
    pub(crate) fn agree(self, scalar: &[u8; 32], points: &[[u8; 32]; LANES]) -> [[u8; 32]; LANES] {
        // SAFETY: `self` exists only if `detect` found avx2 on this CPU, the target feature
        // `agree4` is compiled for.
        unsafe { agree4(scalar, points) }
    }
}

/// Ten limbs of four field elements.
#[derive(Clone, Copy)]
struct Fe([__m256i; 10]);

#[target_feature(enable = "avx2")]
fn agree4(scalar: &[u8; 32], points: &[[u8; 32]; LANES]) -> [[u8; 32]; LANES] {
    let mut columns = [[0u64; LANES]; 10];
    for (lane, point) in points.iter().enumerate() {
        for (k, column) in columns.iter_mut().enumerate() {
            column[lane] = bits(point, OFFSETS[k], width(k));
        }
    }
    let mut x1 = zero();
    for (limb, column) in x1.0.iter_mut().zip(&columns) {
        // SAFETY: `column` is 32 readable bytes; loadu has no alignment requirement.
        *limb = unsafe { _mm256_loadu_si256(column.as_ptr().cast()) };
    }

    let u = ladder(scalar, &x1);

    for (column, limb) in columns.iter_mut().zip(u.0) {
        // SAFETY: `column` is 32 writable bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(column.as_mut_ptr().cast(), limb) };
    }
    let mut out = [[0; 32]; LANES];
    for (lane, bytes) in out.iter_mut().enumerate() {
        // limbs 2k and 2k+1 make limb k of radix 2^51 (offsets 51k and 51k + 26)
        let mut radix51 = [0; 5];
        for (k, limb) in radix51.iter_mut().enumerate() {
            *limb = columns[2 * k][lane] + (columns[2 * k + 1][lane] << 26);
        }
        *bytes = from_radix51(radix51);
    }
    out
}

/// Bits of limb k.
const fn width(k: usize) -> u32 {
    if k.is_multiple_of(2) {
        26
    } else {
        25
    }
}

ladder!(#[target_feature(enable = "avx2")]);

#[target_feature(enable = "avx2")]
fn splat(x: u64) -> __m256i {
    _mm256_set1_epi64x(x as i64)
}

#[target_feature(enable = "avx2")]
fn zero() -> Fe {
    Fe([_mm256_setzero_si256(); 10])
}

#[target_feature(enable = "avx2")]
fn one() -> Fe {
    let mut r = zero();
    r.0[0] = splat(1);
    r
}

/// `19·x` for `x` below 2^59.
#[target_feature(enable = "avx2")]
fn times19(x: __m256i) -> __m256i {
    _mm256_add_epi64(
        x,
        _mm256_add_epi64(_mm256_slli_epi64::<1>(x), _mm256_slli_epi64::<4>(x)),
    )
}

/// One carry pass: each limb keeps its 26 or 25 bits and passes the rest up; the top limb's
/// carry comes back ×19.
#[target_feature(enable = "avx2")]
fn carry(h: [__m256i; 10]) -> [__m256i; 10] {
    let mask26 = splat((1 << 26) - 1);
    let mask25 = splat((1 << 25) - 1);
    let mut carries = [_mm256_setzero_si256(); 10];
    let mut r = h;
    for (k, (r, c)) in r.iter_mut().zip(carries.iter_mut()).enumerate() {
        if k.is_multiple_of(2) {
            *c = _mm256_srli_epi64::<26>(*r);
            *r = _mm256_and_si256(*r, mask26);
        } else {
            *c = _mm256_srli_epi64::<25>(*r);
            *r = _mm256_and_si256(*r, mask25);
        }
    }
    r[0] = _mm256_add_epi64(r[0], times19(carries[9]));
    for k in 1..10 {
        r[k] = _mm256_add_epi64(r[k], carries[k - 1]);
    }
    r
}

#[target_feature(enable = "avx2")]
fn add(a: &Fe, b: &Fe) -> Fe {
    let mut c = a.0;
    for (c, b) in c.iter_mut().zip(b.0) {
        *c = _mm256_add_epi64(*c, b);
    }
    Fe(carry(c))
}

/// `a + 2p - b`: 2p's limbs (2^27 - 38, then 2^26 - 2 and 2^27 - 2 alternately) exceed any
/// reduced limb.
#[target_feature(enable = "avx2")]
fn sub(a: &Fe, b: &Fe) -> Fe {
    let mut c = a.0;
    for (k, (c, b)) in c.iter_mut().zip(b.0).enumerate() {
        let two_p = match (k, k % 2) {
            (0, _) => (1 << 27) - 38,
            (_, 0) => (1 << 27) - 2,
            _ => (1 << 26) - 2,
        };
        *c = _mm256_sub_epi64(_mm256_add_epi64(*c, splat(two_p)), b);
    }
    Fe(carry(c))
}

#[target_feature(enable = "avx2")]
fn mul(f: &Fe, g: &Fe) -> Fe {
    let nineteen = splat(19);
    let mut g19 = g.0;
    for limb in &mut g19 {
        *limb = _mm256_mul_epu32(*limb, nineteen);
    }
    let mut f2 = f.0;
    for limb in &mut f2 {
        *limb = _mm256_add_epi64(*limb, *limb);
    }
    let (f, g) = (f.0, g.0);
    // column k gets f_i·g_j for i + j ≡ k (mod 10): ×2 when i and j are both odd (their
    // offsets add up to one more than the column's), ×19 when i + j ≥ 10 (2^255 ≡ 19); written
    // out (generated) so that every limb stays in a register
    let h = [
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[0], g[0]),
                        _mm256_mul_epu32(f2[1], g19[9]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[2], g19[8]),
                        _mm256_mul_epu32(f2[3], g19[7]),
                    ),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[4], g19[6]),
                        _mm256_mul_epu32(f2[5], g19[5]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[4]),
                        _mm256_mul_epu32(f2[7], g19[3]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[2]),
                _mm256_mul_epu32(f2[9], g19[1]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[1]), _mm256_mul_epu32(f[1], g[0])),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[2], g19[9]),
                        _mm256_mul_epu32(f[3], g19[8]),
                    ),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[4], g19[7]),
                        _mm256_mul_epu32(f[5], g19[6]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[5]),
                        _mm256_mul_epu32(f[7], g19[4]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[3]),
                _mm256_mul_epu32(f[9], g19[2]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[2]), _mm256_mul_epu32(f2[1], g[1])),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[2], g[0]),
                        _mm256_mul_epu32(f2[3], g19[9]),
                    ),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[4], g19[8]),
                        _mm256_mul_epu32(f2[5], g19[7]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[6]),
                        _mm256_mul_epu32(f2[7], g19[5]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[4]),
                _mm256_mul_epu32(f2[9], g19[3]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[3]), _mm256_mul_epu32(f[1], g[2])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[1]), _mm256_mul_epu32(f[3], g[0])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[4], g19[9]),
                        _mm256_mul_epu32(f[5], g19[8]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[7]),
                        _mm256_mul_epu32(f[7], g19[6]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[5]),
                _mm256_mul_epu32(f[9], g19[4]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[4]), _mm256_mul_epu32(f2[1], g[3])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[2]), _mm256_mul_epu32(f2[3], g[1])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[4], g[0]),
                        _mm256_mul_epu32(f2[5], g19[9]),
                    ),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[8]),
                        _mm256_mul_epu32(f2[7], g19[7]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[6]),
                _mm256_mul_epu32(f2[9], g19[5]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[5]), _mm256_mul_epu32(f[1], g[4])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[3]), _mm256_mul_epu32(f[3], g[2])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[4], g[1]), _mm256_mul_epu32(f[5], g[0])),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g19[9]),
                        _mm256_mul_epu32(f[7], g19[8]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[7]),
                _mm256_mul_epu32(f[9], g19[6]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[6]), _mm256_mul_epu32(f2[1], g[5])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[4]), _mm256_mul_epu32(f2[3], g[3])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[4], g[2]), _mm256_mul_epu32(f2[5], g[1])),
                    _mm256_add_epi64(
                        _mm256_mul_epu32(f[6], g[0]),
                        _mm256_mul_epu32(f2[7], g19[9]),
                    ),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[8]),
                _mm256_mul_epu32(f2[9], g19[7]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[7]), _mm256_mul_epu32(f[1], g[6])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[5]), _mm256_mul_epu32(f[3], g[4])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[4], g[3]), _mm256_mul_epu32(f[5], g[2])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[6], g[1]), _mm256_mul_epu32(f[7], g[0])),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g19[9]),
                _mm256_mul_epu32(f[9], g19[8]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[8]), _mm256_mul_epu32(f2[1], g[7])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[6]), _mm256_mul_epu32(f2[3], g[5])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[4], g[4]), _mm256_mul_epu32(f2[5], g[3])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[6], g[2]), _mm256_mul_epu32(f2[7], g[1])),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[8], g[0]),
                _mm256_mul_epu32(f2[9], g19[9]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[0], g[9]), _mm256_mul_epu32(f[1], g[8])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[2], g[7]), _mm256_mul_epu32(f[3], g[6])),
                ),
                _mm256_add_epi64(
                    _mm256_add_epi64(_mm256_mul_epu32(f[4], g[5]), _mm256_mul_epu32(f[5], g[4])),
                    _mm256_add_epi64(_mm256_mul_epu32(f[6], g[3]), _mm256_mul_epu32(f[7], g[2])),
                ),
            ),
            _mm256_add_epi64(_mm256_mul_epu32(f[8], g[1]), _mm256_mul_epu32(f[9], g[0])),
        ),
    ];
    Fe(carry(carry(h)))
}

/// `mul(f, f)` with the products f_i·f_j and f_j·f_i taken once, doubled.
#[target_feature(enable = "avx2")]
fn square(f: &Fe) -> Fe {
    let f = f.0;
    let (nineteen, thirty_eight) = (splat(19), splat(38));
    let mut f2 = f;
    let mut f19 = f;
    let mut f38 = f;
    for k in 0..10 {
        f2[k] = _mm256_add_epi64(f[k], f[k]);
        f19[k] = _mm256_mul_epu32(f[k], nineteen);
        f38[k] = _mm256_mul_epu32(f[k], thirty_eight);
    }
    // the coefficients of `mul`, ×2 off the diagonal (generated)
    let h = [
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_mul_epu32(f[0], f[0]),
                    _mm256_mul_epu32(f2[1], f38[9]),
                ),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[2], f19[8]),
                    _mm256_mul_epu32(f2[3], f38[7]),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f2[4], f19[6]),
                _mm256_mul_epu32(f2[5], f19[5]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[0], f[1]),
                    _mm256_mul_epu32(f2[2], f19[9]),
                ),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[3], f19[8]),
                    _mm256_mul_epu32(f2[4], f19[7]),
                ),
            ),
            _mm256_mul_epu32(f2[5], f19[6]),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(f2[0], f[2]), _mm256_mul_epu32(f2[1], f[1])),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[3], f38[9]),
                    _mm256_mul_epu32(f2[4], f19[8]),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f2[5], f38[7]),
                _mm256_mul_epu32(f[6], f19[6]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(f2[0], f[3]), _mm256_mul_epu32(f2[1], f[2])),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[4], f19[9]),
                    _mm256_mul_epu32(f2[5], f19[8]),
                ),
            ),
            _mm256_mul_epu32(f2[6], f19[7]),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[0], f[4]),
                    _mm256_mul_epu32(f2[1], f2[3]),
                ),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f[2], f[2]),
                    _mm256_mul_epu32(f2[5], f38[9]),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f2[6], f19[8]),
                _mm256_mul_epu32(f2[7], f19[7]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(f2[0], f[5]), _mm256_mul_epu32(f2[1], f[4])),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[2], f[3]),
                    _mm256_mul_epu32(f2[6], f19[9]),
                ),
            ),
            _mm256_mul_epu32(f2[7], f19[8]),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[0], f[6]),
                    _mm256_mul_epu32(f2[1], f2[5]),
                ),
                _mm256_add_epi64(_mm256_mul_epu32(f2[2], f[4]), _mm256_mul_epu32(f2[3], f[3])),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f2[7], f38[9]),
                _mm256_mul_epu32(f[8], f19[8]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(f2[0], f[7]), _mm256_mul_epu32(f2[1], f[6])),
                _mm256_add_epi64(_mm256_mul_epu32(f2[2], f[5]), _mm256_mul_epu32(f2[3], f[4])),
            ),
            _mm256_mul_epu32(f2[8], f19[9]),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[0], f[8]),
                    _mm256_mul_epu32(f2[1], f2[7]),
                ),
                _mm256_add_epi64(
                    _mm256_mul_epu32(f2[2], f[6]),
                    _mm256_mul_epu32(f2[3], f2[5]),
                ),
            ),
            _mm256_add_epi64(
                _mm256_mul_epu32(f[4], f[4]),
                _mm256_mul_epu32(f2[9], f19[9]),
            ),
        ),
        _mm256_add_epi64(
            _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epu32(f2[0], f[9]), _mm256_mul_epu32(f2[1], f[8])),
                _mm256_add_epi64(_mm256_mul_epu32(f2[2], f[7]), _mm256_mul_epu32(f2[3], f[6])),
            ),
            _mm256_mul_epu32(f2[4], f[5]),
        ),
    ];
    Fe(carry(carry(h)))
}

/// `121665·a` ((A - 2)/4 of Curve25519).
#[target_feature(enable = "avx2")]
fn mul_a24(a: &Fe) -> Fe {
    let a24 = splat(121_665);
    let mut h = a.0;
    for limb in &mut h {
        *limb = _mm256_mul_epu32(*limb, a24);
    }
    Fe(carry(carry(h)))
}

/// Swaps `a` and `b` where `mask` is all ones; leaves them where it is zero.
#[target_feature(enable = "avx2")]
fn cswap(mask: u64, a: &mut Fe, b: &mut Fe) {
    let mask = splat(mask);
    for (a, b) in a.0.iter_mut().zip(b.0.iter_mut()) {
        let t = _mm256_and_si256(mask, _mm256_xor_si256(*a, *b));
        *a = _mm256_xor_si256(*a, t);
        *b = _mm256_xor_si256(*b, t);
    }
}
