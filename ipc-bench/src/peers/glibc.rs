//! glibc peers through libc: a process-shared (and robust) pthread mutex and a
//! process-shared `sem_t`, placed in an anonymous shared segment inherited by `fork`.
#![allow(unsafe_code)] // pthread_mutex_* and sem_* on memory inside a shared mapping

use std::hint::black_box;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ipc_shm::Shm;

use crate::floors::with_second_thread;
use crate::harness::{
    Ctx, Fail, Initiator, Outcome, anon, contended_procs, pin, ping_pong, time_ops, word,
};
use crate::lockbench::{BenchLock, handoff, recovery};

fn errno_fail(what: &str, rc: i32) -> Fail {
    Fail::Error(format!("{what}: {}", std::io::Error::from_raw_os_error(rc)))
}

/// A pthread mutex living in a shared segment.
#[derive(Debug, Clone, Copy)]
pub struct PMutex<'a> {
    ptr: NonNull<libc::pthread_mutex_t>,
    _shm: PhantomData<&'a Shm>,
}

impl<'a> PMutex<'a> {
    /// Initialise a process-shared mutex (robust if asked) at the start of `shm`.
    pub fn init(shm: &'a Shm, robust: bool) -> Result<PMutex<'a>, Fail> {
        if shm.len() < size_of::<libc::pthread_mutex_t>() {
            return Err(Fail::Error("segment too small for a pthread mutex".into()));
        }
        #[allow(clippy::cast_ptr_alignment)] // the mapping is page-aligned
        let ptr = shm.as_ptr().cast::<libc::pthread_mutex_t>();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a valid out-pointer for pthread_mutexattr_init.
        let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
        if rc != 0 {
            return Err(errno_fail("pthread_mutexattr_init", rc));
        }
        // SAFETY: `attr` was initialised above.
        let rc = unsafe {
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
        };
        if rc != 0 {
            return Err(errno_fail("pthread_mutexattr_setpshared", rc));
        }
        if robust {
            // SAFETY: `attr` was initialised above.
            let rc = unsafe {
                libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)
            };
            if rc != 0 {
                return Err(errno_fail("pthread_mutexattr_setrobust", rc));
            }
        }
        // SAFETY: `ptr` points at writable shared memory large enough for the mutex (checked)
        // and suitably aligned (page-aligned mapping); `attr` is initialised.
        let rc = unsafe { libc::pthread_mutex_init(ptr.as_ptr(), attr.as_ptr()) };
        // SAFETY: `attr` is initialised and no longer needed.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        if rc != 0 {
            return Err(errno_fail("pthread_mutex_init", rc));
        }
        Ok(PMutex { ptr, _shm: PhantomData })
    }
}

impl BenchLock for PMutex<'_> {
    fn with(&self, f: &mut dyn FnMut() -> Result<(), Fail>) -> Result<bool, Fail> {
        let died = self.lock()?;
        let r = f();
        self.unlock()?;
        r.map(|()| died)
    }
}

impl PMutex<'_> {
    /// Lock; `Ok(true)` when the previous owner died (made consistent, held).
    fn lock(&self) -> Result<bool, Fail> {
        // SAFETY: the mutex was initialised by `init` and its segment outlives `self`.
        match unsafe { libc::pthread_mutex_lock(self.ptr.as_ptr()) } {
            0 => Ok(false),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD hands it over); mark it consistent.
                let rc = unsafe { libc::pthread_mutex_consistent(self.ptr.as_ptr()) };
                if rc != 0 {
                    return Err(errno_fail("pthread_mutex_consistent", rc));
                }
                Ok(true)
            }
            rc => Err(errno_fail("pthread_mutex_lock", rc)),
        }
    }

    /// Unlock (only by the holder).
    fn unlock(&self) -> Result<(), Fail> {
        // SAFETY: called only by the thread that holds the mutex.
        match unsafe { libc::pthread_mutex_unlock(self.ptr.as_ptr()) } {
            0 => Ok(()),
            rc => Err(errno_fail("pthread_mutex_unlock", rc)),
        }
    }
}

fn locked_increment(m: &PMutex<'_>, counter: &AtomicU32) -> Result<(), Fail> {
    m.lock()?;
    // Relaxed: guarded by the mutex.
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    m.unlock()
}

fn mutex_op(ctx: &Ctx, robust: bool) -> Outcome {
    let shm = anon(4096)?;
    let counter = word(&shm, 1024)?;
    let m = PMutex::init(&shm, robust)?;
    pin(Some(0))?;
    with_second_thread(|| time_ops(ctx, 0, || locked_increment(&m, counter)))
}

/// pthread mutex, PTHREAD_PROCESS_SHARED, uncontended.
pub fn pshared_op(ctx: &Ctx) -> Outcome {
    mutex_op(ctx, false)
}

/// pthread mutex, pshared + robust, uncontended.
pub fn robust_op(ctx: &Ctx) -> Outcome {
    mutex_op(ctx, true)
}

