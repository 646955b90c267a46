//! [`Shared<T>`]: one typed object in shared memory behind the header, and the [`ShmSafe`]
//! marker that says which types may live there.
#![allow(unsafe_code)] // the &T view of the mapping, and the ShmSafe impls

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::error::Result;
use crate::header::ObjectKind;
use crate::object::Object;
use crate::segment::{Shm, ShmOptions};

/// Types that may live in shared memory and be viewed as `&Self` by many processes at once.
///
/// # Safety
/// Implementors guarantee all of:
/// 1. **No pointers, references, fds or process-local handles** inside: the value means the
///    same at any address in any process.
/// 2. **Every bit pattern is a valid value**, in particular all-zero (the initial state of
///    every shared type) and whatever a buggy or hostile peer writes. `bool`, `char`, enums
///    and references are therefore excluded, and so is `AtomicBool`.
/// 3. **Interior mutability only through atomics**, or through cells whose every access is
///    synchronised by a cross-process protocol of the type itself (a lock word guarding an
///    `UnsafeCell` of `Pod` data, a committed queue slot). Plain fields are never written
///    after initialisation by this process, and readers must still treat them as untrusted.
/// 4. **No `Drop` obligations**: a value in shared memory is never dropped (its segment may
///    outlive every process).
/// 5. **`#[repr(C)]` (or a primitive)**, so every binary agrees on the layout; bump
///    [`LAYOUT_VERSION`](Self::LAYOUT_VERSION) whenever the layout changes.
pub unsafe trait ShmSafe: Sync + Sized {
    /// The type's layout version, recorded in the header and checked at open.
    const LAYOUT_VERSION: u32 = 0;
    /// Whether the type may store liveness owner ids (lock words, ledgers). Then
    /// [`Shared::open`] refuses a segment made under another liveness registry, where those
    /// ids mean nothing (see [`liveness`](crate::liveness)). `true` unless the type says
    /// otherwise: plain atomics and [`EventCount`](crate::EventCount) do.
    const OWNER_IDS: bool = true;
}

macro_rules! shm_safe {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: an atomic integer holds no pointer, is valid for every bit pattern,
        // mutates only atomically and needs no drop; primitives have a fixed layout.
        unsafe impl ShmSafe for $t {
            const OWNER_IDS: bool = false;
        }
    )*};
}

shm_safe!(
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize,
    crate::event_count::EventCount,
);

#[cfg(ipc_loom)]
shm_safe!(
    loom::sync::atomic::AtomicU32,
    loom::sync::atomic::AtomicU64,
    loom::sync::atomic::AtomicUsize,
);

// SAFETY: an array of ShmSafe elements inherits every rule element-wise; arrays are laid out
// contiguously in every binary.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const LAYOUT_VERSION: u32 = T::LAYOUT_VERSION;
    const OWNER_IDS: bool = T::OWNER_IDS;
}

// SAFETY: zero-sized, no state at all.
unsafe impl ShmSafe for () {
    const OWNER_IDS: bool = false;
}

// SAFETY: zero-sized marker, no state at all; `T: Sync` keeps the Sync bound honest.
unsafe impl<T: ?Sized + Sync> ShmSafe for PhantomData<T> {
    const OWNER_IDS: bool = false;
}

/// One `T` in shared memory, behind a validated header (magic, versions, type tag, size,
/// alignment), seen by every process that opens it.
///
/// ```
/// # fn main() -> Result<(), ipc_shm::Error> {
/// use ipc_shm::Shared;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let name = ipc_shm::random_name("doc-shared")?;
/// let counter = Shared::create(&name, AtomicU64::new(41))?;
/// let other = Shared::<AtomicU64>::open(&name)?; // any process
/// other.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(counter.load(Ordering::Relaxed), 42);
/// # Ok(()) }
/// ```
pub struct Shared<T: ShmSafe> {
    object: Object,
    _type: PhantomData<T>,
}

impl<T: ShmSafe> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("type", &type_name::<T>())
            .field("shm", self.object.shm())
            .finish()
    }
}

/// The header identity of `T`: its type name hash, layout version and alignment.
pub fn object_kind<T: ShmSafe>() -> ObjectKind {
    ObjectKind {
        tag: crate::object::named_tag(type_name::<T>()),
        version: T::LAYOUT_VERSION,
        align: align_of::<T>(),
        owner_ids: T::OWNER_IDS,
    }
}

