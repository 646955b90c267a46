//! The tokio connection (feature `tokio`).

use std::time::Duration;

use ipc_pipe::{AsyncConnection, Connection, Error, pipe};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn async_pair_carries_every_size_both_ways() {
    rt().block_on(async {
        let (mut a, mut b) = AsyncConnection::pair().unwrap();
        let sizes = [0usize, 1, 1000, 70_000, 2 << 20];
        let echo = tokio::spawn(async move {
            for _ in sizes {
                let m = b.recv().await.unwrap();
                b.send(&m).await.unwrap();
            }
        });
        for n in sizes {
            let m: Vec<u8> = (0..n).map(|i| i as u8).collect();
            a.send(&m).await.unwrap();
            assert_eq!(a.recv().await.unwrap(), m);
        }
        echo.await.unwrap();
    });
}

#[test]
fn async_end_talks_to_a_blocking_end() {
    let (a, mut b) = pipe().unwrap();
    let t = std::thread::spawn(move || {
        let m = b.recv().unwrap();
        b.send(&[m, b"!".to_vec()].concat()).unwrap();
    });
    rt().block_on(async {
        let mut a = AsyncConnection::new(a).unwrap();
        a.send(b"hi").await.unwrap();
        assert_eq!(a.recv().await.unwrap(), b"hi!");
        let back: Connection = a.into_inner();
        drop(back);
    });
    t.join().unwrap();
}

#[test]
fn a_timed_out_recv_keeps_its_partial_frame() {
    use std::io::Write;
    let (mut raw, ours) = std::os::unix::net::UnixStream::pair().unwrap();
    rt().block_on(async {
        let mut c = AsyncConnection::new(Connection::from(ours)).unwrap();
        raw.write_all(&10i32.to_be_bytes()).unwrap();
        raw.write_all(b"01234").unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), c.recv()).await.is_err());
        raw.write_all(b"56789").unwrap();
        assert_eq!(c.recv().await.unwrap(), b"0123456789");
        drop(raw);
        assert!(matches!(c.recv().await, Err(Error::Disconnected { .. })));
    });
}

#[test]
fn a_send_cancelled_mid_frame_poisons() {
    rt().block_on(async {
        let (mut a, _b) = AsyncConnection::pair().unwrap();
        let big = vec![0u8; 8 << 20];
        assert!(tokio::time::timeout(Duration::from_millis(50), a.send(&big)).await.is_err());
        assert!(matches!(a.send(b"x").await, Err(Error::Poisoned { .. })));
    });
}
