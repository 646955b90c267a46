//! [`Object`]: a segment that starts with the [header](crate::header), for objects whose
//! length is known only at run time (queues). [`Shared<T>`](crate::Shared) is the typed
//! form for fixed-size objects.
//!
//! The init protocol: the creator holds the segment's init lock (an OFD lock the kernel drops
//! if it dies) from before the file is sized until the header's state is READY (stored with
//! Release). An opener loads the state with Acquire; while it is not READY it waits, bounded,
//! as long as the init lock is held, and when it is not held the creator died mid-way:
//! `open` reports [`Error::NotInitialized`], `open_or_create` takes the init lock and
//! initialises the object again. No opener ever uses a header that is not READY.
#![allow(unsafe_code)] // raw copies into the header and body of an object nobody uses yet

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::crash;
use crate::error::{Error, Result};
use crate::header::{
    self, Body, HEADER_LEN, HEADER_VERSION, HeaderError, HeaderFields, INITIALISING, MAGIC,
    ObjectKind, READY,
};
use crate::segment::{Backoff, Pending, Shm, ShmOptions};

/// Names of the object types this process knows, by layout tag, for error messages: a header
/// records only the tag (a hash), so the found type can be named only if this process has
/// seen it. A fixed table written without locks (a fork never catches it half-locked).
mod kind_names {
    use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    const N: usize = 128;
    const CLAIMED: u64 = u64::MAX;
    static TAGS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
    static PTRS: [AtomicPtr<u8>; N] = [const { AtomicPtr::new(std::ptr::null_mut()) }; N];
    static LENS: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];

    pub(super) fn record(tag: u64, name: &'static str) {
        if tag == 0 || tag == CLAIMED {
            return;
        }
        for i in 0..N {
            // Acquire: pairs with the Release store of a tag below.
            let t = TAGS[i].load(Ordering::Acquire);
            if t == tag {
                return;
            }
            // Relaxed: the claim orders nothing; the Release store below publishes.
            if t == 0
                && TAGS[i]
                    .compare_exchange(0, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                // Relaxed: published by the Release store of the tag.
                PTRS[i].store(name.as_ptr().cast_mut(), Ordering::Relaxed);
                LENS[i].store(name.len(), Ordering::Relaxed);
                // Release: pairs with the Acquire loads in `lookup` and above.
                TAGS[i].store(tag, Ordering::Release);
                return;
            }
        }
    }

    pub(super) fn lookup(tag: u64) -> Option<&'static str> {
        for i in 0..N {
            // Acquire: pairs with the Release store in `record`: the name is visible.
            if TAGS[i].load(Ordering::Acquire) == tag && tag != 0 && tag != CLAIMED {
                // Relaxed: ordered by the Acquire load above.
                let (ptr, len) = (PTRS[i].load(Ordering::Relaxed), LENS[i].load(Ordering::Relaxed));
                // SAFETY: `ptr`/`len` were taken from a `&'static str` in `record` and published
                // before the tag: they describe valid UTF-8 that lives for ever.
                let bytes = unsafe { std::slice::from_raw_parts(ptr.cast_const(), len) };
                return std::str::from_utf8(bytes).ok();
            }
        }
        None
    }
}

/// The layout tag of an object type named `name` (see [`layout_tag`](crate::header::layout_tag)),
/// remembered so that a type mismatch found later can name the type instead of a hash.
pub fn named_tag(name: &'static str) -> u64 {
    let tag = header::layout_tag(name);
    kind_names::record(tag, name);
    tag
}

/// The name of the object type with layout `tag`, if this process has seen it.
pub fn kind_name(tag: u64) -> Option<&'static str> {
    kind_names::lookup(tag)
}

/// A segment holding one object behind a validated header. See the module docs.
#[derive(Debug)]
pub struct Object {
    shm: Shm,
    body: Body,
}

/// Writes the body of a new object: called with a pointer to `len` zeroed bytes, aligned
/// to the kind's alignment, that no other process reads until the header is READY.
pub type Init<'a> = &'a mut dyn FnMut(NonNull<u8>, usize);

fn incompatible(op: &'static str, shm: &Shm, source: HeaderError) -> Error {
    Error::Incompatible { op, name: shm.label().to_owned(), source }
}

fn plan(op: &'static str, name: &str, kind: &ObjectKind, body_len: usize) -> Result<Body> {
    header::plan(kind, body_len).ok_or(Error::InvalidLength {
        op,
        name: name.to_owned(),
        len: body_len,
    })
}

