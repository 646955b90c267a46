//! Unique object names for tests.

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every name [`unique_name`] makes; the suite checks /dev/shm has none left.
pub const TEST_PREFIX: &str = "ipctest-";

/// `ipctest-<pid>-<n>-<tag>`: unique across concurrent tests and processes (the tag is cut
/// to 40 characters of `[A-Za-z0-9_-]`).
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Relaxed: only uniqueness matters.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(40)
        .collect();
    format!("{TEST_PREFIX}{}-{n}-{tag}", std::process::id())
}
