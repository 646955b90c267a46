// Linux first: pidfds, PR_SET_PDEATHSIG, /proc/self/exe, posix_spawn file actions.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipc-process supports Linux only (pidfds, PR_SET_PDEATHSIG, /proc/self/exe); other targets are not ported yet"
);
