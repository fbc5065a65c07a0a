#!/usr/bin/env python3
"""Agent scale benchmark (issue 10): one node with many pods and policies.

Builds a node in network namespaces -- vpgd, the agent with its embedded store fed from a
manifest directory, PODS pod veths with their vpg-cni records, POLICIES NetworkPolicies and a few
services -- and times, with the agent's status socket as the clock's stop signal:

  cold start      agent start -> in sync with every pod configured (vpgd empty)
  agent restart   agent start -> in sync, vpgd already configured (must make zero changes)
  policy change   a new policy written to the manifest directory -> its transaction applied
  vpgd restart    vpgd killed and started again -> the agent has replayed everything

Each restart figure is the median of --runs runs. Needs root (network namespaces).
--egress-all swaps the policies' egress for the mix where most policies allow egress to every
pod of the cluster (`namespaceSelector: {}`), the one `vpg_renderer::synth::egress_all` and the
renderer's `egress-all` bench render; the node's table sizes (`vpg-agent render`) are printed.
Usage: scripts/agent-bench.py [--pods 1000] [--policies 100] [--runs 5] [--egress-all]
                              [--no-build] [--json]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMESPACES = 10
APPS = 20


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def host_if(i):
    # Named as vpg-cni names the host ends (vpg + 12 hex digits): the agent configures no others.
    return f"vpg{0xbe0000:06x}{i:06x}"


def pod_ip(i):
    # Pods from 10.1.0.2 up in the node's /21 (2,046 addresses).
    n = i + 2
    return f"10.1.{n // 256}.{n % 256}"


def manifests(pods, policies, egress_all=False):
    docs = []
    for n in range(NAMESPACES):
        docs.append(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": f"ns{n}", "labels": {"team": f"t{n % 3}"}}})
    for name, cidr, ip in [("n1", "10.1.0.0/21", "192.0.2.1"), ("n2", "10.1.8.0/21", "192.0.2.2")]:
        docs.append(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
             "spec": {"podCIDR": cidr},
             "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    # DNS, on the other node, which the policies' egress allows (the usual pattern; with
    # --egress-all their egress reaches every pod instead, see docs/agent.md).
    docs.append({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "kube-system",
                              "labels": {"kubernetes.io/metadata.name": "kube-system"}}})
    for k in range(2):
        docs.append(
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"coredns-{k}", "namespace": "kube-system",
                          "labels": {"k8s-app": "kube-dns"}},
             "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "x"}]},
             "status": {"phase": "Running", "podIP": f"10.1.8.{2 + k}"}})
    for i in range(pods):
        docs.append(
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"p{i}", "namespace": f"ns{i % NAMESPACES}",
                          "labels": {"app": f"a{i % APPS}", "tier": f"t{i % 3}"}},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
             "status": {"phase": "Running", "podIP": pod_ip(i)}})
    for s in range(10):
        eps = [pod_ip(i) for i in range(pods) if i % APPS == s][:8]
        docs.append(
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": f"svc{s}", "namespace": f"ns{s % NAMESPACES}"},
             "spec": {"type": "ClusterIP", "clusterIP": f"10.96.0.{10 + s}",
                      "selector": {"app": f"a{s}"},
                      "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                 "protocol": "TCP"}]}})
        docs.append(
            {"apiVersion": "v1", "kind": "Endpoints",
             "metadata": {"name": f"svc{s}", "namespace": f"ns{s % NAMESPACES}"},
             "subsets": [{"addresses": [{"ip": ip, "nodeName": "n1"} for ip in eps],
                          "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    for j in range(policies):
        docs.append(policy(j, egress_all))
    return docs


def policy(j, egress_all=False):
    """A mix as clusters have them: ingress by pod and namespace selectors with ports, egress to
    ip blocks, some both. With egress_all, nine policies in ten let their pods open connections
    to every pod (and to an outside block on 443) instead."""
    spec = {"podSelector": {"matchLabels": {"app": f"a{j % APPS}"}}}
    kinds = []
    if j % 3 != 2:
        kinds.append("Ingress")
        peers = [{"podSelector": {"matchLabels": {"app": f"a{(j + 1) % APPS}"}}}]
        if j % 2:
            peers.append({"namespaceSelector": {"matchLabels": {"team": f"t{j % 3}"}},
                          "podSelector": {"matchLabels": {"tier": f"t{j % 3}"}}})
        spec["ingress"] = [{"from": peers,
                            "ports": [{"protocol": "TCP", "port": 8000 + j},
                                      {"protocol": "UDP", "port": 9000 + j}]}]
    if egress_all:
        if j % 10 != 0:
            kinds.append("Egress")
            b = 16 + j % 16
            spec["egress"] = [{"to": [{"namespaceSelector": {}}]},
                              {"to": [{"ipBlock": {"cidr": f"172.{b}.0.0/16",
                                                   "except": [f"172.{b}.1.0/24"]}}],
                               "ports": [{"protocol": "TCP", "port": 443}]}]
    elif j % 3 != 0:
        kinds.append("Egress")
        spec["egress"] = [{"to": [{"ipBlock": {"cidr": f"10.{j % 250}.0.0/16",
                                               "except": [f"10.{j % 250}.1.0/24"]}}],
                           "ports": [{"protocol": "TCP", "port": 443}]},
                          {"to": [{"namespaceSelector": {"matchLabels": {
                                       "kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"protocol": "UDP", "port": 53}]}]
    spec["policyTypes"] = kinds
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"pol{j}", "namespace": f"ns{j % NAMESPACES}"}, "spec": spec}


def status(path):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(path)
        data = b""
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
        s.close()
        return json.loads(data)
    except (OSError, ValueError):
        return None


def wait(what, pred, timeout=float(os.environ.get("BENCH_TIMEOUT", "300"))):
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            sys.exit(f"agent-bench: timed out waiting for {what}")
        # Each status read serializes the agent's whole object list: polling harder would
        # steal the CPU being measured.
        time.sleep(0.05)


class Node:
    def __init__(self, args, d):
        self.d = d
        self.args = args
        self.ns = f"abn{os.getpid()}"
        self.pods_ns = f"abp{os.getpid()}"
        self.vpgd = None
        self.agent = None
        rel = os.path.join(ROOT, "target", "release")
        self.bin = {b: os.path.join(rel, b) for b in ("vpgd", "vpg-agent")}

    def setup(self):
        a = self.args
        sh("ip", "netns", "add", self.ns)
        sh("ip", "netns", "add", self.pods_ns)
        batch = []
        for i in range(a.pods):
            batch.append(
                f"link add {host_if(i)} type veth peer name vp{i:05d} "
                f"address 02:aa:00:00:{i // 256:02x}:{i % 256:02x} netns {self.pods_ns}")
            batch.append(f"link set {host_if(i)} up")
        batch.append(f"link add vup type veth peer name eth0 netns {self.pods_ns}")
        batch.append("link set vup up")
        path = os.path.join(self.d, "links.batch")
        with open(path, "w") as f:
            f.write("\n".join(batch) + "\n")
        t0 = time.monotonic()
        sh("ip", "-n", self.ns, "-batch", path)
        up = [f"link set vp{i:05d} up" for i in range(a.pods)] + ["link set eth0 up"]
        with open(path, "w") as f:
            f.write("\n".join(up) + "\n")
        sh("ip", "-n", self.pods_ns, "-batch", path)
        print(f"setup: {a.pods} veth pairs in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        os.makedirs(os.path.join(self.d, "m"))
        os.makedirs(os.path.join(self.d, "cni", "pods"))
        with open(os.path.join(self.d, "m", "cluster.json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List",
                       "items": manifests(a.pods, a.policies, a.egress_all)}, f)
        for i in range(a.pods):
            rec = {"version": 1, "network": "vpg", "containerId": f"c{i}",
                   "podNamespace": f"ns{i % NAMESPACES}", "podName": f"p{i}",
                   "ifname": "eth0", "mac": f"02:aa:00:00:{i // 256:02x}:{i % 256:02x}",
                   "hostIfname": host_if(i), "ip": pod_ip(i), "prefixLen": 32,
                   "podCidr": "10.1.0.0/21", "gateway": "10.1.0.1", "mtu": 1500}
            with open(os.path.join(self.d, "cni", "pods", f"c{i}@eth0.json"), "w") as f:
                json.dump(rec, f)
        with open(os.path.join(self.d, "vpgd.toml"), "w") as f:
            # Small rings: the kernel holds each ring's memory while the interface exists. And a
            # slower block timer: the kernel fires each RX ring's timer every retire_ms, so a
            # thousand rings at 1 ms cost a core in softirqs (docs/vpgd.md).
            f.write(f"""[workers]
