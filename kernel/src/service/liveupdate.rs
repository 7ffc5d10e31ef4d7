//! `xenstore-control live-update` for a stub domain: receive the image, quiesce, decide.
//!
//! This is the protocol half; the hand-over itself (state buffer, jump) is in `handover`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xsstate::control::LiveUpdateCmd;
use xsstate::engine::Engine;

/// Most bytes a new image may have (it must fit the domain's RAM with the state beside it).
pub const IMAGE_MAX_BYTES: u64 = 32 << 20;

/// A quiesce is abandoned when no `-s` came for this long: the stock client sends one about
/// every second until its timeout, then `-a`, so silence means it was killed (every domain's
/// `TRANSACTION_START` is held meanwhile: all dom0 tools share one ring, so the client's exit
/// is not seen).
pub const QUIESCE_ABANDON_MS: u64 = 10_000;
/// A staged image (or `-c`) with no live-update command for this long is dropped: the client
/// sends its commands back to back.
pub const STAGING_ABANDON_MS: u64 = 60_000;

/// What to do with a `live-update` request.
#[derive(Debug)]
pub enum Decision {
    /// Answer with this text (`OK`, `BUSY` or an error message).
    Reply(String),
    /// Quiesced: hand over to the staged image.
    Go,
}

/// The live-update state between requests.
#[derive(Debug, Default)]
pub struct LiveUpdate {
    /// Announced size and the bytes received so far (`-b`, `-d`).
    staging: Option<(usize, Vec<u8>)>,
    /// `-c`: the new image's command line.
    cmdline: Option<String>,
    /// Engine time of the first `-s`, while quiescing.
    quiesce_since_ms: Option<u64>,
    /// `-s` requests answered `BUSY` so far.
    busy_replies: u32,
    /// Engine time of the last live-update command, while a session is open.
    last_command_ms: Option<u64>,
}

impl LiveUpdate {
    /// The staged image (complete after a successful `-s` check).
    pub fn image(&self) -> &[u8] {
        self.staging.as_ref().map_or(&[], |(_, b)| b.as_slice())
    }

    /// Whether a whole image was received (`-b` then every byte of `-d`).
    pub fn complete(&self) -> bool {
        self.staging
            .as_ref()
            .is_some_and(|(size, b)| *size == b.len())
    }

    /// The command line the new image gets, when `-c` set one.
    pub fn cmdline(&self) -> Option<&str> {
        self.cmdline.as_deref()
    }

    /// Forgets everything (abort, or a failed hand-over) and lets transactions start again.
    pub fn reset(&mut self, engine: &mut Engine) {
        *self = LiveUpdate::default();
        engine.hold_transactions(false);
    }

    /// When an idle session is abandoned (see [`QUIESCE_ABANDON_MS`]); `None` without one.
    pub fn deadline_ms(&self) -> Option<u64> {
        let last = self.last_command_ms?;
        Some(last.saturating_add(if self.quiesce_since_ms.is_some() {
            QUIESCE_ABANDON_MS
        } else {
            STAGING_ABANDON_MS
        }))
    }

    /// Abandons a session whose client went silent (at engine time `now_ms`): transactions
    /// start again and the staged image is freed. Returns what was abandoned, for the log.
    pub fn abandon_if_idle(&mut self, engine: &mut Engine, now_ms: u64) -> Option<String> {
        let deadline = self.deadline_ms()?;
        if now_ms < deadline {
            return None;
        }
        let idle_s = now_ms.saturating_sub(self.last_command_ms.unwrap_or(now_ms)) / 1000;
        let what = match (&self.staging, self.quiesce_since_ms) {
            (_, Some(_)) => "its quiesce (transactions start again) and the staged image",
            (Some(_), None) => "the staged image",
            (None, None) => "its -c command line",
        };
        self.reset(engine);
        Some(format!(
            "live-update abandoned: no command from the client for {idle_s} s; dropped {what}"
        ))
    }

    /// Notes that a command was handled at engine time `now_ms` (the idle clock of
    /// [`LiveUpdate::abandon_if_idle`]; none runs without an open session).
    pub fn note_command(&mut self, now_ms: u64) {
        let open =
            self.staging.is_some() || self.cmdline.is_some() || self.quiesce_since_ms.is_some();
        self.last_command_ms = open.then_some(now_ms);
    }

