#!/usr/bin/env python3
"""asyncssh_exec.py HOST PORT USER KEYFILE COMMAND

Runs COMMAND over SSH with asyncssh (an SSH client independent of OpenSSH and
of cpu-rs), writes the remote stdout to stdout and the remote stderr to
stderr, and exits with the remote exit status (255 on connection or
authentication errors, 128+N when the remote command died of signal N).
No host key checking: the servers under test are throwaway ones on 127.0.0.1.
"""
import asyncio
import signal
import sys

import asyncssh


async def run(host, port, user, key, cmd):
    async with asyncssh.connect(host, port=port, username=user, client_keys=[key],
                                known_hosts=None, agent_path=None,
                                connect_timeout=10) as conn:
        r = await asyncio.wait_for(conn.run(cmd, check=False, encoding=None), 60)
        server = conn.get_extra_info("server_version")
        return r, server


def main():
    if len(sys.argv) != 6:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    host, port, user, key, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    try:
        r, server = asyncio.run(run(host, port, user, key, cmd))
    except Exception as e:  # connection, auth, protocol, time-out
        print(f"asyncssh_exec: {type(e).__name__}: {e}", file=sys.stderr)
        return 255
    sys.stdout.buffer.write(r.stdout or b"")
    sys.stderr.buffer.write(r.stderr or b"")
    status = r.exit_status
    if status is None or status < 0:
        sig = r.exit_signal[0] if r.exit_signal else None
        num = getattr(signal, "SIG" + sig, None) if sig else None
        print(f"asyncssh_exec: exit signal {sig}, server {server}", file=sys.stderr)
        return 128 + int(num) if num else 255
    print(f"asyncssh_exec: exit status {status}, server {server}", file=sys.stderr)
    return status if status <= 255 else 255


if __name__ == "__main__":
    sys.exit(main())
