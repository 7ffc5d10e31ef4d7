//! What a live update keeps across the jump instead of tearing down and setting up again:
//! every ring stays mapped and every port stays bound (each unmap, map, close and bind is a
//! hypercall inside the downtime, four per guest). The old image lists them in the
//! hand-over buffer's shell block; the new image (or the old one again, after a rollback)
//! adopts them.
//!
//! The block, little endian: `u32 magic` ([`MAGIC`]), `u32 version` (1), `u32 dom_exc_port`,
//! `u32 timer_port`, `u32 n_rings`, `u32 0`, then per ring `u32 conn`, `u16 domid`, `u16 0`,
//! `u32 local_port`, `u32 remote_port`, `u32 handle`, `u64 gfn` (28 bytes, padded to 32).

use alloc::vec::Vec;

/// The block's first word (`KEEP`).
pub const MAGIC: u32 = u32::from_le_bytes(*b"KEEP");
/// The block's version.
pub const VERSION: u32 = 1;
/// Bytes per ring entry.
const RING_LEN: usize = 32;
/// Most rings a block may list (a domain id is 16 bits).
const MAX_RINGS: usize = 1 << 16;

/// One ring that stays mapped, with its bound port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeptRing {
    /// The engine's connection.
    pub conn: u32,
    /// The domain.
    pub domid: u16,
    /// Our end of the event channel.
    pub local_port: u32,
    /// The domain's end.
    pub remote_port: u32,
    /// Xen's handle of the grant mapping.
    pub handle: u32,
    /// Where the ring is mapped.
    pub gfn: u64,
}

/// Everything kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The port bound to `VIRQ_DOM_EXC`.
    pub dom_exc_port: u32,
    /// The port bound to `VIRQ_TIMER`.
    pub timer_port: u32,
    /// The rings.
    pub rings: Vec<KeptRing>,
}

/// Why a block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepError {
    /// Shorter than its counts say.
    Truncated,
    /// Not a block of this format or version.
    Unknown,
    /// More rings than domains can exist.
    TooMany,
}

impl core::fmt::Display for KeepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeepError::Truncated => write!(f, "kept resources: truncated"),
            KeepError::Unknown => write!(f, "kept resources: unknown format"),
            KeepError::TooMany => write!(f, "kept resources: too many rings"),
        }
    }
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl Kept {
    /// The block's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + RING_LEN * self.rings.len());
        for w in [
            MAGIC,
            VERSION,
            self.dom_exc_port,
            self.timer_port,
            self.rings.len() as u32,
            0,
        ] {
            put32(&mut out, w);
        }
        for r in &self.rings {
            put32(&mut out, r.conn);
            out.extend_from_slice(&r.domid.to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            put32(&mut out, r.local_port);
            put32(&mut out, r.remote_port);
            put32(&mut out, r.handle);
            out.extend_from_slice(&r.gfn.to_le_bytes());
            put32(&mut out, 0);
        }
        out
    }

    /// Parses a block; an empty one (a buffer without kept resources) is `Ok(None)`.
    pub fn decode(bytes: &[u8]) -> Result<Option<Kept>, KeepError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let word = |at: usize| -> Result<u32, KeepError> {
            let b = bytes.get(at..at + 4).ok_or(KeepError::Truncated)?;
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            Ok(u32::from_le_bytes(a))
        };
        if word(0)? != MAGIC || word(4)? != VERSION || word(20)? != 0 {
            return Err(KeepError::Unknown);
        }
        let n = word(16)? as usize;
        if n > MAX_RINGS {
            return Err(KeepError::TooMany);
        }
        if bytes.len() != 24 + n * RING_LEN {
            return Err(KeepError::Truncated);
        }
        let mut rings = Vec::new();
        rings.try_reserve_exact(n).map_err(|_| KeepError::TooMany)?;
        for i in 0..n {
            let at = 24 + i * RING_LEN;
            let lo = u64::from(word(at + 20)?);
            let hi = u64::from(word(at + 24)?);
            let d = word(at + 4)?;
            rings.push(KeptRing {
                conn: word(at)?,
                domid: (d & 0xffff) as u16,
                local_port: word(at + 8)?,
                remote_port: word(at + 12)?,
                handle: word(at + 16)?,
                gfn: lo | (hi << 32),
            });
        }
        rings.sort_unstable_by_key(|r| r.conn);
        Ok(Some(Kept {
            dom_exc_port: word(8)?,
            timer_port: word(12)?,
            rings,
        }))
    }

    /// The ring kept for connection `conn` ([`Kept::decode`] sorts them).
    pub fn ring(&self, conn: u32) -> Option<&KeptRing> {
        let i = self.rings.binary_search_by_key(&conn, |r| r.conn).ok()?;
        self.rings.get(i)
    }
}