count = 1
[buffers]
per_worker = 16384
[api]
socket = "{self.d}/api.sock"
[stats]
segment = "{self.d}/stats"
[afpacket]
block_size = 65536
block_count = 2
tx_frames = 64
retire_ms = {a.retire_ms}
""")
        with open(os.path.join(self.d, "node.toml"), "w") as f:
            f.write(f"""node = "n1"
vpgd_socket = "{self.d}/api.sock"
cni_data_dir = "{self.d}/cni"
status_socket = "{self.d}/agent.sock"
[uplink]
host_if = "vup"
name = "up0"
address = "192.0.2.1/24"
gateway = "192.0.2.254"
[pods]
cidr = "10.1.0.0/21"
[cluster]
networks = ["10.1.0.0/16", "10.96.0.0/12"]
[overlay]
vni = 10
[store]
embedded = "{self.d}/agent.redb"
manifests = "{self.d}/m"
scan_interval_ms = {a.scan_ms}
[timing]
debounce_ms = {a.debounce_ms}
pod_poll_ms = 100
probe_ms = 100
""")

    def start_vpgd(self):
        sock = os.path.join(self.d, "api.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        self.vpgd = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, self.bin["vpgd"], "--config",
             os.path.join(self.d, "vpgd.toml")],
            stderr=open(os.path.join(self.d, "vpgd.log"), "a"))
        wait("vpgd's socket", lambda: os.path.exists(sock), 30)

    def stop(self, which):
        p = getattr(self, which)
        if p is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        setattr(self, which, None)

    def start_agent(self):
        self.agent = subprocess.Popen(
            [self.bin["vpg-agent"], "run", "--config", os.path.join(self.d, "node.toml")],
            stderr=open(os.path.join(self.d, "agent.log"), "a"))

    def status(self):
        return status(os.path.join(self.d, "agent.sock"))

    def in_sync(self, after=None):
        def f():
            s = self.status()
            if s and s["state"] == "in-sync" and s["pods"] == self.args.pods and \
                    (after is None or after(s)):
                return s
            return None
        return f

    def cleanup(self):
        for w in ("agent", "vpgd"):
            try:
                self.stop(w)
            except Exception:  # noqa: BLE001 -- cleanup goes on whatever failed
                pass
        for ns in (self.ns, self.pods_ns):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def table_sizes(node):
    """Rules the node's tables hold, from `vpg-agent render` on the manifest."""
    out = subprocess.run(
        [node.bin["vpg-agent"], "render", "--cluster", os.path.join(node.d, "m", "cluster.json"),
         "--node", "n1", "--json"], check=True, capture_output=True).stdout
    t = json.loads(out)
    return {"local_rules": sum(len(x["rules"]) for x in t["local_tables"]),
            "global_rules": len(t["global_table"]["rules"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scan-ms", type=int, default=50, help="manifest directory scan interval")
    ap.add_argument("--debounce-ms", type=int, default=50)
    ap.add_argument("--retire-ms", type=int, default=10,
                    help="vpgd's [afpacket] retire_ms: every RX ring's block timer fires this often")
    ap.add_argument("--egress-all", action="store_true",
                    help="most policies allow egress to every pod (namespaceSelector: {})")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.pods <= 1000:
        sys.exit("agent-bench: --pods must be 1..1000 (vpgd holds 1,024 interfaces)")
    if os.geteuid() != 0:
        sys.exit("agent-bench: needs root (network namespaces)")
    if not args.no_build:
        sh("cargo", "build", "--release", "-q", "-p", "vpgd", "-p", "vpg-agent", cwd=ROOT)
    # SIGTERM and SIGINT unwind through the cleanup below (vpgd left behind with a thousand
    # rings would keep a core busy).
    def stop(signum, _frame):
        raise SystemExit(f"agent-bench: signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    d = tempfile.mkdtemp(prefix="vpg-agent-bench-")
    node = Node(args, d)
    res = {"pods": args.pods, "policies": args.policies, "runs": args.runs}
    try:
        node.setup()
        res.update(table_sizes(node))
        node.start_vpgd()
        t0 = time.monotonic()
        node.start_agent()
        s = wait("the first sync", node.in_sync())
        res["cold_start_s"] = time.monotonic() - t0
        res["cold_changes"] = s["changes_applied"]
        res["local_tables"] = s["local_tables"]
        res["objects"] = len(s["objects"])

        restarts, calls = [], []
        for _ in range(args.runs):
            node.stop("agent")
            t0 = time.monotonic()
            node.start_agent()
            s = wait("the restart sync", node.in_sync())
            restarts.append(time.monotonic() - t0)
            calls.append(s["transactions"] + s["changes_applied"])
        res["agent_restart_s"] = restarts
        res["agent_restart_changes"] = calls

        changes = []
        for k in range(args.runs):
            before = node.status()["transactions"]
            path = os.path.join(d, "m", f"extra{k}.json")
            # A new port open to clients outside the cluster for one app's pods: their local
            # table changes, so there is always a transaction to wait for. (A port opened to
            # other pods here would change nothing: every pod's egress is restricted.)
            doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": f"extra{k}", "namespace": f"ns{k % NAMESPACES}"},
                   "spec": {"podSelector": {"matchLabels": {"app": f"a{k % APPS}"}},
                            "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
                                         "ports": [{"protocol": "TCP", "port": 7000 + k}]}]}}
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f)
            t0 = time.monotonic()
            os.rename(tmp, path)
            wait("the policy's transaction",
                 node.in_sync(lambda s, b=before: s["transactions"] > b))
            changes.append(time.monotonic() - t0)
        res["policy_change_s"] = changes

        replays = []
        for _ in range(args.runs):
            before = node.status()["vpgd_connects"]
            node.stop("vpgd")
            t0 = time.monotonic()
            node.start_vpgd()
            up = time.monotonic() - t0
            wait("the replay", node.in_sync(
                lambda s, b=before: s["vpgd_connects"] > b and s["transactions"] > 0))
            replays.append((up, time.monotonic() - t0))
        res["vpgd_restart_s"] = [r[1] for r in replays]
        res["vpgd_socket_up_s"] = [r[0] for r in replays]
    finally:
        node.cleanup()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"kept {d}", file=sys.stderr)

    med = statistics.median
    if args.json:
        print(json.dumps(res))
        return
    print(f"node: {res['pods']} pods, {res['policies']} policies, {res['local_tables']} local "
          f"tables ({res['local_rules']} rules), global table {res['global_rules']} rules, "
          f"{res['objects']} vpgd objects; {args.runs} runs each, medians (range)")
    print(f"  cold start to in-sync        {res['cold_start_s']:.2f} s "
          f"({res['cold_changes']} changes)")

    def line(name, xs, extra=""):
        print(f"  {name:<28} {med(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f}){extra}")
    line("agent restart to in-sync", res["agent_restart_s"],
         f", configuration calls {res['agent_restart_changes']}")
    line("policy change to applied", res["policy_change_s"],
         f" (store scan every {args.scan_ms} ms, debounce {args.debounce_ms} ms)")
    line("vpgd restart to replayed", res["vpgd_restart_s"],
         f" (of which vpgd start {med(res['vpgd_socket_up_s']):.3f} s)")
    if any(res["agent_restart_changes"]):
        sys.exit("agent-bench: an agent restart changed vpgd's configuration")


if __name__ == "__main__":
    main()
