//! Node paths: validation, canonicalisation of relative paths, and watch-path reporting.

use alloc::format;
use alloc::string::String;

use crate::error::XsError;
use crate::ids::DomId;

/// `XENSTORE_ABS_PATH_MAX` (C xenstored no longer applies it: see [`PATH_LIMIT`]).
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`, also the default `path-max` quota.
pub const REL_PATH_MAX: usize = 2048;
/// The longest path the engine can be given: a relative path filling a request payload,
/// after its `/local/domain/<domid>/` prefix. Privileged callers are limited by nothing
/// else (C xenstored 4.18 and later), so stored paths and state images go up to this.
pub const PATH_LIMIT: usize = crate::wire::PAYLOAD_MAX + 21;

/// The home of a domain, `/local/domain/<domid>`.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{}", domid.0)
}

/// Byte classes of path characters: 0 not allowed, [`PLAIN`] one of `A-Za-z0-9-_@`,
/// [`SLASH`] `/`. One lookup per byte (paths are validated on every request and for every
/// node of a live update).
// Built at compile time: an index out of bounds here fails the build, not a request.
#[allow(clippy::indexing_slicing)]
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'@') {
            t[b] = PLAIN;
        }
        b += 1;
    }
    t[b'/' as usize] = SLASH;
    t
};
const PLAIN: u8 = 1;
const SLASH: u8 = 2;

/// The class of byte `b` (the table has an entry for every byte: the lookup cannot miss).
fn class(b: u8) -> u8 {
    CLASS.get(usize::from(b)).copied().unwrap_or(0)
}

fn valid_char(b: u8) -> bool {
    class(b) != 0
}

/// Checks that every byte is one of `A-Za-z0-9-/_@`.
pub fn validate_chars(raw: &[u8]) -> Result<(), XsError> {
    if raw.iter().all(|&b| valid_char(b)) {
        Ok(())
    } else {
        Err(XsError::Einval)
    }
}

/// Length of a `/local/domain/<n>/` prefix (up to 5 digits), or 0 when the path has none;
/// the path limit applies to what follows it (XSA-323), as in C xenstored.
fn local_prefix_len(path: &[u8]) -> usize {
    const PREFIX: &[u8] = b"/local/domain/";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return 0;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 5 || rest.get(digits) != Some(&b'/') {
        return 0;
    }
    PREFIX.len() + digits + 1
}

/// Validates the form of an absolute node path (`/`, no trailing or double slash, valid
/// characters) and its length: at most `path_max` bytes after any `/local/domain/<n>/`
/// prefix, and never more than [`PATH_LIMIT`].
pub fn validate(path: &str, path_max: usize) -> Result<(), XsError> {
    validate_bytes(path.as_bytes(), path_max)
}

/// [`validate`] on bytes: a path it accepts is ASCII (so text) without a NUL.
pub fn validate_bytes(bytes: &[u8], path_max: usize) -> Result<(), XsError> {
    if bytes.first() != Some(&b'/') {
        return Err(XsError::Einval);
    }
    check_form(bytes)?;
    if bytes.len() > PATH_LIMIT || bytes.len() - local_prefix_len(bytes) > path_max {
        return Err(XsError::Einval);
    }
    Ok(())
}

/// No trailing slash (but for `/`), no double slash, valid characters.
fn check_form(bytes: &[u8]) -> Result<(), XsError> {
    if bytes.len() > 1 && bytes.last() == Some(&b'/') {
        return Err(XsError::Einval);
    }
    // One pass: every character valid, no slash after a slash.
    let mut prev = 0u8;
    for &b in bytes {
        let c = class(b);
        if c == 0 || c & prev == SLASH {
            return Err(XsError::Einval);
        }
        prev = c;
    }
    Ok(())
}

/// A path as a client sent it, made absolute: relative paths are prefixed with the
/// connection's home (`/local/domain/<domid>/`), then the result is validated with the
/// caller's `path-max` (`None`: privileged, no limit but [`PATH_LIMIT`]), as C xenstored
/// 4.20's `canonicalize`. An `@` name is never a node name.
pub fn canonicalize(raw: &[u8], home: DomId, path_max: Option<usize>) -> Result<String, XsError> {
    let text = core::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
    validate_chars(raw)?;
    if text.starts_with('@') {
        return Err(XsError::Einval);
    }
    let full = if text.starts_with('/') {
        String::from(text)
    } else {
        format!("{}/{}", domain_path(home), text)
    };
    validate(&full, path_max.unwrap_or(PATH_LIMIT))?;
    Ok(full)
}

/// A watch path: a special `@name` (same characters and length rules, no prefix) or a node
/// path as [`canonicalize`] makes it.
pub fn canonicalize_watch(
    raw: &[u8],
    home: DomId,
    path_max: Option<usize>,
) -> Result<String, XsError> {
    let text = core::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
    if !text.starts_with('@') {
        return canonicalize(raw, home, path_max);
    }
    validate_chars(raw)?;
    check_form(raw)?;
    if text.len() > path_max.unwrap_or(PATH_LIMIT) {
        return Err(XsError::Einval);
    }
    Ok(String::from(text))
}

/// Whether `path` is `ancestor` or lies below it (`/` is everyone's ancestor).
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return true;
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Number of path components of `path` below `ancestor` (0 when equal). Assumes
/// [`is_at_or_below`] holds.
pub fn depth_below(path: &str, ancestor: &str) -> usize {
    let rest = if ancestor == "/" {
        path
    } else {
        path.get(ancestor.len()..).unwrap_or("")
    };
    rest.split('/').filter(|s| !s.is_empty()).count()
}

/// The parent of a non-root absolute path (`/` for top-level nodes).
pub fn parent(path: &str) -> &str {
    split(path).0
}

/// [`parent`] and [`basename`] at once (one search for the last `/`).
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (
            if i == 0 {
                "/"
            } else {
                path.get(..i).unwrap_or("/")
            },
            path.get(i + 1..).unwrap_or(""),
        ),
        None => ("/", path),
    }
}

/// The last component of a non-root absolute path.
pub fn basename(path: &str) -> &str {
    split(path).1
}

/// The child path `parent/name`.
pub fn join(parent: &str, name: &str) -> String {
    let mut out = String::with_capacity(parent.len() + 1 + name.len());
    if parent != "/" {
        out.push_str(parent);
    }
    out.push('/');
    out.push_str(name);
    out
}

/// What a relative watch reports: `path` with the home prefix and its slash removed.
pub fn relative_to_home(path: &str, home: DomId) -> String {
    let prefix = domain_path(home);
    match path.strip_prefix(prefix.as_str()) {
        Some(rest) => String::from(rest.strip_prefix('/').unwrap_or(rest)),
        None => String::from(path),
    }
}

/// Whether a watch path names a special event (`@introduceDomain`, `@releaseDomain`, ...).
pub fn is_special(path: &str) -> bool {
    path.starts_with('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate("/", 2048).is_ok());
        assert!(validate("/a/b-c_d@e", 2048).is_ok());
        assert_eq!(validate("", 2048), Err(XsError::Einval));
        assert_eq!(validate("a", 2048), Err(XsError::Einval));
        assert_eq!(validate("/a/", 2048), Err(XsError::Einval));
        assert_eq!(validate("/a//b", 2048), Err(XsError::Einval));
        assert_eq!(validate("/a b", 2048), Err(XsError::Einval));
        assert_eq!(validate("/a.b", 2048), Err(XsError::Einval));
    }

    #[test]
    fn lengths_after_prefix() {
        let long = "x".repeat(2040);
        let abs = format!("/{long}");
        assert!(validate(&abs, 2048).is_ok());
        let too_long = format!("/{}", "x".repeat(2048));
        assert!(validate(&too_long, 2048).is_err());
        // A relative path of 2048 bytes is fine after prefixing (XSA-323)...
        let rel = "y".repeat(2048);
        assert!(canonicalize(rel.as_bytes(), DomId(7), Some(2048)).is_ok());
        // ...but one byte more is not.
        let rel = "y".repeat(2049);
        assert_eq!(
            canonicalize(rel.as_bytes(), DomId(7), Some(2048)),
            Err(XsError::Einval)
        );
    }

    #[test]
    fn relations() {
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/ab", "/"));
        assert_eq!(depth_below("/a/b/c", "/a"), 2);
        assert_eq!(depth_below("/a", "/"), 1);
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(split("/"), ("/", ""));
        assert_eq!(split("/a"), ("/", "a"));
        assert_eq!(split("/a/b/cd"), ("/a/b", "cd"));
        assert_eq!(validate_bytes(b"/a/b", 2048), Ok(()));
        assert_eq!(validate_bytes(b"/a\0b", 2048), Err(XsError::Einval));
        assert_eq!(
            validate_bytes("/a\u{e9}".as_bytes(), 2048),
            Err(XsError::Einval)
        );
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(relative_to_home("/local/domain/3/x/y", DomId(3)), "x/y");
        assert_eq!(relative_to_home("/local/domain/3", DomId(3)), "");
        assert_eq!(
            canonicalize(b"@foo", DomId(3), Some(2048)),
            Err(XsError::Einval)
        );
        assert_eq!(
            canonicalize(b"x", DomId(3), Some(2048)).unwrap(),
            "/local/domain/3/x"
        );
        assert_eq!(
            canonicalize(b"", DomId(3), Some(2048)),
            Err(XsError::Einval)
        );
        // Privileged: only the payload limits the length (C 4.18+).
        let long = format!("/{}", "z".repeat(3500));
        assert!(canonicalize(long.as_bytes(), DomId(0), None).is_ok());
        assert!(canonicalize(long.as_bytes(), DomId(0), Some(2048)).is_err());
        assert_eq!(
            canonicalize_watch(b"@release Domain", DomId(1), Some(2048)),
            Err(XsError::Einval)
        );
        assert!(canonicalize_watch(b"@releaseDomain", DomId(1), Some(2048)).is_ok());
    }
}
