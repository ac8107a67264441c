#!/usr/bin/env python3
"""Sends a file's bytes over one TCP connection with sendfile(2), then closes it; or over TLS.

    send_tcp.py [--tls-ca CA] HOST PORT FILE

Used as the rsyslog-side sender: the file holds LF-terminated lines, which is exactly
imtcp's octet-stuffed (LF) framing, so the bytes go out untouched and the sender costs
next to nothing.

With --tls-ca, the connection is TLS (Python's ssl module, i.e. OpenSSL; the server's
certificate is checked against CA and HOST): the file is read and written in 1 MiB pieces,
which OpenSSL cuts into full 16 KiB records, then a close_notify ends the stream. This is the
sender for rsyslog's TLS drivers (imtcp StreamDriver ossl/gtls, RFC 5425 style).
"""

import socket
import ssl
import sys

CHUNK = 1 << 20


def main():
    args = sys.argv[1:]
    ca = None
    if args[:1] == ["--tls-ca"]:
        ca, args = args[1], args[2:]
    host, port, path = args[0], int(args[1]), args[2]
    with socket.create_connection((host, port), timeout=30) as raw, open(path, "rb") as f:
        raw.settimeout(None)
        if ca is None:
            sent = raw.sendfile(f)
            raw.shutdown(socket.SHUT_WR)
            s = raw
        else:
            ctx = ssl.create_default_context(cafile=ca)
            s = ctx.wrap_socket(raw, server_hostname=host)
            sent = 0
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                s.sendall(view[:n])
                sent += n
            print("tls: %s %s" % (s.version(), s.cipher()[0]), file=sys.stderr)
            # close_notify, and the peer's in return (or its close).
            s.settimeout(600)
            try:
                s = s.unwrap()
            except (OSError, ssl.SSLError):
                pass
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
