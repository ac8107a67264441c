//! The `scribe` service and the fb303 `FacebookService` it extends: decoding calls, encoding
//! replies, and building `Log` batches on the client side.
//!
//! IDL (Scribe 2.2): `ResultCode Log(1: list<LogEntry> messages)`,
//! `struct LogEntry { 1: string category, 2: string message }`, `enum ResultCode { OK, TRY_LATER }`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::message::{
    encode_reply, message_type, ApplicationException, HeaderStyle, MessageHeader,
};
use crate::thrift::{ttype, DecodeError, Reader, Writer};

/// One categorized message. Both fields are arbitrary bytes (NUL, invalid UTF-8 allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub category: Bytes,
    pub message: Bytes,
}

/// The answer to `Log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Ok = 0,
    TryLater = 1,
}

/// fb303's `fb_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FbStatus {
    Dead = 0,
    Starting = 1,
    Alive = 2,
    Stopping = 3,
    Stopped = 4,
    Warning = 5,
}

/// A decoded call to the scribe or fb303 service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Log(Vec<LogEntry>),
    GetName,
    GetVersion,
    GetStatus,
    GetStatusDetails,
    GetCounters,
    GetCounter(Bytes),
    SetOption(Bytes, Bytes),
    GetOption(Bytes),
    GetOptions,
    GetCpuProfile,
    AliveSince,
    /// oneway: never answered.
    Reinitialize,
    /// oneway: never answered.
    Shutdown,
    /// Any other method name; answered with `TApplicationException(UNKNOWN_METHOD)`.
    Unknown,
}

impl Request {
    /// True for fb303's oneway methods, which must never get a reply whatever message type the
    /// client used (Thrift-0.9-generated Python sends them as CALL).
    pub fn is_oneway(&self) -> bool {
        matches!(self, Request::Reinitialize | Request::Shutdown)
    }
}

/// A call: its header (needed to shape the reply) and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub header: MessageHeader,
    pub request: Request,
}

/// Decodes one frame's payload (without the 4-byte length) into a call.
pub fn decode_call(frame: Bytes) -> Result<Call, DecodeError> {
    let mut r = Reader::new(frame);
    let header = MessageHeader::read(&mut r)?;
    if header.message_type != message_type::CALL && header.message_type != message_type::ONEWAY {
        return Err(DecodeError::BadMessage("expected a CALL or ONEWAY message"));
    }
    let request = match header.name.as_str() {
        "Log" => Request::Log(read_log_args(&mut r)?),
        "getName" => no_args(&mut r, Request::GetName)?,
        "getVersion" => no_args(&mut r, Request::GetVersion)?,
        "getStatus" => no_args(&mut r, Request::GetStatus)?,
        "getStatusDetails" => no_args(&mut r, Request::GetStatusDetails)?,
        "getCounters" => no_args(&mut r, Request::GetCounters)?,
        "getOptions" => no_args(&mut r, Request::GetOptions)?,
        "getCpuProfile" => no_args(&mut r, Request::GetCpuProfile)?,
        "aliveSince" => no_args(&mut r, Request::AliveSince)?,
        "reinitialize" => no_args(&mut r, Request::Reinitialize)?,
        "shutdown" => no_args(&mut r, Request::Shutdown)?,
        "getCounter" => {
            let [key] = string_args::<1>(&mut r)?;
            Request::GetCounter(key)
        }
        "getOption" => {
            let [key] = string_args::<1>(&mut r)?;
            Request::GetOption(key)
        }
        "setOption" => {
            let [key, value] = string_args::<2>(&mut r)?;
            Request::SetOption(key, value)
        }
        // The arguments of an unknown method are not read: the frame boundary already tells
        // where the next call starts, so the connection stays usable.
        _ => Request::Unknown,
    };
    Ok(Call { header, request })
}

fn no_args(r: &mut Reader, req: Request) -> Result<Request, DecodeError> {
    r.skip(ttype::STRUCT)?;
    Ok(req)
}

