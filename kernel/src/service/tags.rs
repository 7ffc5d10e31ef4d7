//! The command lines of a live update's start-info modules: the state buffer
//! (`xsstub-state v2 ...`) and the old image kept for a rollback (`xsstub-rollback v1 ...`).

use alloc::format;
use alloc::string::String;

/// Command-line prefix of the state module.
pub const STATE_TAG: &str = "xsstub-state";
/// Command-line prefix of the rollback module.
pub const ROLLBACK_TAG: &str = "xsstub-rollback";

/// What the old image knew of this domain that the new one would otherwise ask Xen again
/// inside the downtime (each question a hypercall): where the shared-info page and the grant
/// frames are mapped, and how much memory is populated up to where. Read before the heap
/// exists ([`EarlyFacts::parse`] allocates nothing) and used only when Xen's own count of
/// populated pages still matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EarlyFacts {
    /// The shared-info page's frame (0: unknown).
    pub shared_info_gfn: u64,
    /// The grant table's first frame and the number of frames mapped (0: unknown).
    pub grant_gfn: u64,
    /// Grant frames mapped.
    pub grant_frames: u32,
    /// The memory as the old image left it (`populated` 0: unknown).
    pub mem: super::memory::MemFacts,
    /// This domain's id, as Xen told the old image.
    pub domid: Option<u16>,
    /// How the old image found this hypervisor answers questions about domains
    /// ([`DomainQueries::to_words`](crate::xen::domctl::DomainQueries::to_words)).
    pub queries: Option<[u64; 4]>,
}

impl EarlyFacts {
    /// The facts in a state tag (`si=GFN gt=GFN,FRAMES mem=POPULATED,TOP,SPECIAL,LIMIT,LEFT
    /// dom=DOMID dq=XEN,INFO,STATE,EPERM`), without allocating; missing or malformed ones stay
    /// 0 (or `None`).
    pub fn parse(cmdline: &str) -> EarlyFacts {
        let mut f = EarlyFacts::default();
        if !cmdline.starts_with(STATE_TAG) {
            return f;
        }
        let fields = cmdline.split_once(" reason=").map_or(cmdline, |(a, _)| a);
        for w in fields.split_ascii_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            let mut nums = v.split(',').map(|x| x.parse::<u64>().ok());
            let mut next = || nums.next().flatten();
            match k {
                "si" => f.shared_info_gfn = next().unwrap_or(0),
                "gt" => {
                    if let (Some(g), Some(n)) = (next(), next()) {
                        f.grant_gfn = g;
                        f.grant_frames = u32::try_from(n).unwrap_or(0);
                    }
                }
                "dom" => f.domid = next().and_then(|d| u16::try_from(d).ok()),
                "dq" => {
                    if let (Some(a), Some(b), Some(c), Some(d)) = (next(), next(), next(), next()) {
                        f.queries = Some([a, b, c, d]);
                    }
                }
                "mem" => {
                    if let (Some(p), Some(t), Some(sp), Some(l), Some(left)) =
                        (next(), next(), next(), next(), next())
                    {
                        f.mem = super::memory::MemFacts {
                            populated: p,
                            top: t,
                            special: sp,
                            limit: l,
                            left,
                        };
                    }
                }
                _ => {}
            }
        }
        f
    }

    /// The tag's fields (leading space).
    fn render(&self, s: &mut String) {
        let m = &self.mem;
        s.push_str(&format!(
            " si={} gt={},{} mem={},{},{},{},{}",
            self.shared_info_gfn,
            self.grant_gfn,
            self.grant_frames,
            m.populated,
            m.top,
            m.special,
            m.limit,
            m.left
        ));
        if let Some(d) = self.domid {
            s.push_str(&format!(" dom={d}"));
        }
        if let Some([a, b, c, d]) = self.queries {
            s.push_str(&format!(" dq={a},{b},{c},{d}"));
        }
    }
}

