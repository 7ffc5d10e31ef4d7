//! Small parsing helpers shared by the request handlers.

use alloc::vec::Vec;

/// Parses an unsigned decimal number made only of ASCII digits (no sign, no spaces), as
/// C xenstored's callers send them. Returns `None` on empty input, other bytes or overflow.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses a signed decimal (an optional leading `-`), as `INTRODUCE` sends the frame number.
pub fn parse_signed(text: &[u8]) -> Option<i64> {
    match text.split_first() {
        Some((b'-', rest)) => parse_decimal(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        _ => parse_decimal(text).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Splits a payload into its NUL-terminated strings. Bytes after the last NUL (an
/// unterminated tail) are returned as a final string, as C's `get_strings` does.
pub fn split_strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                let (head, tail) = rest.split_at(i);
                out.push(head);
                rest = tail.get(1..).unwrap_or(&[]);
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    out
}

/// The single argument of a one-argument request: the payload must be exactly one string
/// followed by its NUL (C's `onearg`).
pub fn one_arg(payload: &[u8]) -> Option<&[u8]> {
    let (last, body) = payload.split_last()?;
    if *last != 0 || body.contains(&0) {
        return None;
    }
    Some(body)
}

/// Appends `text` and a NUL terminator to `out`.
pub fn push_str0(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"65535"), Some(65535));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
        assert_eq!(parse_signed(b"-5"), Some(-5));
    }

    #[test]
    fn strings() {
        assert_eq!(split_strings(b"a\0bc\0"), [&b"a"[..], &b"bc"[..]]);
        assert_eq!(split_strings(b"a\0bc"), [&b"a"[..], &b"bc"[..]]);
        assert_eq!(split_strings(b""), Vec::<&[u8]>::new());
        assert_eq!(one_arg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(one_arg(b"/a\0b\0"), None);
        assert_eq!(one_arg(b"/a"), None);
    }
}
