// The family is Linux-first: futex, memfd, OFD locks and /dev/shm are Linux facilities.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipc-shm supports Linux only (futex, memfd, OFD locks, /dev/shm); other targets are not ported yet"
);
