//! Shipped Xen's record bodies (`tools/xenstored/xenstore_state.h`): reading and writing the
//! records whose layout differs from the seed.

use super::error::{ImageError, Reason};
use super::reader::{self, Body, State};
use super::record::{
    rtype, Layout, Record, XenConnSpec, XenConnectionData, XenGlobalData, XenWatchExtData,
    XEN_CONN_FIELD_UNIQUE_ID,
};
use super::writer::{self, Out};

/// One body in Xen's layout (the caller has refused unknown types and type 8 in version 1).
pub(crate) fn parse_body(b: &mut Body<'_>, st: &mut State) -> Result<Record, ImageError> {
    Ok(match b.rec_type() {
        rtype::END => Record::End,
        rtype::GLOBAL => {
            st.once_global(b)?;
            Record::XenGlobal(XenGlobalData {
                socket_fd: b.i32()?,
                evtchn_fd: b.i32()?,
            })
        }
        rtype::CONNECTION => Record::XenConnection(connection(b, st)?),
        rtype::WATCH => Record::Watch(reader::watch_fields(b, st, false)?.0),
        rtype::WATCH_EXT => {
            let (watch, depth) = reader::watch_fields(b, st, true)?;
            Record::XenWatchExt(XenWatchExtData { watch, depth })
        }
        rtype::TRANSACTION => Record::Transaction(reader::transaction(b, st)?),
        rtype::NODE => Record::Node(reader::node(b, st, Layout::Xen)?),
        rtype::GLOBAL_QUOTA => Record::GlobalQuota(reader::global_quota(b, st)?),
        rtype::DOMAIN => Record::Domain(reader::domain(b, st)?),
        t => return Err(b.err_at(b.at(), Reason::UnknownRecordType(t))),
    })
}

fn connection(b: &mut Body<'_>, st: &mut State) -> Result<XenConnectionData, ImageError> {
    let at = b.at();
    let conn_id = b.u32()?;
    st.add_conn(b, at, conn_id)?;
    let type_at = b.at();
    let conn_type = b.u16()?;
    let fields_at = b.at();
    let fields = b.u16()?;
    if fields & !XEN_CONN_FIELD_UNIQUE_ID != 0 {
        return Err(b.err_at(fields_at, Reason::BadFlags(fields)));
    }
    let spec = match conn_type {
        0 => XenConnSpec::Ring {
            domid: b.u16()?,
            tdomid: b.u16()?,
            evtchn: b.u32()?,
        },
        1 => {
            let socket_fd = b.i32()?;
            b.u32()?; // pad: ignored
            XenConnSpec::Socket { socket_fd }
        }
        t => return Err(b.err_at(type_at, Reason::BadConnType(t))),
    };
    let in_len = b.u16()?;
    let resp_at = b.at();
    let out_resp_len = b.u16()?;
    let out_len = b.u32()?;
    if u32::from(out_resp_len) > out_len {
        return Err(b.err_at(resp_at, Reason::LengthOverrun));
    }
    let in_data = b.var(usize::from(in_len))?.to_vec();
    let out_len = usize::try_from(out_len).map_err(|_| b.err_at(b.at(), Reason::LengthOverrun))?;
    let out_data = b.var(out_len)?.to_vec();
    let unique_id = if fields & XEN_CONN_FIELD_UNIQUE_ID != 0 {
        b.align8()?;
        Some(b.u64()?)
    } else {
        None
    };
    Ok(XenConnectionData {
        conn_id,
        spec,
        in_data,
        out_resp_len,
        out_data,
        unique_id,
    })
}

/// One body in Xen's layout.
pub(crate) fn write_body(rec: &Record, o: &mut Out) -> Result<(), Reason> {
    match rec {
        Record::End => {}
        Record::XenGlobal(g) => {
            o.i32(g.socket_fd);
            o.i32(g.evtchn_fd);
        }
        Record::XenConnection(c) => {
            o.u32(c.conn_id);
            match c.spec {
                XenConnSpec::Ring { .. } => o.u16(0),
                XenConnSpec::Socket { .. } => o.u16(1),
            }
            o.u16(if c.unique_id.is_some() {
                XEN_CONN_FIELD_UNIQUE_ID
            } else {
                0
            });
            match c.spec {
                XenConnSpec::Ring {
                    domid,
                    tdomid,
                    evtchn,
                } => {
                    o.u16(domid);
                    o.u16(tdomid);
                    o.u32(evtchn);
                }
                XenConnSpec::Socket { socket_fd } => {
                    o.i32(socket_fd);
                    o.u32(0);
                }
            }
            o.u16(u16::try_from(c.in_data.len()).map_err(|_| Reason::TooLong)?);
            o.u16(c.out_resp_len);
            o.u32(u32::try_from(c.out_data.len()).map_err(|_| Reason::TooLong)?);
            o.bytes(&c.in_data);
            o.bytes(&c.out_data);
            if let Some(id) = c.unique_id {
                o.pad8();
                o.u64(id);
            }
        }
        Record::Watch(w) => writer::watch(w, o, None)?,
        Record::XenWatchExt(w) => writer::watch(&w.watch, o, Some(w.depth))?,
        Record::Transaction(t) => {
            o.u32(t.conn_id);
            o.u32(t.tx_id);
        }
        Record::Node(n) => writer::node(n, o, Layout::Xen)?,
        Record::GlobalQuota(q) => writer::global_quota(q, o)?,
        Record::Domain(d) => writer::domain(d, o)?,
        Record::Global(_) | Record::Connection(_) => return Err(Reason::NotInLayout),
    }
    Ok(())
}
