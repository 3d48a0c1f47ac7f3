//! Hashcash-style proof of work (docs/protocol.md §3.1; spec "Get Proof of Work
//! Parameters"): solve on all cores, cancellable, with progress; verify; the
//! `{hash}:{value}:{nonce}` wire form.
//!
//! Pure computation (scoped threads, no I/O). The fixed part of the preimage fills
//! whole BLAKE2b blocks, so a solver compresses it once and each attempt costs a
//! single compression of the final block.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::Hash;
use crate::smimp::encoding::Id32;
use crate::smimp::transcript::{Purpose, Transcript};

/// The most zero bits a hash can have.
pub const MAX_ZERO_BITS: u32 = 256;
const BLOCK: usize = 128;
/// Attempts between checks of the stop flag and progress updates.
const BATCH: u64 = 1024;

/// Why a proof of work is refused or could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("the proof of work is not of the form hash:value:nonce in hex")]
    Malformed,
    #[error("the proof of work uses a nonce that was not issued for it")]
    NonceMismatch,
    #[error("the proof of work's hash does not match its inputs")]
    HashMismatch,
    #[error("the proof of work has {found} leading zero bits, {required} are required")]
    NotEnoughWork { required: u32, found: u32 },
    #[error("{0} zero bits are impossible (at most {MAX_ZERO_BITS})")]
    Impossible(u32),
    #[error("the proof of work was cancelled")]
    Cancelled,
}

/// What `get_pow_params` returns: the difficulty and the single-use nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowParams {
    pub zero_bits: u32,
    pub nonce: Id32,
}

/// The message size the issued difficulty covers (docs/protocol.md §3.1): a message
/// field of up to this many bytes needs the `zero_bits` of `get_pow_params`.
pub const POW_BASE_BYTES: usize = 1024 * 1024;

/// The difficulty a message of `message_bytes` (the decoded `message` field, the
/// ciphertext) must meet when `get_pow_params` issued `issued_bits`: one more zero
/// bit for each doubling above [`POW_BASE_BYTES`], so the work grows with the bytes
/// a sender makes the recipient's server store. An issued 0 (a whitelisted sender)
/// stays 0. Sender and server both compute it; the server checks it.
pub fn zero_bits_for_size(issued_bits: u32, message_bytes: usize) -> u32 {
    if issued_bits == 0 {
        return 0;
    }
    let mut extra = 0;
    let mut covered = POW_BASE_BYTES;
    while message_bytes > covered {
        extra += 1;
        covered = covered.saturating_mul(2);
    }
    issued_bits.saturating_add(extra).min(MAX_ZERO_BITS)
}

/// The message-specific inputs of the preimage.
#[derive(Debug, Clone, Copy)]
pub struct PowInput<'a> {
    pub login_token_hash: &'a Hash,
    pub message_field_hash: &'a Hash,
    pub recipient: &'a Address,
    pub message_type: &'a str,
}

/// A found solution: its wire form is `hex(hash):hex(value):hex(nonce)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowSolution {
    pub hash: Hash,
    pub value: Id32,
    pub nonce: Id32,
}

impl std::fmt::Display for PowSolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.hash, self.value, self.nonce)
    }
}

impl std::str::FromStr for PowSolution {
    type Err = PowError;
    fn from_str(text: &str) -> Result<Self, PowError> {
        let mut parts = text.split(':');
        let mut next = || parts.next().ok_or(PowError::Malformed);
        let (hash, value, nonce) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(PowError::Malformed);
        }
        Ok(Self {
            hash: hash.parse().map_err(|_| PowError::Malformed)?,
            value: value.parse().map_err(|_| PowError::Malformed)?,
            nonce: nonce.parse().map_err(|_| PowError::Malformed)?,
        })
    }
}

impl Serialize for PowSolution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PowSolution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The fixed part of the preimage, zero-padded to whole 128-byte blocks.
#[derive(Debug, Clone)]
pub struct Preimage {
    fixed: Vec<u8>,
    nonce: Id32,
}

impl Preimage {
    /// Builds the fixed part for one message and one issued nonce.
    pub fn new(input: &PowInput<'_>, nonce: &Id32) -> Self {
        let mut fixed = Transcript::new(Purpose::ProofOfWork)
            .field(input.login_token_hash.as_bytes())
            .field(input.message_field_hash.as_bytes())
            .field(input.recipient.as_str())
            .field(input.message_type)
            .field(nonce.as_bytes())
            .into_bytes();
        fixed.resize(fixed.len().div_ceil(BLOCK) * BLOCK, 0);
        Self { fixed, nonce: *nonce }
    }

    /// The fixed bytes (for vectors and benchmarks).
    pub fn fixed_bytes(&self) -> &[u8] {
        &self.fixed
    }

