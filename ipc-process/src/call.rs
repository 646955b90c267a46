//! Naming a function to a child: offsets from an anchor function, and the monomorphised
//! trampolines that decode arguments, call, catch a panic and encode the outcome.
//!
//! A spawned child runs the same executable (checked by device and inode before it runs
//! anything), so `anchor + offset` in the child is the function the parent named. Offsets
//! are only taken of functions in the executable itself (checked with `dladdr`): a shared
//! library may load at a different distance from the anchor in each process.
#![allow(unsafe_code)] // rebuilding the function pointers from their addresses

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Panic};
use crate::outcome::{Outcome, Reply};
use crate::sys;
use crate::transfer;
use crate::wire::{self, Call};

/// A fixed point in the executable that offsets are taken from.
#[inline(never)]
fn anchor() -> u32 {
    0x1bc0_0001_u32.wrapping_add(std::hint::black_box(0))
}

fn anchor_addr() -> usize {
    anchor as fn() -> u32 as usize
}

/// The executable's own object (load address, file) as dladdr sees it.
fn executable() -> &'static Option<(usize, String)> {
    static EXE: OnceLock<Option<(usize, String)>> = OnceLock::new();
    EXE.get_or_init(|| sys::object_of(anchor_addr()))
}

fn offset_of(addr: usize, object: &str) -> Result<i64, Error> {
    // Addresses already checked (dladdr walks the loader's tables: a microsecond or so, a
    // noticeable part of a task's round trip).
    thread_local! {
        static CHECKED: std::cell::RefCell<Vec<(usize, i64)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if let Some(off) = CHECKED.with(|c| c.borrow().iter().find(|e| e.0 == addr).map(|e| e.1)) {
        return Ok(off);
    }
    let off = check_offset(addr, object)?;
    CHECKED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 64 {
            c.remove(0);
        }
        c.push((addr, off));
    });
    Ok(off)
}

fn check_offset(addr: usize, object: &str) -> Result<i64, Error> {
    if let Some((base, exe)) = executable() {
        match sys::object_of(addr) {
            Some((b, _)) if b == *base => {}
            found => {
                return Err(Error::NotInExecutable {
                    object: object.to_owned(),
                    address: addr,
                    expected: exe.clone(),
                    found: found.map(|f| f.1).unwrap_or_else(|| "<unknown>".into()),
                });
            }
        }
    }
    let diff = i128::try_from(addr).unwrap_or(0) - i128::try_from(anchor_addr()).unwrap_or(0);
    i64::try_from(diff)
        .map_err(|_| Error::protocol("start", object, "function address out of range"))
}

fn address_of(offset: i64) -> usize {
    let a = i128::try_from(anchor_addr()).unwrap_or(0).saturating_add(i128::from(offset));
    usize::try_from(a).unwrap_or(0)
}

