//! The Montgomery ladder of RFC 7748 (section 5) and the inversion, written once for every
//! SIMD backend. A backend module defines its field element `Fe` and the functions `zero`,
//! `one`, `add`, `sub`, `mul`, `square`, `mul_a24` (× 121665) and `cswap` (a masked swap),
//! then expands [`ladder!`] with its `#[target_feature]` attribute; each lane of `Fe` runs its
//! own ladder, all with the same scalar.
//!
//! Constant time in the scalar: the loop and the memory indices depend only on the bit position;
//! the scalar's bits only make the all-zeros or all-ones mask of the swap.

macro_rules! ladder {
    ($(#[$attr:meta])*) => {
        /// X25519 of the clamped `scalar` with each lane's u-coordinate `x1`: the u of the
        /// result, `x2 · z2^(p-2)` (zero when `z2` is).
        $(#[$attr])*
        fn ladder(scalar: &[u8; 32], x1: &Fe) -> Fe {
            let mut x2 = one();
            let mut z2 = zero();
            let mut x3 = *x1;
            let mut z3 = one();
            let mut swap = 0u64;
            // the clamped scalar has bit 255 clear
            for t in (0..255).rev() {
                let bit = u64::from((scalar[t / 8] >> (t % 8)) & 1);
                swap ^= bit;
                let mask = 0u64.wrapping_sub(swap);
                cswap(mask, &mut x2, &mut x3);
                cswap(mask, &mut z2, &mut z3);
                swap = bit;

                let a = add(&x2, &z2);
                let aa = square(&a);
                let b = sub(&x2, &z2);
                let bb = square(&b);
                let e = sub(&aa, &bb);
                let c = add(&x3, &z3);
                let d = sub(&x3, &z3);
                let da = mul(&d, &a);
                let cb = mul(&c, &b);
                x3 = square(&add(&da, &cb));
                z3 = mul(x1, &square(&sub(&da, &cb)));
                x2 = mul(&aa, &bb);
                z2 = mul(&e, &add(&aa, &mul_a24(&e)));
            }
            let mask = 0u64.wrapping_sub(swap);
            cswap(mask, &mut x2, &mut x3);
            cswap(mask, &mut z2, &mut z3);
            mul(&x2, &invert(&z2))
        }

        /// `a` squared `n` times.
        $(#[$attr])*
        fn square_n(a: &Fe, n: u32) -> Fe {
            let mut r = square(a);
            for _ in 1..n {
                r = square(&r);
            }
            r
        }

        /// `z^(p-2)`, the inverse of `z` (and zero for zero), by the fixed addition chain of
        /// curve25519-donna / ref10: 254 squarings and 11 multiplications.
        $(#[$attr])*
        fn invert(z: &Fe) -> Fe {
            let z2 = square(z);
            let z9 = mul(&square_n(&z2, 2), z);
            let z11 = mul(&z9, &z2);
            let z_5_0 = mul(&square(&z11), &z9);
            let z_10_0 = mul(&square_n(&z_5_0, 5), &z_5_0);
            let z_20_0 = mul(&square_n(&z_10_0, 10), &z_10_0);
            let z_40_0 = mul(&square_n(&z_20_0, 20), &z_20_0);
            let z_50_0 = mul(&square_n(&z_40_0, 10), &z_10_0);
            let z_100_0 = mul(&square_n(&z_50_0, 50), &z_50_0);
            let z_200_0 = mul(&square_n(&z_100_0, 100), &z_100_0);
            let z_250_0 = mul(&square_n(&z_200_0, 50), &z_50_0);
            // 2^255 - 32 + 11 = p - 2
            mul(&square_n(&z_250_0, 5), &z11)
        }
    };
}

pub(crate) use ladder;
