//! `xsimage`: dump, build and verify xenstore migration images (JSON <-> bytes).
//!
//! JSON schema (stable): `{"endianness": "little"|"big", "version": N, "records": [...]}`,
//! each record an object tagged by `"type"`:
//!
//! * `{"type": "global", "rw_socket_fd": N, "ro_socket_fd": N}` (seed record 1)
//! * `{"type": "connection", "conn_type": "ring", "conn_id": N, "flags": N, "domid": N,
//!   "tdomid": N, "evtchn": N, "mfn": N, "data": HEX}` (seed record 2)
//! * `{"type": "connection", "conn_type": "socket", "conn_id": N, "flags": N,
//!   "socket_fd": N, "data": HEX}` (seed record 2)
//! * `{"type": "watch", "conn_id": N, "wpath": S, "token": S}` (record 3)
//! * `{"type": "transaction", "conn_id": N, "tx_id": N}` (record 4)
//! * `{"type": "node", "conn_id": N, "tx_id": N, "access": N, "perms": [{"perm": "r"|"w"|
//!   "b"|"n", "domid": N}], "path": S, "value": HEX}` (record 5; a perm may carry Xen's
//!   `"flags": N`, omitted when 0)
//! * `{"type": "global_quota", "domain": [{"name": S, "value": N}], "global": [...]}`
//!   (record 6, Xen's layout)
//! * `{"type": "domain", "domid": N, "features": N, "quotas": [{"name": S, "value": N}]}`
//!   (record 7, Xen's layout)
//! * `{"type": "end"}` (record 0)
//! * Xen layout only: `{"type": "xen_global", "socket_fd": N, "evtchn_fd": N}`,
//!   `{"type": "xen_connection", "conn_type": "ring", "conn_id": N, "domid": N, "tdomid": N,
//!   "evtchn": N, "in_data": HEX, "out_resp_len": N, "out_data": HEX, "unique_id": N|null}`
//!   (or `"conn_type": "socket"` with `"socket_fd": N` instead of domid/tdomid/evtchn), and
//!   `{"type": "watch_ext", "conn_id": N, "wpath": S, "token": S, "depth": N}`.
//!
//! HEX is lowercase hex; paths, watch paths, tokens and quota names are strings without NUL.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use xsstate::image::{
    self, rtype, ConnSpec, ConnectionData, DomainData, Endianness, GlobalData, GlobalQuotaData,
    Image, Layout, NodeData, NodePerm, PermKind, Quota, Record, TransactionData, WatchData,
    XenConnSpec, XenConnectionData, XenGlobalData, XenWatchExtData,
};

