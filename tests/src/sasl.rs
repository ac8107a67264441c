//! A SASL-authenticating Kafka relay on loopback, in front of tansu.
//!
//! tansu 0.6.0 as the tests install it (the PyPI wheel, built with only its object-store
//! engine) keeps SCRAM credentials nowhere: that engine's `user create` answers success and
//! stores nothing, its credential lookup answers "no such user", and PLAIN is not among the
//! mechanisms it offers. So a broker that lets a right password in is this relay: it answers
//! `SaslHandshake` and `SaslAuthenticate` itself (PLAIN, and SCRAM-SHA-256/512 as the server
//! side of RFC 5802/7677, with `ring`), passes `ApiVersions` through to the broker, and once
//! a connection has authenticated relays its bytes both ways. A request other than those
//! before authentication, or a failed exchange, closes the connection, as Kafka does.
//! (`kafka_sasl.rs` also runs tansu's own SCRAM, which refuses everyone.)

use std::collections::BTreeMap;
use std::io;
use std::num::NonZeroU32;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SASL_HANDSHAKE: i16 = 17;
const API_VERSIONS: i16 = 18;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Frames before authentication are small (ApiVersions and the SASL exchange).
const MAX_FRAME: usize = 1 << 20;
const ITERATIONS: u32 = 4096;

/// A running relay ([`crate::relay::Relay`]); stopped when dropped.
pub struct SaslProxy {
    /// `127.0.0.1:PORT`: where clients connect (and what the broker advertises).
    pub addr: String,
    _relay: crate::relay::Relay,
}

impl SaslProxy {
    /// Binds a loopback port now, so the broker can advertise it before it starts.
    pub fn bind() -> (std::net::TcpListener, String) {
        crate::relay::Relay::bind()
    }

    /// Serves `listener`: authenticates every connection against `users` (name → password,
    /// for any of the three mechanisms), then relays it to `upstream`.
    pub fn relay_to(
        listener: std::net::TcpListener,
        upstream: &str,
        users: &[(&str, &str)],
    ) -> SaslProxy {
        let users: Arc<BTreeMap<String, String>> = Arc::new(
            users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        );
        let upstream = upstream.to_string();
        let relay = crate::relay::Relay::serve(listener, move |tcp| {
            let (users, upstream) = (users.clone(), upstream.clone());
            // A refused client or a dropped broker ends its connection only.
            async move {
                let _ = serve(tcp, &upstream, &users).await;
            }
        });
        SaslProxy {
            addr: relay.addr.clone(),
            _relay: relay,
        }
    }
}

