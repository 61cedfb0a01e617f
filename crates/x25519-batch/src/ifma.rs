//! Eight ladders at once with AVX-512 IFMA: one field element per 64-bit lane of a 512-bit
//! register, five limbs in radix 2^51.
//!
//! `vpmadd52{lo,hi}uq` multiply the low 52 bits of two lanes and add the low or high 52 bits of
//! the 104-bit product. Radix 2^51 (rather than 2^52) leaves a bit of headroom: a reduced limb
//! is below 2^51 + 2^15 < 2^52, so it is a valid multiplier input, and the wrap-around factor
//! is 19 (2^255 ≡ 19) instead of 608 (2^260 ≡ 608), so a product's columns fold without
//! overflowing 64 bits. The high half of `a_i·b_j` (weight 2^(51(i+j)+52)) goes to column
//! `i+j+1` doubled.
//!
//! Bounds (`R` = 2^51 + 2^15, the bound of a reduced limb): a product column gets at most 14
//! terms below 2^52 (lows once, highs twice), so below 2^56; folding the upper five columns
//! ×19 keeps them below 2^61; one carry pass leaves every limb below `R`.

use crate::ladder::ladder;
use crate::limbs::{from_radix51, to_radix51, MASK51};
use core::arch::x86_64::{
    __m512i, _mm512_add_epi64, _mm512_and_si512, _mm512_loadu_epi64, _mm512_madd52hi_epu64,
    _mm512_madd52lo_epu64, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64,
    _mm512_srli_epi64, _mm512_storeu_epi64, _mm512_sub_epi64, _mm512_xor_si512,
};

/// Ladders per call.
pub(crate) const LANES: usize = 8;

/// Proof that the CPU has AVX-512F and AVX-512 IFMA: only [`Ifma::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ifma(());

impl Ifma {
    /// `Some` when the CPU has the instructions (std caches the CPUID answer).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma"))
            .then_some(Self(()))
    }

    /// X25519 of the clamped `scalar` with each of eight points.
    pub(crate) fn agree(self, scalar: &[u8; 32], points: &[[u8; 32]; LANES]) -> [[u8; 32]; LANES] {
        // SAFETY: `self` exists only if `detect` found avx512f and avx512ifma on this CPU,
        // the target features `agree8` is compiled for.
        unsafe { agree8(scalar, points) }
    }
}

/// Five limbs of eight field elements.
#[derive(Clone, Copy)]
struct Fe([__m512i; 5]);

#[target_feature(enable = "avx512f,avx512ifma")]
fn agree8(scalar: &[u8; 32], points: &[[u8; 32]; LANES]) -> [[u8; 32]; LANES] {
    // limb k of every lane, then one register per limb
    let mut columns = [[0u64; LANES]; 5];
    for (lane, point) in points.iter().enumerate() {
        for (k, limb) in to_radix51(point).into_iter().enumerate() {
            columns[k][lane] = limb;
        }
    }
    let mut x1 = zero();
    for (limb, column) in x1.0.iter_mut().zip(&columns) {
        // SAFETY: `column` is 8 readable u64s; loadu has no alignment requirement.
        *limb = unsafe { _mm512_loadu_epi64(column.as_ptr().cast()) };
    }

    let u = ladder(scalar, &x1);

    for (column, limb) in columns.iter_mut().zip(u.0) {
        // SAFETY: `column` is 8 writable u64s; storeu has no alignment requirement.
        unsafe { _mm512_storeu_epi64(column.as_mut_ptr().cast(), limb) };
    }
    let mut out = [[0; 32]; LANES];
    for (lane, bytes) in out.iter_mut().enumerate() {
        *bytes = from_radix51(columns.map(|column| column[lane]));
    }
    out
}

