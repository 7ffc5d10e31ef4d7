//! `XS_CONTROL` commands as the stock `xenstore-control` sends them.

use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::{ok, Effect, Engine, HandlerResult};
use crate::error::XsError;
use crate::ids::{ConnId, DomId};
use crate::quota::{QuotaKind, Quotas};
use crate::util::{parse_decimal, push_str0, split_strings};
use crate::wire::Message;

/// A `live-update` sub-command, parsed for the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveUpdateCmd {
    /// `-f FILE`: daemon-style update from a file (not for a stub domain).
    File(Vec<u8>),
    /// `-b SIZE`: reserve room for a kernel of SIZE bytes.
    Begin {
        /// Announced kernel size in bytes.
        size: u64,
    },
    /// `-d N BYTES`: the next chunk of the kernel (binary, may hold NULs).
    Data(Vec<u8>),
    /// `-c CMDLINE`: the command line for the new image.
    Cmdline(Vec<u8>),
    /// `-s [-t SECS] [-F] [-v VERSION]`: start once quiesced.
    Start {
        /// Seconds to wait for transactions to end.
        timeout_s: u32,
        /// Update even with transactions still open after the timeout.
        force: bool,
        /// The migration-stream version asked for (`-v`, from Xen 4.21's `xenstore-control`;
        /// [`crate::image::SEED_VERSION`] when not given). The shell refuses any other.
        stream_version: u32,
    },
    /// `-a`: abort and free everything.
    Abort,
}

/// Parses the arguments after `live-update` (the raw payload remainder, because `-d`
/// chunks carry binary data).
pub fn parse_live_update(rest: &[u8]) -> Result<LiveUpdateCmd, XsError> {
    if let Some(chunk) = rest.strip_prefix(b"-d\0") {
        let nul = chunk.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
        let (len_text, data) = chunk.split_at(nul);
        let len = usize::try_from(parse_decimal(len_text).ok_or(XsError::Einval)?)
            .map_err(|_| XsError::Einval)?;
        let data = data.get(1..).ok_or(XsError::Einval)?;
        // N bytes then exactly one terminating NUL.
        if data.len() != len.checked_add(1).ok_or(XsError::Einval)? || data.last() != Some(&0) {
            return Err(XsError::Einval);
        }
        return Ok(LiveUpdateCmd::Data(data.get(..len).unwrap_or(&[]).to_vec()));
    }
    let args = split_strings(rest);
    match args.as_slice() {
        [b"-a"] => Ok(LiveUpdateCmd::Abort),
        [b"-f", file] => Ok(LiveUpdateCmd::File(file.to_vec())),
        [b"-c", cmdline] => Ok(LiveUpdateCmd::Cmdline(cmdline.to_vec())),
        [b"-b", size] => Ok(LiveUpdateCmd::Begin {
            size: parse_decimal(size).ok_or(XsError::Einval)?,
        }),
        [b"-s", opts @ ..] => {
            let mut timeout_s = 60u32;
            let mut force = false;
            let mut stream_version = crate::image::SEED_VERSION;
            let mut it = opts.iter();
            let number = |it: &mut core::slice::Iter<'_, &[u8]>| {
                it.next()
                    .and_then(|v| parse_decimal(v))
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(XsError::Einval)
            };
            while let Some(opt) = it.next() {
                match *opt {
                    b"-F" => force = true,
                    b"-t" => timeout_s = number(&mut it)?,
                    b"-v" => stream_version = number(&mut it)?,
                    _ => return Err(XsError::Einval),
                }
            }
            Ok(LiveUpdateCmd::Start {
                timeout_s,
                force,
                stream_version,
            })
        }
        _ => Err(XsError::Einval),
    }
}

/// Commands and their argument synopsis, as `help` lists them.
const COMMANDS: [(&str, &str); 9] = [
    ("check", ""),
    ("log", "on|off"),
    (
        "live-update",
        "[-c <cmdline>] [-F] [-t <timeout>] [-v <version>] <file>\n    Default timeout is 60 \
         seconds, default version is 1.",
    ),
    ("memreport", ""),
    ("version", ""),
    ("print", "<string>"),
    ("quota", "[set <name> <val>|<domid>]"),
    ("quota-soft", "[set <name> <val>]"),
    ("help", ""),
];

fn text(s: &str) -> HandlerResult {
    let mut out = Vec::new();
    push_str0(&mut out, s.as_bytes());
    Ok(Some(out))
}