/// What the state module's command line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateTag {
    /// Buffer length.
    pub bytes: u64,
    /// The buffer's own checksum (its last 8 bytes), for a first check.
    pub sum: u64,
    /// First grant reference describing it.
    pub gref: u32,
    /// Pages granted.
    pub pages: u32,
    /// The grantee (this domain).
    pub domid: u16,
    /// TSC just before the jump.
    pub jump_tsc: u64,
    /// What the new image need not ask Xen again (absent after a rollback).
    pub facts: Option<EarlyFacts>,
    /// Set when the new image jumped back: why the update failed.
    pub rollback: Option<String>,
}

impl StateTag {
    /// Parses `xsstub-state v2 bytes=N sum=HEX gref=N pages=N domid=N jump_tsc=N
    /// [rollback=1 reason=TEXT...]` (the reason takes the rest of the line).
    pub fn parse(cmdline: &str) -> Option<StateTag> {
        let rest = cmdline.strip_prefix(STATE_TAG)?.strip_prefix(" v2 ")?;
        let (fields, reason) = match rest.split_once(" reason=") {
            Some((f, r)) => (f, Some(r)),
            None => (rest, None),
        };
        let mut t = StateTag::default();
        let mut rolled = false;
        for w in fields.split_ascii_whitespace() {
            let (k, v) = w.split_once('=')?;
            match k {
                "bytes" => t.bytes = v.parse().ok()?,
                "sum" => t.sum = u64::from_str_radix(v, 16).ok()?,
                "gref" => t.gref = v.parse().ok()?,
                "pages" => t.pages = v.parse().ok()?,
                "domid" => t.domid = v.parse().ok()?,
                "jump_tsc" => t.jump_tsc = v.parse().ok()?,
                "rollback" => rolled = v == "1",
                _ => {}
            }
        }
        if rolled {
            t.rollback = Some(String::from(reason.unwrap_or("unknown reason")));
        }
        Some(t)
    }

    /// The command line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{STATE_TAG} v2 bytes={} sum={:016x} gref={} pages={} domid={} jump_tsc={}",
            self.bytes, self.sum, self.gref, self.pages, self.domid, self.jump_tsc
        );
        if let Some(f) = &self.facts {
            f.render(&mut s);
        }
        if let Some(r) = &self.rollback {
            // One line, printable, bounded.
            let clean: String = r
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .take(400)
                .collect();
            s.push_str(" rollback=1 reason=");
            s.push_str(&clean);
        }
        s
    }
}

/// What the rollback module's command line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackTag {
    /// Bytes of the old image (from its load address, up to its .bss).
    pub bytes: u64,
    /// Its 32-bit PVH entry point.
    pub entry32: u32,
    /// Its command line (the rest of the line).
    pub cmdline: String,
}

impl RollbackTag {
    /// Parses `xsstub-rollback v1 bytes=N entry=HEX cmdline=TEXT...`.
    pub fn parse(cmdline: &str) -> Option<RollbackTag> {
        let rest = cmdline.strip_prefix(ROLLBACK_TAG)?.strip_prefix(" v1 ")?;
        let (fields, old) = rest.split_once(" cmdline=")?;
        let mut t = RollbackTag {
            cmdline: String::from(old),
            ..RollbackTag::default()
        };
        for w in fields.split_ascii_whitespace() {
            let (k, v) = w.split_once('=')?;
            match k {
                "bytes" => t.bytes = v.parse().ok()?,
                "entry" => t.entry32 = u32::from_str_radix(v.trim_start_matches("0x"), 16).ok()?,
                _ => {}
            }
        }
        (t.bytes != 0 && t.entry32 != 0).then_some(t)
    }

    /// The command line.
    pub fn render(&self) -> String {
        format!(
            "{ROLLBACK_TAG} v1 bytes={} entry={:#x} cmdline={}",
            self.bytes, self.entry32, self.cmdline
        )
    }
}
