#!/usr/bin/env python3
"""Sends a file's bytes over one TCP connection with sendfile(2), then closes it.

    send_tcp.py HOST PORT FILE

Used as the rsyslog-side sender: the file holds LF-terminated lines, which is exactly
imtcp's octet-stuffed (LF) framing, so the bytes go out untouched and the sender costs
next to nothing.
"""

import socket
import sys


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with socket.create_connection((host, port), timeout=30) as s, open(path, "rb") as f:
        s.settimeout(None)
        sent = s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
        # Wait for the peer to close (or just drain) so nothing is cut short by an RST.
        s.settimeout(600)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
    print(sent)


if __name__ == "__main__":
    main()
