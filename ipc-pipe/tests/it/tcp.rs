//! Listener and Client over TCP in one process: the handshake and frames as on local
//! sockets, the port the kernel picked, the rules that differ (no uid policy, no fds, no peer
//! credentials, no keyless listener beyond loopback unless allowed), `TCP_NODELAY`.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use ipc_pipe::{Address, AuthError, Client, ClientOptions, Error, Listener, ListenerOptions};

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn nodelay(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::tcp_nodelay(fd).unwrap()
}

#[test]
fn authenticated_messages_over_tcp_loopback() {
    let l = Listener::bind(LOOPBACK, Some(b"tcp key")).unwrap();
    let Some(addr) = l.address().as_tcp() else { panic!("{}", l.address()) };
    assert_ne!(addr.port(), 0, "the listener reports the port the kernel chose");
    let t = std::thread::spawn(move || {
        let mut c = l.accept().unwrap();
        assert!(nodelay(c.as_fd()));
        let m = c.recv().unwrap();
        c.send(&m).unwrap();
        m.len()
    });
    let mut c = Client::connect(addr, Some(b"tcp key")).unwrap();
    assert!(nodelay(c.as_fd()));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(&big).unwrap();
    assert_eq!(c.recv().unwrap(), big);
    assert_eq!(t.join().unwrap(), big.len());
    // What TCP cannot do is refused by name.
    let e = c.send_fds(b"x", &[std::io::stdin().as_fd()]).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("not TCP"), "{e}");
    assert!(matches!(c.peer_credentials(), Err(Error::Unsupported { .. })));
}

#[test]
fn host_port_parsing() {
    assert_eq!(
        Address::tcp("127.0.0.1:6000").unwrap(),
        Address::Tcp(([127, 0, 0, 1], 6000).into())
    );
    assert_eq!(Address::tcp("[::1]:7").unwrap().as_tcp().unwrap().port(), 7);
    assert!(Address::tcp("localhost:6000").unwrap().as_tcp().unwrap().ip().is_loopback());
    let e = Address::tcp("no port here").unwrap_err();
    assert!(matches!(e, Error::InvalidAddress { .. }), "{e}");
    assert_eq!(Address::tcp("127.0.0.1:6000").unwrap().to_string(), "tcp 127.0.0.1:6000");
}

#[test]
fn tcp_rules_refused_at_bind_and_connect() {
    // An allowed-uid policy cannot be checked on TCP: an error, not silently ignored.
    let e = ListenerOptions::new().allowed_uids([0]).bind(LOOPBACK, Some(b"k")).unwrap_err();
    assert!(matches!(e, Error::InvalidAddress { .. }), "{e}");
    assert!(e.to_string().contains("peer credentials"), "{e}");
    // No key beyond loopback: refused unless allowed.
    let any: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
    let e = Listener::bind(any, None).unwrap_err();
    assert!(e.to_string().contains("allow_keyless_network(true)"), "{e}");
    drop(ListenerOptions::new().allow_keyless_network(true).bind(any, None).unwrap());
    drop(Listener::bind(any, Some(b"k")).unwrap());
    let e = Client::connect(SocketAddr::from(([192, 0, 2, 1], 9)), None).unwrap_err();
    assert!(e.to_string().contains("allow_keyless_network(true)"), "{e}");
    // Keyless on loopback is Python's default and fine.
    let l = Listener::bind(LOOPBACK, None).unwrap();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || l.accept().map(drop));
    drop(Client::connect(addr, None).unwrap());
    t.join().unwrap().unwrap();
    // Nothing listening: refused at once; an unroutable address: the connect deadline.
    let free = std::net::TcpListener::bind(LOOPBACK).unwrap().local_addr().unwrap();
    assert!(matches!(Client::connect(free, Some(b"k")), Err(Error::Io { .. })));
    let e = ClientOptions::new()
        .connect_timeout(Some(Duration::from_millis(200)))
        .connect(SocketAddr::from(([192, 0, 2, 1], 9)), Some(b"k"))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. } | Error::Io { .. }), "{e}");
}

#[test]
fn a_wrong_key_is_refused_on_both_sides_over_tcp() {
    let l = Listener::bind(LOOPBACK, Some(b"right")).unwrap();
    let addr = l.address().clone();
    let t = std::thread::spawn(move || l.accept().map(drop));
    let e = Client::connect(addr, Some(b"wrong")).unwrap_err();
    assert!(matches!(e, Error::AuthFailed { .. }), "{e}");
    assert!(e.to_string().starts_with("connect to tcp 127.0.0.1:"), "{e}");
    match t.join().unwrap() {
        Err(Error::AuthFailed { reason: AuthError::WrongDigest, .. }) => {}
        other => panic!("{other:?}"),
    }
}