impl Engine {
    pub(crate) fn op_control(&mut self, id: ConnId, msg: &Message) -> HandlerResult {
        let p = msg.payload.as_slice();
        let nul = p.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
        let (cmd, rest) = p.split_at(nul);
        let rest = rest.get(1..).unwrap_or(&[]);
        if cmd == b"live-update" {
            let cmd = parse_live_update(rest)?;
            self.effects.push(Effect::LiveUpdate {
                conn: id,
                req_id: msg.req_id,
                tx_id: msg.tx_id,
                cmd,
            });
            return Ok(None);
        }
        let args = split_strings(rest);
        match (cmd, args.as_slice()) {
            (b"check", []) => match self.store.check() {
                Ok(()) => ok(),
                Err(e) => {
                    let line = alloc::format!("store check failed: {e:?}");
                    self.log(line.clone());
                    text(&line)
                }
            },
            (b"log", [b"on"]) => {
                self.trace = true;
                ok()
            }
            (b"log", [b"off"]) => {
                self.trace = false;
                ok()
            }
            (b"print", [line]) => {
                self.log(String::from_utf8_lossy(line).into_owned());
                ok()
            }
            (b"memreport", []) => {
                let report = self.memreport();
                self.log(report.clone());
                text(&report)
            }
            (b"quota", []) => text(&self.config.quotas.listing(self.config.quota_style)),
            (b"quota", [b"set", name, value]) => {
                let kind = QuotaKind::from_name(name).ok_or(XsError::Einval)?;
                let value = Quotas::parse_value(value, false)?;
                self.config.quotas.set(kind, value);
                ok()
            }
            (b"quota", [domid]) => {
                let domid = DomId::parse(domid).ok_or(XsError::Einval)?;
                text(&self.domain_usage(domid)?)
            }
            (b"quota-soft", []) => text(&self.config.quotas.soft_listing()),
            (b"quota-soft", [b"set", b"memory", value]) => {
                self.config.quotas.memory_soft = Quotas::parse_value(value, false)?;
                ok()
            }
            (b"version", []) => text(&self.version_text()),
            (b"help", []) => {
                let mut s = String::new();
                for (name, args) in COMMANDS {
                    s.push_str(name);
                    s.push('\t');
                    s.push_str(args);
                    s.push('\n');
                }
                text(&s)
            }
            _ => Err(XsError::Einval),
        }
    }

    /// `quota DOMID`: what a domain uses (`%-16s: %8d` lines, as C xenstored prints them).
    fn domain_usage(&self, domid: DomId) -> Result<String, XsError> {
        use core::fmt::Write;
        let known = domid == self.config.priv_domid || self.domains.contains_key(&domid);
        if !known {
            return Err(XsError::Enoent);
        }
        let usage = self.store.usage(domid);
        let (watches, txns, outstanding) =
            self.conns
                .values()
                .filter(|c| c.domid == domid)
                .fold((0, 0, 0), |a, c| {
                    (
                        a.0 + c.watches.len(),
                        a.1 + c.transactions.len(),
                        a.2 + c.replies_queued,
                    )
                });
        let mut s = alloc::format!("Domain {}:\n", domid.0);
        for (name, v) in [
            ("nodes", usage.nodes),
            ("watches", watches),
            ("transactions", txns),
            ("outstanding", outstanding),
            ("memory", self.domain_memory(domid)),
        ] {
            let _ = writeln!(s, "{name:<16}: {v:>8}");
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_update_parsing() {
        assert_eq!(
            parse_live_update(b"-b\x00123\x00"),
            Ok(LiveUpdateCmd::Begin { size: 123 })
        );
        assert_eq!(
            parse_live_update(b"-d\x003\x00a\x00b\x00"),
            Ok(LiveUpdateCmd::Data(b"a\0b".to_vec()))
        );
        assert_eq!(
            parse_live_update(b"-d\x004\x00a\x00b\x00"),
            Err(XsError::Einval)
        );
        assert_eq!(
            parse_live_update(b"-d\x003\x00a\x00bc"),
            Err(XsError::Einval)
        );
        assert_eq!(
            parse_live_update(b"-s\x00-t\x0010\x00-F\x00"),
            Ok(LiveUpdateCmd::Start {
                timeout_s: 10,
                force: true,
                stream_version: 1
            })
        );
        // Xen 4.21's xenstore-control adds `-v N` after the others.
        assert_eq!(
            parse_live_update(b"-s\x00-t\x0060\x00-v\x002\x00"),
            Ok(LiveUpdateCmd::Start {
                timeout_s: 60,
                force: false,
                stream_version: 2
            })
        );
        assert_eq!(parse_live_update(b"-s\x00-v\x00"), Err(XsError::Einval));
        assert_eq!(
            parse_live_update(b"-s\x00-v\x00x\x00"),
            Err(XsError::Einval)
        );
        assert_eq!(
            parse_live_update(b"-s\x00"),
            Ok(LiveUpdateCmd::Start {
                timeout_s: 60,
                force: false,
                stream_version: 1
            })
        );
        assert_eq!(parse_live_update(b"-a\x00"), Ok(LiveUpdateCmd::Abort));
        assert_eq!(
            parse_live_update(b"-c\x00--event 3\x00"),
            Ok(LiveUpdateCmd::Cmdline(b"--event 3".to_vec()))
        );
        assert_eq!(parse_live_update(b"-x\x00"), Err(XsError::Einval));
    }
}
