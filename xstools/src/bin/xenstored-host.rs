//! `xenstored-host`: the xenstore engine served on a Unix socket, as C xenstored's socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xstools::server::{serve, ServerConfig};

/// Serve xenstore on a Unix socket with the xenstored wire protocol. Every client acts as
/// dom0, as with C xenstored's socket; stock clients find it through XENSTORED_PATH.
#[derive(Parser, Debug)]
#[command(name = "xenstored-host", version)]
struct Args {
    /// Path of the read-write socket.
    #[arg(long, default_value = "/var/run/xenstored/socket")]
    socket: PathBuf,
    /// Also serve read-only clients on this socket.
    #[arg(long)]
    ro_socket: Option<PathBuf>,
    /// Log every request on stderr (as `xenstore-control log on`).
    #[arg(long)]
    trace: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = ServerConfig {
        socket: args.socket,
        ro_socket: args.ro_socket,
        trace: args.trace,
        engine: xsstate::EngineConfig::default(),
    };
    match serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenstored-host: {e}");
            ExitCode::FAILURE
        }
    }
}
