//! A Rust echo server and client over an authenticated local socket; the server also
//! answers Python's `multiprocessing.connection.Client`.
//!
//! ```text
//! mkdir -m 700 /tmp/echo
//! cargo run -p ipc-pipe --example echo -- serve /tmp/echo/sock
//! cargo run -p ipc-pipe --example echo -- client /tmp/echo/sock hello world
//! python3 -c "from multiprocessing.connection import Client
//! c = Client('/tmp/echo/sock', authkey=b'example key'); c.send_bytes(b'hi'); print(c.recv_bytes())"
//! ```
#![allow(clippy::print_stdout)]

use ipc_pipe::{Client, Error, Listener};

const KEY: &[u8] = b"example key";

fn serve(path: &str) -> Result<(), Error> {
    let listener = Listener::bind(path, Some(KEY))?;
    println!("listening on {path}");
    loop {
        let mut conn = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                println!("refused a client: {e}");
                continue;
            }
        };
        let peer = conn.peer_credentials()?;
        println!("client {peer}");
        loop {
            match conn.recv() {
                Ok(m) => conn.send(&m)?,
                Err(e) if e.is_disconnected() => break,
                Err(e) => {
                    println!("dropping the client: {e}");
                    break;
                }
            }
        }
    }
}

fn client(path: &str, words: &[String]) -> Result<(), Error> {
    let mut conn = Client::connect(path, Some(KEY))?;
    conn.send(words.join(" ").as_bytes())?;
    println!("{}", String::from_utf8_lossy(&conn.recv()?));
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, path] if role == "serve" => serve(path),
        [role, path, words @ ..] if role == "client" => client(path, words),
        _ => {
            println!("usage: echo serve <path> | echo client <path> <words...>");
            Ok(())
        }
    }
}
