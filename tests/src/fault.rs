//! Fault injection helpers: seeds, a small deterministic RNG, random-moment kills, round
//! counts for the default and soak tiers.
//!
//! Every randomised test takes its RNG from [`seeded`], which prints the seed (`IPC_SEED=<n>`
//! replays it) so a failure can be reproduced.

use std::time::Duration;

use crate::child::Child;

/// Whether the soak tier is on (`IPC_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("IPC_SOAK").is_ok_and(|v| v == "1")
}

/// Rounds for a test: `IPC_ROUNDS` if set, else `soak_rounds` under `IPC_SOAK=1`, else
/// `default`.
pub fn rounds(default: usize, soak_rounds: usize) -> usize {
    if let Some(n) = std::env::var("IPC_ROUNDS").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if soak() { soak_rounds } else { default }
}

/// splitmix64: tiny, deterministic, good enough to pick kill moments and sizes.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// An RNG from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// `true` with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A duration uniform in `lo..hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo_ns = u64::try_from(lo.as_nanos()).unwrap_or(u64::MAX);
        let hi_ns = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.range(lo_ns, hi_ns.max(lo_ns + 1)))
    }
}

/// A fresh random seed from the kernel.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: `b` is valid for writes of 8 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x1234_5678, |d| {
                u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
            })
    }
}

/// The RNG of a randomised test: `IPC_SEED` if set, else a random seed; the seed is printed
/// to stderr with the test's name so the run can be replayed.
pub fn seeded(test: &str) -> Rng {
    let seed =
        std::env::var("IPC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(random_seed);
    eprintln!("[ipc-testkit] {test}: seed {seed} (replay with IPC_SEED={seed})");
    Rng::new(seed)
}

/// Wait a random moment in `0..max` and SIGKILL the child; returns the delay used. (The wait
/// is the fault's timing, not synchronisation.)
pub fn kill_at_random(child: &Child, rng: &mut Rng, max: Duration) -> Duration {
    let delay = rng.duration(Duration::ZERO, max);
    std::thread::sleep(delay);
    child.kill();
    delay
}
