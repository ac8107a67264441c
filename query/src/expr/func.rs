//! Functions of filter expressions: `length`, `lower`, `upper`, `substr` (awk's), `url_path`,
//! `url_query`, `url_param`, `ip_prefix`, `duration`, `size`, `int`, `round`, `abs`.
//!
//! They take field text (bytes, possibly invalid UTF-8) and never fail: a value they cannot
//! read (a `duration("soon")`) gives a missing value, which compares as empty / 0, like a
//! missing field.

use std::borrow::Cow;
use std::net::IpAddr;

/// A function of an expression, with its argument counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Length,
    Lower,
    Upper,
    Substr,
    UrlPath,
    UrlQuery,
    UrlParam,
    IpPrefix,
    Duration,
    Size,
    Int,
    Round,
    Abs,
}

/// Every function name, for error messages.
pub const NAMES: &str = "length, lower, upper, substr, url_path, url_query, url_param, \
                         ip_prefix, duration, size, int, round, abs";

impl Func {
    pub fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "length" | "len" => Func::Length,
            "lower" | "tolower" => Func::Lower,
            "upper" | "toupper" => Func::Upper,
            "substr" => Func::Substr,
            "url_path" => Func::UrlPath,
            "url_query" => Func::UrlQuery,
            "url_param" => Func::UrlParam,
            "ip_prefix" => Func::IpPrefix,
            "duration" => Func::Duration,
            "size" => Func::Size,
            "int" => Func::Int,
            "round" => Func::Round,
            "abs" => Func::Abs,
            _ => return None,
        })
    }

    /// Fewest and most arguments.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Substr => (2, 3),
            Func::UrlParam => (2, 2),
            Func::IpPrefix => (1, 2),
            _ => (1, 1),
        }
    }

    /// Whether the result is a number (else text, compared like a field's).
    pub fn numeric(self) -> bool {
        matches!(
            self,
            Func::Length | Func::Duration | Func::Size | Func::Int | Func::Round | Func::Abs
        )
    }
}

/// Characters of `s`: UTF-8 characters where it is valid, else bytes (so that invalid input
/// still has a length and substrings).
fn is_char_start(s: &[u8], i: usize) -> bool {
    std::str::from_utf8(s).is_err() || (s[i] & 0xC0) != 0x80
}

pub fn length(s: &[u8]) -> f64 {
    match std::str::from_utf8(s) {
        Ok(t) => t.chars().count() as f64,
        Err(_) => s.len() as f64,
    }
}

pub fn lower(s: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(s) {
        Ok(t) => t.to_lowercase().into_bytes(),
        Err(_) => s.to_ascii_lowercase(),
    }
}

pub fn upper(s: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(s) {
        Ok(t) => t.to_uppercase().into_bytes(),
        Err(_) => s.to_ascii_uppercase(),
    }
}

/// awk's `substr(s, m[, n])`: characters `m` .. `m+n-1`, 1-based, with awk's rounding and
/// clamping (`substr("hello", 0, 2)` is `"h"`).
pub fn substr(s: &[u8], m: f64, n: Option<f64>) -> &[u8] {
    let starts: Vec<usize> = (0..s.len()).filter(|&i| is_char_start(s, i)).collect();
    let chars = starts.len() as f64;
    let m = m.round();
    let end = match n {
        Some(n) if n.is_nan() => return b"",
        Some(n) => (m + n.round()).min(chars + 1.0),
        None => chars + 1.0,
    };
    let from = m.max(1.0);
    // `end <= from`, or a NaN: nothing.
    if end.partial_cmp(&from) != Some(std::cmp::Ordering::Greater) {
        return b"";
    }
    let (a, b) = (from as usize - 1, end as usize - 1);
    let byte = |i: usize| starts.get(i).copied().unwrap_or(s.len());
    &s[byte(a)..byte(b)]
}

