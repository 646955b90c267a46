//! fd passing in one process: one fd, the kernel's maximum, fds that came where none were
//! expected. (Leak counts under a lowered RLIMIT_NOFILE and across processes are in the
//! cross-process suite, tests/tests/pipe.rs.)

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use ipc_pipe::{Error, PoisonCause, pipe};

fn cloexec(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFD on a valid fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
}

#[test]
fn one_fd_travels_with_its_message() {
    let (mut a, mut b) = pipe().unwrap();
    let (r, w) = std::io::pipe().unwrap();
    a.send_fds(b"here is a pipe", &[w.as_fd()]).unwrap();
    drop(w);
    let (msg, mut fds) = b.recv_fds().unwrap();
    assert_eq!(msg, b"here is a pipe");
    assert_eq!(fds.len(), 1);
    let w2 = fds.pop().unwrap();
    assert!(cloexec(w2.as_fd()), "received fds are CLOEXEC (MSG_CMSG_CLOEXEC)");
    std::fs::File::from(w2).write_all(b"through the passed fd").unwrap();
    let mut got = String::new();
    std::fs::File::from(OwnedFd::from(r)).read_to_string(&mut got).unwrap();
    assert_eq!(got, "through the passed fd");
    // A message without fds is fine for recv_fds.
    a.send(b"plain").unwrap();
    let (m, f) = b.recv_fds().unwrap();
    assert_eq!((m, f.len()), (b"plain".to_vec(), 0));
}

#[test]
fn the_kernel_maximum_of_253_fds_and_neighbouring_messages() {
    let (mut a, mut b) = pipe().unwrap();
    let files: Vec<std::fs::File> =
        (0..253).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let borrowed: Vec<BorrowedFd<'_>> = files.iter().map(AsFd::as_fd).collect();
    // Messages before and after, big and small, to check fds go with the right frame.
    let t = std::thread::spawn(move || {
        let (m1, f1) = b.recv_fds().unwrap();
        assert_eq!((m1.len(), f1.len()), (100_000, 0));
        let (m2, f2) = b.recv_fds().unwrap();
        assert_eq!((m2, f2.len()), (vec![2u8; 300], 253));
        assert!(f2.iter().all(|f| cloexec(f.as_fd())));
        // recv_fds for a message without fds too: a plain recv offers no room for fds and
        // may read ahead into the next message, whose fds the kernel would then close.
        let (m3, f3) = b.recv_fds().unwrap();
        assert_eq!((m3, f3.len()), (b"after".to_vec(), 0));
        let (m4, f4) = b.recv_fds().unwrap();
        assert_eq!((m4.len(), f4.len()), (200_000, 2));
    });
    a.send(&vec![1u8; 100_000]).unwrap();
    a.send_fds(&vec![2u8; 300], &borrowed).unwrap();
    a.send(b"after").unwrap();
    a.send_fds(&vec![3u8; 200_000], &borrowed[..2]).unwrap();
    t.join().unwrap();
    let too_many: Vec<BorrowedFd<'_>> = borrowed.iter().chain(&borrowed[..1]).copied().collect();
    assert!(matches!(a.send_fds(b"x", &too_many), Err(Error::TooManyFds { count: 254, .. })));
}

#[test]
fn fds_where_none_were_expected_are_never_installed_and_poison() {
    // In a forked child: the fd audit needs a process no other test opens fds in.
    ipc_testkit::fork(none_expected_body).assert_success();
}