    /// The hash for one value, computed from scratch (the verifier's path).
    pub fn hash(&self, value: &Id32) -> Hash {
        let mut state = params().to_state();
        state.update(&self.fixed);
        state.update(value.as_bytes());
        to_hash(&state.finalize())
    }

    /// Checks a solution against the issued parameters.
    pub fn verify(&self, zero_bits: u32, solution: &PowSolution) -> Result<(), PowError> {
        if zero_bits > MAX_ZERO_BITS {
            return Err(PowError::Impossible(zero_bits));
        }
        if solution.nonce != self.nonce {
            return Err(PowError::NonceMismatch);
        }
        if self.hash(&solution.value) != solution.hash {
            return Err(PowError::HashMismatch);
        }
        let found = leading_zero_bits(&solution.hash);
        if found < zero_bits {
            return Err(PowError::NotEnoughWork { required: zero_bits, found });
        }
        Ok(())
    }

    /// Searches from `start`: the first 24 bytes of the value stay fixed and the last
    /// 8 count up as a big-endian integer, split across `threads` by stride. Stops
    /// early when `control.cancel` is set. With one thread the order is exactly the
    /// one the vectors record.
    pub fn solve(
        &self,
        zero_bits: u32,
        start: &Id32,
        threads: NonZeroUsize,
        control: &SolveControl,
    ) -> Result<PowSolution, PowError> {
        if zero_bits > MAX_ZERO_BITS {
            return Err(PowError::Impossible(zero_bits));
        }
        let mut state = params().to_state();
        state.update(&self.fixed);
        state.update(&start.0[..24]);
        let first = u64::from_be_bytes(start.0[24..].try_into().expect("8 bytes"));
        let step = threads.get() as u64;
        let found = Mutex::new(None);
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for lane in 0..step {
                let (state, found, done) = (&state, &found, &done);
                scope.spawn(move || {
                    let stop = || done.load(Ordering::Relaxed) || control.cancel.load(Ordering::Relaxed);
                    let hit = search(state, first.wrapping_add(lane), step, zero_bits, &control.attempts, stop);
                    if let Some(counter) = hit {
                        let mut slot = found.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert(counter);
                        done.store(true, Ordering::Relaxed);
                    }
                });
            }
        });
        let counter = found.into_inner().unwrap_or_else(|e| e.into_inner()).ok_or(PowError::Cancelled)?;
        let mut value = *start;
        value.0[24..].copy_from_slice(&counter.to_be_bytes());
        Ok(PowSolution { hash: self.hash(&value), value, nonce: self.nonce })
    }
}

/// Shared between a solver and whoever watches it: cancel it, read its progress.
#[derive(Debug, Default)]
pub struct SolveControl {
    pub cancel: AtomicBool,
    pub attempts: AtomicU64,
}

/// One lane of the search; returns the counter that met the target.
fn search(
    prefix: &blake2b_simd::State,
    mut counter: u64,
    step: u64,
    zero_bits: u32,
    attempts: &AtomicU64,
    stop: impl Fn() -> bool,
) -> Option<u64> {
    loop {
        for tried in 1..=BATCH {
            let mut state = prefix.clone();
            state.update(&counter.to_be_bytes());
            if meets(state.finalize().as_bytes(), zero_bits) {
                attempts.fetch_add(tried, Ordering::Relaxed);
                return Some(counter);
            }
            counter = counter.wrapping_add(step);
        }
        attempts.fetch_add(BATCH, Ordering::Relaxed);
        if stop() {
            return None;
        }
    }
}

fn params() -> blake2b_simd::Params {
    let mut params = blake2b_simd::Params::new();
    params.hash_length(32);
    params
}

fn to_hash(digest: &blake2b_simd::Hash) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_bytes());
    Hash(out)
}

/// Whether the first `zero_bits` bits of `hash` are zero.
fn meets(hash: &[u8], zero_bits: u32) -> bool {
    if zero_bits <= 64 {
        let head = u64::from_be_bytes(hash[..8].try_into().expect("hash has 32 bytes"));
        head.leading_zeros() >= zero_bits
    } else {
        leading_zero_bits_of(hash) >= zero_bits
    }
}

/// The number of leading zero bits, most significant bit of byte 0 first.
pub fn leading_zero_bits(hash: &Hash) -> u32 {
    leading_zero_bits_of(hash.as_bytes())
}

