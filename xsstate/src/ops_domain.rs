//! Domain requests: INTRODUCE, RELEASE, IS_DOMAIN_INTRODUCED, GET_DOMAIN_PATH, RESUME,
//! SET_TARGET, GET/SET_FEATURE, GET/SET_QUOTA.

use alloc::vec::Vec;

use crate::conn::ConnKind;
use crate::engine::{ok, Effect, Engine, HandlerResult};
use crate::error::XsError;
use crate::ids::{DomId, EvtchnPort};
use crate::perms::Requester;
use crate::quota::{QuotaKind, Quotas};
use crate::ring::SUPPORTED_FEATURES;
use crate::util::{one_arg, parse_decimal, parse_signed, push_str0, split_strings};
use crate::watch::INTRODUCE_DOMAIN;

fn domid_arg(raw: &[u8]) -> Result<DomId, XsError> {
    DomId::parse(raw).ok_or(XsError::Einval)
}

fn text_reply(text: &str) -> HandlerResult {
    let mut out = Vec::new();
    push_str0(&mut out, text.as_bytes());
    Ok(Some(out))
}

impl Engine {
    pub(crate) fn op_introduce(&mut self, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        let (Some(d), Some(gfn), Some(port)) = (args.first(), args.get(1), args.get(2)) else {
            return Err(XsError::Einval);
        };
        let domid = domid_arg(d)?;
        let gfn = parse_signed(gfn).ok_or(XsError::Einval)?;
        let port = parse_decimal(port)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(XsError::Einval)?;
        if port == 0 || !domid.is_real() || domid == self.config.priv_domid {
            return Err(XsError::Einval);
        }
        let port = EvtchnPort(port);
        // A negative frame number is passed on as its two's complement, as C xenstored does.
        let gfn = gfn as u64;
        if let Some(existing) = self.domains.get(&domid).and_then(|d| d.conn) {
            // Re-introduction (resume, or a guest asking to reconnect): reset the connection.
            if let Some(c) = self.conns.get_mut(&existing) {
                c.reset();
                c.kind = ConnKind::Ring { port, gfn };
            }
            self.effects.push(Effect::Reintroduced {
                conn: existing,
                domid,
                port,
            });
            return ok();
        }
        let id = self.connect_domain(domid, port, gfn);
        let features = self
            .domains
            .get(&domid)
            .map_or(SUPPORTED_FEATURES, |d| d.features);
        self.effects.push(Effect::Introduced {
            conn: id,
            domid,
            port,
            gfn,
            features,
        });
        self.fire_special(INTRODUCE_DOMAIN, domid);
        ok()
    }

    pub(crate) fn op_release(&mut self, p: &[u8]) -> HandlerResult {
        let domid = domid_arg(one_arg(p).ok_or(XsError::Einval)?)?;
        if domid == self.config.priv_domid {
            return Err(XsError::Einval);
        }
        if !self.domains.get(&domid).is_some_and(|d| d.introduced) {
            return Err(XsError::Enoent);
        }
        self.destroy_domain(domid);
        ok()
    }

    pub(crate) fn op_is_domain_introduced(&mut self, p: &[u8]) -> HandlerResult {
        let domid = domid_arg(one_arg(p).ok_or(XsError::Einval)?)?;
        let yes = domid == self.config.priv_domid
            || self.domains.get(&domid).is_some_and(|d| d.introduced);
        text_reply(if yes { "T" } else { "F" })
    }

    pub(crate) fn op_get_domain_path(&mut self, p: &[u8]) -> HandlerResult {
        let domid = domid_arg(one_arg(p).ok_or(XsError::Einval)?)?;
        text_reply(&crate::path::domain_path(domid))
    }

    pub(crate) fn op_resume(&mut self, p: &[u8]) -> HandlerResult {
        let domid = domid_arg(one_arg(p).ok_or(XsError::Einval)?)?;
        let d = self
            .domains
            .get_mut(&domid)
            .filter(|d| d.introduced)
            .ok_or(XsError::Enoent)?;
        d.shutdown_reported = false;
        ok()
    }

