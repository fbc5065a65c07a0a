//! Real traffic between the demo's namespaces: a TCP server in each pod and in the internet
//! namespace that answers every connection with its own name and the peer address it saw, a
//! TCP client, and ping. Each reachability check is one [`Cell`]; all cells run at once (the
//! blocked ones cost a timeout each) and are printed as a matrix.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Listens on every port given, forever; each connection gets "NAME PEER" (the peer address as
/// this server sees it). Prints "ready" once listening.
const SERVER: &str = r#"
import socket, sys, threading
name, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
def serve(s):
    while True:
        c, peer = s.accept()
        try:
            c.settimeout(3); c.recv(100); c.sendall(f"{name} {peer[0]}".encode())
        except OSError:
            pass
        c.close()
for p in ports:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(64)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Opens N connections to ADDR:PORT one after the other (TRIES attempts each, TIMEOUT seconds
/// per attempt); prints one line per connection: the server's answer, or "blocked".
const CLIENT: &str = r#"
import socket, sys, time
addr, port, n, tries, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
for i in range(n):
    line = "blocked"
    for _ in range(tries):
        try:
            c = socket.create_connection((addr, port), timeout=timeout)
            c.settimeout(timeout); c.sendall(b"hi")
            line = c.recv(100).decode() or "empty"; c.close(); break
        except OSError:
            time.sleep(0.1)
    print(line, flush=True)
"#;

/// Starts the answering server in namespace `ns` (registered for cleanup as `reg_name`) and
/// waits until it listens.
pub fn start_server(reg_name: &str, ns: &str, name: &str, ports: &[u16]) -> Result<()> {
    let out = crate::cleanup::spawn(
        reg_name,
        Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", SERVER, name])
            .args(ports.iter().map(u16::to_string))
            .stdout(Stdio::piped()),
    )
    .context("starting python3 (scripts/setup.sh installs it)")?;
    let mut line = String::new();
    BufReader::new(out.context("server stdout")?).read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("the server {reg_name} did not start");
    }
    Ok(())
}

/// What a check does.
#[derive(Clone, Debug)]
pub enum Probe {
    /// `count` TCP connections to `addr:port`.
    Tcp {
        /// Destination address.
        addr: String,
        /// Destination port.
        port: u16,
        /// Connections, one after the other.
        count: u32,
    },
    /// Five pings over two seconds. All cells start at once right after set-up, when vpgd may
    /// still be resolving the other node's MAC (`ip4-glean` drops and throttles, as VPP's ARP
    /// node does), so a probe must outlast one ARP retry; a blocked path still gets 0 replies.
    Ping {
        /// Destination address.
        addr: String,
    },
    /// The capture on the underlay while the other checks run (the demo fills in the
    /// outcome: [`crate::capture`]).
    Capture,
    /// A key rotation under pings both ways (the demo fills in the outcome).
    Rotation,
    /// A vpgd restart under pings (the demo fills in the outcome).
    Restart,
}

/// One reachability check and what must be seen.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The client, `ns/name` of a pod.
    pub from: String,
    /// The destination as shown (`shop/web-2:8080`, `service web 10.96.0.10:80`).
    pub to: String,
    /// Where the packets go (`same node`, `cross-node`, `service`, `internet (SNAT)`).
    pub path: &'static str,
    /// The client's namespace.
    pub netns: String,
    /// What it does.
    pub probe: Probe,
    /// Whether the policies allow it.
    pub allow: bool,
    /// For allowed TCP: the address every server must see (the client's pod IP, or the node IP
    /// after SNAT).
    pub peer: Option<String>,
    /// For allowed TCP: servers that must all answer at least once (a service's backends).
    pub servers: Vec<String>,
}

/// What a cell observed and whether that is what was expected.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Connected or answered.
    pub reached: bool,
    /// What the servers reported, or ping's count.
    pub seen: String,
    /// Expectation met.
    pub pass: bool,
}

