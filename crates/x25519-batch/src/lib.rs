//! X25519 of one secret with many points at once.
//!
//! [`BatchSecret::agree_many`] computes `X25519(secret, point)` for every point of a slice,
//! eight at a time with AVX-512 IFMA, four at a time with AVX2, one at a time otherwise
//! (aws-lc, or x25519-dalek for the small-order points aws-lc refuses). Every backend returns
//! exactly x25519-dalek's bytes for every input: small-order points give all zeros (no error),
//! u-coordinates at or above p are reduced, and the top bit is ignored (RFC 7748). The tests
//! and the `x25519_batch` fuzz target check it against x25519-dalek.
//!
//! The backend is chosen once per process from the CPU ([`backend`]: IFMA or scalar);
//! [`BatchSecret::agree_many_with`] forces one, for tests and benchmarks.
//!
//! # Layout
//! - `ladder`: the Montgomery ladder and the inversion, shared by the SIMD backends;
//! - `ifma`: the field arithmetic of eight lanes with AVX-512 IFMA;
//! - `avx2`: the field arithmetic of four lanes with AVX2;
//! - `limbs`: clamping, and the conversions between bytes and limbs;
//! - `scalar`: one point at a time, with aws-lc and x25519-dalek.
//!
//! `unsafe` appears only in `ifma` and `avx2` (intrinsics that take pointers, and the calls into
//! `#[target_feature]` code, allowed by a token that only feature detection makes). The ladder
//! is constant time in the secret: the same instructions and memory accesses for every secret.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod ifma;
#[cfg(target_arch = "x86_64")]
mod ladder;
mod limbs;
mod scalar;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;
use zeroize::Zeroizing;

/// An implementation of X25519 over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One point at a time (aws-lc, x25519-dalek for small-order points).
    Scalar,
    /// Four points at a time, AVX2.
    Avx2,
    /// Eight points at a time, AVX-512F + AVX-512 IFMA.
    Avx512Ifma,
}

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Self; 3] = [Self::Scalar, Self::Avx2, Self::Avx512Ifma];

    /// Points computed together.
    pub fn lanes(self) -> usize {
        match self {
            Self::Scalar => 1,
            Self::Avx2 => 4,
            Self::Avx512Ifma => 8,
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => avx2::Avx2::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Ifma => ifma::Ifma::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The backend [`BatchSecret::agree_many`] uses, detected once: AVX-512 IFMA where the CPU has
/// it, otherwise scalar. AVX2 is never chosen by itself: four lanes of 32-bit multiplications
/// come out slower per point than aws-lc's scalar X25519 (64-bit `mulx` code), by about a fifth
/// on the AMD Zen 4 of the crate's bench; it stays available to
/// [`agree_many_with`](BatchSecret::agree_many_with).
pub fn backend() -> Backend {
    static DETECTED: OnceLock<Backend> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        if Backend::Avx512Ifma.is_available() {
            Backend::Avx512Ifma
        } else {
            Backend::Scalar
        }
    })
}

/// Points computed together by [`backend`].
pub fn lanes() -> usize {
    backend().lanes()
}

/// [`BatchSecret::agree_many_with`] was asked for a backend this CPU cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable(pub Backend);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this CPU cannot run the {:?} X25519 backend", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// An X25519 secret key, clamped (RFC 7748) for the SIMD ladders and loaded into aws-lc and
/// x25519-dalek for single points. Wiped when dropped.
pub struct BatchSecret {
    clamped: Zeroizing<[u8; 32]>,
    scalar: scalar::ScalarSecret,
}

