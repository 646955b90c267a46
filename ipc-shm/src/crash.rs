//! Named crash points for fault tests: `crash::point("queue.after_reserve")` kills the
//! process with SIGKILL at the n-th time it passes an armed point.
//!
//! Compiled in only with the `crashpoints` feature (every crate of the family forwards it);
//! without it [`point`] is an empty inline function. Arm a point with `IPC_CRASH=<name>:<nth>`
//! (or `<name>:<nth>:stop` to SIGSTOP instead, a creator that hangs mid-way) in the
//! environment of the process, or with [`arm`] (in a forked child, before the call). An
//! unarmed point costs one atomic load.

#[cfg(feature = "crashpoints")]
mod imp {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    static ANY: AtomicBool = AtomicBool::new(false);
    static ARMED: Mutex<Option<(String, u32, bool)>> = Mutex::new(None);
    /// Whether IPC_CRASH was read. Not a `Once`: a fork that caught another thread inside
    /// `call_once` would leave the child waiting for it forever. Reading twice is harmless.
    static ENV_READ: AtomicBool = AtomicBool::new(false);

    pub(super) fn arm(name: &str, nth: u32, stop: bool) {
        let mut armed = ARMED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *armed = Some((name.to_owned(), nth.max(1), stop));
        // Release: pairs with the Acquire load in `point`.
        ANY.store(true, Ordering::Release);
    }

    fn from_env() {
        // Relaxed: a flag that only saves repeated reads of the environment.
        if ENV_READ.swap(true, Ordering::Relaxed) {
            return;
        }
        {
            if let Ok(spec) = std::env::var("IPC_CRASH") {
                let (spec, stop) = match spec.strip_suffix(":stop") {
                    Some(rest) => (rest.to_owned(), true),
                    None => (spec, false),
                };
                if let Some((name, nth)) = spec.rsplit_once(':')
                    && let Ok(nth) = nth.parse()
                {
                    arm(name, nth, stop);
                }
            }
        }
    }

    pub(super) fn point(name: &str) {
        from_env();
        // Acquire: pairs with the Release store in `arm`.
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let mut armed = ARMED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((armed_name, left, stop)) = armed.as_mut()
            && armed_name == name
        {
            *left = left.saturating_sub(1);
            if *left == 0 {
                use rustix::process::{Signal, getpid, kill_process};
                let signal = if *stop { Signal::STOP } else { Signal::KILL };
                drop(armed);
                let _ = kill_process(getpid(), signal);
            }
        }
    }
}

/// Pass the crash point `name`: SIGKILL here if it is armed and this is the n-th pass.
#[inline]
pub fn point(name: &str) {
    #[cfg(feature = "crashpoints")]
    imp::point(name);
    #[cfg(not(feature = "crashpoints"))]
    let _ = name;
}

/// Arm crash point `name` to SIGKILL this process on its `nth` pass (1 = the first).
/// Without the `crashpoints` feature this does nothing.
pub fn arm(name: &str, nth: u32) {
    #[cfg(feature = "crashpoints")]
    imp::arm(name, nth, false);
    #[cfg(not(feature = "crashpoints"))]
    let _ = (name, nth);
}

/// Arm crash point `name` to SIGSTOP this process on its `nth` pass: a peer that hangs
/// (alive, holding whatever it holds) until it gets SIGCONT.
pub fn arm_stop(name: &str, nth: u32) {
    #[cfg(feature = "crashpoints")]
    imp::arm(name, nth, true);
    #[cfg(not(feature = "crashpoints"))]
    let _ = (name, nth);
}

/// Whether crash points are compiled in.
pub const ENABLED: bool = cfg!(feature = "crashpoints");

/// The crash points of ipc-shm, in the order a creator passes them.
pub const SHM_POINTS: &[&str] = &[
    "shm.create.opened",
    "shm.create.locked",
    "shm.create.chmod",
    "shm.create.sized",
    "shm.create.mapped",
    "object.init.header",
    "object.init.body",
    "object.init.ready",
];
