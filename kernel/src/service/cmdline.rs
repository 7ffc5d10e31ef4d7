//! The stub domain's command line: `--event PORT` from init-xenstore-domain, then options
//! (ours, and C xenstored's limits: see `xsstate::options`).

use alloc::string::String;
use alloc::vec::Vec;

use xsstate::options::{OptionError, Setting};

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// dom0's unbound port for its xenstore connection (`--event N`).
    pub dom0_port: Option<u32>,
    /// Log every request and reply (`--trace`).
    pub trace: bool,
    /// Keep the console talking through a live update (`--no-defer`; it is otherwise kept
    /// back until the new image serves, each byte being a VM exit inside the downtime).
    pub no_defer: bool,
    /// Log the type of every frame of the memory map at boot (`--memscan`; acted on by
    /// `memory::init_heap`, before the command line is parsed).
    pub memscan: bool,
    /// C xenstored's limit options taken, each as written.
    pub limits: Vec<(String, Setting)>,
    /// C xenstored's options that have nothing to do here, as written.
    pub inert: Vec<String>,
    /// C xenstored's options refused or malformed (logged, not fatal).
    pub bad: Vec<OptionError>,
    /// Tokens we did not understand (logged, not fatal: `--param` passes free text).
    pub ignored: Vec<String>,
}

/// Why the command line cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// `--event` without a port number in range.
    BadEvent(String),
}

impl core::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineError::BadEvent(t) => write!(f, "--event needs a port number, got `{t}`"),
        }
    }
}

/// Parses the command line; unknown tokens are kept in `ignored`.
pub fn parse(cmdline: &str) -> Result<Options, CmdlineError> {
    let mut opts = Options::default();
    let mut others: Vec<&str> = Vec::new();
    let mut tokens = cmdline.split_ascii_whitespace();
    while let Some(t) = tokens.next() {
        match t {
            "--event" => {
                let v = tokens.next().unwrap_or("");
                let port = v
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p != 0 && *p < crate::xen::events::MAX_PORTS)
                    .ok_or_else(|| CmdlineError::BadEvent(String::from(v)))?;
                opts.dom0_port = Some(port);
            }
            "--trace" => opts.trace = true,
            "--no-defer" => opts.no_defer = true,
            t if t.starts_with("--fault=") => {}
            "--memscan" => opts.memscan = true,
            other => others.push(other),
        }
    }
    let c = xsstate::options::parse(&others);
    opts.limits = c.settings;
    opts.inert = c.inert;
    opts.bad = c.errors;
    opts.ignored = c.rest.into_iter().map(String::from).collect();
    Ok(opts)
}
