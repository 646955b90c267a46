//! The queue ring over memory a hostile peer wrote: the fuzzer's bytes become the config
//! block, the control block and the slots of a real (anonymous) queue, then a sequence of
//! operations runs. Every outcome must be a message no longer than the maximum or a typed
//! error. Mirrored on stable by the proptests in ipc-queue/tests/it/adversary.rs and
//! ipc-queue/src/ring.rs.
#![no_main]

use ipc_queue::ring::{self, RawConfig};
use ipc_queue::{Queue, QueueOptions};
use libfuzzer_sys::fuzz_target;

const BODY: usize = 128;
const MAX: usize = 64;

fuzz_target!(|input: (Vec<u8>, [u32; 16], u64, u64, usize, Vec<u8>)| {
    let (memory, config_words, pos, word, body_len, ops) = input;

    // The pure decisions on arbitrary values.
    if let Ok(cfg) = ring::validate(&RawConfig::from_words(&config_words), body_len) {
        let off = cfg.slot_offset(pos);
        assert!(off >= ring::CTRL_LEN && off + cfg.stride <= body_len);
        let _ = ring::producer_view(pos, word, cfg.capacity);
        let _ = ring::consumer_view(pos, word, cfg.capacity);
    }

    // A real queue whose body the fuzzer overwrites, then operations.
    let Ok(q) = QueueOptions::new(4, MAX).start_position(pos).anonymous() else { return };
    // A second mapping of the queue's memfd, as a peer process has: it writes plain bytes
    // under every handle of the queue.
    let Ok(fd) = std::os::fd::AsFd::as_fd(q.shm()).try_clone_to_owned() else { return };
    let Ok(mut peer) = ipc_shm::Shm::from_fd(fd) else { return };
    let body_len = peer.len() - BODY;
    let n = memory.len().min(body_len);
    let _ = peer.write_at(BODY, &memory[..n]);
    run(&q, &ops);
});

fn run(q: &Queue, ops: &[u8]) {
    for &op in ops {
        match op % 5 {
            0 => {
                let _ = q.try_send(&[op; 40]);
            }
            1 => {
                if let Ok(m) = q.try_recv() {
                    assert!(m.len() <= MAX);
                }
            }
            2 => {
                if let Ok(m) = q.try_recv_ref() {
                    assert!(m.len() <= MAX);
                }
            }
            3 => {
                if let Ok(mut s) = q.try_reserve(usize::from(op) % (MAX + 1)) {
                    s.fill(op);
                    s.commit();
                }
            }
            _ => drop(q.try_reserve(1)),
        }
        assert!(q.len() <= q.capacity());
    }
}