/// Command line.
#[derive(Parser)]
#[command(
    name = "xsimage",
    about = "Dump, build and verify xenstore migration images"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print an image as JSON.
    Dump {
        /// The image file.
        file: PathBuf,
        /// Record layout of the image.
        #[arg(long, value_enum, default_value_t = LayoutArg::Seed)]
        layout: LayoutArg,
    },
    /// Write an image from JSON (checked by the reader unless --no-verify).
    Build {
        /// The JSON file.
        json: PathBuf,
        /// The image file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Record layout to write.
        #[arg(long, value_enum, default_value_t = LayoutArg::Seed)]
        layout: LayoutArg,
        /// Write the image even if the reader would refuse it (for making test images).
        #[arg(long)]
        no_verify: bool,
    },
    /// Check an image; print a one-line summary.
    Verify {
        /// The image file.
        file: PathBuf,
        /// Record layout of the image.
        #[arg(long, value_enum, default_value_t = LayoutArg::Seed)]
        layout: LayoutArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Seed,
    Xen,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Seed => Layout::Seed,
            LayoutArg::Xen => Layout::Xen,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JEndian {
    Little,
    Big,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JImage {
    endianness: JEndian,
    version: u32,
    records: Vec<JRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JRecord {
    Global {
        rw_socket_fd: u32,
        ro_socket_fd: u32,
    },
    Connection(JConn),
    Watch {
        conn_id: u32,
        wpath: String,
        token: String,
    },
    Transaction {
        conn_id: u32,
        tx_id: u32,
    },
    Node {
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: Vec<JPerm>,
        path: String,
        value: String,
    },
    GlobalQuota {
        domain: Vec<JQuota>,
        global: Vec<JQuota>,
    },
    Domain {
        domid: u16,
        features: u32,
        quotas: Vec<JQuota>,
    },
    XenGlobal {
        socket_fd: i32,
        evtchn_fd: i32,
    },
    XenConnection(JXenConn),
    WatchExt {
        conn_id: u32,
        wpath: String,
        token: String,
        depth: u16,
    },
    End,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "conn_type", rename_all = "snake_case")]
enum JConn {
    Ring {
        conn_id: u32,
        flags: u16,
        domid: u16,
        tdomid: u16,
        evtchn: u32,
        mfn: u64,
        data: String,
    },
    Socket {
        conn_id: u32,
        flags: u16,
        socket_fd: u32,
        data: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "conn_type", rename_all = "snake_case")]
enum JXenConn {
    Ring {
        conn_id: u32,
        domid: u16,
        tdomid: u16,
        evtchn: u32,
        in_data: String,
        out_resp_len: u16,
        out_data: String,
        unique_id: Option<u64>,
    },
    Socket {
        conn_id: u32,
        socket_fd: i32,
        in_data: String,
        out_resp_len: u16,
        out_data: String,
        unique_id: Option<u64>,
    },
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JPerm {
    perm: char,
    #[serde(default, skip_serializing_if = "is_zero")]
    flags: u8,
    domid: u16,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JQuota {
    name: String,
    value: u32,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex string {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .filter(|d| {
                    d.bytes()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                })
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("bad lowercase hex string {s:?}"))
        })
        .collect()
}

fn quotas_to_json(q: &[Quota]) -> Vec<JQuota> {
    q.iter()
        .map(|q| JQuota {
            name: q.name.clone(),
            value: q.value,
        })
        .collect()
}

fn quotas_from_json(q: Vec<JQuota>) -> Vec<Quota> {
    q.into_iter()
        .map(|q| Quota {
            name: q.name,
            value: q.value,
        })
        .collect()
}

fn to_json(img: &Image) -> JImage {
    let records = img
        .records
        .iter()
        .map(|r| match r {
            Record::End => JRecord::End,
            Record::Global(g) => JRecord::Global {
                rw_socket_fd: g.rw_socket_fd,
                ro_socket_fd: g.ro_socket_fd,
            },
            Record::Connection(c) => JRecord::Connection(match c.spec {
                ConnSpec::Ring {
                    flags,
                    domid,
                    tdomid,
                    evtchn,
                    mfn,
                } => JConn::Ring {
                    conn_id: c.conn_id,
                    flags,
                    domid,
                    tdomid,
                    evtchn,
                    mfn,
                    data: hex(&c.data),
                },
                ConnSpec::Socket { flags, socket_fd } => JConn::Socket {
                    conn_id: c.conn_id,
                    flags,
                    socket_fd,
                    data: hex(&c.data),
                },
            }),
            Record::Watch(w) => JRecord::Watch {
                conn_id: w.conn_id,
                wpath: w.wpath.clone(),
                token: w.token.clone(),
            },
            Record::Transaction(t) => JRecord::Transaction {
                conn_id: t.conn_id,
                tx_id: t.tx_id,
            },
            Record::Node(n) => JRecord::Node {
                conn_id: n.conn_id,
                tx_id: n.tx_id,
                access: n.access,
                perms: n
                    .perms
                    .iter()
                    .map(|p| JPerm {
                        perm: char::from(p.kind.letter()),
                        flags: p.flags,
                        domid: p.domid,
                    })
                    .collect(),
                path: n.path.clone(),
                value: hex(&n.value),
            },
            Record::GlobalQuota(q) => JRecord::GlobalQuota {
                domain: quotas_to_json(&q.domain),
                global: quotas_to_json(&q.global),
            },
            Record::Domain(d) => JRecord::Domain {
                domid: d.domid,
                features: d.features,
                quotas: quotas_to_json(&d.quotas),
            },
            Record::XenGlobal(g) => JRecord::XenGlobal {
                socket_fd: g.socket_fd,
                evtchn_fd: g.evtchn_fd,
            },
            Record::XenConnection(c) => JRecord::XenConnection(match c.spec {
                XenConnSpec::Ring {
                    domid,
                    tdomid,
                    evtchn,
                } => JXenConn::Ring {
                    conn_id: c.conn_id,
                    domid,
                    tdomid,
                    evtchn,
                    in_data: hex(&c.in_data),
                    out_resp_len: c.out_resp_len,
                    out_data: hex(&c.out_data),
                    unique_id: c.unique_id,
                },
                XenConnSpec::Socket { socket_fd } => JXenConn::Socket {
                    conn_id: c.conn_id,
                    socket_fd,
                    in_data: hex(&c.in_data),
                    out_resp_len: c.out_resp_len,
                    out_data: hex(&c.out_data),
                    unique_id: c.unique_id,
                },
            }),
            Record::XenWatchExt(w) => JRecord::WatchExt {
                conn_id: w.watch.conn_id,
                wpath: w.watch.wpath.clone(),
                token: w.watch.token.clone(),
                depth: w.depth,
            },
        })
        .collect();
    let endianness = match img.endianness {
        Endianness::Little => JEndian::Little,
        Endianness::Big => JEndian::Big,
    };
    JImage {
        endianness,
        version: img.version,
        records,
    }
}

fn from_json(j: JImage) -> Result<Image, String> {
    let mut records = Vec::with_capacity(j.records.len());
    for r in j.records {
        records.push(match r {
            JRecord::End => Record::End,
            JRecord::Global {
                rw_socket_fd,
                ro_socket_fd,
            } => Record::Global(GlobalData {
                rw_socket_fd,
                ro_socket_fd,
            }),
            JRecord::Connection(JConn::Ring {
                conn_id,
                flags,
                domid,
                tdomid,
                evtchn,
                mfn,
                data,
            }) => Record::Connection(ConnectionData {
                conn_id,
                spec: ConnSpec::Ring {
                    flags,
                    domid,
                    tdomid,
                    evtchn,
                    mfn,
                },
                data: unhex(&data)?,
            }),
            JRecord::Connection(JConn::Socket {
                conn_id,
                flags,
                socket_fd,
                data,
            }) => Record::Connection(ConnectionData {
                conn_id,
                spec: ConnSpec::Socket { flags, socket_fd },
                data: unhex(&data)?,
            }),
            JRecord::Watch {
                conn_id,
                wpath,
                token,
            } => Record::Watch(WatchData {
                conn_id,
                wpath,
                token,
            }),
            JRecord::Transaction { conn_id, tx_id } => {
                Record::Transaction(TransactionData { conn_id, tx_id })
            }
            JRecord::Node {
                conn_id,
                tx_id,
                access,
                perms,
                path,
                value,
            } => {
                let perms = perms
                    .into_iter()
                    .map(|p| {
                        let kind = u8::try_from(p.perm)
                            .ok()
                            .and_then(PermKind::from_letter)
                            .ok_or_else(|| format!("bad permission letter {:?}", p.perm))?;
                        Ok(NodePerm {
                            kind,
                            flags: p.flags,
                            domid: p.domid,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Record::Node(NodeData {
                    conn_id,
                    tx_id,
                    access,
                    perms,
                    path,
                    value: unhex(&value)?,
                })
            }
            JRecord::GlobalQuota { domain, global } => Record::GlobalQuota(GlobalQuotaData {
                domain: quotas_from_json(domain),
                global: quotas_from_json(global),
            }),
            JRecord::Domain {
                domid,
                features,
                quotas,
            } => Record::Domain(DomainData {
                domid,
                features,
                quotas: quotas_from_json(quotas),
            }),
            JRecord::XenGlobal {
                socket_fd,
                evtchn_fd,
            } => Record::XenGlobal(XenGlobalData {
                socket_fd,
                evtchn_fd,
            }),
            JRecord::XenConnection(c) => Record::XenConnection(match c {
                JXenConn::Ring {
                    conn_id,
                    domid,
                    tdomid,
                    evtchn,
                    in_data,
                    out_resp_len,
                    out_data,
                    unique_id,
                } => XenConnectionData {
                    conn_id,
                    spec: XenConnSpec::Ring {
                        domid,
                        tdomid,
                        evtchn,
                    },
                    in_data: unhex(&in_data)?,
                    out_resp_len,
                    out_data: unhex(&out_data)?,
                    unique_id,
                },
                JXenConn::Socket {
                    conn_id,
                    socket_fd,
                    in_data,
                    out_resp_len,
                    out_data,
                    unique_id,
                } => XenConnectionData {
                    conn_id,
                    spec: XenConnSpec::Socket { socket_fd },
                    in_data: unhex(&in_data)?,
                    out_resp_len,
                    out_data: unhex(&out_data)?,
                    unique_id,
                },
            }),
            JRecord::WatchExt {
                conn_id,
                wpath,
                token,
                depth,
            } => Record::XenWatchExt(XenWatchExtData {
                watch: WatchData {
                    conn_id,
                    wpath,
                    token,
                },
                depth,
            }),
        });
    }
    let endianness = match j.endianness {
        JEndian::Little => Endianness::Little,
        JEndian::Big => Endianness::Big,
    };
    Ok(Image {
        endianness,
        version: j.version,
        records,
    })
}

fn load(file: &Path, layout: Layout) -> Result<(Image, usize), String> {
    let bytes = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let img = image::read(&bytes, layout).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((img, bytes.len()))
}

fn summary(img: &Image, bytes: usize, layout: Layout) -> String {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    let (mut committed, mut pending) = (0usize, 0usize);
    for r in &img.records {
        let t = r.type_number();
        match counts.iter_mut().find(|(k, _)| *k == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t, 1)),
        }
        if let Record::Node(n) = r {
            if n.conn_id == 0 {
                committed += 1;
            } else {
                pending += 1;
            }
        }
    }
    counts.sort_unstable();
    let per_type: Vec<String> = counts
        .iter()
        .map(|(t, n)| format!("{} {n}", rtype::name(*t)))
        .collect();
    let endian = match img.endianness {
        Endianness::Little => "little",
        Endianness::Big => "big",
    };
    let layout = match layout {
        Layout::Seed => "seed",
        Layout::Xen => "xen",
    };
    format!(
        "OK: {layout} layout v{} {endian}-endian, {bytes} bytes, {} records ({}), {} nodes ({committed} committed, {pending} in transactions)",
        img.version,
        img.records.len(),
        per_type.join(", "),
        committed + pending,
    )
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Dump { file, layout } => {
            let (img, _) = load(&file, layout.into())?;
            let text = serde_json::to_string_pretty(&to_json(&img)).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        Cmd::Build {
            json,
            output,
            layout,
            no_verify,
        } => {
            let text = fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
            let j: JImage =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
            let img = from_json(j).map_err(|e| format!("{}: {e}", json.display()))?;
            let bytes = image::write_layout(&img, layout.into())
                .map_err(|e| format!("{}: {e}", json.display()))?;
            if !no_verify {
                image::read(&bytes, layout.into())
                    .map_err(|e| format!("{}: image would be refused: {e}", json.display()))?;
            }
            fs::write(&output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
        }
        Cmd::Verify { file, layout } => {
            let (img, len) = load(&file, layout.into())?;
            println!("{}", summary(&img, len, layout.into()));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsimage: {e}");
            ExitCode::FAILURE
        }
    }
}
