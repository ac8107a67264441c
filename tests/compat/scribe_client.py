#!/usr/bin/env python3
"""Drives scribed with the real PyPI Scribe client (facebook-scribe 2.0.post1, Thrift-0.9.0
generated `scribe` and `fb303` packages) on the real `thrift` 0.25 runtime, set up exactly as
scribe_cat does it:

    TFramedTransport(TSocket(host, port))
    TBinaryProtocol(trans, strictRead=False, strictWrite=False)   # Scribe's own style
    TBinaryProtocol(trans, strictRead=True, strictWrite=True)     # scribe_ctrl / Ruby style
    scribe.Client(iprot=p, oprot=p)

Usage:
    scribe_client.py compat   HOST:PORT OUTDIR
    scribe_client.py shutdown HOST:PORT OUTDIR
    scribe_client.py tls      HOST:PORT OUTDIR --ca CA [--cert CERT --key KEY]
                              [--server-name NAME] [--category CAT]
                              [--expect ok|refused|tls-error]

`tls` connects as a Scribe client would over TLS with thrift's own TSSLSocket:

    TFramedTransport(TSSLSocket(host, port, ca_certs=CA, certfile=CERT, keyfile=KEY,
                                cert_reqs=ssl.CERT_REQUIRED))

(`validate=True` is the deprecated spelling of `cert_reqs=ssl.CERT_REQUIRED` in thrift 0.25;
the server's name is checked by OpenSSL during the handshake), sends one batch to CAT
(default `tls`) and reports the outcome in the summary's "outcome": "ok", "refused: <the
TApplicationException's message>" or "tls-error: <exception>". With --expect, any other
outcome exits non-zero. sent.tsv lists the batch only when it was accepted.

Every message sent is recorded in OUTDIR/sent.tsv, one line per LogEntry in send order:
    <category hex> TAB <message hex> TAB keep|drop
("drop" for entries whose category scribed must refuse). The test harness (tests/tests/
python_compat.rs) compares what scribed wrote against it. A JSON summary goes to stdout.
Exits non-zero (with a traceback) on any unexpected answer.

Findings about binary data with thrift 0.25 on Python 3:
  * The generated LogEntry.write() calls oprot.writeString(), which in thrift 0.25 is
    `writeBinary(bytes(s, 'utf-8'))`: `str` values work (NUL included, any valid Unicode, sent
    as UTF-8), `bytes` values raise `TypeError: encoding without a string argument`, and
    lone surrogates (`surrogateescape`) raise UnicodeEncodeError. So invalid UTF-8 cannot be
    sent through the stock LogEntry at all.
  * TBinaryProtocolAccelerated is no way out: the 0.9.0-generated code passes the spec as a
    tuple and thrift 0.25's fastbinary rejects it ("expecting list of size 2 for struct args").
  * What works: the same protocol object's writeBinary(). BinaryLogEntry below is LogEntry with
    write() using writeBinary for both fields, which yields byte-for-byte the encoding of the
    generated code (the wire type of `string` and `binary` is the same). The call still goes
    through the generated scribe.Client.Log / send_Log / recv_Log.
  * fb303 getCounters()/getOptions() replies fail to decode on Python 3 (`xrange` in the
    0.9.0-generated code); handled by a one-line shim on a separate connection (see
    get_counters).
"""

import json
import os
import sys
import time

from scribe import scribe
from fb303 import FacebookService
import fb303.FacebookService as fb303_service_module
from thrift.Thrift import TApplicationException, TMessageType
import ssl

from thrift.transport import TSocket, TSSLSocket, TTransport
from thrift.protocol import TBinaryProtocol
from thrift.protocol.TProtocol import TProtocolException

OK = scribe.ResultCode.OK
TIMEOUT_MS = 15000

sent = []  # (category bytes, message bytes, keep)
summary = {"calls": 0, "entries": 0, "connections": 0}


