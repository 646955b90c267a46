// Linux first: SO_PEERCRED, MSG_CMSG_CLOEXEC, abstract socket names, F_SETPIPE_SZ, RWF_NOWAIT.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipc-pipe supports Linux only (SO_PEERCRED, MSG_CMSG_CLOEXEC, F_SETPIPE_SZ, RWF_NOWAIT); other targets are not ported yet"
);
