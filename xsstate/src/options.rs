//! C xenstored's command-line options for limits (`-E 3000`, `--quota nodes=3000`, ...), as
//! an administrator passes them to a xenstore domain (`init-xenstore-domain --param`, or
//! `XENSTORE_DOMAIN_ARGS` in xencommons).
//!
//! The spellings are getopt's: `-E 3000`, `-E3000`, `--entry-nb 3000` and `--entry-nb=3000`.
//! Values are decimal, from 0 (no limit) to `INT_MAX`, as C xenstored takes them. Options of
//! the C daemon that mean nothing in a stub domain (`--no-fork`, `--pid-file F`, ...) are
//! recognised and left alone; `--keep-orphans`, `--master-domid` and `--priv-domid` are
//! recognised and refused. A bad option is reported and skipped, never fatal: a host with a
//! typo in its xencommons still gets its xenstore, with the default for that limit.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::EngineConfig;
use crate::quota::QuotaKind;

/// Largest value C xenstored takes for a limit (`INT_MAX`).
pub const VALUE_MAX: u32 = i32::MAX as u32;

/// One limit set on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// A hard quota (`-E`, `-S`, `-W`, `-t`, `-A`, `-M`, `-Q NAME=N`).
    Quota(QuotaKind, u32),
    /// The soft memory quota (`-q memory=N`).
    SoftMemory(u32),
    /// How long an unprivileged domain's unread watch event is kept (`-w watch-event=S`).
    WatchEventTimeoutS(u32),
}

impl Setting {
    /// Applies the setting to an engine's configuration.
    pub fn apply(&self, config: &mut EngineConfig) {
        match *self {
            Setting::Quota(kind, value) => config.quotas.set(kind, value),
            Setting::SoftMemory(value) => config.quotas.memory_soft = value,
            Setting::WatchEventTimeoutS(s) => {
                config.watch_event_timeout_ms = u64::from(s).saturating_mul(1000)
            }
        }
    }

    /// What the setting does, for the log.
    pub fn describe(&self) -> String {
        match self {
            Setting::Quota(kind, v) => format!("quota {} = {v}", kind.name()),
            Setting::SoftMemory(v) => format!("soft quota memory = {v}"),
            Setting::WatchEventTimeoutS(s) => format!("watch-event timeout = {s} s"),
        }
    }
}

/// An option that was recognised but not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The option as written (with its value).
    pub option: String,
    /// Why it was not taken.
    pub reason: String,
}

/// What a command line's limit options came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Each setting taken, with the option as written.
    pub settings: Vec<(String, Setting)>,
    /// Options of the C daemon that have nothing to do in a stub domain, as written.
    pub inert: Vec<String>,
    /// Options recognised but refused or malformed.
    pub errors: Vec<OptionError>,
    /// Tokens that are no C xenstored option, in order.
    pub rest: Vec<&'a str>,
}

/// What an option does with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// A hard quota's value.
    Quota(QuotaKind),
    /// `NAME=N` for a hard quota.
    QuotaNamed,
    /// `memory=N` for the soft quota.
    SoftNamed,
    /// `watch-event=S`.
    TimeoutNamed,
    /// Nothing to do in a stub domain; takes a value or not.
    Inert { takes_value: bool },
    /// Not supported; takes a value or not.
    Refused {
        takes_value: bool,
        why: &'static str,
    },
}

