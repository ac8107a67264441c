//! Talking to servers by hand: a raw framed-Thrift connection, fb303 calls and replies, HTTP
//! GET for the status endpoints, and `Recorder`, a Scribe server that keeps message boundaries.

use std::io::Write;
use std::time::Duration;

/// A minimal HTTP/1.1 GET (the tests' only HTTP client need): (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

/// [`http_get`] with extra header lines (`"Authorization: Bearer x"`).
pub fn http_get_with(addr: &str, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connecting to the status address");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// The value of a Prometheus sample line `name{labels} value` (exact match on the part before
/// the value).
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A blocking framed-Thrift connection for protocol-level tests: sends raw payloads and reads
/// raw replies, with a read timeout so a missing reply fails the test instead of hanging it.
pub struct RawConn {
    stream: std::net::TcpStream,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = std::net::TcpStream::connect(addr).expect("connecting to scribed");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        RawConn { stream }
    }

    /// Writes bytes exactly as given (for hostile frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one frame: 4-byte big-endian length, then the payload.
    pub fn send(&mut self, payload: &[u8]) {
        let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(payload);
        self.stream.write_all(&framed).expect("sending frame");
    }

    /// Reads one reply frame's payload; `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<bytes::Bytes> {
        use std::io::Read;
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("reading reply: {e}"),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream
            .read_exact(&mut payload)
            .expect("reading reply payload");
        Some(payload.into())
    }

    /// Sends a call and returns its reply.
    pub fn call(&mut self, payload: &[u8]) -> bytes::Bytes {
        self.send(payload);
        self.recv().expect("a reply")
    }
}

/// Encodes a no-argument fb303 call, or `getCounter(key)`.
pub fn fb303_call(name: &str, style: scribe_protocol::HeaderStyle, key: Option<&[u8]>) -> Vec<u8> {
    use scribe_protocol::message::{message_type, MessageHeader};
    use scribe_protocol::thrift::{ttype, Writer};
    let mut b = bytes::BytesMut::new();
    MessageHeader {
        name: name.into(),
        message_type: message_type::CALL,
        seqid: 9,
        style,
    }
    .write(&mut b);
    let mut w = Writer { buf: &mut b };
    if let Some(k) = key {
        w.field_begin(ttype::STRING, 1);
        w.binary(k);
    }
    w.field_stop();
    b.to_vec()
}

/// Reads a reply whose result is field 0 of a scalar or string type; returns the header and a
/// reader positioned at that value.
pub fn reply_value(
    reply: bytes::Bytes,
) -> (
    scribe_protocol::message::MessageHeader,
    u8,
    scribe_protocol::thrift::Reader,
) {
    use scribe_protocol::message::MessageHeader;
    use scribe_protocol::thrift::Reader;
    let mut r = Reader::new(reply);
    let h = MessageHeader::read(&mut r).expect("reply header");
    let (ty, id) = r
        .read_field_begin()
        .expect("result field")
        .expect("a result value");
    assert_eq!(id, 0, "result is field 0");
    (h, ty, r)
}

/// fb303 `getCounter(key)` over a fresh connection.
pub fn get_counter(addr: &str, key: &str) -> i64 {
    let mut c = RawConn::connect(addr);
    let reply = c.call(&fb303_call(
        "getCounter",
        scribe_protocol::HeaderStyle::Unversioned,
        Some(key.as_bytes()),
    ));
    let (_, _, mut r) = reply_value(reply);
    r.read_i64().expect("i64 counter")
}