/// The path of a URL or request target: without scheme and host, query and fragment.
pub fn url_path(u: &[u8]) -> &[u8] {
    let mut rest = u;
    if let Some(i) = find(rest, b"://") {
        rest = &rest[i + 3..];
        rest = &rest[rest.iter().position(|&c| c == b'/').unwrap_or(rest.len())..];
    }
    let end = rest
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The query string of a URL, without `?` and fragment (empty when there is none).
pub fn url_query(u: &[u8]) -> &[u8] {
    let Some(q) = u.iter().position(|&c| c == b'?') else {
        return b"";
    };
    let rest = &u[q + 1..];
    &rest[..rest.iter().position(|&c| c == b'#').unwrap_or(rest.len())]
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space); `None` when
/// the parameter is absent.
pub fn url_param<'a>(u: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    url_query(u).split(|&c| c == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&c| c == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (percent_decode(k).as_ref() == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.iter().any(|&c| c == b'%' || c == b'+') {
        return Cow::Borrowed(s);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The network of an address: `ip_prefix("10.1.2.3", 24)` is `10.1.2.0/24`; without a
/// length, /24 for IPv4 and /64 for IPv6. `None` for text that is not an address.
pub fn ip_prefix(ip: &[u8], bits: Option<f64>) -> Option<Vec<u8>> {
    let addr: IpAddr = std::str::from_utf8(ip).ok()?.trim().parse().ok()?;
    let (max, default) = if addr.is_ipv4() { (32, 24) } else { (128, 64) };
    let bits = match bits {
        Some(b) if (0.0..=max as f64).contains(&b) => b as u32,
        Some(_) => return None,
        None => default,
    };
    let net = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::from(std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::from(std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
    };
    Some(format!("{net}/{bits}").into_bytes())
}

/// Seconds in a duration: `250ms`, `1.5s`, `1m30s`, `2h`, `100us`/`100µs`, `10ns`, `3d`, Go's
/// `1h2m3.5s`; a bare number is seconds.
pub fn duration(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let (n, after) = number_prefix(rest)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        // Sub-second units divide, so that `100us` is exactly 1e-4.
        let (mul, div) = match &after[..unit_len] {
            "ns" => (1.0, 1e9),
            "us" | "µs" | "μs" => (1.0, 1e6),
            "ms" => (1.0, 1e3),
            "s" | "sec" | "secs" => (1.0, 1.0),
            "m" | "min" | "mins" => (60.0, 1.0),
            "h" | "hr" | "hrs" => (3600.0, 1.0),
            "d" | "day" | "days" => (86400.0, 1.0),
            _ => return None,
        };
        total += n * mul / div;
        rest = &after[unit_len..];
    }
    Some(total)
}

/// Bytes in a size: `512`, `10K`/`10KiB`/`10Ki` (1024), `10KB`/`10kB` (1000), likewise `M`,
/// `G`, `T`; a bare `B` suffix is bytes.
pub fn size(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (n, unit) = number_prefix(s)?;
    let unit = unit.trim_start();
    let (letter, rest) = match unit.chars().next() {
        None => return Some(n),
        Some(c) => (c.to_ascii_uppercase(), &unit[c.len_utf8()..]),
    };
    let power = match letter {
        'B' if rest.is_empty() => return Some(n),
        'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let base: f64 = match rest {
        "" | "i" | "iB" | "ib" => 1024.0,
        "B" | "b" => 1000.0,
        _ => return None,
    };
    Some(n * base.powi(power))
}

/// A leading unsigned decimal number and the rest.
fn number_prefix(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_functions() {
        assert_eq!(length("héllo".as_bytes()), 5.0);
        assert_eq!(length(b"a\xffb"), 3.0);
        assert_eq!(lower("CAFÉ".as_bytes()), "café".as_bytes());
        assert_eq!(upper(b"x\xffy"), b"X\xffY");
        assert_eq!(substr(b"hello", 2.0, Some(3.0)), b"ell");
        assert_eq!(substr(b"hello", 0.0, Some(2.0)), b"h");
        assert_eq!(substr(b"hello", 4.0, None), b"lo");
        assert_eq!(substr(b"hello", 9.0, None), b"");
        assert_eq!(substr("héllo".as_bytes(), 2.0, Some(2.0)), "él".as_bytes());
    }

    #[test]
    fn urls() {
        let u = b"https://ex.com:8/a/b?x=1&q=a%20b+c#frag";
        assert_eq!(url_path(u), b"/a/b");
        assert_eq!(url_path(b"/api/v1?x"), b"/api/v1");
        assert_eq!(url_query(u), b"x=1&q=a%20b+c");
        assert_eq!(url_param(u, b"q").unwrap().as_ref(), b"a b c");
        assert_eq!(url_param(b"/p?a&b=2", b"a").unwrap().as_ref(), b"");
        assert!(url_param(u, b"zz").is_none());
        assert_eq!(url_param(b"/p?k=%4", b"k").unwrap().as_ref(), b"%4");
    }

    #[test]
    fn ips_durations_sizes() {
        assert_eq!(ip_prefix(b"10.1.2.3", Some(24.0)).unwrap(), b"10.1.2.0/24");
        assert_eq!(ip_prefix(b"10.1.2.3", Some(0.0)).unwrap(), b"0.0.0.0/0");
        assert_eq!(ip_prefix(b"2001:db8::1", None).unwrap(), b"2001:db8::/64");
        assert!(ip_prefix(b"nope", None).is_none());
        assert!(ip_prefix(b"10.0.0.1", Some(33.0)).is_none());
        assert_eq!(duration(b"250ms"), Some(0.25));
        assert_eq!(duration(b"1m30s"), Some(90.0));
        assert_eq!(duration(b"1h2m3.5s"), Some(3723.5));
        assert_eq!(duration("100µs".as_bytes()), Some(1e-4));
        assert_eq!(duration(b"12"), Some(12.0));
        assert_eq!(duration(b"soon"), None);
        assert_eq!(size(b"10K"), Some(10240.0));
        assert_eq!(size(b"1.5MB"), Some(1.5e6));
        assert_eq!(size(b"2GiB"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(size(b"512"), Some(512.0));
        assert_eq!(size(b"7 B"), Some(7.0));
        assert_eq!(size(b"3 lots"), None);
    }
}
