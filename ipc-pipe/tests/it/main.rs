//! Integration tests of ipc-pipe (one binary).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod smoke {
    use ipc_pipe::*;

    #[test]
    fn pipe_roundtrip() {
        let (mut a, mut b) = pipe().unwrap();
        a.send(b"hello").unwrap();
        assert_eq!(b.recv().unwrap(), b"hello");
        let big = vec![7u8; 3 << 20];
        let t = std::thread::spawn(move || {
            a.send(&big).unwrap();
            a
        });
        assert_eq!(b.recv().unwrap().len(), 3 << 20);
        let a = t.join().unwrap();
        drop(a);
        assert!(b.recv().unwrap_err().is_disconnected());
    }

    #[test]
    fn python_client() {
        let dir = tempdir();
        let path = format!("{dir}/sock");
        let l = Listener::bind(path.as_str(), Some(b"key")).unwrap();
        let mut child = std::process::Command::new("python3").arg("-c").arg(format!(
            "from multiprocessing.connection import Client\nc=Client({path:?}, authkey=b'key')\nc.send_bytes(b'x'*100000)\nprint(len(c.recv_bytes()))\n"
        )).spawn().unwrap();
        let mut c = l.accept().unwrap();
        let m = c.recv().unwrap();
        assert_eq!(m.len(), 100000);
        c.send(&m[..70000]).unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn tempdir() -> String {
        let d = format!("/tmp/pp/t{}-{}", std::process::id(), rand());
        std::fs::create_dir_all(&d).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }
    fn rand() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    }
}