    pub(crate) fn op_set_target(&mut self, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        let (Some(d), Some(t)) = (args.first(), args.get(1)) else {
            return Err(XsError::Einval);
        };
        let (domid, target) = (domid_arg(d)?, domid_arg(t)?);
        let known = |e: &Engine, id: DomId| {
            id == e.config.priv_domid || e.domains.get(&id).is_some_and(|d| d.introduced)
        };
        if !known(self, domid) || !known(self, target) {
            return Err(XsError::Enoent);
        }
        let d = self.domains.get_mut(&domid).ok_or(XsError::Enoent)?;
        d.target = Some(target);
        ok()
    }

    /// GET_FEATURE (C xenstored 4.22): without a domid the caller's own features (a socket
    /// connection, or the privileged domain without a record, has all); with one, that
    /// domain's (privileged callers only).
    pub(crate) fn op_get_feature(&mut self, who: Requester, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        let value = match args.first() {
            None | Some(&[]) => self.features_of(who.domid),
            Some(d) => {
                if !who.privileged {
                    return Err(XsError::Eacces);
                }
                let domid = domid_arg(d)?;
                self.domains
                    .get(&domid)
                    .map(|d| d.features)
                    .ok_or(XsError::Enoent)?
            }
        };
        text_reply(&alloc::format!("{value}"))
    }

    /// The features a domain's connection has (all supported when it has no record yet).
    pub(crate) fn features_of(&self, domid: DomId) -> u32 {
        self.domains
            .get(&domid)
            .map_or(SUPPORTED_FEATURES, |d| d.features)
    }

    pub(crate) fn op_set_feature(&mut self, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        let (Some(d), Some(v)) = (args.first(), args.get(1)) else {
            return Err(XsError::Einval);
        };
        let domid = domid_arg(d)?;
        let value = parse_decimal(v)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(XsError::Einval)?;
        if value & !SUPPORTED_FEATURES != 0 {
            return Err(XsError::Einval);
        }
        let d = self.domain_entry(domid);
        if d.introduced {
            return Err(XsError::Ebusy);
        }
        d.features = value;
        ok()
    }

    pub(crate) fn op_get_quota(&mut self, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        match args.as_slice() {
            [] => {
                // GET_QUOTA is C xenstored 4.22's: its order and names.
                let style = crate::quota::QuotaStyle::Xen418;
                let names: Vec<&str> = style.order().iter().map(|q| style.name(*q)).collect();
                text_reply(&names.join(" "))
            }
            [q] => {
                let kind = QuotaKind::from_name(q).ok_or(XsError::Einval)?;
                text_reply(&alloc::format!("{}", self.config.quotas.get(kind)))
            }
            [d, q] => {
                let domid = domid_arg(d)?;
                let kind = QuotaKind::from_name(q).ok_or(XsError::Einval)?;
                let d = self.domains.get(&domid).ok_or(XsError::Enoent)?;
                text_reply(&alloc::format!("{}", d.quotas.get(kind)))
            }
            _ => Err(XsError::Einval),
        }
    }

    pub(crate) fn op_set_quota(&mut self, p: &[u8]) -> HandlerResult {
        let args = split_strings(p);
        match args.as_slice() {
            [q, v] => {
                let kind = QuotaKind::from_name(q).ok_or(XsError::Einval)?;
                let value = Quotas::parse_value(v, true)?;
                self.config.quotas.set(kind, value);
                ok()
            }
            [d, q, v] => {
                let domid = domid_arg(d)?;
                let kind = QuotaKind::from_name(q).ok_or(XsError::Einval)?;
                let value = Quotas::parse_value(v, true)?;
                let d = self.domain_entry(domid);
                d.quotas.set(kind, value);
                ok()
            }
            _ => Err(XsError::Einval),
        }
    }
}