/// One client connection: the SASL exchange, then the relay.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    users: &BTreeMap<String, String>,
) -> io::Result<()> {
    let mut broker = TcpStream::connect(upstream).await?;
    let mut exchange: Option<Exchange> = None;
    loop {
        let Some(frame) = read_frame(&mut client).await? else {
            return Ok(());
        };
        let mut r = Reader(&frame);
        let (key, version, correlation) = (r.i16()?, r.i16()?, r.i32()?);
        match key {
            API_VERSIONS => {
                write_frame(&mut broker, &frame).await?;
                let reply = read_frame(&mut broker)
                    .await?
                    .ok_or_else(|| bad("broker closed"))?;
                write_frame(&mut client, &reply).await?;
            }
            SASL_HANDSHAKE => {
                r.nullable_string()?; // client id
                let mechanism = r.string()?;
                exchange = Exchange::start(&mechanism);
                let error = if exchange.is_some() {
                    0
                } else {
                    UNSUPPORTED_SASL_MECHANISM
                };
                let mut body = Vec::new();
                body.extend(error.to_be_bytes());
                body.extend((MECHANISMS.len() as i32).to_be_bytes());
                for m in MECHANISMS {
                    put_string(&mut body, m);
                }
                reply(&mut client, correlation, &body).await?;
                if exchange.is_none() {
                    return Ok(());
                }
            }
            SASL_AUTHENTICATE => {
                r.nullable_string()?; // client id
                let token = r.bytes()?;
                let Some(ex) = exchange.as_mut() else {
                    return Ok(());
                };
                let outcome = ex.step(users, token);
                let (error, message, out) = match &outcome {
                    Ok((out, _)) => (0, None, out.as_slice()),
                    Err(m) => (SASL_AUTHENTICATION_FAILED, Some(m.as_str()), &[][..]),
                };
                let mut body = Vec::new();
                body.extend(error.to_be_bytes());
                match message {
                    Some(m) => put_string(&mut body, m),
                    None => body.extend((-1i16).to_be_bytes()),
                }
                body.extend((out.len() as i32).to_be_bytes());
                body.extend(out);
                if version >= 1 {
                    body.extend(0i64.to_be_bytes()); // session lifetime: no re-authentication
                }
                reply(&mut client, correlation, &body).await?;
                match outcome {
                    Ok((_, true)) => break,
                    Ok((_, false)) => {}
                    Err(_) => return Ok(()),
                }
            }
            // Kafka closes a connection that skips authentication.
            _ => return Ok(()),
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

/// Where one connection's SASL exchange is.
enum Exchange {
    Plain,
    ScramFirst(Scram),
    ScramFinal {
        scram: Scram,
        /// client-first-message-bare "," server-first-message
        said: String,
        nonce: String,
        salted: Vec<u8>,
    },
    Done,
}

#[derive(Clone, Copy)]
struct Scram {
    name: &'static str,
    pbkdf2: pbkdf2::Algorithm,
    hmac: hmac::Algorithm,
    digest: &'static digest::Algorithm,
}

impl Exchange {
    fn start(mechanism: &str) -> Option<Exchange> {
        Some(match mechanism {
            "PLAIN" => Exchange::Plain,
            "SCRAM-SHA-256" => Exchange::ScramFirst(Scram {
                name: "SCRAM-SHA-256",
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
                hmac: hmac::HMAC_SHA256,
                digest: &digest::SHA256,
            }),
            "SCRAM-SHA-512" => Exchange::ScramFirst(Scram {
                name: "SCRAM-SHA-512",
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA512,
                hmac: hmac::HMAC_SHA512,
                digest: &digest::SHA512,
            }),
            _ => return None,
        })
    }

    /// Takes the client's next token: the server's answer and whether the exchange is over,
    /// or why it failed (Kafka's wording).
    fn step(
        &mut self,
        users: &BTreeMap<String, String>,
        token: &[u8],
    ) -> Result<(Vec<u8>, bool), String> {
        let refused = |m: &str| {
            format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {m}")
        };
        let token = std::str::from_utf8(token).map_err(|_| refused("(not UTF-8)"))?;
        match std::mem::replace(self, Exchange::Done) {
            Exchange::Plain => {
                // authzid NUL authcid NUL passwd
                let mut parts = token.split('\0');
                let (_, user, password) = (parts.next(), parts.next(), parts.next());
                match (user, password) {
                    (Some(u), Some(p)) if users.get(u).is_some_and(|want| want == p) => {
                        Ok((Vec::new(), true))
                    }
                    _ => Err(refused("PLAIN")),
                }
            }
            Exchange::ScramFirst(scram) => {
                let (user, nonce, bare) =
                    parse_client_first(token).ok_or_else(|| refused(scram.name))?;
                let password = users.get(&user).ok_or_else(|| refused(scram.name))?;
                let salt = random(16);
                let nonce = format!("{nonce}{}", B64.encode(random(18)));
                let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(&salt));
                let mut salted = vec![0; scram.digest.output_len()];
                let iterations = NonZeroU32::new(ITERATIONS).expect("non-zero");
                pbkdf2::derive(
                    scram.pbkdf2,
                    iterations,
                    &salt,
                    password.as_bytes(),
                    &mut salted,
                );
                *self = Exchange::ScramFinal {
                    scram,
                    said: format!("{bare},{server_first}"),
                    nonce,
                    salted,
                };
                Ok((server_first.into_bytes(), false))
            }
            Exchange::ScramFinal {
                scram,
                said,
                nonce,
                salted,
            } => {
                let proof_at = token.rfind(",p=").ok_or_else(|| refused(scram.name))?;
                let without_proof = &token[..proof_at];
                let proof = B64
                    .decode(&token[proof_at + 3..])
                    .map_err(|_| refused(scram.name))?;
                if attribute(without_proof, 'r') != Some(nonce.as_str()) {
                    return Err(refused(scram.name));
                }
                let auth_message = format!("{said},{without_proof}");
                let mac = |key: &[u8], data: &[u8]| {
                    hmac::sign(&hmac::Key::new(scram.hmac, key), data)
                        .as_ref()
                        .to_vec()
                };
                let client_key = mac(&salted, b"Client Key");
                let stored_key = digest::digest(scram.digest, &client_key);
                let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
                let expected: Vec<u8> = client_key
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                if proof != expected {
                    return Err(refused(scram.name));
                }
                let server_key = mac(&salted, b"Server Key");
                let server_signature = mac(&server_key, auth_message.as_bytes());
                Ok((
                    format!("v={}", B64.encode(server_signature)).into_bytes(),
                    true,
                ))
            }
            Exchange::Done => Err(refused("(exchange already over)")),
        }
    }
}

/// `gs2-header client-first-message-bare` → (user name, client nonce, the bare message).
fn parse_client_first(token: &str) -> Option<(String, String, String)> {
    let mut parts = token.splitn(3, ',');
    let (_channel_binding, _authzid, bare) = (parts.next()?, parts.next()?, parts.next()?);
    let user = attribute(bare, 'n')?
        .replace("=2C", ",")
        .replace("=3D", "=");
    let nonce = attribute(bare, 'r')?.to_string();
    Some((user, nonce, bare.to_string()))
}

/// The value of `name=` in a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|a| {
        let (n, v) = a.split_once('=')?;
        (n.len() == 1 && n.starts_with(name)).then_some(v)
    })
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system randomness");
    b
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One size-prefixed frame, or `None` at a clean end of stream.
async fn read_frame(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = usize::try_from(i32::from_be_bytes(len)).map_err(|_| bad("negative frame size"))?;
    if n > MAX_FRAME {
        return Err(bad("frame too large before authentication"));
    }
    let mut body = vec![0; n];
    s.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame(s: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    s.write_all(&(body.len() as i32).to_be_bytes()).await?;
    s.write_all(body).await
}

/// A response (header v0: the correlation id) with `body`.
async fn reply(s: &mut TcpStream, correlation: i32, body: &[u8]) -> io::Result<()> {
    let mut frame = correlation.to_be_bytes().to_vec();
    frame.extend(body);
    write_frame(s, &frame).await
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as i16).to_be_bytes());
    out.extend(s.as_bytes());
}

