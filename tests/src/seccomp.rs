//! Deny one system call to this process (a seccomp filter), to test the paths a sandbox
//! forces: a process that cannot use `membarrier`, say, beside peers that can.

/// Make every later call of system call `nr` (a `libc::SYS_*` number) in this process fail
/// with `errno`, for the rest of its life (and its children's). Sets `no_new_privs`.
///
/// # Errors
/// The `prctl` error (seccomp not built into the kernel, for instance).
pub fn deny(nr: libc::c_long, errno: i32) -> std::io::Result<()> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let nr = u32::try_from(nr).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let errno = u32::try_from(errno).unwrap_or(0) & libc::SECCOMP_RET_DATA;
    // Load the syscall number (offset 0 of struct seccomp_data); if it is `nr`, fail it with
    // `errno`, else allow.
    let filter = [
        libc::sock_filter { code: LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JEQ_K, jt: 0, jf: 1, k: nr },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | errno },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, a valid BPF program of `prog.len` instructions, both
    // alive for the call (the kernel copies the program).
    let rc = unsafe {
        libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &raw const prog, 0, 0)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