/// A minimal Scribe server that records every `Log` entry and answers OK, for tests that must
/// see message boundaries (which scribed's archive files do not keep). It answers the fb303
/// handshake as a plain (non-scribed) server, so clients send one batch at a time.
pub struct Recorder {
    pub addr: String,
    entries: std::sync::Arc<std::sync::Mutex<Vec<scribe_protocol::LogEntry>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding recorder");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr").to_string();
        let entries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (e, s, c) = (entries.clone(), stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        if let Ok(clone) = stream.try_clone() {
                            c.lock().unwrap().push(clone);
                        }
                        let e = e.clone();
                        std::thread::spawn(move || Recorder::serve(stream, &e));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Recorder {
            addr,
            entries,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// Serves one connection until it closes or sends something undecodable.
    fn serve(
        mut stream: std::net::TcpStream,
        entries: &std::sync::Mutex<Vec<scribe_protocol::LogEntry>>,
    ) {
        use scribe_protocol::scribe::{encode_log_reply, encode_string_reply, encode_void_reply};
        use scribe_protocol::Request;
        use std::io::Read;
        loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).is_err() {
                return;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > 64 << 20 {
                return;
            }
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).is_err() {
                return;
            }
            let Ok(call) = scribe_protocol::decode_call(payload.into()) else {
                return;
            };
            let reply = match call.request {
                Request::Log(batch) => {
                    entries.lock().unwrap().extend(batch);
                    encode_log_reply(&call.header, scribe_protocol::ResultCode::Ok)
                }
                Request::GetName => encode_string_reply(&call.header, b"recorder"),
                Request::GetOption(_) => encode_string_reply(&call.header, b""),
                Request::SetOption(..) => encode_void_reply(&call.header),
                _ => return,
            };
            let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }

    /// Every entry received so far, in arrival order.
    pub fn entries(&self) -> Vec<scribe_protocol::LogEntry> {
        self.entries.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A scribed-like Thrift upstream that answers every `Log` call `delay` after reading it
/// while it reads on, so it sees how many calls a client keeps in flight. It says, as scribed
/// does, that it closes after `TRY_LATER`, so clients pipeline to it; it never refuses.
pub struct SlowUpstream {
    pub addr: String,
    entries: std::sync::Arc<std::sync::Mutex<Vec<bytes::Bytes>>>,
    max_unanswered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowUpstream {
    pub fn start(delay: Duration) -> SlowUpstream {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding upstream");
        let addr = listener.local_addr().expect("local_addr").to_string();
        let entries = Arc::new(Mutex::new(Vec::new()));
        let max_unanswered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (e, m) = (entries.clone(), max_unanswered.clone());
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (e, m) = (e.clone(), m.clone());
                std::thread::spawn(move || SlowUpstream::serve(stream, delay, &e, &m));
            }
        });
        SlowUpstream {
            addr,
            entries,
            max_unanswered,
        }
    }

    /// Reads calls on this thread and answers them in order on another.
    fn serve(
        stream: std::net::TcpStream,
        delay: Duration,
        entries: &std::sync::Mutex<Vec<bytes::Bytes>>,
        max_unanswered: &std::sync::atomic::AtomicUsize,
    ) {
        use scribe_protocol::client::CLOSE_ON_TRY_LATER_OPTION;
        use scribe_protocol::scribe::{encode_log_reply, encode_string_reply, encode_void_reply};
        use scribe_protocol::Request;
        use std::io::Read;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let unanswered = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, Option<std::time::Instant>)>();
        let pending = unanswered.clone();
        let answers = std::thread::spawn(move || {
            for (reply, due) in rx {
                if let Some(due) = due {
                    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                if writer.write_all(&framed).is_err() {
                    return;
                }
            }
        });
        let mut stream = stream;
        loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).is_err() {
                break;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > 64 << 20 {
                break; // The native magic: a Thrift server hangs up.
            }
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).is_err() {
                break;
            }
            let Ok(call) = scribe_protocol::decode_call(payload.into()) else {
                break;
            };
            let h = &call.header;
            let (reply, due) = match call.request {
                Request::Log(batch) => {
                    let now = unanswered.fetch_add(1, Ordering::SeqCst) + 1;
                    max_unanswered.fetch_max(now, Ordering::SeqCst);
                    entries
                        .lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|e| e.message));
                    let ok = encode_log_reply(h, scribe_protocol::ResultCode::Ok);
                    (ok, Some(std::time::Instant::now() + delay))
                }
                Request::GetName => (encode_string_reply(h, b"scribed"), None),
                Request::GetOption(k) if &k[..] == CLOSE_ON_TRY_LATER_OPTION => {
                    (encode_string_reply(h, b"1"), None)
                }
                Request::GetOption(_) => (encode_string_reply(h, b""), None),
                Request::SetOption(..) => (encode_void_reply(h), None),
                _ => break,
            };
            if tx.send((reply.to_vec(), due)).is_err() {
                break;
            }
        }
        drop(tx);
        let _ = answers.join();
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<bytes::Bytes> {
        self.entries.lock().unwrap().clone()
    }

    /// The most `Log` calls one connection had sent and not yet had answered.
    pub fn max_unanswered(&self) -> usize {
        self.max_unanswered
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}
