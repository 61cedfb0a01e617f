//! Scalar helpers shared by the SIMD backends: clamping, reading a u-coordinate into limbs and
//! writing a field element back as canonical bytes. Everything here runs in constant time:
//! the loops and indices depend only on public constants.

/// The low 51 bits of a limb.
pub(crate) const MASK51: u64 = (1 << 51) - 1;

/// The scalar as RFC 7748 uses it: the low three bits and the top bit cleared, bit 254 set.
pub(crate) fn clamp(mut scalar: [u8; 32]) -> [u8; 32] {
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    scalar
}

/// Bits `[offset, offset + width)` of the little-endian number `bytes` (`width` ≤ 57). A
/// u-coordinate's limbs never reach bit 255, which RFC 7748 masks.
pub(crate) fn bits(bytes: &[u8; 32], offset: usize, width: u32) -> u64 {
    let start = offset / 8;
    let end = (start + 8).min(32);
    let mut word = [0; 8];
    word[..end - start].copy_from_slice(&bytes[start..end]);
    (u64::from_le_bytes(word) >> (offset % 8)) & ((1 << width) - 1)
}

/// A u-coordinate in radix 2^51: five limbs of 51 bits (bit 255 dropped).
pub(crate) fn to_radix51(bytes: &[u8; 32]) -> [u64; 5] {
    let mut limbs = [0; 5];
    for (k, limb) in limbs.iter_mut().enumerate() {
        *limb = bits(bytes, 51 * k, 51);
    }
    limbs
}

/// One carry pass: every limb below 2^51 plus a small carry (limbs below 2^64 in).
fn weak_reduce(l: [u64; 5]) -> [u64; 5] {
    let c = l.map(|limb| limb >> 51);
    [
        (l[0] & MASK51) + 19 * c[4],
        (l[1] & MASK51) + c[0],
        (l[2] & MASK51) + c[1],
        (l[3] & MASK51) + c[2],
        (l[4] & MASK51) + c[3],
    ]
}

/// The canonical 32 bytes (the value mod 2^255 - 19) of a field element in radix 2^51 whose
/// limbs are below 2^60. As curve25519-dalek's `FieldElement51::to_bytes`.
pub(crate) fn from_radix51(limbs: [u64; 5]) -> [u8; 32] {
    let mut l = weak_reduce(weak_reduce(limbs));
    // q = 1 exactly when the value (now below 2p) is at least p, i.e. value + 19 ≥ 2^255
    let mut q = (l[0] + 19) >> 51;
    for limb in &l[1..] {
        q = (limb + q) >> 51;
    }
    // subtract p: add 19 and drop bit 255
    l[0] += 19 * q;
    for k in 0..4 {
        l[k + 1] += l[k] >> 51;
        l[k] &= MASK51;
    }
    l[4] &= MASK51;

    let mut out = [0; 32];
    let mut acc: u128 = 0;
    let mut acc_bits = 0;
    let mut pos = 0;
    for limb in l {
        acc |= u128::from(limb) << acc_bits;
        acc_bits += 51;
        while acc_bits >= 8 {
            out[pos] = acc as u8;
            acc >>= 8;
            acc_bits -= 8;
            pos += 1;
        }
    }
    // 255 bits: 31 whole bytes and 7 bits
    out[pos] = acc as u8;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix51_round_trip_reduces_mod_p() {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(from_radix51(to_radix51(&p)), [0; 32]);
        let mut p_plus_one = p;
        p_plus_one[0] = 0xee;
        let mut one = [0; 32];
        one[0] = 1;
        assert_eq!(from_radix51(to_radix51(&p_plus_one)), one);
        let top = [0xff; 32]; // 2^256 - 1 → bit 255 masked → 2^255 - 1 ≡ 18
        let mut eighteen = [0; 32];
        eighteen[0] = 18;
        assert_eq!(from_radix51(to_radix51(&top)), eighteen);
        let x: [u8; 32] = core::array::from_fn(|i| i as u8 * 3);
        assert_eq!(from_radix51(to_radix51(&x)), x);
    }
}