    /// Handles one sub-command at engine time `now_ms`; `validate` checks a complete image.
    /// The caller then calls [`LiveUpdate::note_command`].
    pub fn handle(
        &mut self,
        cmd: LiveUpdateCmd,
        engine: &mut Engine,
        now_ms: u64,
        heap_free_bytes: usize,
        validate: impl Fn(&[u8], bool) -> Result<(), String>,
    ) -> Decision {
        match cmd {
            LiveUpdateCmd::Begin { size } => {
                self.reset(engine);
                // The image and its flattened copy must fit beside the store (whether the
                // state fits too is checked at `-s`, when it is known).
                let limit = (heap_free_bytes as u64 / 2).min(IMAGE_MAX_BYTES);
                if size == 0 || size > limit {
                    return reply(format!(
                        "live-update: an image of {size} bytes does not fit (at most {limit} \
                         with {heap_free_bytes} bytes free)"
                    ));
                }
                let size = size as usize;
                let mut buf = Vec::new();
                if buf.try_reserve_exact(size).is_err() {
                    return reply(format!("live-update: cannot reserve {size} bytes"));
                }
                self.staging = Some((size, buf));
                reply(String::from("OK"))
            }
            LiveUpdateCmd::Data(chunk) => {
                let Some((size, buf)) = self.staging.as_mut() else {
                    return reply(String::from("live-update: -d without -b"));
                };
                if buf.len().saturating_add(chunk.len()) > *size {
                    let have = buf.len();
                    let size = *size;
                    self.reset(engine);
                    return reply(format!(
                        "live-update: {} bytes more than the {size} announced",
                        have + chunk.len() - size
                    ));
                }
                buf.extend_from_slice(&chunk);
                reply(String::from("OK"))
            }
            LiveUpdateCmd::Cmdline(c) => match String::from_utf8(c) {
                Ok(c) if c.len() < 1024 => {
                    self.cmdline = Some(c);
                    reply(String::from("OK"))
                }
                _ => reply(String::from(
                    "live-update: the command line must be UTF-8 and under 1024 bytes",
                )),
            },
            LiveUpdateCmd::File(_) => reply(String::from(
                "live-update: -f is for a xenstored daemon; a stub domain takes -b/-d",
            )),
            LiveUpdateCmd::Abort => {
                self.reset(engine);
                reply(String::from("OK"))
            }
            LiveUpdateCmd::Start {
                timeout_s,
                force,
                stream_version,
            } => {
                if stream_version != xsstate::image::SEED_VERSION {
                    return reply(format!(
                        "live-update: migration stream version {stream_version} not supported \
                         (this image hands over version {})",
                        xsstate::image::SEED_VERSION
                    ));
                }
                let Some((size, buf)) = self.staging.as_ref() else {
                    return reply(String::from("live-update: -s without an image"));
                };
                if buf.len() != *size {
                    return reply(format!(
                        "live-update: image incomplete ({} of {size} bytes)",
                        buf.len()
                    ));
                }
                if let Err(e) = validate(buf, force) {
                    return reply(format!("live-update: image refused: {e}"));
                }
                let since = *self.quiesce_since_ms.get_or_insert(now_ms);
                engine.hold_transactions(true);
                let open = engine.domains_with_transactions();
                if open.is_empty() {
                    return Decision::Go;
                }
                // The stock client re-sends `-s` about once a second while it counts whole
                // seconds up to `-t`: its last `-s` comes before that, and under load it sends
                // fewer. Decide on the `-t - 1`th `-s`, or half a second before `-t - 1`
                // seconds passed, whichever comes first, or it would only ever see BUSY.
                let waited_ms = now_ms.saturating_sub(since);
                let deadline_ms = u64::from(timeout_s.saturating_sub(1))
                    .saturating_mul(1000)
                    .saturating_sub(500);
                let last_try = self.busy_replies.saturating_add(2) >= timeout_s;
                if waited_ms < deadline_ms && !last_try {
                    self.busy_replies += 1;
                    return reply(String::from("BUSY"));
                }
                if force {
                    return Decision::Go;
                }
                self.quiesce_since_ms = None;
                self.busy_replies = 0;
                engine.hold_transactions(false);
                let names: Vec<String> = open.iter().map(|d| format!("{}", d.0)).collect();
                reply(format!(
                    "live-update: timeout after {timeout_s} s: transactions still open by \
                     domain(s) {}",
                    names.join(", ")
                ))
            }
        }
    }
}

fn reply(text: String) -> Decision {
    Decision::Reply(text)
}