/// Reads an args struct whose fields 1..=N are strings; missing ones are empty.
fn string_args<const N: usize>(r: &mut Reader) -> Result<[Bytes; N], DecodeError> {
    let mut out: [Bytes; N] = std::array::from_fn(|_| Bytes::new());
    while let Some((ty, id)) = r.read_field_begin()? {
        match usize::try_from(id) {
            Ok(i) if (1..=N).contains(&i) && ty == ttype::STRING => out[i - 1] = r.read_binary()?,
            _ => r.skip(ty)?,
        }
    }
    Ok(out)
}

fn read_log_args(r: &mut Reader) -> Result<Vec<LogEntry>, DecodeError> {
    let mut entries = Vec::new();
    while let Some((ty, id)) = r.read_field_begin()? {
        if id == 1 && ty == ttype::LIST {
            let (elem, count) = r.read_list_begin()?;
            if elem != ttype::STRUCT {
                return Err(DecodeError::WrongFieldType {
                    field: 1,
                    found: elem,
                    expected: ttype::STRUCT,
                });
            }
            // A repeated field replaces the earlier one, as in Thrift-generated code.
            // `count` was checked against the bytes left in the frame, so this is bounded by
            // the frame size, which the transport caps.
            entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(read_log_entry(r)?);
            }
        } else {
            r.skip(ty)?;
        }
    }
    Ok(entries)
}

fn read_log_entry(r: &mut Reader) -> Result<LogEntry, DecodeError> {
    let mut e = LogEntry {
        category: Bytes::new(),
        message: Bytes::new(),
    };
    while let Some((ty, id)) = r.read_field_begin()? {
        match (id, ty) {
            (1, ttype::STRING) => e.category = r.read_binary()?,
            (2, ttype::STRING) => e.message = r.read_binary()?,
            _ => r.skip(ty)?,
        }
    }
    Ok(e)
}

// ---- replies (server side) ----

pub fn encode_log_reply(call: &MessageHeader, code: ResultCode) -> Bytes {
    encode_reply(call, |w| {
        w.field_begin(ttype::I32, 0);
        w.i32(code as i32);
    })
}

pub fn encode_string_reply(call: &MessageHeader, value: &[u8]) -> Bytes {
    encode_reply(call, |w| {
        w.field_begin(ttype::STRING, 0);
        w.binary(value);
    })
}

pub fn encode_i32_reply(call: &MessageHeader, value: i32) -> Bytes {
    encode_reply(call, |w| {
        w.field_begin(ttype::I32, 0);
        w.i32(value);
    })
}

pub fn encode_i64_reply(call: &MessageHeader, value: i64) -> Bytes {
    encode_reply(call, |w| {
        w.field_begin(ttype::I64, 0);
        w.i64(value);
    })
}

/// A `void` method's reply: an empty result struct.
pub fn encode_void_reply(call: &MessageHeader) -> Bytes {
    encode_reply(call, |_| {})
}