/// C xenstored's options (4.17 to 4.22): long name, short letter, action.
const OPTIONS: [(&str, Option<char>, Action); 20] = [
    ("entry-nb", Some('E'), Action::Quota(QuotaKind::Nodes)),
    ("entry-size", Some('S'), Action::Quota(QuotaKind::NodeSize)),
    ("watch-nb", Some('W'), Action::Quota(QuotaKind::Watches)),
    (
        "transaction",
        Some('t'),
        Action::Quota(QuotaKind::Transactions),
    ),
    ("perm-nb", Some('A'), Action::Quota(QuotaKind::Permissions)),
    ("path-max", Some('M'), Action::Quota(QuotaKind::PathMax)),
    ("quota", Some('Q'), Action::QuotaNamed),
    ("quota-soft", Some('q'), Action::SoftNamed),
    ("timeout", Some('w'), Action::TimeoutNamed),
    (
        "keep-orphans",
        Some('K'),
        Action::Refused {
            takes_value: false,
            why: "not supported: a dead domain's nodes are always removed",
        },
    ),
    (
        "master-domid",
        Some('m'),
        Action::Refused {
            takes_value: true,
            why: "not supported: dom0 is the domain Xen names the control domain",
        },
    ),
    (
        "priv-domid",
        Some('p'),
        Action::Refused {
            takes_value: true,
            why: "not supported: dom0 is the privileged domain",
        },
    ),
    (
        "internal-db",
        Some('I'),
        Action::Inert { takes_value: false },
    ),
    ("no-fork", Some('N'), Action::Inert { takes_value: false }),
    (
        "output-pid",
        Some('P'),
        Action::Inert { takes_value: false },
    ),
    ("verbose", Some('V'), Action::Inert { takes_value: false }),
    (
        "no-recovery",
        Some('R'),
        Action::Inert { takes_value: false },
    ),
    ("pid-file", Some('F'), Action::Inert { takes_value: true }),
    ("trace-file", Some('T'), Action::Inert { takes_value: true }),
    ("trace-control", None, Action::Inert { takes_value: true }),
];

/// Finds the option a token names: its action, and a value attached to the token
/// (`--name=V`, `-XV`).
fn lookup(token: &str) -> Option<(Action, Option<&str>)> {
    if let Some(long) = token.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        return OPTIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, a)| (*a, value));
    }
    let short = token.strip_prefix('-')?;
    let mut chars = short.chars();
    let letter = chars.next()?;
    let attached = chars.as_str();
    OPTIONS
        .iter()
        .find(|(_, s, _)| *s == Some(letter))
        .map(|(_, _, a)| (*a, (!attached.is_empty()).then_some(attached)))
}

/// A limit's value as C xenstored reads one: decimal digits, at most [`VALUE_MAX`].
fn value(text: &str) -> Result<u32, String> {
    crate::util::parse_decimal(text.as_bytes())
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v <= VALUE_MAX)
        .ok_or_else(|| format!("`{text}` is not a number from 0 to {VALUE_MAX}"))
}

/// `NAME=N` split and the number read.
fn named(text: &str) -> Result<(&str, u32), String> {
    let (name, v) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name, value(v)?))
}

/// A hard quota's setting; path-max is at most `XENSTORE_REL_PATH_MAX`, as C caps it.
fn quota(kind: QuotaKind, v: u32) -> Setting {
    match kind {
        QuotaKind::PathMax => Setting::Quota(kind, v.min(crate::path::REL_PATH_MAX as u32)),
        _ => Setting::Quota(kind, v),
    }
}

/// The setting an option with `action` and `text` (its value) asks for.
fn setting(action: Action, text: &str) -> Result<Setting, String> {
    match action {
        Action::Quota(kind) => Ok(quota(kind, value(text)?)),
        Action::QuotaNamed => {
            let (name, v) = named(text)?;
            let kind = QuotaKind::from_name(name.as_bytes())
                .ok_or_else(|| format!("unknown quota `{name}`"))?;
            Ok(quota(kind, v))
        }
        Action::SoftNamed => match named(text)? {
            ("memory", v) => Ok(Setting::SoftMemory(v)),
            (name, _) => Err(format!("unknown soft quota `{name}` (only memory)")),
        },
        Action::TimeoutNamed => match named(text)? {
            ("watch-event", v) => Ok(Setting::WatchEventTimeoutS(v)),
            (name, _) => Err(format!("unknown timeout `{name}` (only watch-event)")),
        },
        Action::Inert { .. } | Action::Refused { .. } => Err(String::from("takes no limit")),
    }
}

