#!/usr/bin/env python3
"""Connection flood for tests/scripts/cpud-flood.sh (standard library only).

  flood.py PORT COUNT PID MAX_SECS [--banner]

Opens COUNT TCP connections to 127.0.0.1:PORT that send nothing (with
--banner: an SSH identification line, then nothing), sampling the fd and
thread counts of PID (the server) as it goes. Prints, one per line:
  opened N            connections it managed to open
  peak fds F threads T
  holding             then holds them until stdin closes (or MAX_SECS)
and, once stdin closes, closes them all and exits 0. Bounded: COUNT and
MAX_SECS; every connect has a 5 s time-out.
"""

import os
import resource
import select
import socket
import sys
import time


def sample(pid):
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/status") as f:
            threads = next(int(l.split()[1]) for l in f if l.startswith("Threads:"))
        return fds, threads
    except (OSError, StopIteration):
        return -1, -1


def main():
    port, count, pid, max_secs = (int(a) for a in sys.argv[1:5])
    banner = "--banner" in sys.argv[5:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    deadline = time.monotonic() + max_secs
    socks = []
    peak = [0, 0]

    def look():
        f, t = sample(pid)
        peak[0], peak[1] = max(peak[0], f), max(peak[1], t)

    for i in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            if banner:
                s.sendall(b"SSH-2.0-flood\r\n")
        except OSError:
            s.close()
            continue
        socks.append(s)
        if i % 50 == 0:
            look()
    look()
    print(f"opened {len(socks)}", flush=True)
    print(f"peak fds {peak[0]} threads {peak[1]}", flush=True)
    print("holding", flush=True)
    # Hold until stdin closes, sampling meanwhile.
    while time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        look()
        if r and not sys.stdin.buffer.read1(4096):
            break
    print(f"final peak fds {peak[0]} threads {peak[1]}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
