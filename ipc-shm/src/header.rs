//! The header every object we lay out in shared memory starts with, and its pure decoder.
//!
//! Layout (64 bytes, native endian, at offset 0 of the segment):
//!
//! | offset | field | notes |
//! |---|---|---|
//! | 0 | `magic: u64` | [`MAGIC`] |
//! | 8 | `header_version: u32` | [`HEADER_VERSION`] |
//! | 12 | `state: u32` | [`UNINIT`] 0, [`INITIALISING`] 1, [`READY`] 2; READY is stored with Release |
//! | 16 | `creator: u32` | liveness owner id of the (re-)initialiser, diagnostics only |
//! | 20 | `layout_version: u32` | the object type's own layout version |
//! | 24 | `layout_tag: u64` | hash of the object type's name (or a user constant) |
//! | 32 | `total_len: u64` | segment length the creator made |
//! | 40 | `body_offset: u64` | where the object starts; a multiple of its alignment |
//! | 48 | `body_len: u64` | the object's length |
//! | 56 | `body_align: u32` | the object's alignment |
//! | 60 | `registry: u32` | id of the liveness registry the owner ids in this object mean something in (0: none recorded) |
//!
//! A reader loads `state` with Acquire, then copies the 64 bytes into private memory and
//! decodes *that copy* ([`decode`], [`validate`]); nothing is read twice from the segment.
//! The decoder is pure (no I/O, no panics, no arithmetic that can overflow) so it can be
//! fuzzed and property-tested.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

/// `"IPCSHM\0\x01"` read as a native-endian u64.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"IPCSHM\x00\x01");
/// Version of this header layout.
pub const HEADER_VERSION: u32 = 2;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 64;
/// Largest body alignment accepted (a page: mappings are page-aligned).
pub const MAX_ALIGN: usize = 4096;

/// Init state: nothing written yet (a zeroed segment).
pub const UNINIT: u32 = 0;
/// Init state: a creator is writing the object.
pub const INITIALISING: u32 = 1;
/// Init state: the object is complete; published with Release.
pub const READY: u32 = 2;

/// Byte offset of the `state` word.
pub const STATE_OFFSET: usize = 12;
/// Byte offset of the `creator` word.
pub const CREATOR_OFFSET: usize = 16;

/// The decoded fields of a header (a private copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    /// Magic number.
    pub magic: u64,
    /// Header layout version.
    pub header_version: u32,
    /// Init state.
    pub state: u32,
    /// Owner id of the initialiser.
    pub creator: u32,
    /// Object layout version.
    pub layout_version: u32,
    /// Object layout tag.
    pub layout_tag: u64,
    /// Segment length written by the creator.
    pub total_len: u64,
    /// Offset of the object.
    pub body_offset: u64,
    /// Length of the object.
    pub body_len: u64,
    /// Alignment of the object.
    pub body_align: u32,
    /// The creator's liveness registry id (0: none); checked at open by objects that store
    /// owner ids (see `liveness`).
    pub registry: u32,
}

/// What an object is: checked against every header at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKind {
    /// Hash of the type name or a user constant ([`layout_tag`]).
    pub tag: u64,
    /// The type's own layout version; bump it when the layout changes.
    pub version: u32,
    /// Alignment of the body (a power of two, at most [`MAX_ALIGN`]).
    pub align: usize,
    /// Whether the object stores liveness owner ids (lock words, permit ledgers, queue
    /// slots): then `open` refuses it in a process of another liveness registry, where those
    /// ids mean nothing.
    pub owner_ids: bool,
}

/// Where the object lies in the segment, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// Offset from the start of the segment.
    pub offset: usize,
    /// Length.
    pub len: usize,
}

