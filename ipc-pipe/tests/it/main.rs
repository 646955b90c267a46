//! Integration tests of ipc-pipe, one binary: connections and simplex pipes, the frame
//! decoder (proptests and the malformed-frame corpus), the handshake (deterministic hostile
//! peers and proptests), fd passing, listeners and clients, interop with the real CPython,
//! and the optional features (serde, pickle, shm, tokio).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod alloc_track;
mod connection;
mod fds;
mod frames;
mod handshake;
mod listener;
#[cfg(feature = "pickle")]
mod pickle;
#[cfg(feature = "pickle")]
mod pickle_gen;
mod python;
#[cfg(feature = "serde")]
mod serde_values;
#[cfg(feature = "shm")]
mod shm;
mod tcp;
#[cfg(feature = "tokio")]
mod tokio_conn;

pub(crate) mod util {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A private (0700) directory under the temp dir, removed with its contents on drop.
    pub(crate) struct TempDir {
        path: PathBuf,
    }

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("ipctest-pipe-{}-{n}-{tag}", std::process::id()));
            std::fs::create_dir(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            TempDir { path }
        }

        pub(crate) fn path(&self) -> &Path {
            &self.path
        }

        pub(crate) fn join(&self, name: &str) -> PathBuf {
            self.path.join(name)
        }

        /// The names left in the directory.
        pub(crate) fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(&self.path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    /// Whether python3 runs here (the interop tests need it; CI has it).
    pub(crate) fn python() -> bool {
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import multiprocessing.connection")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Proptest cases: `default`, or `soak` under `IPC_SOAK=1`.
    pub(crate) fn cases(default: u32, soak: u32) -> u32 {
        if std::env::var("IPC_SOAK").is_ok_and(|v| v == "1") { soak } else { default }
    }

    pub(crate) fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
