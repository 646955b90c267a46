//! Leak audits: segments left in /dev/shm, fds left open.

/// Names in /dev/shm that start with `prefix`.
pub fn shm_entries(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return Vec::new() };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The open fds of this process, with what each points at.
pub fn open_fds() -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut fds: Vec<(i32, String)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            Some((fd, target))
        })
        .collect();
    fds.sort();
    fds
}

/// A snapshot of open fds; [`FdAudit::leaked`] lists fds opened since and still open.
/// Reliable in a single-threaded process: run it inside a forked child, or under nextest.
#[derive(Debug)]
pub struct FdAudit {
    before: Vec<(i32, String)>,
}

impl FdAudit {
    /// Snapshot now.
    pub fn new() -> FdAudit {
        FdAudit { before: open_fds() }
    }

    /// Fds open now that were not open at the snapshot (the directory fd used to list them
    /// is not counted).
    pub fn leaked(&self) -> Vec<(i32, String)> {
        open_fds()
            .into_iter()
            .filter(|fd| {
                // By number: the text of an fd open all along changes when its file is
                // unlinked meanwhile ("... (deleted)").
                !self.before.iter().any(|b| b.0 == fd.0) && !fd.1.starts_with("/proc/")
            })
            .collect()
    }

    /// Panic with the list of leaked fds, if any.
    pub fn assert_clean(&self, what: &str) {
        let leaked = self.leaked();
        assert!(leaked.is_empty(), "{what}: fds leaked: {leaked:?}");
    }
}

impl Default for FdAudit {
    fn default() -> Self {
        Self::new()
    }
}