impl BatchSecret {
    /// The key with these 32 secret bytes (any bytes: X25519 clamps them).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self {
            clamped: Zeroizing::new(limbs::clamp(*bytes)),
            scalar: scalar::ScalarSecret::new(&bytes),
        }
    }

    /// The matching public key, X25519 of the secret and the base point.
    pub fn public_key(&self) -> [u8; 32] {
        self.scalar.public_key()
    }

    /// X25519 of the secret and one point, on the scalar path.
    pub fn agree(&self, point: &[u8; 32]) -> [u8; 32] {
        self.scalar.agree(point)
    }

    /// X25519 of the secret and one point with x25519-dalek (the reference of the tests).
    pub fn agree_dalek(&self, point: &[u8; 32]) -> [u8; 32] {
        self.scalar.agree_dalek(point)
    }

    /// `out[i] = X25519(secret, points[i])` for every i, on the fastest backend ([`backend`]).
    ///
    /// # Panics
    /// If `out` and `points` differ in length.
    pub fn agree_many(&self, points: &[[u8; 32]], out: &mut [[u8; 32]]) {
        self.run(backend(), points, out);
    }

    /// [`agree_many`](Self::agree_many) on `backend`, or [`Unavailable`] if this CPU cannot run
    /// it.
    ///
    /// # Panics
    /// If `out` and `points` differ in length.
    pub fn agree_many_with(
        &self,
        backend: Backend,
        points: &[[u8; 32]],
        out: &mut [[u8; 32]],
    ) -> Result<(), Unavailable> {
        if !backend.is_available() {
            return Err(Unavailable(backend));
        }
        self.run(backend, points, out);
        Ok(())
    }

    /// Full chunks of the backend's lanes go through it; the rest one at a time, except that
    /// IFMA takes a remainder of [`IFMA_PADDED_FROM`] points or more as a chunk padded with
    /// zeros.
    fn run(&self, backend: Backend, points: &[[u8; 32]], out: &mut [[u8; 32]]) {
        assert_eq!(
            points.len(),
            out.len(),
            "agree_many: as many outputs as points"
        );
        let done = match backend {
            Backend::Scalar => 0,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => match avx2::Avx2::detect() {
                Some(avx2) => self.chunks(points, out, |p| avx2.agree(&self.clamped, p)),
                None => 0,
            },
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Ifma => match ifma::Ifma::detect() {
                Some(ifma) => {
                    let agree = |p: &[[u8; 32]; ifma::LANES]| ifma.agree(&self.clamped, p);
                    let done = self.chunks(points, out, agree);
                    if points.len() - done >= IFMA_PADDED_FROM {
                        pad(&points[done..], &mut out[done..], agree)
                    } else {
                        done
                    }
                }
                None => 0,
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => 0,
        };
        for (point, out) in points[done..].iter().zip(&mut out[done..]) {
            *out = self.scalar.agree(point);
        }
    }

    /// Runs `agree` on every full chunk of `N` points; returns how many points it did.
    #[cfg(target_arch = "x86_64")]
    fn chunks<const N: usize>(
        &self,
        points: &[[u8; 32]],
        out: &mut [[u8; 32]],
        agree: impl Fn(&[[u8; 32]; N]) -> [[u8; 32]; N],
    ) -> usize {
        let (chunks, _) = points.as_chunks::<N>();
        let (out_chunks, _) = out.as_chunks_mut::<N>();
        for (points, out) in chunks.iter().zip(out_chunks) {
            *out = agree(points);
        }
        chunks.len() * N
    }
}

/// From this many points, one IFMA chunk of eight (about 57 µs on the bench's machine) is
/// faster than scalar X25519 one point at a time (about 24 µs each).
#[cfg(target_arch = "x86_64")]
const IFMA_PADDED_FROM: usize = 3;

/// Runs `agree` on the fewer than `N` `points` padded with zeros, keeps their results; returns
/// how many points it did.
#[cfg(target_arch = "x86_64")]
fn pad<const N: usize>(
    points: &[[u8; 32]],
    out: &mut [[u8; 32]],
    agree: impl Fn(&[[u8; 32]; N]) -> [[u8; 32]; N],
) -> usize {
    let mut padded = [[0; 32]; N];
    padded[..points.len()].copy_from_slice(points);
    let results = agree(&padded);
    out.copy_from_slice(&results[..points.len()]);
    points.len()
}

impl std::fmt::Debug for BatchSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchSecret(..)")
    }
}