fn none_expected_body() {
    let audit = ipc_testkit::audit::FdAudit::new();
    let f = std::fs::File::open("/dev/null").unwrap();
    // recv, try_recv, recv_into: the kernel closes the fds (no room was offered for them),
    // the call says so and the connection is poisoned.
    {
        let (mut a, mut b) = pipe().unwrap();
        a.send_fds(b"sneaky", &[f.as_fd(), f.as_fd()]).unwrap();
        a.send(b"next").unwrap();
        match b.recv() {
            Err(e @ Error::UnexpectedFds { count: None, .. }) => {
                assert!(e.to_string().contains("closed by the kernel"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(b.is_poisoned());
        let e = b.recv().unwrap_err();
        assert!(matches!(e, Error::Poisoned { cause: PoisonCause::UnexpectedFds, .. }), "{e}");
    }
    {
        let (mut a, mut b) = pipe().unwrap();
        a.send_fds(b"again", &[f.as_fd()]).unwrap();
        assert!(b.poll(Some(std::time::Duration::from_secs(5))).unwrap());
        assert!(matches!(b.try_recv(), Err(Error::UnexpectedFds { count: None, .. })));
    }
    {
        let (mut a, mut b) = pipe().unwrap();
        a.send_fds(b"and again", &[f.as_fd()]).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(b.recv_into(&mut buf), Err(Error::UnexpectedFds { count: None, .. })));
    }
    {
        // A frame read ahead with an earlier one: the earlier is delivered, the one with the
        // fds fails when its turn comes.
        let (mut a, mut b) = pipe().unwrap();
        a.send(b"plain").unwrap();
        a.send_fds(b"with fds", &[f.as_fd(), f.as_fd(), f.as_fd()]).unwrap();
        let mut roomy = Vec::with_capacity(1 << 16);
        assert_eq!(b.recv_into(&mut roomy).unwrap(), 5);
        assert!(matches!(b.recv_into(&mut roomy), Err(Error::UnexpectedFds { count: None, .. })));
    }
    {
        // A large body with fds on its first bytes, into a small vector.
        let (a, mut b) = pipe().unwrap();
        let f2 = f.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let mut a = a;
            let r = a.send_fds(&vec![9u8; 100_000], &[f2.as_fd()]);
            (a, r)
        });
        let mut small = Vec::with_capacity(4096);
        assert!(matches!(b.recv_into(&mut small), Err(Error::UnexpectedFds { count: None, .. })));
        drop(b);
        // The sender may or may not have finished before the receiver went away.
        drop(t.join().unwrap());
    }
    drop(f);
    audit.assert_clean("fds where none were expected");
}

#[test]
fn fds_are_matched_to_their_frame_by_recv_fds() {
    // In a forked child: the fd audit needs a process no other test opens fds in.
    ipc_testkit::fork(roomy_vector_body).assert_success();
}

fn roomy_vector_body() {
    let audit = ipc_testkit::audit::FdAudit::new();
    let (mut a, mut b) = pipe().unwrap();
    let f = std::fs::File::open("/dev/null").unwrap();
    // A plain frame and one with fds, both queued before the read that takes them together.
    a.send(b"plain").unwrap();
    a.send_fds(b"with fds", &[f.as_fd(), f.as_fd(), f.as_fd()]).unwrap();
    a.send(b"after").unwrap();
    let (m, fds) = b.recv_fds().unwrap();
    assert_eq!((m.as_slice(), fds.len()), (&b"plain"[..], 0));
    let (m, fds) = b.recv_fds().unwrap();
    assert_eq!((m.as_slice(), fds.len()), (&b"with fds"[..], 3));
    drop(fds);
    let mut buf = Vec::with_capacity(1 << 16);
    assert_eq!(b.recv_into(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"after");
    // A body larger than the read buffer, with fds.
    let big = vec![9u8; 100_000];
    let big2 = big.clone();
    let t = std::thread::spawn(move || {
        a.send_fds(&big2, &[f.as_fd()]).unwrap();
        a.send(b"end").unwrap();
        (a, f)
    });
    let (m, fds) = b.recv_fds().unwrap();
    assert_eq!((m.len(), fds.len()), (100_000, 1));
    assert!(m == big);
    drop(fds);
    let (mut a, f) = t.join().unwrap();
    assert_eq!(b.recv_into(&mut buf).unwrap(), 3);
    assert_eq!(buf, b"end");
    // And recv_fds still takes what was meant for it.
    a.send(b"one").unwrap();
    a.send_fds(b"two", &[f.as_fd()]).unwrap();
    let (m, fds) = b.recv_fds().unwrap();
    assert_eq!((m.as_slice(), fds.len()), (&b"one"[..], 0));
    let (m, fds) = b.recv_fds().unwrap();
    assert_eq!((m.as_slice(), fds.len()), (&b"two"[..], 1));
    drop((fds, a, b, f));
    audit.assert_clean("roomy recv_into");
}
