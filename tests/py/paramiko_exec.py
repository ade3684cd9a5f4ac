#!/usr/bin/env python3
"""paramiko_exec.py HOST PORT USER KEYFILE COMMAND

Runs COMMAND over SSH with paramiko (an SSH client independent of OpenSSH and
of cpu-rs), writes the remote stdout to stdout and the remote stderr to
stderr, and exits with the remote exit status (255 on connection or
authentication errors). No host key checking: the servers under test are
throwaway ones on 127.0.0.1.
"""
import sys

import paramiko


def main():
    if len(sys.argv) != 6:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    host, port, user, key, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        c.connect(host, port=port, username=user,
                  pkey=paramiko.Ed25519Key.from_private_key_file(key),
                  allow_agent=False, look_for_keys=False, timeout=10,
                  banner_timeout=10, auth_timeout=10)
        _, stdout, stderr = c.exec_command(cmd, timeout=60)
        out = stdout.read()
        err = stderr.read()
        status = stdout.channel.recv_exit_status()
        server = c.get_transport().remote_version
    except Exception as e:  # connection, auth, protocol
        print(f"paramiko_exec: {type(e).__name__}: {e}", file=sys.stderr)
        return 255
    finally:
        c.close()
    sys.stdout.buffer.write(out)
    sys.stderr.buffer.write(err)
    print(f"paramiko_exec: exit status {status}, server {server}", file=sys.stderr)
    return status if 0 <= status <= 255 else 255


if __name__ == "__main__":
    sys.exit(main())
