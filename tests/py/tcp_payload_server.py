#!/usr/bin/env python3
"""tcp_payload_server.py PAYLOAD_FILE LOG_FILE SECONDS

A local TCP service for port-forwarding tests. Listens on 127.0.0.1 on a
port the kernel picks, prints "listening on 127.0.0.1:PORT" (flushed) once it
accepts, then serves connections one after another: reads one line, appends
it to LOG_FILE, sends PAYLOAD_FILE and closes. Exits after SECONDS.
Only the standard library: it runs with the system python3.
"""
import socket
import sys
import time


def main():
    payload_file, log_file, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(payload_file, "rb") as f:
        payload = f.read()
    deadline = time.monotonic() + secs
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    print(f"listening on 127.0.0.1:{s.getsockname()[1]}", flush=True)
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            c, _ = s.accept()
        except socket.timeout:
            break
        with c:
            c.settimeout(30)
            line = b""
            try:
                while not line.endswith(b"\n") and len(line) < 4096:
                    d = c.recv(1)
                    if not d:
                        break
                    line += d
                with open(log_file, "ab") as lf:
                    lf.write(line if line.endswith(b"\n") else line + b"\n")
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
            except OSError as e:
                print(f"tcp_payload_server: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
