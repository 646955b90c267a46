//! Handing an `ipc_shm::Shm` across (feature `shm`): the memory is shared, and every fd that
//! is not a sealed memfd of the announced size is refused.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use ipc_pipe::shm::encode_shm_message;
use ipc_pipe::{Error, pipe};
use ipc_shm::Shm;

#[test]
fn a_segment_travels_and_maps_the_same_memory() {
    let (mut a, mut b) = pipe().unwrap();
    let mut shm = Shm::anonymous(8192).unwrap();
    shm.write_at(100, b"written before").unwrap();
    a.send_shm(&shm).unwrap();
    let mut theirs = b.recv_shm().unwrap();
    assert_eq!(theirs.len(), 8192);
    let mut buf = [0u8; 14];
    theirs.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"written before");
    theirs.write_at(5000, b"and back").unwrap();
    let mut back = [0u8; 8];
    shm.read_at(5000, &mut back).unwrap();
    assert_eq!(&back, b"and back");
}

fn memfd(len: u64, seal: bool) -> OwnedFd {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = unsafe {
        libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    };
    assert!(fd >= 0);
    // SAFETY: memfd_create returned a new fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let f = std::fs::File::from(fd);
    f.set_len(len).unwrap();
    if seal {
        use std::os::fd::AsRawFd;
        // SAFETY: F_ADD_SEALS on a memfd we own.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
        assert_eq!(r, 0);
    }
    OwnedFd::from(f)
}

#[test]
fn every_fd_that_is_not_a_sealed_memfd_of_the_announced_size_is_refused() {
    let (mut a, mut b) = pipe().unwrap();
    let (pr, _pw) = std::io::pipe().unwrap();
    let dir = std::fs::File::open("/").unwrap();
    let (s1, _s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let unsealed = memfd(4096, false);
    let small = memfd(1024, true);
    let body = encode_shm_message(4096);
    let cases: [(&str, std::os::fd::BorrowedFd<'_>, &str); 6] = [
        ("fifo", pr.as_fd(), "FIFO"),
        ("directory", dir.as_fd(), "directory"),
        ("socket", s1.as_fd(), "socket"),
        ("/dev/zero", zero.as_fd(), "character device"),
        ("unsealed memfd", unsealed.as_fd(), "not sealed"),
        ("too small memfd", small.as_fd(), "1024 bytes"),
    ];
    for (what, fd, says) in cases {
        a.send_fds(&body, &[fd]).unwrap();
        match b.recv_shm() {
            Err(Error::BadFd { reason, .. }) => assert!(reason.contains(says), "{what}: {reason}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // No fd, two fds, a bad message.
    let ok = Shm::anonymous(4096).unwrap();
    a.send(&body).unwrap();
    assert!(matches!(b.recv_shm(), Err(Error::BadFd { .. })));
    a.send_fds(&body, &[ok.as_fd(), ok.as_fd()]).unwrap();
    assert!(matches!(b.recv_shm(), Err(Error::UnexpectedFds { count: Some(2), .. })));
    a.send_fds(b"not a segment message", &[ok.as_fd()]).unwrap();
    assert!(matches!(b.recv_shm(), Err(Error::BadFd { .. })));
    // And the connection still works.
    a.send_shm(&ok).unwrap();
    assert_eq!(b.recv_shm().unwrap().len(), 4096);
}
