#!/usr/bin/env python3
"""Writes the malformed-frame corpus of ipc-pipe (run from this directory).

Each case is <name>.bin; expected.txt lists "<name> <max_message> <expected>", where
<expected> is what ipc_pipe::frame::frames() yields last (ok:<n frames> when every frame is
fine) and what a Connection reports (the test maps one to the other).
"""
import struct

MAX = 1024
cases = []

def case(name, data, expected, max_message=MAX):
    with open(name + ".bin", "wb") as f:
        f.write(data)
    cases.append((name, max_message, expected))

def frame(body):
    return struct.pack("!i", len(body)) + body

case("prefix_1_byte", b"\x00", "truncated")
case("prefix_3_bytes", b"\x00\x00\x01", "truncated")
case("long_prefix_cut", struct.pack("!i", -1) + b"\x00\x00\x00", "truncated")
case("body_cut", struct.pack("!i", 10) + b"12345", "truncated")
case("second_frame_cut", frame(b"hello") + struct.pack("!i", 3) + b"a", "truncated")
case("trailing_garbage", frame(b"ok") + b"\x00\x00", "truncated")
case("negative_minus_2", struct.pack("!i", -2), "negative")
case("negative_min", struct.pack("!i", -2**31), "negative")
case("negative_after_valid", frame(b"x") * 3 + struct.pack("!i", -7), "negative")
case("short_too_large", struct.pack("!i", 2**31 - 1) + b"x" * 16, "too_large")
case("short_one_over", struct.pack("!i", MAX + 1) + b"x" * (MAX + 1), "too_large")
case("long_too_large", struct.pack("!i", -1) + struct.pack("!Q", 2**40), "too_large")
case("long_u64_max", struct.pack("!i", -1) + b"\xff" * 8, "too_large")
case("long_i64_min", struct.pack("!i", -1) + struct.pack("!Q", 2**63), "too_large")
case("zero_frames_then_huge", frame(b"") * 1000 + struct.pack("!i", 2**31 - 1), "too_large")
case("handshake_size_prefix", struct.pack("!i", 0x7fffffff), "too_large", 256)
# Valid controls: the decoder must accept them.
case("valid_at_limit", frame(b"y" * MAX), "ok:1")
case("valid_long_form_small", struct.pack("!i", -1) + struct.pack("!Q", 3) + b"abc", "ok:1")
case("valid_many_empty", frame(b"") * 1000, "ok:1000")

with open("expected.txt", "w") as f:
    f.write("# name max_message expected (see gen.py)\n")
    for name, m, e in cases:
        f.write(f"{name} {m} {e}\n")