class BinaryLogEntry(scribe.LogEntry):
    """LogEntry whose fields are bytes, written with writeBinary (see the module notes)."""

    def write(self, oprot):
        oprot.writeStructBegin("LogEntry")
        if self.category is not None:
            oprot.writeFieldBegin("category", scribe.TType.STRING, 1)
            oprot.writeBinary(self.category)
            oprot.writeFieldEnd()
        if self.message is not None:
            oprot.writeFieldBegin("message", scribe.TType.STRING, 2)
            oprot.writeBinary(self.message)
            oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()


def valid_category(c):
    ok = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
    return 1 <= len(c) <= 200 and c not in (b".", b"..") and all(b in ok for b in c)


def as_bytes(v):
    return v if isinstance(v, bytes) else v.encode("utf-8")


class Conn:
    """One connection, set up as scribe_cat does (over TLS when `tls` holds TSSLSocket's
    keyword arguments)."""

    def __init__(self, host, port, strict, strict_read=None, tls=None):
        if tls is None:
            sock = TSocket.TSocket(host=host, port=port)
        else:
            sock = TSSLSocket.TSSLSocket(host=host, port=port, **tls)
        sock.setTimeout(TIMEOUT_MS)
        self.sock = sock
        self.transport = TTransport.TFramedTransport(sock)
        if strict:
            self.protocol = TBinaryProtocol.TBinaryProtocol(
                trans=self.transport, strictRead=True, strictWrite=True
            )
        else:
            self.protocol = TBinaryProtocol.TBinaryProtocol(
                trans=self.transport,
                strictRead=bool(strict_read),
                strictWrite=False,
            )
        self.client = scribe.Client(iprot=self.protocol, oprot=self.protocol)
        self.transport.open()
        summary["connections"] += 1

    def log(self, entries, binary=False):
        """Sends one batch of (category, message) pairs and asserts the answer is OK."""
        cls = BinaryLogEntry if binary else scribe.LogEntry
        batch = [cls(category=c, message=m) for c, m in entries]
        result = self.client.Log(messages=batch)
        assert result == OK, "Log(%d entries) returned %r, expected OK" % (len(batch), result)
        for c, m in entries:
            cb = as_bytes(c)
            sent.append((cb, as_bytes(m), valid_category(cb)))
        summary["calls"] += 1
        summary["entries"] += len(entries)

    def close(self):
        self.transport.close()


def run_batches(host, port, strict):
    """Several batches in one header style, on one connection."""
    style = "strict" if strict else "nonstrict"
    conn = Conn(host, port, strict)
    conn.log([])  # the network store's TRY_LATER probe
    conn.log([(style, "hello\n")])
    conn.log([(style, "no trailing newline")])
    conn.log(
        [
            (style, "embedded\nnewlines\nand no trailing one"),
            (style, "embedded\nnewlines with trailing one\n"),
            (style, "\n"),
            (style, "two trailing\n\n"),
            (style, ""),
            (style, "crlf\r\n"),
            (style, "NUL\x00inside\x00"),
            (style, "\x00"),
            (style, "utf-8: h\u00e9llo \u2713 \U0001f600 \u0000"),
        ]
    )
    # Several categories in one batch, interleaved, order within each category kept.
    conn.log(
        [
            ("multi.a", "a1\n"),
            ("multi_b", "b1"),
            ("multi.a", "a2"),
            ("multi-C", "c1\n"),
            ("multi_b", "b2\n"),
            ("multi.a", "a3\n"),
        ]
    )
    conn.log([])
    # A large message (bigger than the writer's 256 KiB buffer), no trailing newline.
    conn.log([("large." + style, ("%s-large-" % style) * 40000)])
    conn.close()