/// Reads the big-endian fields of a non-flexible request, every length checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad("short request"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> io::Result<i16> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn nullable_string(&mut self) -> io::Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize)?;
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }

    fn string(&mut self) -> io::Result<String> {
        self.nullable_string()?.ok_or_else(|| bad("null string"))
    }

    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = usize::try_from(self.i32()?).map_err(|_| bad("negative length"))?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, the server side, with its salt and nonces.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let users = BTreeMap::from([("user".to_string(), "pencil".to_string())]);
        let scram = match Exchange::start("SCRAM-SHA-256") {
            Some(Exchange::ScramFirst(s)) => s,
            _ => panic!("SCRAM-SHA-256"),
        };
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut salted = vec![0; 32];
        pbkdf2::derive(
            scram.pbkdf2,
            NonZeroU32::new(4096).unwrap(),
            &salt,
            b"pencil",
            &mut salted,
        );
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut ex = Exchange::ScramFinal {
            scram,
            said: format!(
                "n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
            ),
            nonce: nonce.into(),
            salted,
        };
        let final_message =
            format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let (out, done) = ex.step(&users, final_message.as_bytes()).unwrap();
        assert!(done);
        assert_eq!(out, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let mut wrong = Exchange::start("PLAIN").unwrap();
        assert!(wrong.step(&users, b"\0user\0pen").is_err());
    }
}
