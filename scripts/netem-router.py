#!/usr/bin/env python3
"""A userspace network emulator for scripts/netns-cluster.sh: delay and loss on every packet that crosses the
router namespace, for kernels without the netem qdisc (`tc qdisc add ... netem` answers "Specified qdisc kind is
unknown" when sch_netem is not built, as in many microVM kernels).

usage: netem-router.py --tun NAME --delay-ms D --loss P [--seed S] [--stats FILE]

Runs inside the router namespace, which the cluster script sets up so that every packet arriving from a cluster
namespace is routed into the TUN device NAME (policy routing), and every packet written back to NAME is routed on to
its destination. Each packet read is dropped with probability P, or written back D milliseconds later (constant
delay, order kept), which is what `tc qdisc add dev eth0 root netem delay D loss P` on every namespace's interface
does: one traversal per packet, so the round trip between two namespaces is 2·D. The loss draws come from a seeded
generator, so a run is repeatable up to timing. On SIGTERM or SIGINT it writes packet and byte counts to FILE as
`key=value` lines and exits 0.
"""
import argparse
import collections
import fcntl
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tun", required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--loss", type=float, required=True, help="drop probability per packet, 0 <= P < 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", help="where to write the counters on exit")
    args = parser.parse_args()
    if not 0 <= args.loss < 1 or args.delay_ms < 0:
        parser.error("need 0 <= --loss < 1 and --delay-ms >= 0")

    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", args.tun.encode(), IFF_TUN | IFF_NO_PI))
    rng = random.Random(args.seed)
    delay = args.delay_ms / 1000
    queue = collections.deque()  # (due time, packet); constant delay keeps it sorted
    counts = {"packets_in": 0, "bytes_in": 0, "packets_dropped": 0, "bytes_dropped": 0, "packets_out": 0, "bytes_out": 0}
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"netem-router: {args.tun}: delay {args.delay_ms} ms, loss {args.loss:.2%}", flush=True)
    while running:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, packet = queue.popleft()
            try:
                os.write(fd, packet)
                counts["packets_out"] += 1
                counts["bytes_out"] += len(packet)
            except OSError:
                pass  # the destination went away (a namespace torn down): the packet is lost, as on a wire
        timeout = max(0.0, queue[0][0] - now) if queue else 0.5
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        if not readable:
            continue
        packet = os.read(fd, 65536)
        counts["packets_in"] += 1
        counts["bytes_in"] += len(packet)
        if rng.random() < args.loss:
            counts["packets_dropped"] += 1
            counts["bytes_dropped"] += len(packet)
            continue
        queue.append((time.monotonic() + delay, packet))
    if args.stats:
        with open(args.stats, "w") as out:
            out.writelines(f"{key}={value}\n" for key, value in counts.items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