def run_binary(host, port, strict):
    """bytes fields: invalid UTF-8 and NUL bytes, through writeBinary (see module notes)."""
    conn = Conn(host, port, strict)
    cat = b"binary"
    conn.log(
        [
            (cat, b"\xff\xfe\xfd invalid utf-8\n"),
            (cat, b"\x00\x01\x02\x03"),
            (cat, b"\xc3\x28 bad continuation \x80\n"),
            (cat, bytes(range(256))),
            (cat, b"\xed\xa0\x80 surrogate half, \xf8\x88\x80\x80\x80 5-byte form\n"),
            (cat, b""),
        ],
        binary=True,
    )
    conn.close()


def run_bad_category(host, port):
    """An invalid category mixed with valid ones: only it is dropped, the call answers OK."""
    conn = Conn(host, port, strict=False)
    conn.log(
        [
            ("mixed", "before\n"),
            ("../escape", "must not be written anywhere\n"),
            ("mixed", "between"),
            ("../escape", "nor this\n"),
            ("", "blank category: dropped and counted\n"),
            ("mixed", "after\n"),
        ]
    )
    conn.close()


def run_sequential(host, port, n):
    """Many calls on one connection (the network store keeps its connection open)."""
    for strict in (False, True):
        conn = Conn(host, port, strict)
        cat = "seq.strict" if strict else "seq.nonstrict"
        for i in range(n):
            if i % 50 == 0:
                conn.log([])
            conn.log([(cat, "message %d" % i)])
        conn.close()


def run_fb303(host, port, strict):
    conn = Conn(host, port, strict)
    # scribe.Client extends FacebookService.Client, so the fb303 calls are on the same client.
    name = conn.client.getName()
    assert name == "scribed", "getName() = %r" % (name,)
    status = conn.client.getStatus()
    assert status == 2, "getStatus() = %r, expected 2 (ALIVE)" % (status,)  # fb_status.ALIVE
    alive = conn.client.aliveSince()
    now = int(time.time())
    assert isinstance(alive, int) and now - 3600 <= alive <= now + 5, "aliveSince() = %r" % (alive,)
    version = conn.client.getVersion()
    assert isinstance(version, str) and version, "getVersion() = %r" % (version,)
    # oneway reinitialize: no reply, so the next call on the connection gets its own answer.
    conn.client.reinitialize()
    status = conn.client.getStatus()
    assert status == 2, "getStatus() after reinitialize = %r" % (status,)
    # Log still works after fb303 calls on the same connection.
    conn.log([("fb303", "after getName/getStatus/aliveSince (%s)\n" % ("strict" if strict else "nonstrict"))])
    conn.close()
    return {"getName": name, "getStatus": status, "aliveSince": alive, "getVersion": version}


def check_reply_styles(host, port):
    """scribed answers in the request's style: a strict reader sending unversioned calls must
    see an unversioned reply (and so fail with BAD_VERSION)."""
    conn = Conn(host, port, strict=False, strict_read=True)
    try:
        conn.client.getStatus()
    except TProtocolException as e:
        assert e.type == TProtocolException.BAD_VERSION, "unexpected %r" % (e,)
        outcome = "unversioned reply to unversioned call"
    else:
        raise AssertionError("strictRead client accepted the reply to an unversioned call")
    conn.close()
    return outcome


def check_unknown_method(host, port, strict):
    """An unknown method gets TApplicationException(UNKNOWN_METHOD) and the connection stays
    usable."""
    conn = Conn(host, port, strict)
    p = conn.protocol
    p.writeMessageBegin("frobnicate", TMessageType.CALL, 7)
    p.writeStructBegin("frobnicate_args")
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    p.trans.flush()
    (fname, mtype, seqid) = p.readMessageBegin()
    assert mtype == TMessageType.EXCEPTION, "reply type %r" % (mtype,)
    x = TApplicationException()
    x.read(p)
    p.readMessageEnd()
    assert x.type == TApplicationException.UNKNOWN_METHOD, "exception %r" % (x,)
    assert (fname, seqid) == ("frobnicate", 7), (fname, seqid)
    assert conn.client.getStatus() == 2
    conn.close()
    return x.message