fn leading_zero_bits_of(bytes: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in bytes {
        bits += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::crypto::blake2b_256;

    #[test]
    fn difficulty_grows_one_bit_per_doubling_above_the_base_size() {
        let mib = 1024 * 1024;
        let cases = [
            (20, 0, 20),
            (20, mib, 20),
            (20, mib + 1, 21),
            (20, 2 * mib, 21),
            (20, 2 * mib + 1, 22),
            (20, 36 * mib, 26),
            (20, 48 * mib, 26),
            (0, 48 * mib, 0),
            (255, 4 * mib, MAX_ZERO_BITS),
        ];
        for (issued, size, required) in cases {
            assert_eq!(zero_bits_for_size(issued, size), required, "{issued} bits, {size} bytes");
        }
    }

    fn fixture() -> (Hash, Hash, Address) {
        (blake2b_256(b"token"), blake2b_256(b"ciphertext"), Address::parse("bob#example.org").unwrap())
    }

    fn one() -> NonZeroUsize {
        NonZeroUsize::new(1).unwrap()
    }

    #[test]
    fn the_fixed_part_fills_whole_blocks() {
        let (token, field, bob) = fixture();
        let input =
            PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &bob, message_type: "email" };
        let pre = Preimage::new(&input, &Id32([3; 32]));
        assert_eq!(pre.fixed_bytes().len() % BLOCK, 0);
        let mut whole = pre.fixed_bytes().to_vec();
        whole.extend_from_slice(&[9; 32]);
        assert_eq!(pre.hash(&Id32([9; 32])), blake2b_256(&whole));
    }

    #[test]
    fn solutions_verify_and_any_change_fails() {
        let (token, field, bob) = fixture();
        let input =
            PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &bob, message_type: "email" };
        let nonce = Id32([5; 32]);
        let pre = Preimage::new(&input, &nonce);
        let control = SolveControl::default();
        let solution = pre.solve(12, &Id32([0; 32]), NonZeroUsize::new(2).unwrap(), &control).unwrap();
        assert!(leading_zero_bits(&solution.hash) >= 12);
        assert!(control.attempts.load(Ordering::Relaxed) > 0);
        pre.verify(12, &solution).unwrap();
        let text = solution.to_string();
        assert_eq!(text.parse::<PowSolution>().unwrap(), solution);

        let other_nonce = Preimage::new(&input, &Id32([6; 32]));
        assert_eq!(other_nonce.verify(12, &solution), Err(PowError::NonceMismatch));
        let mut wrong_value = solution;
        wrong_value.value.0[0] ^= 1;
        assert_eq!(pre.verify(12, &wrong_value), Err(PowError::HashMismatch));
        let found = leading_zero_bits(&solution.hash);
        assert_eq!(pre.verify(found + 1, &solution), Err(PowError::NotEnoughWork { required: found + 1, found }));
        let other_type = PowInput { message_type: "short-message", ..input };
        assert_eq!(Preimage::new(&other_type, &nonce).verify(12, &solution), Err(PowError::HashMismatch));
        assert_eq!(pre.verify(257, &solution), Err(PowError::Impossible(257)));
    }

    #[test]
    fn zero_bits_accept_the_first_value_and_single_lane_order_is_sequential() {
        let (token, field, bob) = fixture();
        let input =
            PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &bob, message_type: "email" };
        let pre = Preimage::new(&input, &Id32([1; 32]));
        let start = Id32([0xee; 32]);
        let solution = pre.solve(0, &start, one(), &SolveControl::default()).unwrap();
        assert_eq!(solution.value, start);
        // Single lane: the first counter from `start` whose hash meets the target.
        let solution = pre.solve(8, &start, one(), &SolveControl::default()).unwrap();
        let mut value = start;
        let mut counter = u64::from_be_bytes(start.0[24..].try_into().unwrap());
        loop {
            value.0[24..].copy_from_slice(&counter.to_be_bytes());
            if leading_zero_bits(&pre.hash(&value)) >= 8 {
                break;
            }
            counter = counter.wrapping_add(1);
        }
        assert_eq!(solution.value, value);
    }

    #[test]
    fn a_cancelled_search_stops() {
        let (token, field, bob) = fixture();
        let input =
            PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &bob, message_type: "email" };
        let pre = Preimage::new(&input, &Id32([1; 32]));
        let control = SolveControl::default();
        control.cancel.store(true, Ordering::Relaxed);
        assert_eq!(pre.solve(200, &Id32([0; 32]), NonZeroUsize::new(2).unwrap(), &control), Err(PowError::Cancelled));
    }

    #[test]
    fn malformed_wire_forms_are_refused() {
        for bad in ["", "a:b:c", &format!("{0}:{0}", "00".repeat(32)), &format!("{0}:{0}:{0}:{0}", "00".repeat(32))] {
            assert_eq!(bad.parse::<PowSolution>(), Err(PowError::Malformed), "{bad}");
        }
    }

    #[test]
    fn leading_zero_bits_count_from_the_top() {
        let mut h = Hash([0xff; 32]);
        assert_eq!(leading_zero_bits(&h), 0);
        h.0[0] = 0x01;
        assert_eq!(leading_zero_bits(&h), 7);
        h.0[0] = 0;
        h.0[1] = 0x20;
        assert_eq!(leading_zero_bits(&h), 10);
        assert_eq!(leading_zero_bits(&Hash([0; 32])), 256);
        assert!(meets(&[0u8; 32], 100));
        assert!(!meets(&h.0, 11));
    }
}