/// What is wrong with a header; each variant carries expected and found values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer than 64 bytes.
    #[error("segment of {found} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// Bytes available.
        found: usize,
    },
    /// Not one of our objects.
    #[error("bad magic {found:#018x}, expected {MAGIC:#018x}")]
    BadMagic {
        /// Magic found.
        found: u64,
    },
    /// Written by another version of the header protocol.
    #[error("header version {found}, expected {expected}")]
    HeaderVersion {
        /// Our version.
        expected: u32,
        /// Version found.
        found: u32,
    },
    /// The state word holds no known state.
    #[error("invalid init state {found}")]
    BadState {
        /// State found.
        found: u32,
    },
    /// Not ready (callers that wait handle this before validating).
    #[error("object not ready (state {found})")]
    NotReady {
        /// State found.
        found: u32,
    },
    /// A different object type.
    #[error("layout tag {found:#018x}, expected {expected:#018x} (a different object type)")]
    LayoutTag {
        /// Tag of the type asked for.
        expected: u64,
        /// Tag found.
        found: u64,
    },
    /// Same type, another layout version.
    #[error("layout version {found}, expected {expected}")]
    LayoutVersion {
        /// Version asked for.
        expected: u32,
        /// Version found.
        found: u32,
    },
    /// The header's idea of the segment size differs from the segment's.
    #[error("header says {found} bytes, the segment has {expected}")]
    TotalLen {
        /// Actual segment length.
        expected: u64,
        /// Length in the header.
        found: u64,
    },
    /// The object's alignment differs.
    #[error("body alignment {found}, expected {expected}")]
    Align {
        /// Alignment asked for.
        expected: u64,
        /// Alignment found.
        found: u64,
    },
    /// The object's length differs.
    #[error("body length {found}, expected {expected}")]
    BodyLen {
        /// Length asked for.
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// The body does not lie inside the segment after the header, aligned.
    #[error("body at {offset}+{len} does not fit a {total}-byte segment (or is misaligned)")]
    BodyRange {
        /// Offset found.
        offset: u64,
        /// Length found.
        len: u64,
        /// Segment length.
        total: u64,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = at.checked_add(4).and_then(|end| bytes.get(at..end)) {
        b.copy_from_slice(src);
    }
    u32::from_ne_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        b.copy_from_slice(src);
    }
    u64::from_ne_bytes(b)
}

/// Decode the first 64 bytes of `bytes` (a private copy). Checks length, magic and header
/// version; everything else is left to [`validate`].
///
/// # Errors
/// `TooShort`, `BadMagic`, `HeaderVersion`.
pub fn decode(bytes: &[u8]) -> Result<HeaderFields, HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::TooShort { found: bytes.len() });
    }
    let fields = HeaderFields {
        magic: u64_at(bytes, 0),
        header_version: u32_at(bytes, 8),
        state: u32_at(bytes, STATE_OFFSET),
        creator: u32_at(bytes, CREATOR_OFFSET),
        layout_version: u32_at(bytes, 20),
        layout_tag: u64_at(bytes, 24),
        total_len: u64_at(bytes, 32),
        body_offset: u64_at(bytes, 40),
        body_len: u64_at(bytes, 48),
        body_align: u32_at(bytes, 56),
        registry: u32_at(bytes, 60),
    };
    if fields.magic != MAGIC {
        return Err(HeaderError::BadMagic { found: fields.magic });
    }
    if fields.header_version != HEADER_VERSION {
        return Err(HeaderError::HeaderVersion {
            expected: HEADER_VERSION,
            found: fields.header_version,
        });
    }
    Ok(fields)
}