/// Runs one cell.
pub fn run(cell: &Cell) -> Outcome {
    match &cell.probe {
        Probe::Ping { addr } => {
            let o = crate::cleanup::output(
                Command::new("ip")
                    .args(["netns", "exec", &cell.netns, "ping", "-n", "-q", "-c", "5"])
                    // The marker the underlay capture looks for (it must never see it).
                    .args(["-p", &crate::capture::marker_hex()])
                    .args(["-i", "0.5", "-W", "1", addr])
                    .stdout(Stdio::piped()),
                b"",
            );
            let got = o
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split(", ")
                        .find_map(|p| {
                            p.strip_suffix(" received")
                                .and_then(|n| n.trim().parse::<u32>().ok())
                        })
                })
                .unwrap_or(0);
            let reached = got > 0;
            Outcome {
                reached,
                seen: format!("{got}/5 replies"),
                pass: reached == cell.allow,
            }
        }
        Probe::Capture | Probe::Rotation | Probe::Restart => Outcome {
            reached: false,
            seen: "the demo runs this step itself".into(),
            pass: false,
        },
        Probe::Tcp { addr, port, count } => {
            // Two attempts of 1 s: enough for an allowed path (warm), short for a blocked one.
            let o = Command::new("ip")
                .args(["netns", "exec", &cell.netns, "python3", "-c", CLIENT, addr])
                .args([
                    port.to_string(),
                    count.to_string(),
                    "2".into(),
                    "1.0".into(),
                ])
                .output();
            let lines: Vec<String> = match o {
                Ok(o) => String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect(),
                Err(e) => vec![format!("error: {e}")],
            };
            let answered: Vec<(&str, &str)> = lines
                .iter()
                .filter_map(|l| l.split_once(' '))
                .filter(|(n, _)| *n != "error:")
                .collect();
            let reached = !answered.is_empty();
            let mut names: Vec<&str> = answered.iter().map(|(n, _)| *n).collect();
            names.sort();
            names.dedup();
            let mut peers: Vec<&str> = answered.iter().map(|(_, p)| *p).collect();
            peers.sort();
            peers.dedup();
            let seen = if reached {
                let mut s = format!("{} saw {}", names.join("+"), peers.join(","));
                if *count > 1 {
                    let per: Vec<String> = names
                        .iter()
                        .map(|n| format!("{n} {}", answered.iter().filter(|(m, _)| m == n).count()))
                        .collect();
                    s = format!("{}/{count}: {} saw {}", answered.len(), per.join(", "), {
                        peers.join(",")
                    });
                }
                s
            } else {
                "no connection".to_string()
            };
            let pass = if cell.allow {
                answered.len() == *count as usize
                    && cell.peer.as_ref().is_none_or(|p| peers == [p.as_str()])
                    && cell.servers.iter().all(|s| names.contains(&s.as_str()))
            } else {
                !reached
            };
            Outcome {
                reached,
                seen,
                pass,
            }
        }
    }
}

/// Runs all cells at once; the outcomes in the cells' order.
pub fn run_all(cells: &[Cell]) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let hs: Vec<_> = cells.iter().map(|c| s.spawn(move || run(c))).collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or(Outcome {
                    reached: false,
                    seen: "check crashed".into(),
                    pass: false,
                })
            })
            .collect()
    })
}

/// The matrix as a table.
pub fn matrix(cells: &[Cell], outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 8]> = cells
        .iter()
        .zip(outcomes)
        .enumerate()
        .map(|(i, (c, o))| {
            let proto = match c.probe {
                Probe::Tcp { .. } => "tcp",
                Probe::Ping { .. } => "icmp",
                Probe::Capture => "capture",
                Probe::Rotation | Probe::Restart => "icmp",
            };
            let word = |reached: bool| match (&c.probe, reached) {
                (Probe::Capture, true) => "encrypted",
                (Probe::Capture, false) => "clear",
                (Probe::Rotation, true) => "no loss",
                (Probe::Rotation, false) => "loss",
                (Probe::Restart, true) => "resumed",
                (Probe::Restart, false) => "stopped",
                (_, true) => "allowed",
                (_, false) => "blocked",
            };
            [
                (i + 1).to_string(),
                c.from.clone(),
                c.to.clone(),
                format!("{proto}, {}", c.path),
                word(c.allow).into(),
                word(o.reached).into(),
                o.seen.clone(),
                if o.pass { "PASS" } else { "FAIL" }.into(),
            ]
        })
        .collect();
    let head = [
        "#", "from", "to", "path", "expected", "observed", "seen", "result",
    ];
    let mut w = head.map(str::len);
    for r in &rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.chars().count());
        }
    }
    let line = |cols: &[String]| -> String {
        cols.iter()
            .enumerate()
            .map(|(k, c)| format!("{c:<width$}", width = w[k]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(&head.map(String::from));
    for r in &rows {
        out += &line(r);
    }
    out
}