/// One call: arguments (with the fds of any handles among them) in, encoded reply out.
pub(crate) type RunOnce = fn(func: usize, args: &[u8], fds: Vec<OwnedFd>) -> Vec<u8>;
/// An initializer: `Err(message)` if it failed.
pub(crate) type RunInit = fn(func: usize, args: &[u8], fds: Vec<OwnedFd>) -> Result<(), String>;
/// A chunk of framed items.
pub(crate) type RunItems =
    fn(func: usize, items: &[u8], fds: Vec<OwnedFd>, sink: &mut ItemSink<'_>) -> ChunkEnd;

/// The call for `f`, run with the trampoline `run` (of type `T`).
pub(crate) fn marshal<T: Copy>(run: T, func: usize, object: &str) -> Result<Call, Error> {
    const { assert!(size_of::<T>() == size_of::<usize>()) };
    // SAFETY: `T` is a function pointer type the size of usize (asserted), so its bytes
    // are an address; reading them as usize is a plain copy.
    let run_addr = unsafe { std::mem::transmute_copy::<T, usize>(&run) };
    Ok(Call { run: offset_of(run_addr, object)?, func: offset_of(func, object)? })
}

/// The call of `f` as a single task.
pub(crate) fn once<A, O>(f: fn(A) -> O, object: &str) -> Result<Call, Error>
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
{
    marshal(run_once::<A, O> as RunOnce, f as usize, object)
}

/// The call of `f` as an initializer.
pub(crate) fn init<A, O>(f: fn(A) -> O, object: &str) -> Result<Call, Error>
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
    O::Error: std::fmt::Debug,
{
    marshal(run_init::<A, O> as RunInit, f as usize, object)
}

/// The call of `f` over chunks of items.
pub(crate) fn items<A, O>(f: fn(A) -> O, object: &str) -> Result<Call, Error>
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
{
    marshal(run_items::<A, O> as RunItems, f as usize, object)
}

/// In a child: the trampoline and function of `call`.
///
/// # Safety
/// `call` must come from our parent (or fork server) running the same executable, made by
/// [`marshal`] with a trampoline of type `T`.
pub(crate) unsafe fn resolve<T: Copy>(call: Call) -> (T, usize) {
    // SAFETY: the caller guarantees `call.run` is the offset of a `T` in this executable.
    let run = unsafe { sys::fn_from_addr::<T>(address_of(call.run)) };
    (run, address_of(call.func))
}

// ---- panics ----------------------------------------------------------------------------

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

/// Install (once per process) the panic hook that records a task's panic instead of
/// printing it; on threads not running a task it defers to the previous hook. Called in the
/// parent before any fork (so a forked child never takes the hook lock) and in spawned
/// children by `init`.
pub(crate) fn ensure_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let message = payload_text(info.payload());
                let location =
                    info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let bt = std::backtrace::Backtrace::capture();
                let backtrace = (bt.status() == std::backtrace::BacktraceStatus::Captured)
                    .then(|| bt.to_string());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(Panic { message, location, backtrace }));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Run `f`, turning a panic into its [`Panic`] record.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    CAPTURING.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    r.map_err(|payload| {
        LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| Panic {
            message: payload_text(payload.as_ref()),
            location: None,
            backtrace: None,
        })
    })
}

/// Append the encoded `reply` to `out`; if the value itself does not encode, a `Lost` reply
/// saying why (what was appended of the failed attempt is cut off first).
pub(crate) fn encode_reply<V: Serialize, E: Serialize>(reply: &Reply<V, E>, out: &mut Vec<u8>) {
    let mark = out.len();
    if let Err(e) = wire::encode_into(reply, out) {
        out.truncate(mark);
        let lost: Reply<(), ()> = Reply::Lost(format!("encode the task's result: {e}"));
        if wire::encode_into(&lost, out).is_err() {
            out.truncate(mark);
        }
    }
}

fn call_user<A, O: Outcome>(f: fn(A) -> O, a: A) -> Reply<O::Value, O::Error> {
    match catch(|| f(a).into_result()) {
        Ok(Ok(v)) => Reply::Ok(v),
        Ok(Err(e)) => Reply::Err(e),
        Err(p) => Reply::Panic(p),
    }
}

fn run_once<A, O>(func: usize, args: &[u8], fds: Vec<OwnedFd>) -> Vec<u8>
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
{
    // SAFETY: `func` was resolved from a call made by `once::<A, O>`, i.e. from a
    // `fn(A) -> O` of this executable.
    let f: fn(A) -> O = unsafe { sys::fn_from_addr(func) };
    let reply = match transfer::decode_with_fds::<A>(args, fds) {
        Ok(a) => call_user(f, a),
        Err(e) => Reply::Lost(format!("decode the task's arguments: {e}")),
    };
    let mut out = Vec::new();
    encode_reply(&reply, &mut out);
    out
}

