#!/usr/bin/env python3
"""libssh_exec.py LIB HOST PORT USER KEYFILE [--pty] COMMAND

Runs COMMAND over SSH with libssh (LIB=libssh, PyPI ssh-python) or libssh2
(LIB=libssh2, PyPI ssh2-python): two C client libraries independent of
OpenSSH and of cpu-rs. Our stdin goes to the remote stdin (then EOF), the
remote stdout to our stdout; the exit status is the remote one (255 on
connection, authentication or protocol errors). --pty asks for a terminal
first. No host key checking: the servers under test are throwaway ones on
127.0.0.1.
"""
import socket
import sys

CHUNK = 64 << 10


def run_libssh2(host, port, user, key, cmd, pty):
    from ssh2.session import LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_KEX, Session

    sock = socket.create_connection((host, port), timeout=30)
    s = Session()
    s.set_timeout(60_000)
    s.handshake(sock)
    s.userauth_publickey_fromfile(user, key)
    ch = s.open_session()
    if pty:
        ch.pty("xterm")
    ch.execute(cmd)
    while True:
        data = sys.stdin.buffer.read(CHUNK)
        if not data:
            break
        # Blocking mode: write returns once all of it is sent.
        ch.write(data)
    ch.send_eof()
    while True:
        size, data = ch.read(CHUNK)
        if size <= 0:
            break
        sys.stdout.buffer.write(data)
    ch.wait_eof()
    ch.close()
    ch.wait_closed()
    status = ch.get_exit_status()
    what = f"kex {s.methods(LIBSSH2_METHOD_KEX)}, cipher {s.methods(LIBSSH2_METHOD_CRYPT_CS)}"
    s.disconnect()
    return status, what


def run_libssh(host, port, user, key, cmd, pty):
    from ssh import options
    from ssh.key import import_privkey_file
    from ssh.session import Session

    s = Session()
    s.options_set(options.HOST, host)
    s.options_set_port(port)
    s.options_set(options.USER, user)
    s.options_set(options.KNOWNHOSTS, "/dev/null")
    s.options_set_int_val(options.STRICTHOSTKEYCHECK, 0)
    s.options_set_int_val(options.TIMEOUT, 60)
    s.connect()
    s.userauth_publickey(import_privkey_file(key))
    ch = s.channel_new()
    ch.open_session()
    if pty:
        ch.request_pty()
    ch.request_exec(cmd)
    while True:
        data = sys.stdin.buffer.read(CHUNK)
        if not data:
            break
        view = memoryview(data)
        while view:
            _, n = ch.write(bytes(view))
            view = view[n:]
    ch.send_eof()
    while True:
        size, data = ch.read(CHUNK)
        if size <= 0:
            break
        sys.stdout.buffer.write(data)
    # libssh reports the status once the channel has seen it.
    status = ch.get_exit_status()
    what = f"kex {s.get_kex_algo()}, cipher {s.get_cipher_out()}"
    ch.close()
    s.disconnect()
    return status, what


def main():
    args = sys.argv[1:]
    pty = "--pty" in args
    args = [a for a in args if a != "--pty"]
    if len(args) != 6 or args[0] not in ("libssh", "libssh2"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    lib, host, port, user, key, cmd = args
    run = run_libssh if lib == "libssh" else run_libssh2
    try:
        status, what = run(host, int(port), user, key, cmd, pty)
    except Exception as e:  # connection, auth, protocol
        print(f"libssh_exec {lib}: {type(e).__name__}: {e}", file=sys.stderr)
        return 255
    sys.stdout.flush()
    print(f"libssh_exec {lib}: exit status {status}, {what}", file=sys.stderr)
    return status if 0 <= status <= 255 else 255


if __name__ == "__main__":
    sys.exit(main())
