//! Proof-of-work hash rate: the real solver on one core and on all cores, against
//! the raw single-core BLAKE2b rate for a preimage of the same size (the baseline
//! docs/performance.md divides by). Results are attempts (hashes) per second.
//! Then whole solves at 16, 20 and 24 zero bits on all cores, as a sender waits for
//! them: mean wall time per solve, from fresh starting values (each solve's attempts
//! vary geometrically around 2^bits, so the mean needs many samples at 16 bits and a
//! bounded few at 24, where one solve takes seconds).

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::blake2b_256;
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::pow::{PowInput, Preimage, SolveControl};

/// Attempts each measured unit stands for.
const UNIT: u64 = 1 << 16;
/// Difficulty of each measured solve: about 2^16 attempts on average.
const ZERO_BITS: u32 = 16;

fn preimage() -> Preimage {
    let token = blake2b_256(b"bench token");
    let field = blake2b_256(b"bench ciphertext");
    let recipient = Address::parse("bob#example.org").expect("fixed address");
    let input =
        PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &recipient, message_type: "email" };
    Preimage::new(&input, &Id32([7; 32]))
}

/// Runs whole solves from fresh starting values until at least `iters * UNIT`
/// attempts were made, and returns the time scaled to exactly `iters * UNIT` attempts.
fn solve_for(pre: &Preimage, threads: NonZeroUsize, iters: u64, seed: &mut u64) -> Duration {
    let target = iters * UNIT;
    let (mut attempts, mut elapsed) = (0u64, Duration::ZERO);
    while attempts < target {
        *seed += 1;
        let mut start = Id32([0; 32]);
        start.0[..8].copy_from_slice(&seed.to_be_bytes());
        let control = SolveControl::default();
        let began = Instant::now();
        black_box(pre.solve(ZERO_BITS, &start, threads, &control).expect("not cancelled"));
        elapsed += began.elapsed();
        attempts += control.attempts.load(Ordering::Relaxed);
    }
    elapsed.mul_f64(target as f64 / attempts as f64)
}

fn pow(c: &mut Criterion) {
    let pre = preimage();
    let whole_len = pre.fixed_bytes().len() + 32;
    let mut group = c.benchmark_group("pow");
    group.sample_size(20).measurement_time(Duration::from_secs(6));

    group.throughput(Throughput::Elements(1));
    let whole = vec![0x5a; whole_len];
    group.bench_function(format!("raw_blake2b_{whole_len}_bytes"), |b| b.iter(|| blake2b_256(black_box(&whole))));

    group.throughput(Throughput::Elements(UNIT));
    let mut seed = 0;
    group.bench_function("solver_1_core", |b| {
        b.iter_custom(|iters| solve_for(&pre, NonZeroUsize::MIN, iters, &mut seed))
    });
    let cores = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    group.bench_function(format!("solver_{cores}_cores"), |b| {
        b.iter_custom(|iters| solve_for(&pre, cores, iters, &mut seed))
    });
    group.finish();
}

/// Mean time of whole solves at `bits` on all cores, each from a new starting value.
fn solve_time(c: &mut Criterion) {
    let pre = preimage();
    let cores = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let mut group = c.benchmark_group("pow_solve");
    let mut seed = 1 << 40;
    for (bits, samples, seconds) in [(16, 100, 5), (20, 20, 10), (24, 10, 30)] {
        // Flat: every sample the same number of solves (at 24 bits, one), not 1, 2, … n.
        group.sample_size(samples).measurement_time(Duration::from_secs(seconds)).sampling_mode(SamplingMode::Flat);
        group.bench_function(format!("{bits}_bits_{cores}_cores"), |b| {
            b.iter_custom(|iters| {
                let began = Instant::now();
                for _ in 0..iters {
                    seed += 1;
                    let mut start = Id32([0; 32]);
                    start.0[..8].copy_from_slice(&u64::to_be_bytes(seed));
                    black_box(pre.solve(bits, &start, cores, &SolveControl::default()).expect("not cancelled"));
                }
                began.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pow, solve_time);
criterion_main!(benches);