def stock_get_counters(host, port):
    """getCounters as published: decoding the reply fails on Python 3 (`xrange` in the
    0.9.0-generated code). Run on its own connection, which is then discarded: the failed
    decode leaves the frame half read."""
    conn = Conn(host, port, strict=False)
    try:
        conn.client.getCounters()
        outcome = "decoded"
    except NameError as e:
        outcome = "NameError: %s" % e
    conn.close()
    return outcome


def get_counters(host, port):
    """getCounters with `xrange = range` put into the generated module (the only change)."""
    fb303_service_module.xrange = range
    conn = Conn(host, port, strict=True)
    counters = conn.client.getCounters()
    conn.close()
    return counters


def check_counters(before, after):
    """The counters grew by exactly what this run sent (the server may have served earlier
    runs)."""
    good = {}
    bad = blank = 0
    for c, _, keep in sent:
        if keep:
            good[c.decode()] = good.get(c.decode(), 0) + 1
        elif c:
            bad += 1
        else:
            blank += 1

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    for c, n in good.items():
        key = "%s:received good" % c
        assert delta(key) == n, "counter %r grew by %r, expected %d" % (key, delta(key), n)
    total = sum(good.values())
    key = "scribe_overall:received good"
    assert delta(key) == total, "%s grew by %r, expected %d" % (key, delta(key), total)
    key = "scribe_overall:received bad"
    assert delta(key) == bad, "%s grew by %r, expected %d" % (key, delta(key), bad)
    key = "scribe_overall:received blank category"
    assert delta(key) == blank, "%s grew by %r, expected %d" % (key, delta(key), blank)
    return {"received_good": total, "received_bad": bad, "received_blank": blank}


def write_sent(outdir):
    with open(os.path.join(outdir, "sent.tsv"), "w") as f:
        for c, m, keep in sent:
            f.write("%s\t%s\t%s\n" % (c.hex(), m.hex(), "keep" if keep else "drop"))


def compat(host, port, outdir):
    summary["getCounters_stock_py3"] = stock_get_counters(host, port)
    before = get_counters(host, port)
    for strict in (False, True):
        run_batches(host, port, strict)
        run_binary(host, port, strict)
    run_bad_category(host, port)
    run_sequential(host, port, 500)
    summary["fb303"] = {
        "nonstrict": run_fb303(host, port, False),
        "strict": run_fb303(host, port, True),
    }
    summary["reply_style"] = check_reply_styles(host, port)
    summary["unknown_method"] = {
        "nonstrict": check_unknown_method(host, port, False),
        "strict": check_unknown_method(host, port, True),
    }
    summary["counters"] = check_counters(before, get_counters(host, port))
    # Still healthy after everything above.
    conn = Conn(host, port, strict=False)
    assert conn.client.getStatus() == 2
    conn.close()
    write_sent(outdir)
    per_category = {}
    for c, m, keep in sent:
        k = c.decode("utf-8", "backslashreplace")
        e = per_category.setdefault(k, {"messages": 0, "bytes": 0, "expected": "keep" if keep else "drop"})
        e["messages"] += 1
        e["bytes"] += len(m)
    summary["categories"] = per_category


def shutdown(host, port, outdir):
    conn = Conn(host, port, strict=False)
    conn.log([("before.shutdown", "logged before the oneway shutdown\n")])
    # fb303's oneway shutdown: the 0.9.0-generated client sends it as a CALL and reads nothing.
    fb = FacebookService.Client(iprot=conn.protocol, oprot=conn.protocol)
    fb.shutdown()
    # No reply may come: the next read must see the server close the connection, not a reply.
    try:
        status = conn.client.getStatus()
        raise AssertionError("got getStatus() = %r after shutdown" % (status,))
    except (TTransport.TTransportException, OSError) as e:
        if isinstance(e, TTransport.TTransportException):
            assert e.type != TTransport.TTransportException.TIMED_OUT, "no close within timeout"
        summary["after_shutdown"] = "%s: %s" % (type(e).__name__, e)
    except TApplicationException as e:
        raise AssertionError("scribed answered the oneway shutdown: %r" % (e,))
    conn.close()
    write_sent(outdir)


