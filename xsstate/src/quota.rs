//! Quotas and limits with C xenstored's defaults, named as `xenstore-control quota` shows them.

use alloc::string::String;
use core::fmt::Write;

use crate::error::XsError;

/// One adjustable limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// Nodes per domain.
    Nodes,
    /// Watches per domain.
    Watches,
    /// Transactions per domain.
    Transactions,
    /// Outstanding requests per domain.
    Outstanding,
    /// Max. number of accessed nodes per transaction.
    TransactionNodes,
    /// Total Xenstore memory per domain (error level).
    Memory,
    /// Max. size of a node.
    NodeSize,
    /// Max. length of a node path.
    PathMax,
    /// Max. number of permissions per node.
    Permissions,
}

impl QuotaKind {
    /// Every hard quota in `quota` listing order.
    pub const ALL: [QuotaKind; 9] = [
        QuotaKind::Nodes,
        QuotaKind::Watches,
        QuotaKind::Transactions,
        QuotaKind::Outstanding,
        QuotaKind::TransactionNodes,
        QuotaKind::Memory,
        QuotaKind::NodeSize,
        QuotaKind::PathMax,
        QuotaKind::Permissions,
    ];

    /// The name used on the wire and by `xenstore-control`.
    pub const fn name(self) -> &'static str {
        match self {
            QuotaKind::Nodes => "nodes",
            QuotaKind::Watches => "watches",
            QuotaKind::Transactions => "transactions",
            QuotaKind::Outstanding => "outstanding",
            QuotaKind::TransactionNodes => "transaction-nodes",
            QuotaKind::Memory => "memory",
            QuotaKind::NodeSize => "node-size",
            QuotaKind::PathMax => "path-max",
            QuotaKind::Permissions => "permissions",
        }
    }

    /// A one-line description.
    pub const fn description(self) -> &'static str {
        match self {
            QuotaKind::Nodes => "Nodes per domain",
            QuotaKind::Watches => "Watches per domain",
            QuotaKind::Transactions => "Transactions per domain",
            QuotaKind::Outstanding => "Outstanding requests per domain",
            QuotaKind::TransactionNodes => "Max. number of accessed nodes per transaction",
            QuotaKind::Memory => "Total Xenstore memory per domain (error level)",
            QuotaKind::NodeSize => "Max. size of a node",
            QuotaKind::PathMax => "Max. length of a node path",
            QuotaKind::Permissions => "Max. number of permissions per node",
        }
    }

    /// Looks a quota up by name, in either style (`permissions` or 4.18's
    /// `node-permissions`).
    pub fn from_name(name: &[u8]) -> Option<QuotaKind> {
        QuotaKind::ALL.iter().copied().find(|q| {
            [QuotaStyle::Xen417, QuotaStyle::Xen418]
                .iter()
                .any(|s| s.name(*q).as_bytes() == name)
        })
    }
}

/// How `xenstore-control quota` lists the quotas: as the C xenstored of the host's Xen does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuotaStyle {
    /// Xen 4.17: [`QuotaKind::ALL`]'s order and names.
    #[default]
    Xen417,
    /// Xen 4.18 and later (generic accounting): nodes, watches, outstanding, memory,
    /// transactions ("Active transactions per domain"), transaction-nodes,
    /// node-permissions, path-max, node-size.
    Xen418,
}

impl QuotaStyle {
    /// The quotas in listing order.
    pub const fn order(self) -> [QuotaKind; 9] {
        match self {
            QuotaStyle::Xen417 => QuotaKind::ALL,
            QuotaStyle::Xen418 => [
                QuotaKind::Nodes,
                QuotaKind::Watches,
                QuotaKind::Outstanding,
                QuotaKind::Memory,
                QuotaKind::Transactions,
                QuotaKind::TransactionNodes,
                QuotaKind::Permissions,
                QuotaKind::PathMax,
                QuotaKind::NodeSize,
            ],
        }
    }

    /// A quota's name in this style (4.18 renamed `permissions` to `node-permissions`).
    pub const fn name(self, kind: QuotaKind) -> &'static str {
        match (self, kind) {
            (QuotaStyle::Xen418, QuotaKind::Permissions) => "node-permissions",
            _ => kind.name(),
        }
    }

    /// A quota's description in this style.
    pub const fn description(self, kind: QuotaKind) -> &'static str {
        match (self, kind) {
            (QuotaStyle::Xen418, QuotaKind::Transactions) => "Active transactions per domain",
            _ => kind.description(),
        }
    }
}