/// Picks C xenstored's limit options out of `tokens` (a command line split at white space).
pub fn parse<'a>(tokens: &[&'a str]) -> Parsed<'a> {
    let mut out = Parsed::default();
    let mut it = tokens.iter().copied();
    while let Some(token) = it.next() {
        let Some((action, attached)) = lookup(token) else {
            out.rest.push(token);
            continue;
        };
        let takes_value = match action {
            Action::Inert { takes_value } | Action::Refused { takes_value, .. } => takes_value,
            _ => true,
        };
        let (written, text) = match (takes_value, attached) {
            (false, None) => (String::from(token), None),
            // `--no-fork=x`: getopt refuses it; so do we.
            (false, Some(_)) => {
                out.errors.push(OptionError {
                    option: String::from(token),
                    reason: String::from("takes no value"),
                });
                continue;
            }
            (true, Some(v)) => (String::from(token), Some(v)),
            (true, None) => match it.next() {
                Some(v) => (format!("{token} {v}"), Some(v)),
                None => {
                    out.errors.push(OptionError {
                        option: String::from(token),
                        reason: String::from("needs a value"),
                    });
                    continue;
                }
            },
        };
        match action {
            Action::Inert { .. } => out.inert.push(written),
            Action::Refused { why, .. } => out.errors.push(OptionError {
                option: written,
                reason: String::from(why),
            }),
            _ => match setting(action, text.unwrap_or("")) {
                Ok(s) => out.settings.push((written, s)),
                Err(reason) => out.errors.push(OptionError {
                    option: written,
                    reason,
                }),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Parsed<'_> {
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        parse(&tokens)
    }

    #[test]
    fn every_spelling_of_a_quota() {
        for line in ["-E 3000", "-E3000", "--entry-nb 3000", "--entry-nb=3000"] {
            let r = p(line);
            assert_eq!(r.settings.len(), 1, "{line}");
            assert_eq!(r.settings[0].1, Setting::Quota(QuotaKind::Nodes, 3000));
            assert_eq!(r.settings[0].0, line);
            assert!(r.errors.is_empty() && r.rest.is_empty(), "{line}");
        }
    }

    #[test]
    fn the_init_xenstore_domain_line() {
        let r = p(
            "--event 3 --internal-db -t 20 -W 256 -Q node-permissions=8 \
                   --quota-soft memory=3000000 -w watch-event=30 -M 99999 -S 4096 -A 7 --trace",
        );
        assert_eq!(r.rest, ["--event", "3", "--trace"]);
        assert_eq!(r.inert, ["--internal-db"]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let s: Vec<Setting> = r.settings.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            s,
            [
                Setting::Quota(QuotaKind::Transactions, 20),
                Setting::Quota(QuotaKind::Watches, 256),
                Setting::Quota(QuotaKind::Permissions, 8),
                Setting::SoftMemory(3_000_000),
                Setting::WatchEventTimeoutS(30),
                Setting::Quota(QuotaKind::PathMax, 2048),
                Setting::Quota(QuotaKind::NodeSize, 4096),
                Setting::Quota(QuotaKind::Permissions, 7),
            ]
        );
        let mut c = EngineConfig::default();
        for (_, s) in &r.settings {
            s.apply(&mut c);
        }
        assert_eq!(c.quotas.get(QuotaKind::Transactions), 20);
        assert_eq!(c.quotas.get(QuotaKind::Permissions), 7);
        assert_eq!(c.quotas.memory_soft, 3_000_000);
        assert_eq!(c.watch_event_timeout_ms, 30_000);
        assert_eq!(c.quotas.get(QuotaKind::Nodes), 1000);
    }

    #[test]
    fn bad_options_are_reported_and_skipped() {
        let r = p(
            "-E x -t -1 --quota bogus=3 -Q nodes -q watches=3 -w other=1 -K \
                   --priv-domid 7 --no-fork=1 -W 2147483648 --entry-nb",
        );
        let bad: Vec<&str> = r.errors.iter().map(|e| e.option.as_str()).collect();
        assert_eq!(
            bad,
            [
                "-E x",
                "-t -1",
                "--quota bogus=3",
                "-Q nodes",
                "-q watches=3",
                "-w other=1",
                "-K",
                "--priv-domid 7",
                "--no-fork=1",
                "-W 2147483648",
                "--entry-nb",
            ]
        );
        assert!(r.settings.is_empty() && r.rest.is_empty());
        assert!(r.errors[6].reason.contains("always removed"));
    }

    #[test]
    fn zero_and_the_largest_value_are_taken() {
        let r = p("-E 0 -W 2147483647");
        assert_eq!(r.settings[0].1, Setting::Quota(QuotaKind::Nodes, 0));
        assert_eq!(
            r.settings[1].1,
            Setting::Quota(QuotaKind::Watches, VALUE_MAX)
        );
    }

    #[test]
    fn other_tokens_pass_through_in_order() {
        let r = p("--event 5 --memscan -x --fault=3");
        assert_eq!(r.rest, ["--event", "5", "--memscan", "-x", "--fault=3"]);
    }
}