ladder!(#[target_feature(enable = "avx512f,avx512ifma")]);

#[target_feature(enable = "avx512f,avx512ifma")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn zero() -> Fe {
    Fe([_mm512_setzero_si512(); 5])
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn one() -> Fe {
    let mut r = zero();
    r.0[0] = splat(1);
    r
}

/// `19·x` for `x` below 2^59.
#[target_feature(enable = "avx512f,avx512ifma")]
fn times19(x: __m512i) -> __m512i {
    _mm512_add_epi64(
        x,
        _mm512_add_epi64(_mm512_slli_epi64::<1>(x), _mm512_slli_epi64::<4>(x)),
    )
}

/// One carry pass over limbs below 2^61: every limb ends below `R`.
#[target_feature(enable = "avx512f,avx512ifma")]
fn reduce(c: [__m512i; 5]) -> Fe {
    let mask = splat(MASK51);
    let carry = [
        _mm512_srli_epi64::<51>(c[0]),
        _mm512_srli_epi64::<51>(c[1]),
        _mm512_srli_epi64::<51>(c[2]),
        _mm512_srli_epi64::<51>(c[3]),
        _mm512_srli_epi64::<51>(c[4]),
    ];
    Fe([
        _mm512_add_epi64(_mm512_and_si512(c[0], mask), times19(carry[4])),
        _mm512_add_epi64(_mm512_and_si512(c[1], mask), carry[0]),
        _mm512_add_epi64(_mm512_and_si512(c[2], mask), carry[1]),
        _mm512_add_epi64(_mm512_and_si512(c[3], mask), carry[2]),
        _mm512_add_epi64(_mm512_and_si512(c[4], mask), carry[3]),
    ])
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn add(a: &Fe, b: &Fe) -> Fe {
    let mut c = a.0;
    for (c, b) in c.iter_mut().zip(b.0) {
        *c = _mm512_add_epi64(*c, b);
    }
    reduce(c)
}

/// `a + 2p - b`: 2p's limbs (2^52 - 38, then 2^52 - 2) exceed any reduced limb.
#[target_feature(enable = "avx512f,avx512ifma")]
fn sub(a: &Fe, b: &Fe) -> Fe {
    let mut c = a.0;
    for (k, (c, b)) in c.iter_mut().zip(b.0).enumerate() {
        let two_p = if k == 0 {
            (1 << 52) - 38
        } else {
            (1 << 52) - 2
        };
        *c = _mm512_sub_epi64(_mm512_add_epi64(*c, splat(two_p)), b);
    }
    reduce(c)
}

/// Folds the ten columns of a product (column k of weight 2^(51k)) into five and reduces.
#[target_feature(enable = "avx512f,avx512ifma")]
fn fold(lo: [__m512i; 10], hi: [__m512i; 10]) -> Fe {
    let mut c = [_mm512_setzero_si512(); 10];
    for (c, (lo, hi)) in c.iter_mut().zip(lo.into_iter().zip(hi)) {
        *c = _mm512_add_epi64(lo, _mm512_slli_epi64::<1>(hi));
    }
    reduce([
        _mm512_add_epi64(c[0], times19(c[5])),
        _mm512_add_epi64(c[1], times19(c[6])),
        _mm512_add_epi64(c[2], times19(c[7])),
        _mm512_add_epi64(c[3], times19(c[8])),
        _mm512_add_epi64(c[4], times19(c[9])),
    ])
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn mul(a: &Fe, b: &Fe) -> Fe {
    let z = _mm512_setzero_si512();
    let mut lo = [z; 10];
    let mut hi = [z; 10];
    for (i, &ai) in a.0.iter().enumerate() {
        for (j, &bj) in b.0.iter().enumerate() {
            lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], ai, bj);
            hi[i + j + 1] = _mm512_madd52hi_epu64(hi[i + j + 1], ai, bj);
        }
    }
    fold(lo, hi)
}

/// `mul(a, a)` with the products a_i·a_j and a_j·a_i taken once, doubled.
#[target_feature(enable = "avx512f,avx512ifma")]
fn square(a: &Fe) -> Fe {
    let z = _mm512_setzero_si512();
    let (mut lo, mut hi) = ([z; 10], [z; 10]);
    let (mut lo2, mut hi2) = ([z; 10], [z; 10]);
    for (i, &ai) in a.0.iter().enumerate() {
        lo[2 * i] = _mm512_madd52lo_epu64(lo[2 * i], ai, ai);
        hi[2 * i + 1] = _mm512_madd52hi_epu64(hi[2 * i + 1], ai, ai);
        for (j, &aj) in a.0.iter().enumerate().skip(i + 1) {
            lo2[i + j] = _mm512_madd52lo_epu64(lo2[i + j], ai, aj);
            hi2[i + j + 1] = _mm512_madd52hi_epu64(hi2[i + j + 1], ai, aj);
        }
    }
    for k in 0..10 {
        lo[k] = _mm512_add_epi64(lo[k], _mm512_slli_epi64::<1>(lo2[k]));
        hi[k] = _mm512_add_epi64(hi[k], _mm512_slli_epi64::<1>(hi2[k]));
    }
    fold(lo, hi)
}

/// `121665·a` ((A - 2)/4 of Curve25519).
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_a24(a: &Fe) -> Fe {
    let z = _mm512_setzero_si512();
    let a24 = splat(121_665);
    let mut lo = [z; 10];
    let mut hi = [z; 10];
    for (k, &ak) in a.0.iter().enumerate() {
        lo[k] = _mm512_madd52lo_epu64(z, ak, a24);
        hi[k + 1] = _mm512_madd52hi_epu64(z, ak, a24);
    }
    fold(lo, hi)
}

/// Swaps `a` and `b` where `mask` is all ones; leaves them where it is zero.
#[target_feature(enable = "avx512f,avx512ifma")]
fn cswap(mask: u64, a: &mut Fe, b: &mut Fe) {
    let mask = splat(mask);
    for (a, b) in a.0.iter_mut().zip(b.0.iter_mut()) {
        let t = _mm512_and_si512(mask, _mm512_xor_si512(*a, *b));
        *a = _mm512_xor_si512(*a, t);
        *b = _mm512_xor_si512(*b, t);
    }
}