/// Validate decoded fields against what the opener expects and the segment's actual length.
/// `body_len` is `None` when the opener does not know the length (it then comes from the
/// header and is range-checked).
///
/// # Errors
/// Any [`HeaderError`] but `TooShort`/`BadMagic`/`HeaderVersion`.
pub fn validate(
    h: &HeaderFields,
    kind: &ObjectKind,
    body_len: Option<usize>,
    segment_len: usize,
) -> Result<Body, HeaderError> {
    match h.state {
        READY => {}
        UNINIT | INITIALISING => return Err(HeaderError::NotReady { found: h.state }),
        found => return Err(HeaderError::BadState { found }),
    }
    if h.layout_tag != kind.tag {
        return Err(HeaderError::LayoutTag { expected: kind.tag, found: h.layout_tag });
    }
    if h.layout_version != kind.version {
        return Err(HeaderError::LayoutVersion { expected: kind.version, found: h.layout_version });
    }
    let total = segment_len as u64;
    if h.total_len != total {
        return Err(HeaderError::TotalLen { expected: total, found: h.total_len });
    }
    let align = kind.align as u64;
    if u64::from(h.body_align) != align {
        return Err(HeaderError::Align { expected: align, found: u64::from(h.body_align) });
    }
    if let Some(len) = body_len
        && h.body_len != len as u64
    {
        return Err(HeaderError::BodyLen { expected: len as u64, found: h.body_len });
    }
    let range_err = HeaderError::BodyRange { offset: h.body_offset, len: h.body_len, total };
    let end = h.body_offset.checked_add(h.body_len).ok_or(range_err)?;
    let aligned = align != 0 && h.body_offset.checked_rem(align) == Some(0);
    if h.body_offset < HEADER_LEN as u64 || end > total || !aligned {
        return Err(range_err);
    }
    let offset = usize::try_from(h.body_offset).map_err(|_| range_err)?;
    let len = usize::try_from(h.body_len).map_err(|_| range_err)?;
    Ok(Body { offset, len })
}

/// Encode a ready-to-publish header (state left at `INITIALISING`; the caller stores READY
/// with Release after the body is written).
pub fn encode(h: &HeaderFields) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let mut put = |at: usize, b: &[u8]| {
        if let Some(dst) = at.checked_add(b.len()).and_then(|end| out.get_mut(at..end)) {
            dst.copy_from_slice(b);
        }
    };
    put(0, &h.magic.to_ne_bytes());
    put(8, &h.header_version.to_ne_bytes());
    put(STATE_OFFSET, &h.state.to_ne_bytes());
    put(CREATOR_OFFSET, &h.creator.to_ne_bytes());
    put(20, &h.layout_version.to_ne_bytes());
    put(24, &h.layout_tag.to_ne_bytes());
    put(32, &h.total_len.to_ne_bytes());
    put(40, &h.body_offset.to_ne_bytes());
    put(48, &h.body_len.to_ne_bytes());
    put(56, &h.body_align.to_ne_bytes());
    put(60, &h.registry.to_ne_bytes());
    out
}

/// Where the body of an object of `kind` and `body_len` goes, and the segment length.
/// `None` if the alignment is not a power of two up to [`MAX_ALIGN`] or the sizes overflow.
pub fn plan(kind: &ObjectKind, body_len: usize) -> Option<Body> {
    if !kind.align.is_power_of_two() || kind.align > MAX_ALIGN {
        return None;
    }
    let offset = HEADER_LEN.max(kind.align);
    offset.checked_add(body_len)?;
    Some(Body { offset, len: body_len })
}