/// Write the header (state INITIALISING), the body, then publish READY with Release.
fn initialise(shm: &Shm, kind: &ObjectKind, body: Body, init: Init<'_>) -> Result<()> {
    let creator = crate::liveness::current().map(|o| o.get()).unwrap_or(0);
    let fields = HeaderFields {
        magic: MAGIC,
        header_version: HEADER_VERSION,
        state: INITIALISING,
        creator,
        layout_version: kind.version,
        layout_tag: kind.tag,
        total_len: shm.len() as u64,
        body_offset: body.offset as u64,
        body_len: body.len as u64,
        body_align: u32::try_from(kind.align).unwrap_or(u32::MAX),
        // The owner ids this object will hold mean something in our registry only.
        registry: if kind.owner_ids { crate::liveness::registry_id().unwrap_or(0) } else { 0 },
    };
    // A re-initialised segment may hold a dead creator's partial body: zero it first so the
    // initialiser always starts from the all-zero state.
    let zeros = vec![0u8; body.len.min(1 << 16)];
    let mut at = body.offset;
    let end = body.offset + body.len;
    while at < end {
        let n = (end - at).min(zeros.len());
        // SAFETY: the object is not built yet, so nothing in this process holds a reference
        // into its body (handles of other mappings write through other addresses, as peers).
        unsafe { shm.write_at_shared(at, zeros.get(..n).unwrap_or_default())? };
        at += n;
    }
    // SAFETY: as above; the header is only ever copied, apart from its state word, which no
    // thread of ours accesses before `attach` returns.
    unsafe { shm.write_at_shared(0, &header::encode(&fields))? };
    crash::point("object.init.header");
    // Offset is inside the mapping: body.offset <= shm.len() was planned from it.
    let ptr = NonNull::new(shm.as_ptr().as_ptr().wrapping_add(body.offset)).unwrap_or(shm.as_ptr());
    init(ptr, body.len);
    crash::point("object.init.body");
    // SAFETY: the state word is only ever accessed as this one atomic u32, by every process.
    let state = unsafe { shm.atomic_u32(header::STATE_OFFSET) }.ok_or_else(|| {
        incompatible("initialise", shm, HeaderError::TooShort { found: shm.len() })
    })?;
    // SYNC POINT. Release: publishes the header and body; pairs with the Acquire load of the
    // state in `attach`.
    state.store(READY, Ordering::Release);
    crash::point("object.init.ready");
    Ok(())
}

/// An object that stores owner ids, made under another liveness registry than ours, is
/// refused: its ids would be judged against the wrong leases (a live owner taken for dead).
fn check_registry(op: &'static str, shm: &Shm, kind: &ObjectKind, found: u32) -> Result<()> {
    if !kind.owner_ids || found == 0 {
        return Ok(());
    }
    match crate::liveness::registry_id() {
        Ok(ours) if ours != found => {
            Err(Error::ForeignRegistry { op, name: shm.label().to_owned(), found, ours })
        }
        // Ours, or none to compare with (no registry here: nothing of ours will judge ids).
        _ => Ok(()),
    }
}

