#!/usr/bin/env python3
"""pty_winch.py ROWS COLS ROWS2 COLS2 SECONDS -- COMMAND [ARGS...]

Runs COMMAND (e.g. `ssh -tt host '...'`) on a new pseudo-terminal of size
ROWS x COLS and copies what it prints to stdout (CR removed). When the output
holds the line "INIT <ROWS> <COLS>", the terminal is resized to ROWS2 x COLS2:
the kernel then sends SIGWINCH to COMMAND, which (for an SSH client) sends a
window-change request. Everything is bounded by SECONDS; exits with COMMAND's
status (124 on time-out, 2 on a wrong INIT line).

Only the standard library: it runs with the system python3.
"""
import fcntl
import os
import re
import select
import signal
import struct
import sys
import termios
import time


def setsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    a = sys.argv[1:]
    if len(a) < 7 or a[5] != "--":
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    rows, cols, rows2, cols2 = (int(x) for x in a[:4])
    deadline = time.monotonic() + float(a[4])
    cmd = a[6:]
    master, slave = os.openpty()
    setsize(slave, rows, cols)
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    os.close(slave)
    buf = b""
    resized = False
    status = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stdout.write(buf.decode(errors="replace").replace("\r", ""))
            print("pty_winch: timed out", file=sys.stderr)
            return 124
        r, _, _ = select.select([master], [], [], min(left, 0.5))
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                data = b""
            if not data:
                break
            buf += data
            if not resized:
                m = re.search(rb"INIT (\d+) (\d+)", buf)
                if m:
                    if (int(m.group(1)), int(m.group(2))) != (rows, cols):
                        print(f"pty_winch: initial size {m.group(1).decode()} {m.group(2).decode()}, "
                              f"want {rows} {cols}", file=sys.stderr)
                    setsize(master, rows2, cols2)
                    resized = True
        else:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                # drain what is still buffered
                while select.select([master], [], [], 0)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    buf += data
                break
    if status is None:
        _, status = os.waitpid(pid, 0)
    os.close(master)
    sys.stdout.write(buf.decode(errors="replace").replace("\r", ""))
    sys.stdout.flush()
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