fn run_init<A, O>(func: usize, args: &[u8], fds: Vec<OwnedFd>) -> Result<(), String>
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
    O::Error: std::fmt::Debug,
{
    // SAFETY: `func` was resolved from a call made by `init::<A, O>`.
    let f: fn(A) -> O = unsafe { sys::fn_from_addr(func) };
    match transfer::decode_with_fds::<A>(args, fds) {
        Ok(a) => match call_user(f, a) {
            Reply::Ok(_) => Ok(()),
            Reply::Err(e) => Err(format!("{e:?}")),
            Reply::Panic(p) => Err(p.to_string()),
            Reply::Lost(m) => Err(m),
        },
        Err(e) => Err(format!("decode the initializer's arguments: {e}")),
    }
}

/// How running a chunk ended.
pub(crate) enum ChunkEnd {
    /// Every item ran and its result was sent.
    Done,
    /// The connection failed (the parent is gone): stop.
    Disconnected,
}

/// Where a worker's results go: framed replies batched into one message, flushed when the
/// batch passes `flush_bytes` and at the end of the chunk; the progress word says which item
/// runs, so a death blames only that one.
pub(crate) struct ItemSink<'a> {
    pub(crate) out: Vec<u8>,
    pub(crate) pending: u32,
    pub(crate) seq: u32,
    pub(crate) flush_bytes: usize,
    pub(crate) timeouts: bool,
    pub(crate) progress: &'a crate::progress::Progress,
    pub(crate) conn: &'a mut ipc_pipe::Connection,
    pub(crate) header: Vec<u8>,
    /// When the last batch went out (checked every [`CLOCK_EVERY`] items).
    pub(crate) last_flush: std::time::Instant,
}

/// Results also go out when this much time passed since the last batch, so slow tasks
/// report steadily (progress bars move; a death loses little finished work).
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(5);
/// Items between looks at the clock (a clock read per item would cost more than a fast
/// task).
const CLOCK_EVERY: u32 = 16;

impl ItemSink<'_> {
    fn flush(&mut self) -> bool {
        if self.pending == 0 {
            return true;
        }
        let up = wire::Up::Results { seq: self.seq, count: self.pending };
        if wire::encode_header(&up, &mut self.header).is_err() {
            return false;
        }
        let parts = [std::io::IoSlice::new(&self.header), std::io::IoSlice::new(&self.out)];
        let ok = self.conn.send_vectored(&parts).is_ok();
        self.last_flush = std::time::Instant::now();
        self.out.clear();
        self.pending = 0;
        ok
    }
}

fn run_items<A, O>(
    func: usize,
    items: &[u8],
    fds: Vec<OwnedFd>,
    sink: &mut ItemSink<'_>,
) -> ChunkEnd
where
    A: Serialize + DeserializeOwned,
    O: Outcome,
{
    // SAFETY: `func` was resolved from a call made by `items::<A, O>`.
    let f: fn(A) -> O = unsafe { sys::fn_from_addr(func) };
    // Handles (fds) only ever come with a single-item chunk.
    let mut fds = Some(fds).filter(|f| !f.is_empty());
    for (i, item) in wire::items(items).enumerate() {
        sink.progress.start_item(u32::try_from(i).unwrap_or(u32::MAX), sink.timeouts);
        let decoded = item.map(|bytes| match fds.take() {
            Some(fds) => transfer::decode_with_fds::<A>(bytes, fds),
            None => postcard::from_bytes::<A>(bytes),
        });
        let reply = match decoded {
            Ok(decoded) => match decoded {
                Ok(a) => call_user(f, a),
                Err(e) => Reply::Lost(format!("decode the task's arguments: {e}")),
            },
            Err(e) => Reply::Lost(format!("bad chunk: {e}")),
        };
        let at = wire::begin_item(&mut sink.out);
        encode_reply(&reply, &mut sink.out);
        wire::finish_item(&mut sink.out, at);
        sink.pending = sink.pending.saturating_add(1);
        let due = sink.out.len() >= sink.flush_bytes
            || (sink.pending.is_multiple_of(CLOCK_EVERY)
                && sink.last_flush.elapsed() >= FLUSH_AFTER);
        if due && !sink.flush() {
            return ChunkEnd::Disconnected;
        }
    }
    if sink.flush() { ChunkEnd::Done } else { ChunkEnd::Disconnected }
}
