//! `vpg-cni`: the CNI plugin binary. The work is in the library (`vpg_cni::run`); this reads
//! stdin and the environment, prints the reply and sets the exit status (0, or 1 on error, with
//! the error object on stdout as the spec requires and a one-line copy on stderr for logs).

use std::io::{Read, Write};
use std::process::ExitCode;
use vpg_cni::error::{CniError, Code};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let reply = match std::io::stdin().read_to_end(&mut stdin) {
        Err(e) => {
            let e = CniError::with_details(
                Code::Io,
                "reading the network configuration from stdin failed",
                e.to_string(),
            );
            vpg_cni::Reply {
                stdout: e.to_json(vpg_cni::config::LATEST),
                error: Some(e),
            }
        }
        // Environment values that are not UTF-8 become replacement characters, which the
        // validation of each variable then refuses by name.
        Ok(_) => vpg_cni::run(
            &|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()),
            &stdin,
        ),
    };
    let mut out = std::io::stdout().lock();
    if !reply.stdout.is_empty() {
        let _ = writeln!(out, "{}", reply.stdout);
    }
    let _ = out.flush();
    match reply.error {
        None => ExitCode::SUCCESS,
        Some(e) => {
            eprintln!("vpg-cni: {e}");
            ExitCode::FAILURE
        }
    }
}
