//! The queue rings over memory a hostile peer wrote: the fuzzer's bytes become the config
//! block, the control block and the slots of a real (anonymous) MPMC queue and of a real SPSC
//! queue, then a sequence of operations runs on each. Every outcome must be a message no
//! longer than the maximum or a typed error. Before that, the pure decisions of both
//! protocols run on the raw values. Mirrored on stable by the proptests in
//! ipc-queue/tests/it/adversary.rs and ipc-queue/src/ring.rs.
#![no_main]

use ipc_queue::ring::{self, RawConfig};
use ipc_queue::{Queue, QueueOptions, SpscQueue};
use libfuzzer_sys::fuzz_target;

const BODY: usize = 128;
const MAX: usize = 64;

fuzz_target!(|input: (Vec<u8>, [u32; 16], u64, u64, u64, usize, Vec<u8>)| {
    let (memory, config_words, pos, word, tail, body_len, ops) = input;

    // The pure decisions on arbitrary values.
    if let Ok(cfg) = ring::validate(&RawConfig::from_words(&config_words), body_len) {
        let off = cfg.slot_offset(pos);
        assert!(off >= ring::CTRL_LEN && off + cfg.stride <= body_len);
        let cap = cfg.capacity;
        let _ = ring::producer_view(pos, word, cap);
        let _ = ring::consumer_view(pos, word, cap);
        let _ = ring::spsc_view(pos, word, cap);
        let _ = ring::spsc_room(pos, tail, cap);
        if let Ok(head) = ring::spsc_attach_producer(pos, tail, word, cap) {
            assert!(ring::occupancy(head, tail, cap).is_ok());
        }
        let _ = ring::spsc_attach_consumer(pos, tail, cap);
    }

    // A real MPMC queue whose body the fuzzer overwrites, then operations.
    if let Ok(q) = QueueOptions::new(4, MAX).start_position(pos).anonymous() {
        overwrite(q.shm(), &memory);
        run_mpmc(&q, &ops);
    }

    // The same for an SPSC queue: its roles attach over the scribbled indices (or refuse).
    if let Ok(q) = QueueOptions::new(4, MAX).start_position(pos).anonymous_spsc() {
        overwrite(q.shm(), &memory);
        run_spsc(&q, &ops);
    }
});

/// Write `memory` over the queue's body through a second mapping of its memfd, as a peer
/// process would: plain bytes under every handle of the queue.
fn overwrite(shm: &ipc_shm::Shm, memory: &[u8]) {
    let Ok(fd) = std::os::fd::AsFd::as_fd(shm).try_clone_to_owned() else { return };
    let Ok(mut peer) = ipc_shm::Shm::from_fd(fd) else { return };
    let body_len = peer.len() - BODY;
    let n = memory.len().min(body_len);
    let _ = peer.write_at(BODY, &memory[..n]);
}

fn run_mpmc(q: &Queue, ops: &[u8]) {
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

fn run_spsc(q: &SpscQueue, ops: &[u8]) {
    let (Ok(mut tx), Ok(mut rx)) = (q.sender(), q.receiver()) else { return };
    for &op in ops {
        match op % 4 {
            0 => {
                let _ = tx.try_send(&[op; 40]);
            }
            1 => {
                if let Ok(m) = rx.try_recv() {
                    assert!(m.len() <= MAX);
                }
            }
            2 => {
                if let Ok(m) = rx.try_recv_ref() {
                    assert!(m.len() <= MAX);
                }
            }
            _ => {
                if let Ok(mut s) = tx.try_reserve(usize::from(op) % (MAX + 1)) {
                    s.fill(op);
                    s.commit();
                }
            }
        }
        assert!(q.len() <= q.capacity());
    }
}