/// FNV-1a of a type name or any string: the default layout tag.
pub const fn layout_tag(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        // `i < len` above; const fns cannot use iterators.
        #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
        {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
    }
    hash
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIND: ObjectKind = ObjectKind { tag: 0xfeed, version: 3, align: 8, owner_ids: false };

    fn good(body_len: usize) -> (HeaderFields, usize) {
        let body = plan(&KIND, body_len).unwrap();
        let total = body.offset + body.len;
        let h = HeaderFields {
            magic: MAGIC,
            header_version: HEADER_VERSION,
            state: READY,
            creator: 7,
            layout_version: 3,
            layout_tag: 0xfeed,
            total_len: total as u64,
            body_offset: body.offset as u64,
            body_len: body.len as u64,
            body_align: 8,
            registry: 0,
        };
        (h, total)
    }

    #[test]
    fn roundtrip_and_validate() {
        let (h, total) = good(100);
        let bytes = encode(&h);
        let d = decode(&bytes).unwrap();
        assert_eq!(d, h);
        assert_eq!(validate(&d, &KIND, Some(100), total).unwrap(), Body { offset: 64, len: 100 });
        assert_eq!(validate(&d, &KIND, None, total).unwrap().len, 100);
    }

    #[test]
    fn each_field_corrupted_is_a_typed_error() {
        let (h, total) = good(100);
        let check = |h2: HeaderFields, want: fn(&HeaderError) -> bool| {
            let r = decode(&encode(&h2)).and_then(|d| validate(&d, &KIND, Some(100), total));
            let e = r.unwrap_err();
            assert!(want(&e), "{e:?}");
        };
        check(HeaderFields { magic: 1, ..h }, |e| matches!(e, HeaderError::BadMagic { .. }));
        check(HeaderFields { header_version: 9, ..h }, |e| {
            matches!(e, HeaderError::HeaderVersion { expected: 2, found: 9 })
        });
        check(HeaderFields { state: 1, ..h }, |e| matches!(e, HeaderError::NotReady { .. }));
        check(HeaderFields { state: 77, ..h }, |e| matches!(e, HeaderError::BadState { .. }));
        check(HeaderFields { layout_tag: 5, ..h }, |e| matches!(e, HeaderError::LayoutTag { .. }));
        check(HeaderFields { layout_version: 4, ..h }, |e| {
            matches!(e, HeaderError::LayoutVersion { .. })
        });
        check(HeaderFields { total_len: 1 << 40, ..h }, |e| {
            matches!(e, HeaderError::TotalLen { .. })
        });
        check(HeaderFields { body_align: 16, ..h }, |e| matches!(e, HeaderError::Align { .. }));
        check(HeaderFields { body_len: 101, ..h }, |e| matches!(e, HeaderError::BodyLen { .. }));
        check(HeaderFields { body_offset: 65, ..h }, |e| {
            matches!(e, HeaderError::BodyRange { .. })
        });
        check(HeaderFields { body_offset: u64::MAX, ..h }, |e| {
            matches!(e, HeaderError::BodyRange { .. })
        });
        assert!(matches!(decode(&[0u8; 63]), Err(HeaderError::TooShort { found: 63 })));
    }

    #[test]
    fn body_len_unknown_is_range_checked() {
        let (h, total) = good(100);
        let bad = HeaderFields { body_len: 1000, ..h };
        assert!(matches!(validate(&bad, &KIND, None, total), Err(HeaderError::BodyRange { .. })));
    }

    #[test]
    fn plan_refuses_bad_alignment() {
        assert!(plan(&ObjectKind { align: 3, ..KIND }, 1).is_none());
        assert!(plan(&ObjectKind { align: 8192, ..KIND }, 1).is_none());
        assert_eq!(plan(&ObjectKind { align: 128, ..KIND }, 1).unwrap().offset, 128);
        assert!(plan(&KIND, usize::MAX).is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                       seg in any::<usize>(), len in proptest::option::of(any::<usize>())) {
            if let Ok(h) = decode(&bytes)
                && let Ok(body) = validate(&h, &KIND, len, seg)
            {
                prop_assert!(body.offset >= HEADER_LEN);
                prop_assert!(body.offset + body.len <= seg);
            }
        }

        #[test]
        fn flipping_any_byte_is_caught_or_harmless(at in 0usize..64, v in any::<u8>()) {
            let (h, total) = good(100);
            let mut bytes = encode(&h);
            bytes[at] = v;
            if let Ok(body) = decode(&bytes).and_then(|d| validate(&d, &KIND, Some(100), total)) {
                prop_assert_eq!(body, Body { offset: 64, len: 100 });
            }
        }
    }
}