/// A full set of limits (0 disables a check, as `SET_QUOTA` documents).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    values: [u32; 9],
    /// The soft memory limit (a warning is logged when crossed).
    pub memory_soft: u32,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            values: [
                1000,
                128,
                10,
                20,
                1024,
                2 * 1024 * 1024 + 512 * 1024,
                2048,
                2048,
                5,
            ],
            memory_soft: 2 * 1024 * 1024,
        }
    }
}

impl Quotas {
    /// The value of one quota.
    pub fn get(&self, kind: QuotaKind) -> u32 {
        self.values.get(kind as usize).copied().unwrap_or(0)
    }

    /// Sets one quota.
    pub fn set(&mut self, kind: QuotaKind, value: u32) {
        if let Some(slot) = self.values.get_mut(kind as usize) {
            *slot = value;
        }
    }

    /// The path length limit (`path-max`; 0 falls back to `XENSTORE_REL_PATH_MAX`).
    pub fn path_max(&self) -> usize {
        match self.get(QuotaKind::PathMax) as usize {
            0 => crate::path::REL_PATH_MAX,
            m => m,
        }
    }

    /// Whether `used` has reached the limit `kind` (never when the limit is 0).
    pub fn reached(&self, kind: QuotaKind, used: usize) -> bool {
        let limit = self.get(kind);
        limit != 0 && used >= limit as usize
    }

    /// Whether `used` exceeds the limit `kind` (never when the limit is 0).
    pub fn exceeded(&self, kind: QuotaKind, used: usize) -> bool {
        let limit = self.get(kind);
        limit != 0 && used > limit as usize
    }

    /// The `quota` control listing: `Quota settings:` then `%-17s: %8d %s` lines.
    pub fn listing(&self, style: QuotaStyle) -> String {
        let mut s = String::from("Quota settings:\n");
        for q in style.order() {
            let _ = writeln!(
                s,
                "{:<17}: {:>8} {}",
                style.name(q),
                self.get(q),
                style.description(q)
            );
        }
        s
    }

    /// The `quota-soft` control listing.
    pub fn soft_listing(&self) -> String {
        let mut s = String::from("Quota settings:\n");
        let _ = writeln!(
            s,
            "{:<17}: {:>8} Total Xenstore memory per domain (warning level)",
            "memory", self.memory_soft
        );
        s
    }

    /// Parses a quota value (decimal; `control quota set` refuses values below 1).
    pub fn parse_value(text: &[u8], allow_zero: bool) -> Result<u32, XsError> {
        let v = crate::util::parse_decimal(text).ok_or(XsError::Einval)?;
        let v = u32::try_from(v).map_err(|_| XsError::Einval)?;
        if v == 0 && !allow_zero {
            return Err(XsError::Einval);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_c_xenstored() {
        let q = Quotas::default();
        assert_eq!(q.get(QuotaKind::Nodes), 1000);
        assert_eq!(q.get(QuotaKind::Watches), 128);
        assert_eq!(q.get(QuotaKind::Transactions), 10);
        assert_eq!(q.get(QuotaKind::Outstanding), 20);
        assert_eq!(q.get(QuotaKind::TransactionNodes), 1024);
        assert_eq!(q.get(QuotaKind::Memory), 2_621_440);
        assert_eq!(q.get(QuotaKind::NodeSize), 2048);
        assert_eq!(q.get(QuotaKind::PathMax), 2048);
        assert_eq!(q.get(QuotaKind::Permissions), 5);
        assert!(q
            .listing(QuotaStyle::Xen417)
            .contains("nodes            :     1000 Nodes per domain\n"));
    }

    #[test]
    fn the_4_18_listing() {
        let l = Quotas::default().listing(QuotaStyle::Xen418);
        let names: alloc::vec::Vec<&str> = l
            .lines()
            .skip(1)
            .filter_map(|line| line.split(':').next())
            .map(str::trim_end)
            .collect();
        assert_eq!(
            names,
            [
                "nodes",
                "watches",
                "outstanding",
                "memory",
                "transactions",
                "transaction-nodes",
                "node-permissions",
                "path-max",
                "node-size"
            ]
        );
        assert!(l.contains("transactions     :       10 Active transactions per domain\n"));
        assert_eq!(
            QuotaKind::from_name(b"node-permissions"),
            Some(QuotaKind::Permissions)
        );
    }

    #[test]
    fn zero_disables() {
        let mut q = Quotas::default();
        q.set(QuotaKind::Nodes, 0);
        assert!(!q.reached(QuotaKind::Nodes, 1_000_000));
        assert_eq!(Quotas::parse_value(b"0", false), Err(XsError::Einval));
    }
}