def tls_batch(category):
    """What `tls` mode sends: text, an embedded newline, UTF-8, NUL, and a message larger than
    a TLS record (16 KiB), so the framed transport's one write spans several records."""
    return [
        (category, "over tls\n"),
        (category, "no trailing newline"),
        (category, "embedded\nnewline\n"),
        (category, "utf-8: h\u00e9llo \u2713 \U0001f600 NUL\x00inside"),
        (category, "".join("%s-%06d " % (category, i) for i in range(4000))),
        (category, "last\n"),
    ]


# Transport-level failures a refused handshake may surface as: a TLS alert (ssl.SSLError),
# the server closing or resetting the connection (TTransportException, OSError).
TLS_ERRORS = (ssl.SSLError, ssl.CertificateError, TTransport.TTransportException, OSError)


def tls(host, port, outdir, opts):
    kw = {"ca_certs": opts["ca"], "cert_reqs": ssl.CERT_REQUIRED}
    if opts.get("cert"):
        kw["certfile"] = opts["cert"]
        kw["keyfile"] = opts.get("key")
    if opts.get("server_name"):
        kw["server_hostname"] = opts["server_name"]
    category = opts.get("category", "tls")
    summary["tls"] = {
        "client_certificate": bool(opts.get("cert")),
        "category": category,
    }
    try:
        conn = Conn(host, port, strict=False, tls=kw)
        summary["tls"]["version"] = conn.sock.handle.version()
        conn.log([])  # the network store's probe: an empty batch is always answered OK
        conn.log(tls_batch(category))
        # Still usable after the batch.
        status = conn.client.getStatus()
        assert status == 2, "getStatus() = %r after the batch" % (status,)
        conn.close()
        outcome = "ok"
    except TApplicationException as e:
        outcome = "refused: %s" % (e.message,)
        summary["tls"]["exception_type"] = e.type
    except TLS_ERRORS as e:
        outcome = "tls-error: %s: %s" % (type(e).__name__, e)
        # TSocket.open reports "Could not connect" and keeps the handshake's error as `inner`.
        inner = getattr(e, "inner", None)
        if inner is not None:
            outcome += " (%s: %s)" % (type(inner).__name__, inner)
    summary["outcome"] = outcome
    write_sent(outdir)
    expect = opts.get("expect")
    if expect and outcome.split(":")[0] != expect:
        json.dump(summary, sys.stdout, indent=1, sort_keys=True)
        print()
        sys.exit("expected outcome %r, got %r" % (expect, outcome))


def parse_opts(args):
    opts = {}
    known = ("--ca", "--cert", "--key", "--server-name", "--category", "--expect")
    while args:
        flag = args.pop(0)
        if flag not in known or not args:
            sys.exit("unknown option or missing value: %r" % (flag,))
        opts[flag[2:].replace("-", "_")] = args.pop(0)
    if "ca" not in opts:
        sys.exit("tls mode needs --ca")
    if ("cert" in opts) != ("key" in opts):
        sys.exit("--cert and --key go together")
    return opts


def main():
    modes = ("compat", "shutdown", "tls")
    if len(sys.argv) < 4 or sys.argv[1] not in modes or (sys.argv[1] != "tls" and len(sys.argv) != 4):
        sys.exit("usage: scribe_client.py compat|shutdown|tls HOST:PORT OUTDIR [tls options]")
    mode, addr, outdir = sys.argv[1:4]
    host, port = addr.rsplit(":", 1)
    if mode == "tls":
        tls(host, int(port), outdir, parse_opts(sys.argv[4:]))
    else:
        (compat if mode == "compat" else shutdown)(host, int(port), outdir)
    json.dump(summary, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