/// Encodes a `map<string, T>` reply; `put` writes each value of type `vtype`.
pub fn encode_map_reply<'a, V: 'a>(
    call: &MessageHeader,
    vtype: u8,
    entries: impl ExactSizeIterator<Item = (&'a [u8], V)>,
    put: impl Fn(&mut Writer, V),
) -> Bytes {
    encode_reply(call, |w| {
        w.field_begin(ttype::MAP, 0);
        w.map_begin(ttype::STRING, vtype, entries.len() as i32);
        for (k, v) in entries {
            w.binary(k);
            put(w, v);
        }
    })
}

// ---- client side ----

/// Builds the payload of one `Log` call entry by entry, encoding straight into the buffer that
/// will be sent (no intermediate `Vec<LogEntry>`).
pub struct LogBatchBuilder {
    buf: BytesMut,
    count_at: usize,
    count: usize,
}

/// Encoded bytes one entry adds to a batch besides its category and message.
pub const ENTRY_OVERHEAD: usize = 15;

impl LogBatchBuilder {
    pub fn new(style: HeaderStyle, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity + 64);
        MessageHeader {
            name: "Log".into(),
            message_type: message_type::CALL,
            seqid: 0,
            style,
        }
        .write(&mut buf);
        let mut w = Writer { buf: &mut buf };
        w.field_begin(ttype::LIST, 1);
        w.buf.put_u8(ttype::STRUCT);
        let count_at = buf.len();
        buf.put_i32(0);
        LogBatchBuilder {
            buf,
            count_at,
            count: 0,
        }
    }

    pub fn push(&mut self, category: &[u8], message: &[u8]) {
        let mut w = Writer { buf: &mut self.buf };
        w.field_begin(ttype::STRING, 1);
        w.binary(category);
        w.field_begin(ttype::STRING, 2);
        w.binary(message);
        w.field_stop();
        self.count += 1;
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Finishes the call: patches the entry count and closes the args struct.
    pub fn finish(mut self) -> Bytes {
        let n = i32::try_from(self.count).expect("batch over i32::MAX entries");
        self.buf[self.count_at..self.count_at + 4].copy_from_slice(&n.to_be_bytes());
        self.buf.put_u8(ttype::STOP);
        self.buf.freeze()
    }
}

/// Encodes a whole `Log` call from entries (convenience for tests and small senders).
pub fn encode_log_call(style: HeaderStyle, entries: &[LogEntry]) -> Bytes {
    let mut b = LogBatchBuilder::new(style, 0);
    for e in entries {
        b.push(&e.category, &e.message);
    }
    b.finish()
}

/// Encodes a call whose arguments are strings, fields 1..=N (fb303 `getName`, `getOption`,
/// `setOption`, ...).
pub fn encode_string_call(style: HeaderStyle, name: &str, args: &[&[u8]]) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    MessageHeader {
        name: name.into(),
        message_type: message_type::CALL,
        seqid: 0,
        style,
    }
    .write(&mut buf);
    let mut w = Writer { buf: &mut buf };
    for (i, a) in args.iter().enumerate() {
        w.field_begin(ttype::STRING, i as i16 + 1);
        w.binary(a);
    }
    w.field_stop();
    buf.freeze()
}

/// Decodes the reply to a call returning `string` (or `void`: `None`).
pub fn decode_string_reply(frame: Bytes, method: &str) -> Result<Option<Bytes>, ReplyError> {
    let mut r = reply_reader(frame, method)?;
    let mut value = None;
    while let Some((ty, id)) = r.read_field_begin()? {
        if id == 0 && ty == ttype::STRING {
            value = Some(r.read_binary()?);
        } else {
            r.skip(ty)?;
        }
    }
    Ok(value)
}

/// Why a reply to `Log` was not a result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply: {0}")]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Exception(#[from] ApplicationException),
    #[error("reply is for method {0:?}, not the one called")]
    WrongMethod(String),
    #[error("unknown ResultCode {0}")]
    UnknownResultCode(i32),
    #[error("reply has no result")]
    MissingResult,
}

/// Reads a reply's header: an exception becomes the error, anything but a REPLY to `method` is
/// refused; the reader is left at the result struct.
fn reply_reader(frame: Bytes, method: &str) -> Result<Reader, ReplyError> {
    let mut r = Reader::new(frame);
    let header = MessageHeader::read(&mut r)?;
    if header.message_type == message_type::EXCEPTION {
        return Err(ApplicationException::read(&mut r)?.into());
    }
    if header.message_type != message_type::REPLY {
        return Err(DecodeError::BadMessage("expected a REPLY message").into());
    }
    if header.name != method {
        return Err(ReplyError::WrongMethod(header.name));
    }
    Ok(r)
}

