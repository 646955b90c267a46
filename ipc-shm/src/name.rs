//! Segment names: validation and generation.

use crate::error::{Error, Result};
use crate::sys;

/// The longest name accepted (leaves room under NAME_MAX for suffixes).
pub const MAX_NAME_LEN: usize = 200;

/// Checks a segment name: `[A-Za-z0-9._-]{1,200}` and not `.` or `..`.
///
/// # Errors
/// [`Error::InvalidName`] naming the rule broken.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 200 bytes")
    } else if name.starts_with('/') {
        Some("drop the leading '/': names are given without it (\"jobs\", not \"/jobs\")")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Some("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

/// A fresh name `<prefix>-<32 hex digits>`: 128 random bits from `getrandom`, so two callers
/// never collide in practice (a collision on create is still an `AlreadyExists`, never a
/// shared segment).
///
/// # Errors
/// [`Error::InvalidName`] if the prefix breaks the name rules or is longer than 160 bytes;
/// [`Error::Io`] if the kernel has no randomness to give.
pub fn random_name(prefix: &str) -> Result<String> {
    validate_name(prefix)?;
    if prefix.len() > MAX_NAME_LEN - 40 {
        return Err(Error::InvalidName {
            name: prefix.to_owned(),
            reason: "prefix longer than 160 bytes",
        });
    }
    let mut bytes = [0u8; 16];
    sys::random_bytes(&mut bytes).map_err(|e| Error::io("generate name for", prefix, e))?;
    let mut name = String::with_capacity(prefix.len() + 33);
    name.push_str(prefix);
    name.push('-');
    for b in bytes {
        name.push(char::from(HEX[usize::from(b >> 4)]));
        name.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ok(name)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet() {
        validate_name("a").unwrap();
        validate_name("Jobs-01_x.y").unwrap();
        validate_name(&"z".repeat(200)).unwrap();
        validate_name("...").unwrap();
    }

    #[test]
    fn refuses_the_rest() {
        for bad in ["", ".", "..", "a/b", "/a", "a\0b", "a b", "é", "a\nb", &"z".repeat(201)] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn random_names_are_valid_and_distinct() {
        let a = random_name("t").unwrap();
        let b = random_name("t").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 32);
        validate_name(&a).unwrap();
        assert!(random_name("bad/prefix").is_err());
    }
}
