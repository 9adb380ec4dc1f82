#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Slow-handshake flooder for the sync port (test_sync_flood.sh).

Opens COUNT TCP connections to HOST:PORT and keeps each one trickling: one
byte every INTERVAL seconds, the start of a well-formed message 1 (version
1, type 1, then zeros), so a responder that waits for the rest of the
message and counts any byte as life would hold every one of them. A
connection the server closes is reopened (at most COUNT reopenings a
second, 20 x COUNT openings in all), so the pressure lasts. Everything
stops after DURATION seconds, or at once on SIGTERM. Bounded in count and time; traffic stays in the caller's
network namespace. Prints one summary line at the end.

usage: sync_flood.py HOST PORT COUNT DURATION [INTERVAL]
"""
import errno
import resource
import selectors
import signal
import socket
import sys
import time

PREFIX = bytes([1, 1]) + bytes(104)


def main():
    host, port, count, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    want = count + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))

    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))

    conns = {}  # socket -> [next send time, bytes sent]
    stats = {"opened": 0, "open_failed": 0, "closed_by_server": 0, "bytes": 0, "max_open": 0}
    budget = [20 * count]
    to_reopen = [0]

    def open_one(now):
        if budget[0] <= 0:
            return
        budget[0] -= 1
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        r = s.connect_ex((host, port))
        if r not in (0, errno.EINPROGRESS):
            stats["open_failed"] += 1
            s.close()
            return
        stats["opened"] += 1
        conns[s] = [now + interval, 0]

    start = time.monotonic()
    end = start + duration
    for _ in range(count):
        open_one(start)
    while not stop[0]:
        now = time.monotonic()
        if now >= end:
            break
        stats["max_open"] = max(stats["max_open"], len(conns))
        for s in list(conns):
            due, sent = conns[s]
            if now < due:
                continue
            try:
                n = s.send(PREFIX[sent % len(PREFIX):sent % len(PREFIX) + 1])
                conns[s] = [now + interval, sent + n]
                stats["bytes"] += n
            except BlockingIOError:
                conns[s][0] = now + interval  # still connecting, or a full buffer
            except OSError:
                stats["closed_by_server"] += 1
                s.close()
                del conns[s]
                to_reopen[0] += 1
        # At most COUNT reopenings a second (ten rounds of a tenth).
        for _ in range(min(to_reopen[0], max(1, count // 10))):
            to_reopen[0] -= 1
            open_one(now)
        time.sleep(0.1)
    for s in conns:
        s.close()
    print("flood %s:%d: opened %d, failed to open %d, closed by the server %d, bytes %d, most open at once %d"
          % (host, port, stats["opened"], stats["open_failed"], stats["closed_by_server"], stats["bytes"],
             stats["max_open"]), flush=True)


if __name__ == "__main__":
    main()