/// Decodes the reply to a `Log` call.
pub fn decode_log_reply(frame: Bytes) -> Result<ResultCode, ReplyError> {
    let mut r = reply_reader(frame, "Log")?;
    let mut code = None;
    while let Some((ty, id)) = r.read_field_begin()? {
        if id == 0 && ty == ttype::I32 {
            code = Some(r.read_i32()?);
        } else {
            r.skip(ty)?;
        }
    }
    match code {
        Some(0) => Ok(ResultCode::Ok),
        Some(1) => Ok(ResultCode::TryLater),
        Some(c) => Err(ReplyError::UnknownResultCode(c)),
        None => Err(ReplyError::MissingResult),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{encode_exception, exception_kind};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Splits a known-good framed message into its payload, checking the length prefix.
    fn payload(framed: &[u8]) -> Bytes {
        let n = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
        assert_eq!(n, framed.len() - 4, "length prefix of the known-good bytes");
        Bytes::copy_from_slice(&framed[4..])
    }

    // Known-good bytes from facebook-scribe 2.0.post1 + thrift 0.25.0 (research brief §1.3).
    const LOG_NON_STRICT: &str = "0000002e 00000003 4c6f67 01 00000000 0f0001 0c 00000001
        0b0001 00000004 74657374 0b0002 00000006 68656c6c6f0a 00 00";
    const LOG_STRICT: &str = "00000031 80010001 00000003 4c6f67 00000000 0f0001 0c 00000001
        0b0001 00000004 74657374 0b0002 00000006 68656c6c6f0a 00 00";
    const EMPTY_LOG: &str = "00000015 00000003 4c6f67 01 00000000 0f0001 0c 00000000 00";
    const REPLY_OK: &str = "00000014 00000003 4c6f67 02 00000000 08 0000 00000000 00";
    const REPLY_TRY_LATER: &str = "00000014 00000003 4c6f67 02 00000000 08 0000 00000001 00";

    fn hello() -> Vec<LogEntry> {
        vec![LogEntry {
            category: Bytes::from_static(b"test"),
            message: Bytes::from_static(b"hello\n"),
        }]
    }

    #[test]
    fn decodes_known_good_non_strict_log() {
        let call = decode_call(payload(&hex(LOG_NON_STRICT))).unwrap();
        assert_eq!(call.header.style, HeaderStyle::Unversioned);
        assert_eq!(call.request, Request::Log(hello()));
    }

    #[test]
    fn decodes_known_good_strict_log() {
        let call = decode_call(payload(&hex(LOG_STRICT))).unwrap();
        assert_eq!(call.header.style, HeaderStyle::Strict);
        assert_eq!(call.request, Request::Log(hello()));
    }

    #[test]
    fn encodes_known_good_calls() {
        let p = encode_log_call(HeaderStyle::Unversioned, &hello());
        assert_eq!(&p[..], &payload(&hex(LOG_NON_STRICT))[..]);
        let p = encode_log_call(HeaderStyle::Strict, &hello());
        assert_eq!(&p[..], &payload(&hex(LOG_STRICT))[..]);
        let p = encode_log_call(HeaderStyle::Unversioned, &[]);
        assert_eq!(&p[..], &payload(&hex(EMPTY_LOG))[..]);
    }

    #[test]
    fn empty_log_decodes_to_no_entries() {
        let call = decode_call(payload(&hex(EMPTY_LOG))).unwrap();
        assert_eq!(call.request, Request::Log(vec![]));
    }

    #[test]
    fn encodes_known_good_replies_in_request_style() {
        let call = decode_call(payload(&hex(LOG_NON_STRICT))).unwrap();
        let ok = encode_log_reply(&call.header, ResultCode::Ok);
        assert_eq!(&ok[..], &payload(&hex(REPLY_OK))[..]);
        let later = encode_log_reply(&call.header, ResultCode::TryLater);
        assert_eq!(&later[..], &payload(&hex(REPLY_TRY_LATER))[..]);

        let strict = decode_call(payload(&hex(LOG_STRICT))).unwrap();
        let reply = encode_log_reply(&strict.header, ResultCode::Ok);
        assert_eq!(&reply[..4], &[0x80, 0x01, 0x00, 0x02]);
        assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
    }

    #[test]
    fn decodes_replies() {
        assert_eq!(
            decode_log_reply(payload(&hex(REPLY_OK))),
            Ok(ResultCode::Ok)
        );
        assert_eq!(
            decode_log_reply(payload(&hex(REPLY_TRY_LATER))),
            Ok(ResultCode::TryLater)
        );
        let call = decode_call(payload(&hex(LOG_STRICT))).unwrap();
        let exc = encode_exception(&call.header, exception_kind::UNKNOWN_METHOD, "x");
        assert!(matches!(
            decode_log_reply(exc),
            Err(ReplyError::Exception(ApplicationException { kind: 1, .. }))
        ));
    }

    #[test]
    fn binary_messages_round_trip() {
        let entries = vec![
            LogEntry {
                category: Bytes::from_static(b"c\x00t"),
                message: Bytes::from_static(b"\xff\xfe\x00\ttab\n"),
            },
            LogEntry {
                category: Bytes::from_static(b"other"),
                message: Bytes::new(),
            },
        ];
        for style in [HeaderStyle::Strict, HeaderStyle::Unversioned] {
            let call = decode_call(encode_log_call(style, &entries)).unwrap();
            assert_eq!(call.request, Request::Log(entries.clone()));
        }
    }

    #[test]
    fn every_truncation_of_a_log_call_is_an_error_not_a_panic() {
        let full = payload(&hex(LOG_STRICT));
        for n in 0..full.len() {
            assert!(decode_call(full.slice(..n)).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // LogEntry with an extra i64 field 9 before the category.
        let mut b = BytesMut::new();
        MessageHeader {
            name: "Log".into(),
            message_type: message_type::CALL,
            seqid: 3,
            style: HeaderStyle::Strict,
        }
        .write(&mut b);
        let mut w = Writer { buf: &mut b };
        w.field_begin(ttype::I32, 5);
        w.i32(99);
        w.field_begin(ttype::LIST, 1);
        w.list_begin(ttype::STRUCT, 1);
        w.field_begin(ttype::I64, 9);
        w.i64(1);
        w.field_begin(ttype::STRING, 1);
        w.binary(b"test");
        w.field_begin(ttype::STRING, 2);
        w.binary(b"hello\n");
        w.field_stop();
        w.field_stop();
        let call = decode_call(b.freeze()).unwrap();
        assert_eq!(call.request, Request::Log(hello()));
    }

    #[test]
    fn list_of_wrong_element_type_is_rejected() {
        let mut b = BytesMut::new();
        MessageHeader {
            name: "Log".into(),
            message_type: message_type::CALL,
            seqid: 0,
            style: HeaderStyle::Strict,
        }
        .write(&mut b);
        let mut w = Writer { buf: &mut b };
        w.field_begin(ttype::LIST, 1);
        w.list_begin(ttype::I32, 1);
        w.i32(1);
        w.field_stop();
        assert!(matches!(
            decode_call(b.freeze()),
            Err(DecodeError::WrongFieldType { .. })
        ));
    }

    #[test]
    fn fb303_calls_decode() {
        let mk = |name: &str, mt: u8| {
            let mut b = BytesMut::new();
            MessageHeader {
                name: name.into(),
                message_type: mt,
                seqid: 1,
                style: HeaderStyle::Unversioned,
            }
            .write(&mut b);
            let mut w = Writer { buf: &mut b };
            if name == "getCounter" {
                w.field_begin(ttype::STRING, 1);
                w.binary(b"scribe_overall:received good");
            }
            w.field_stop();
            decode_call(b.freeze()).unwrap().request
        };
        assert_eq!(mk("getName", message_type::CALL), Request::GetName);
        assert_eq!(mk("shutdown", message_type::CALL), Request::Shutdown);
        assert!(mk("shutdown", message_type::ONEWAY).is_oneway());
        assert!(mk("reinitialize", message_type::CALL).is_oneway());
        assert_eq!(
            mk("getCounter", message_type::CALL),
            Request::GetCounter(Bytes::from_static(b"scribe_overall:received good"))
        );
        assert_eq!(mk("frobnicate", message_type::CALL), Request::Unknown);
    }

    #[test]
    fn reply_message_sent_to_server_is_rejected() {
        assert!(matches!(
            decode_call(payload(&hex(REPLY_OK))),
            Err(DecodeError::BadMessage(_))
        ));
    }

    #[test]
    fn map_reply_encodes_counters() {
        let call = decode_call(payload(&hex(EMPTY_LOG))).unwrap();
        let counters = [(&b"a:received good"[..], 3i64)];
        let reply = encode_map_reply(&call.header, ttype::I64, counters.into_iter(), |w, v| {
            w.i64(v)
        });
        let mut r = Reader::new(reply);
        MessageHeader::read(&mut r).unwrap();
        assert_eq!(r.read_field_begin().unwrap(), Some((ttype::MAP, 0)));
        r.skip(ttype::MAP).unwrap();
        assert_eq!(r.read_field_begin().unwrap(), None);
        assert_eq!(r.remaining(), 0);
    }
}
