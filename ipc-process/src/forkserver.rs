//! The fork server: a spawned child that does nothing but fork children on request. It is
//! single-threaded (a fresh exec that runs only this loop), so its children start from a
//! clean, lock-free copy however many threads the requesting parent has.
//!
//! Per request it gets the child's control connection and a status socket; it forks, sends
//! back the child's pid with a pidfd it opened before anyone could reap the child (so the
//! pidfd names the right process even if it dies at once), and when the child ends it reaps
//! it and writes its exit status to the status socket: the parent learns the typed status of
//! a process that is not its child. When the parent's connection closes (the parent exited
//! or was killed), the server kills its non-detached children, reaps them and exits.

use std::os::fd::{AsFd, OwnedFd};

use ipc_pipe::Connection;
use rustix::event::{PollFd, PollFlags};
use rustix::process::{PidfdFlags, Signal, WaitId, WaitIdOptions};

use crate::child;
use crate::error::ExitStatus;
use crate::sys;
use crate::wire::{self, Down, Up};

struct Kid {
    pidfd: OwnedFd,
    status: Connection,
    detached: bool,
}

/// Run the server on `conn` until the parent goes away.
pub(crate) fn serve(conn: Connection) -> ! {
    let me = std::process::id();
    let mut conn = Some(conn);
    let mut kids: Vec<Kid> = Vec::new();
    let mut header = Vec::new();
    loop {
        // Requests: drain every whole message first (some may already sit in the
        // connection's buffer, read along with an earlier one, where poll cannot see them).
        loop {
            let Some(c) = conn.as_mut() else { shutdown(kids) };
            let (msg, fds) = match c.try_recv_fds() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => shutdown(kids),
            };
            if let Some(kid) = fork_one(&mut conn, &mut kids, &mut header, &msg, fds, me) {
                kids.push(kid);
            }
        }
        let ready: Vec<bool> = {
            let Some(c) = conn.as_ref() else { shutdown(kids) };
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(kids.len() + 1);
            fds.push(PollFd::new(c, PollFlags::IN));
            for k in &kids {
                fds.push(PollFd::new(&k.pidfd, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => fds.iter().map(|f| !f.revents().is_empty()).collect(),
                Err(_) => continue, // EINTR
            }
        };
        // Children that ended: reap, report, forget.
        let mut i = 0;
        kids.retain_mut(|k| {
            i += 1;
            if !ready.get(i).copied().unwrap_or(false) {
                return true;
            }
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
            match rustix::process::waitid(WaitId::PidFd(k.pidfd.as_fd()), opts) {
                Ok(Some(st)) => {
                    if let Ok(bytes) = postcard::to_stdvec(&ExitStatus::from_waitid(&st)) {
                        // The parent may have dropped its handle already: ignore.
                        let _ = k.status.send(&bytes);
                    }
                    false
                }
                _ => true,
            }
        });
    }
}

/// Handle one request: fork the child and tell the parent its pid and pidfd.
fn fork_one(
    conn: &mut Option<Connection>,
    kids: &mut Vec<Kid>,
    header: &mut Vec<u8>,
    msg: &[u8],
    mut fds: Vec<OwnedFd>,
    me: u32,
) -> Option<Kid> {
    let (token, detached) = match wire::decode::<Down>(msg) {
        Ok((Down::Fork { token, detached }, _)) if fds.len() == 2 => (token, detached),
        _ => return None, // not for us: dropping the fds closes them
    };
    let status = Connection::from(fds.remove(1));
    let ctrl = Connection::from(fds.remove(0));
    #[allow(unsafe_code)]
    // SAFETY: this process is single-threaded (a fresh exec running only this loop), so the
    // child may do anything; it closes our fds and runs the child loop, leaving with `_exit`.
    let forked = unsafe { sys::fork() };
    match forked {
        Ok(sys::Forked::Child) => {
            // Close what belongs to the server and to the other children: their status
            // sockets and the parent's connection must see EOF when their owners go.
            drop(conn.take());
            kids.clear();
            drop(status);
            if !detached {
                child::die_with_parent(me);
            }
            child::child_main(ctrl, token)
        }
        Ok(sys::Forked::Parent(pid)) => {
            drop(ctrl);
            let pidfd = rustix::process::Pid::from_raw(pid)
                .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
            let Some(pidfd) = pidfd else {
                // Cannot watch it: kill it (our unreaped child, so the pid is still its)
                // and reap it, so it is neither left running unreported nor a zombie.
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
                }
                return None;
            };
            let up = Up::Forked { pid: pid.unsigned_abs() };
            if let Some(c) = conn.as_mut()
                && wire::encode_header(&up, header).is_ok()
            {
                // A failure means the parent is gone; the loop notices at its next read.
                let _ = c.send_fds(header, &[pidfd.as_fd()]);
            }
            Some(Kid { pidfd, status, detached })
        }
        Err(_) => None, // the request's connections close: the parent sees the failure
    }
}

/// The parent is gone: kill the children that die with it, reap them, exit.
fn shutdown(kids: Vec<Kid>) -> ! {
    for k in &kids {
        if !k.detached {
            let _ = rustix::process::pidfd_send_signal(&k.pidfd, Signal::KILL);
        }
    }
    for k in &kids {
        if !k.detached {
            let _ = rustix::process::waitid(WaitId::PidFd(k.pidfd.as_fd()), WaitIdOptions::EXITED);
        }
    }
    sys::exit_now(0)
}
