#!/usr/bin/env python3
"""Splits a `perf` profile of the gateway into the stages of a mix packet's way through it.

Reads `perf report --stdio --sort sym` output (flat, no call graphs: release binaries carry
symbols, not frame pointers) and sums the samples of each stage by symbol name. With
`--us-per-packet` (the gateway's CPU per packet, from the load generator of the same run) it
also prints each stage's microseconds per packet.

    perf record -e cpu-clock -F 1999 -p <gateway pid> -o perf.data -- sleep 8
    perf report -i perf.data --stdio --sort sym | scripts/stage_profile.py --us-per-packet 56.5

`scripts/profile-ingest` runs the load generator and does all of this.
"""

import argparse
import re
import sys

# First match wins: order from the most specific to the broadest.
STAGES = [
    ("unwrap: X25519", [r"curve25519", r"x25519", r"aws_lc.*agree", r"ParsedPublicKey", r"x25519_batch"]),
    ("unwrap: keys, MACs, Lioness, routing", [
        r"blake2b", r"chacha20", r"sha2::", r"sha256", r"hkdf", r"hmac", r"digest::",
        r"Aes<11_usize>", r"fast_final_hop", r"final_hop::", r"core::array::<impl \[T; N\]>::map",
        r"hybrid_array", r"Ctr64", r"cipher::stream", r"split_surb_ack", r"lioness",
    ]),
    ("replay filter", [r"replay::"]),
    ("framing and dispatch", [r"framing::", r"mix_ingress::", r"unwrapper::", r"relay::"]),
    ("sealing to the client (AES-GCM-SIV)", [r"aes_gcm_siv", r"polyval", r"aes::", r"shared_key", r"delivery::seal"]),
    ("websocket", [r"tungstenite"]),
    ("routing, sessions, egress", [
        r"router::", r"client::", r"egress::", r"confirmation::", r"nym_gateway::", r"gateway_store",
        r"rusqlite", r"sqlite",
    ]),
    ("unwrap pool hand-off", [r"cpu_pool", r"Condvar", r"oneshot", r"pthread_cond", r"batch_semaphore"]),
    ("async runtime (tokio, wake-ups)", [
        r"tokio", r"futures_", r"tracing", r"<&mut F as", r"PollFn", r"thread_rng",
        r"AtomicWaker", r"syscall$", r"__vdso_clock_gettime", r"clock_gettime", r"Timespec",
        r"bytes::", r"prometheus",
    ]),
    ("allocation and copies", [
        r"malloc", r"_int_free", r"cfree", r"unlink_chunk", r"memmove", r"memset", r"memcpy",
        r"_int_realloc", r"realloc", r"alloc::", r"__libc_free",
    ]),
    ("kernel: scheduling and wake-ups", [
        r"finish_task_switch", r"raw_spin_unlock_irq", r"irqentry", r"futex", r"schedule",
        r"try_to_wake_up", r"pick_next", r"enqueue", r"dequeue", r"update_curr", r"__switch_to",
        r"rseq", r"select_task_rq", r"ttwu", r"read_tsc", r"hrtimer", r"ktime",
    ]),
    ("kernel: TCP/IP and syscalls (both ends on loopback)", [r".*"]),
]

LINE = re.compile(r"^\s*([0-9.]+)%\s+\[([.k])\]\s+(.*)$")


def stage_of(kind: str, symbol: str) -> str:
    for name, patterns in STAGES:
        if name.startswith("kernel") and kind != "k":
            continue
        if not name.startswith("kernel") and kind == "k" and name != STAGES[-1][0]:
            # kernel symbols only go to the kernel stages
            continue
        if any(re.search(p, symbol) for p in patterns):
            return name
    return STAGES[-1][0] if kind == "k" else "other (user space)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--us-per-packet", type=float, help="gateway CPU per packet of the profiled run")
    parser.add_argument("--unmatched", action="store_true", help="list the user-space symbols no stage claimed")
    args = parser.parse_args()

    totals: dict[str, float] = {}
    unmatched: dict[str, float] = {}
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        share, kind, symbol = float(m.group(1)), m.group(2), m.group(3).strip()
        stage = stage_of(kind, symbol)
        totals[stage] = totals.get(stage, 0.0) + share
        if stage.startswith("other"):
            unmatched[symbol] = unmatched.get(symbol, 0.0) + share
    if not totals:
        print("no samples in the input (is it `perf report --stdio --sort sym` output?)", file=sys.stderr)
        return 1
    whole = sum(totals.values())
    order = [name for name, _ in STAGES] + ["other (user space)"]
    outside = 0.0
    print(f"{'stage':<54} {'share':>7}" + (f" {'µs/packet':>10}" if args.us_per_packet else ""))
    for name in order:
        if name not in totals:
            continue
        share = totals[name] / whole
        if not name.startswith("unwrap:"):
            outside += share
        row = f"{name:<54} {share * 100:6.1f}%"
        if args.us_per_packet:
            row += f" {share * args.us_per_packet:10.1f}"
        print(row)
    if args.us_per_packet:
        print(f"{'outside the unwrap':<54} {outside * 100:6.1f}% {outside * args.us_per_packet:10.1f}")
    if args.unmatched:
        for symbol, share in sorted(unmatched.items(), key=lambda kv: -kv[1])[:30]:
            print(f"  {share:5.2f}%  {symbol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
