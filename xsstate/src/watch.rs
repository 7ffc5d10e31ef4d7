//! Watches: registration data, matching of changed paths and the paths events report.

use alloc::format;
use alloc::string::String;

use crate::ids::DomId;
use crate::path;

/// `@introduceDomain`.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// `@releaseDomain`.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// One registered watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The absolute watch path (or a special `@...` path).
    pub path: String,
    /// The token, returned with every event.
    pub token: String,
    /// Whether the client gave a relative path (events are then reported relative).
    pub relative: bool,
    /// Maximum depth below `path` that matches (WATCHDEPTH feature); `None` = unlimited.
    pub depth: Option<u32>,
}

impl Watch {
    /// Whether a change of `changed` fires this watch. `exact` changes only fire watches set
    /// exactly on that path.
    pub fn matches(&self, changed: &str, exact: bool) -> bool {
        if exact {
            return self.path == changed;
        }
        if !path::is_at_or_below(changed, &self.path) {
            return false;
        }
        match self.depth {
            Some(d) => path::depth_below(changed, &self.path) <= d as usize,
            None => true,
        }
    }

    /// The path to report for `changed`, relative to the watcher's home if registered so.
    pub fn reported_path(&self, changed: &str, home: DomId) -> String {
        if self.relative {
            path::relative_to_home(changed, home)
        } else {
            String::from(changed)
        }
    }

    /// For a special event `base` (`@releaseDomain`, ...) about `domid`: the path to report,
    /// or `None` when this watch does not want it.
    pub fn special_match(&self, base: &str, domid: DomId) -> Option<String> {
        if self.path == base {
            return Some(if self.depth == Some(1) {
                format!("{base}/{}", domid.0)
            } else {
                String::from(base)
            });
        }
        let specific = format!("{base}/{}", domid.0);
        (self.path == specific).then_some(specific)
    }

    /// The `WATCH_EVENT` payload for a reported path.
    pub fn event_payload(&self, reported: &str) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::with_capacity(reported.len() + self.token.len() + 2);
        crate::util::push_str0(&mut out, reported.as_bytes());
        crate::util::push_str0(&mut out, self.token.as_bytes());
        out
    }

    /// Bytes charged to the owner's memory for this watch.
    pub fn cost(&self) -> usize {
        self.path.len() + self.token.len() + 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(path: &str, depth: Option<u32>) -> Watch {
        Watch {
            path: path.into(),
            token: "t".into(),
            relative: false,
            depth,
        }
    }

    #[test]
    fn matching() {
        assert!(w("/a", None).matches("/a/b/c", false));
        assert!(!w("/a", None).matches("/ab", false));
        assert!(w("/a", Some(1)).matches("/a/b", false));
        assert!(!w("/a", Some(1)).matches("/a/b/c", false));
        assert!(!w("/a", Some(0)).matches("/a/b", false));
        assert!(w("/a/b", None).matches("/a/b", true));
        assert!(!w("/a", None).matches("/a/b", true));
    }

    #[test]
    fn special() {
        assert_eq!(
            w("@releaseDomain", None)
                .special_match(RELEASE_DOMAIN, DomId(3))
                .unwrap(),
            "@releaseDomain"
        );
        assert_eq!(
            w("@releaseDomain", Some(1))
                .special_match(RELEASE_DOMAIN, DomId(3))
                .unwrap(),
            "@releaseDomain/3"
        );
        assert!(w("@releaseDomain/4", None)
            .special_match(RELEASE_DOMAIN, DomId(3))
            .is_none());
        assert!(w("@releaseDomain/3", None)
            .special_match(RELEASE_DOMAIN, DomId(3))
            .is_some());
        assert!(w("/x", None)
            .special_match(INTRODUCE_DOMAIN, DomId(3))
            .is_none());
    }
}
