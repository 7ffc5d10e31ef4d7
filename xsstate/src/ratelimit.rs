//! Write rate limiting per unprivileged domain (XSA-206): a token bucket in milli-writes.

/// A domain's write budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteBudget {
    /// Credit in thousandths of a write; negative means the domain must wait.
    pub credit_milli: i64,
    /// Engine time of the last refill.
    pub updated_ms: u64,
}

/// The limiter's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRate {
    /// Sustained writes per second (0: no limit).
    pub per_s: u32,
    /// Writes allowed in a burst.
    pub burst: u32,
}

impl Default for WriteRate {
    /// C xenstored's defaults: 200 writes per second, bursts of 10.
    fn default() -> WriteRate {
        WriteRate {
            per_s: 200,
            burst: 10,
        }
    }
}

impl WriteBudget {
    /// A full bucket at time `now_ms`.
    pub fn full(rate: WriteRate, now_ms: u64) -> WriteBudget {
        WriteBudget {
            credit_milli: i64::from(rate.burst) * 1000,
            updated_ms: now_ms,
        }
    }

    /// Adds the credit earned since the last refill, up to the burst size.
    pub fn refill(&mut self, rate: WriteRate, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.updated_ms);
        let earned = i64::try_from(dt)
            .unwrap_or(i64::MAX)
            .saturating_mul(i64::from(rate.per_s));
        let cap = i64::from(rate.burst) * 1000;
        self.credit_milli = self.credit_milli.saturating_add(earned).min(cap);
        self.updated_ms = now_ms;
    }

    /// Charges one write.
    pub fn debit(&mut self) {
        self.credit_milli = self.credit_milli.saturating_sub(1000);
    }

    /// Whether the domain must wait before its next request is processed.
    pub fn exhausted(&self) -> bool {
        self.credit_milli < 0
    }

    /// When the credit is back to zero, if it is negative now.
    pub fn ready_at_ms(&self, rate: WriteRate) -> Option<u64> {
        if !self.exhausted() || rate.per_s == 0 {
            return None;
        }
        let missing = u64::try_from(-self.credit_milli).unwrap_or(u64::MAX);
        let wait = missing.div_ceil(u64::from(rate.per_s));
        Some(self.updated_ms.saturating_add(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket() {
        let rate = WriteRate {
            per_s: 200,
            burst: 10,
        };
        let mut b = WriteBudget::full(rate, 0);
        for _ in 0..10 {
            assert!(!b.exhausted());
            b.debit();
        }
        assert!(!b.exhausted());
        b.debit();
        assert!(b.exhausted());
        assert_eq!(b.ready_at_ms(rate), Some(5));
        b.refill(rate, 5);
        assert!(!b.exhausted());
        b.refill(rate, 1_000_000);
        assert_eq!(b.credit_milli, 10_000);
    }
}
