//! `vpg-ksr run` from a manifest directory into the embedded store, read back with
//! `vpg-ksr status` and `vpg-ksr dump`, through a change and a restart that writes nothing.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vpg-ksr");

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]
status: {phase: Running, podIP: 10.1.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: broken, namespace: demo}
spec: {nodeName: node-a, containers: [{name: c, image: nginx}]}
status: {phase: Running, podIP: 10.1.1.500}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDR: 10.1.1.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.1.10}]}
"#;

fn run(dir: &Path) -> Child {
    Command::new(BIN)
        .args([
            "run",
            "--source",
            "manifests",
            "--scan-interval-ms",
            "100",
            "--probe-interval-ms",
            "100",
        ])
        .arg("--manifests")
        .arg(dir.join("m"))
        .arg("--db")
        .arg(dir.join("ksr.redb"))
        .arg("--socket")
        .arg(dir.join("ksr.sock"))
        .spawn()
        .unwrap()
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(dir.join("ksr.sock"))
        .output()
        .unwrap()
}

fn status(dir: &Path) -> Option<serde_json::Value> {
    let out = cli(dir, &["status", "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn wait(dir: &Path, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = status(dir) {
            if f(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", status(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kind<'a>(s: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    s["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == k)
        .unwrap()
}

fn stop(mut child: Child) {
    // SIGTERM: a clean stop.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let st = child.wait().unwrap();
    assert!(st.success(), "vpg-ksr exited with {st}");
}

#[test]
fn run_status_dump_change_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("m/demo.yaml"), MANIFEST).unwrap();
    let child = run(dir.path());
    let s = wait(dir.path(), "ready", |s| {
        s["ready"] == true && s["store_up"] == true
    });
    assert_eq!(kind(&s, "pod")["records"], 1);
    assert_eq!(kind(&s, "pod")["skipped"], 1);
    assert!(kind(&s, "pod")["last_skipped"]
        .as_str()
        .unwrap()
        .contains("10.1.1.500"));
    let text = String::from_utf8(cli(dir.path(), &["status"]).stdout).unwrap();
    assert!(
        text.contains("pod") && text.contains("ready:  yes"),
        "{text}"
    );

    let out = cli(dir.path(), &["dump"]);
    let dump = String::from_utf8(out.stdout).unwrap();
    assert!(
        dump.contains("/vpg/v1/pod/demo/web-1 {\"record\""),
        "{dump}"
    );
    assert!(dump.contains("/vpg/v1/node/node-a"), "{dump}");
    assert_eq!(dump.lines().count(), 3, "{dump}");

    // Change the pod's IP: one update.
    std::fs::write(
        dir.path().join("m/demo.yaml"),
        MANIFEST.replace("10.1.1.5}", "10.1.1.6}"),
    )
    .unwrap();
    wait(dir.path(), "update", |s| kind(s, "pod")["updates"] == 1);
    let out = cli(dir.path(), &["dump", "pod", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["value"]["record"]["ip"], "10.1.1.6");
    stop(child);

    // Restart on the same file: nothing to write.
    let child = run(dir.path());
    let s = wait(dir.path(), "ready again", |s| s["ready"] == true);
    for k in s["kinds"].as_array().unwrap() {
        assert_eq!(
            k["adds"].as_u64().unwrap()
                + k["updates"].as_u64().unwrap()
                + k["deletes"].as_u64().unwrap(),
            0,
            "{k}"
        );
    }
    stop(child);

    // Read the file directly once no reflector holds it.
    let out = Command::new(BIN)
        .args(["dump", "node", "--db"])
        .arg(dir.path().join("ksr.redb"))
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("10.1.1.0/24"));
    // Bad configuration is a clear error, exit 2.
    let out = Command::new(BIN)
        .args(["run", "--source", "manifests"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--manifests"));
}