fn contended(ctx: &Ctx, robust: bool) -> Outcome {
    let shm = anon(4096)?;
    let counter = word(&shm, 1024)?;
    let m = PMutex::init(&shm, robust)?;
    contended_procs(ctx, move || locked_increment(&m, counter))
}

/// pthread pshared + robust, two processes.
pub fn robust_contended(ctx: &Ctx) -> Outcome {
    contended(ctx, true)
}

/// pthread pshared, two processes.
pub fn pshared_contended(ctx: &Ctx) -> Outcome {
    contended(ctx, false)
}

/// pthread robust handoff to a parked waiter in another process.
pub fn robust_handoff(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let m = PMutex::init(&shm, true)?;
    handoff(ctx, m)
}

/// pthread robust: owner SIGKILLed, the parked waiter gets EOWNERDEAD.
pub fn robust_recovery(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let m = PMutex::init(&shm, true)?;
    recovery(ctx, m)
}

/// A process-shared `sem_t` in a shared segment.
#[derive(Clone, Copy)]
struct Sem<'a> {
    ptr: NonNull<libc::sem_t>,
    _shm: PhantomData<&'a Shm>,
}

impl<'a> Sem<'a> {
    fn init(shm: &'a Shm, offset: usize, value: u32) -> Result<Sem<'a>, Fail> {
        if !offset.is_multiple_of(64) || offset + size_of::<libc::sem_t>() > shm.len() {
            return Err(Fail::Error("bad sem_t offset".into()));
        }
        #[allow(clippy::cast_ptr_alignment)] // 64-aligned offset in a page-aligned mapping
        let ptr = shm.as_ptr().cast::<u8>().as_ptr().wrapping_add(offset).cast::<libc::sem_t>();
        let ptr = NonNull::new(ptr).ok_or_else(|| Fail::Error("null sem_t".into()))?;
        // SAFETY: in bounds (checked), aligned, writable shared memory; pshared = 1.
        if unsafe { libc::sem_init(ptr.as_ptr(), 1, value) } != 0 {
            return Err(Fail::Error(format!("sem_init: {}", std::io::Error::last_os_error())));
        }
        Ok(Sem { ptr, _shm: PhantomData })
    }

    fn post(&self) -> Result<(), Fail> {
        // SAFETY: initialised by `init`; the segment outlives `self`.
        if unsafe { libc::sem_post(self.ptr.as_ptr()) } != 0 {
            return Err(Fail::Error(format!("sem_post: {}", std::io::Error::last_os_error())));
        }
        Ok(())
    }

    fn wait(&self) -> Result<(), Fail> {
        loop {
            // SAFETY: initialised by `init`; the segment outlives `self`.
            if unsafe { libc::sem_wait(self.ptr.as_ptr()) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Fail::Error(format!("sem_wait: {e}")));
            }
        }
    }

    /// Wait with a deadline (sem_timedwait takes CLOCK_REALTIME).
    fn wait_until(&self, deadline: Instant) -> Result<(), Fail> {
        let left = deadline.saturating_duration_since(Instant::now());
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let mut sec = now.tv_sec + left.as_secs() as i64;
        let mut nsec = now.tv_nsec + i64::from(left.subsec_nanos());
        if nsec >= 1_000_000_000 {
            nsec -= 1_000_000_000;
            sec += 1;
        }
        let ts = libc::timespec { tv_sec: sec, tv_nsec: nsec };
        loop {
            // SAFETY: initialised by `init`; `ts` is a valid timespec.
            if unsafe { libc::sem_timedwait(self.ptr.as_ptr(), &raw const ts) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Fail::Error(format!("sem_timedwait: {e}")));
            }
        }
    }
}

/// sem_t pshared, `sem_wait` + `sem_post`, uncontended.
pub fn sem_op(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let s = Sem::init(&shm, 0, 1)?;
    pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            s.wait()?;
            black_box(&s);
            s.post()
        })
    })
}

struct SemInit<'a> {
    there: Sem<'a>,
    back: Sem<'a>,
    stop: &'a AtomicU32,
}

impl Initiator for SemInit<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.there.post()?;
        self.back.wait()
    }

    fn stop(&mut self) {
        // Release: pairs with the echo's Acquire load after its wait.
        self.stop.store(1, Ordering::Release);
        let _ = self.there.post();
    }
}

/// sem_t ping-pong between two processes (one semaphore per direction).
pub fn sem_rtt(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let (there, back) = (Sem::init(&shm, 0, 0)?, Sem::init(&shm, 128, 0)?);
    let stop = word(&shm, 1024)?;
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        loop {
            there.wait_until(deadline)?;
            // Acquire: pairs with the Release store in stop().
            if stop.load(Ordering::Acquire) != 0 {
                return Ok(());
            }
            back.post()?;
        }
    };
    ping_pong(ctx, 0, echo, SemInit { there, back, stop })
}