fn writer<T>(value: &mut Option<T>) -> impl FnMut(NonNull<u8>, usize) + '_ {
    move |ptr: NonNull<u8>, len: usize| {
        if let Some(v) = value.take()
            && len == size_of::<T>()
        {
            // The header layout places the body at a multiple of `align_of::<T>()` in a
            // page-aligned mapping.
            // SAFETY: `ptr` is `len == size_of::<T>()` writable, aligned bytes of our own
            // mapping; nobody reads them until the header is READY; the old bytes are zeros.
            unsafe { ptr.cast::<T>().as_ptr().write(v) };
        }
    }
}

impl<T: ShmSafe> Shared<T> {
    /// Create a named object holding `value` (default [`ShmOptions`]).
    ///
    /// # Errors
    /// See [`ShmOptions::create`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, value)
    }

    /// Create with options.
    ///
    /// # Errors
    /// See [`ShmOptions::create`].
    pub fn create_with(opts: &ShmOptions, name: &str, value: T) -> Result<Self> {
        let mut value = Some(value);
        let object = Object::create(
            opts,
            name,
            object_kind::<T>(),
            size_of::<T>(),
            &mut writer(&mut value),
        )?;
        Ok(Shared { object, _type: PhantomData })
    }

    /// Open a named object; its header must say it is a ready `T`.
    ///
    /// # Errors
    /// See [`Object::open`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(&ShmOptions::new(), name)
    }

    /// Open with options.
    ///
    /// # Errors
    /// See [`Object::open`].
    pub fn open_with(opts: &ShmOptions, name: &str) -> Result<Self> {
        let object = Object::open(opts, name, object_kind::<T>(), Some(size_of::<T>()))?;
        Ok(Shared { object, _type: PhantomData })
    }

    /// Open the object, or create it holding `init()`. `init` runs at most once per
    /// initialisation (it may run in this process even when another created the name, if
    /// that creator died mid-init).
    ///
    /// # Errors
    /// See [`Object::open_or_create`].
    pub fn open_or_create(name: &str, init: impl FnMut() -> T) -> Result<Self> {
        Self::open_or_create_with(&ShmOptions::new(), name, init)
    }

    /// Open or create with options.
    ///
    /// # Errors
    /// See [`Object::open_or_create`].
    pub fn open_or_create_with(
        opts: &ShmOptions,
        name: &str,
        mut init: impl FnMut() -> T,
    ) -> Result<Self> {
        let mut write = |ptr: NonNull<u8>, len: usize| {
            let mut value = Some(init());
            writer(&mut value)(ptr, len);
        };
        let object =
            Object::open_or_create(opts, name, object_kind::<T>(), size_of::<T>(), &mut write)?;
        Ok(Shared { object, _type: PhantomData })
    }

    /// An anonymous object (memfd) holding `value`: inherited by children forked after this
    /// call, or passed to another process as an fd ([`Shared::from_shm`] on the other side).
    ///
    /// # Errors
    /// See [`ShmOptions::anonymous`].
    pub fn anonymous(value: T) -> Result<Self> {
        let mut value = Some(value);
        let object = Object::anonymous(
            &ShmOptions::new(),
            object_kind::<T>(),
            size_of::<T>(),
            &mut writer(&mut value),
        )?;
        Ok(Shared { object, _type: PhantomData })
    }

    /// Adopt a segment (for example one received with [`Shm::from_fd`]) whose header says it
    /// holds a ready `T`.
    ///
    /// # Errors
    /// [`Error::Incompatible`](crate::Error::Incompatible) and friends.
    pub fn from_shm(shm: Shm) -> Result<Self> {
        let object = Object::from_shm(shm, object_kind::<T>(), Some(size_of::<T>()))?;
        Ok(Shared { object, _type: PhantomData })
    }

    /// The segment.
    pub fn shm(&self) -> &Shm {
        self.object.shm()
    }
}

impl<T: ShmSafe> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // The body is `size_of::<T>()` bytes aligned for `T` (validated against the header,
        // or laid out by us), initialised before READY was published, mapped while `self` is.
        // SAFETY: that, and `T: ShmSafe`: every bit pattern is a valid `T` (a peer's rewrite
        // stays valid) and mutation goes only through atomics or synchronised cells, so a
        // shared `&T` is sound while other processes use it.
        unsafe { &*self.object.body().cast::<T>().as_ptr() }
    }
}