/// Validate a header of a mapped segment, waiting (bounded) for a live initialiser. With
/// `reinit`, a segment whose initialiser died is initialised again.
fn attach(
    op: &'static str,
    shm: &Shm,
    kind: &ObjectKind,
    body_len: Option<usize>,
    timeout: std::time::Duration,
    mut reinit: Option<(usize, Init<'_>)>,
) -> Result<Body> {
    if shm.len() < HEADER_LEN {
        return Err(incompatible(op, shm, HeaderError::TooShort { found: shm.len() }));
    }
    // SAFETY: the state word is only ever accessed as this one atomic u32, by every process.
    let state = unsafe { shm.atomic_u32(header::STATE_OFFSET) }
        .ok_or_else(|| incompatible(op, shm, HeaderError::TooShort { found: shm.len() }))?;
    let mut backoff = Backoff::new(timeout);
    loop {
        // SYNC POINT. Acquire: pairs with the Release store of READY in `initialise`, so the
        // copy below sees the finished header and body.
        if state.load(Ordering::Acquire) == READY {
            let mut bytes = [0u8; HEADER_LEN];
            // SAFETY: nothing in this process writes the header once it is READY (only the
            // state word, atomically, which a copy may read stale); no object is built yet.
            unsafe { shm.read_at_shared(0, &mut bytes)? };
            let fields = header::decode(&bytes).map_err(|e| incompatible(op, shm, e))?;
            let body = header::validate(&fields, kind, body_len, shm.len())
                .map_err(|e| incompatible(op, shm, e))?;
            check_registry(op, shm, kind, fields.registry)?;
            return Ok(body);
        }
        if shm.init_busy()? {
            if !backoff.wait() {
                return Err(Error::InitTimeout {
                    op,
                    name: shm.label().to_owned(),
                    waited: timeout,
                });
            }
            continue;
        }
        // Not ready and nobody initialising. Re-check: it may have become ready just now.
        // Relaxed: the loop's Acquire load is the one that publishes.
        let now = state.load(Ordering::Relaxed);
        if now == READY {
            continue;
        }
        if now > READY {
            return Err(incompatible(op, shm, HeaderError::BadState { found: now }));
        }
        let Some((len, init)) = reinit.as_mut() else {
            let why = if now == 0 {
                "its header is all zero: it was never an object of this family (or its creator \
                 died before writing anything)"
            } else {
                "its creator died while initialising it"
            };
            return Err(Error::NotInitialized { op, name: shm.label().to_owned(), why });
        };
        if shm.try_init_lock()? {
            // Acquire: pairs with the creator's Release store of READY after the body.
            let result = if state.load(Ordering::Acquire) == READY {
                Ok(())
            } else {
                plan(op, shm.label(), kind, *len).and_then(|body| {
                    if body.offset + body.len != shm.len() {
                        return Err(Error::SizeMismatch {
                            op,
                            name: shm.label().to_owned(),
                            expected: body.offset + body.len,
                            found: shm.len(),
                        });
                    }
                    initialise(shm, kind, body, &mut **init)
                })
            };
            shm.unlock_init();
            result?;
        }
    }
}

impl Object {
    /// Create a named object of `kind` with a `body_len`-byte body written by `init`.
    ///
    /// # Errors
    /// As [`ShmOptions::create`], and [`Error::InvalidLength`] for an impossible layout.
    pub fn create(
        opts: &ShmOptions,
        name: &str,
        kind: ObjectKind,
        body_len: usize,
        init: Init<'_>,
    ) -> Result<Object> {
        let body = plan("create", name, &kind, body_len)?;
        let shm = Shm::create_impl(opts, name, body.offset + body.len, true)?;
        let result = initialise(&shm, &kind, body, init);
        shm.unlock_init();
        result?;
        Ok(Object { shm, body })
    }

    /// Open a named object of `kind`; `body_len` if the caller knows it.
    ///
    /// # Errors
    /// As [`ShmOptions::open`], [`Error::Incompatible`] for any header mismatch (expected and
    /// found values inside), [`Error::NotInitialized`] if its creator died mid-init.
    pub fn open(
        opts: &ShmOptions,
        name: &str,
        kind: ObjectKind,
        body_len: Option<usize>,
    ) -> Result<Object> {
        let shm = opts.open(name)?;
        let body = attach("open", &shm, &kind, body_len, opts.timeout(), None)?;
        Ok(Object { shm, body })
    }

    /// Open the object, or create it with `init` if there is none. Exactly one of many
    /// concurrent callers initialises it; a segment whose creator died mid-init is
    /// initialised again (under its init lock, so by one process).
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(
        opts: &ShmOptions,
        name: &str,
        kind: ObjectKind,
        body_len: usize,
        init: Init<'_>,
    ) -> Result<Object> {
        let body = plan("create", name, &kind, body_len)?;
        let total = body.offset + body.len;
        for _ in 0..64 {
            match Shm::create_impl(opts, name, total, true) {
                Ok(shm) => {
                    let result = initialise(&shm, &kind, body, init);
                    shm.unlock_init();
                    result?;
                    return Ok(Object { shm, body });
                }
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            let pending = match Pending::open(opts, name, "open") {
                Ok(p) => p,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let size = pending.wait_sized(opts, "open", Some(total))?;
            let shm = pending.map(size, "open")?;
            let body = attach(
                "open",
                &shm,
                &kind,
                Some(body_len),
                opts.timeout(),
                Some((body_len, init)),
            )?;
            return Ok(Object { shm, body });
        }
        Err(Error::io("open or create", name, std::io::Error::other("the name kept changing")))
    }

    /// An anonymous object (memfd) of `kind`, inherited across fork, passable as an fd.
    ///
    /// # Errors
    /// As [`ShmOptions::anonymous`].
    pub fn anonymous(
        opts: &ShmOptions,
        kind: ObjectKind,
        body_len: usize,
        init: Init<'_>,
    ) -> Result<Object> {
        let body = plan("create", "<anonymous>", &kind, body_len)?;
        let shm = opts.anonymous(body.offset + body.len)?;
        initialise(&shm, &kind, body, init)?;
        Ok(Object { shm, body })
    }

    /// Adopt a segment received from elsewhere (e.g. [`Shm::from_fd`]); its header must be
    /// READY and match `kind`.
    ///
    /// # Errors
    /// [`Error::Incompatible`], [`Error::NotInitialized`].
    pub fn from_shm(shm: Shm, kind: ObjectKind, body_len: Option<usize>) -> Result<Object> {
        let body = attach("map", &shm, &kind, body_len, std::time::Duration::ZERO, None)?;
        Ok(Object { shm, body })
    }

    /// The object's bytes: `body_len()` bytes at an address aligned to the kind's alignment.
    pub fn body(&self) -> NonNull<u8> {
        // body.offset + body.len <= shm.len() was validated.
        NonNull::new(self.shm.as_ptr().as_ptr().wrapping_add(self.body.offset))
            .unwrap_or(self.shm.as_ptr())
    }

    /// Length of the object's bytes.
    pub fn body_len(&self) -> usize {
        self.body.len
    }

    /// The underlying segment.
    pub fn shm(&self) -> &Shm {
        &self.shm
    }

    /// Give up the object, keeping the segment.
    pub fn into_shm(self) -> Shm {
        self.shm
    }
}
