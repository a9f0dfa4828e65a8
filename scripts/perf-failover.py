#!/usr/bin/env python3
"""Failover figures for a three-node cluster on 127.0.0.1-3 (uses the test venv's boto3).

1. Time from SIGKILL of the Raft leader to the first write acknowledged by another node,
   over --kills kills (median, min, max); the killed node is started again each time.
2. Time for a follower stopped during --writes writes to serve again after its restart
   (a HEAD of the last key through it answers).

Usage: .venv/bin/python scripts/perf-failover.py [target/release/basalt] [--kills 10] [--writes 10000]
"""
import argparse, concurrent.futures, json, os, signal, socket, statistics, subprocess, tempfile, time, urllib.request

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

USER, PASSWORD, SECRET = "perf", "perf-secret-0123456789", "perf-failover-cluster-secret-0123"


def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, workdir
        self.ips = [f"127.0.0.{i}" for i in (1, 2, 3)]
        self.s3 = [free_port(ip) for ip in self.ips]
        self.rpc = [free_port(ip) for ip in self.ips]
        self.procs = [None, None, None]
        for i in range(3):
            self.start(i)
        for i in range(3):
            self.wait_ready(i)

    def endpoint(self, i):
        return f"http://{self.ips[i]}:{self.s3[i]}"

    def start(self, i):
        peers = ",".join(f"{ip}:{p}" for ip, p in zip(self.ips, self.rpc))
        env = dict(os.environ, BASALT_ROOT_USER=USER, BASALT_ROOT_PASSWORD=PASSWORD,
                   BASALT_CLUSTER_SECRET=SECRET, BASALT_LOG="error")
        self.procs[i] = subprocess.Popen(
            [self.binary, "server", "--node-name", f"n{i + 1}",
             "--address", f"{self.ips[i]}:{self.s3[i]}", "--rpc-address", f"{self.ips[i]}:{self.rpc[i]}",
             "--peers", peers, "--bootstrap-expect", "3",
             "--data", f"{self.workdir}/n{i + 1}/data", "--meta-dir", f"{self.workdir}/n{i + 1}/meta"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, i):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.endpoint(i) + "/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {i + 1} not ready")

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def client(self, i):
        return boto3.client("s3", endpoint_url=self.endpoint(i), aws_access_key_id=USER,
                            aws_secret_access_key=PASSWORD, region_name="us-east-1",
                            config=Config(retries={"total_max_attempts": 1}, connect_timeout=1,
                                          read_timeout=15, s3={"addressing_style": "path"}))

    def leader(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                url = self.endpoint(0) + "/basalt-admin/v1/cluster/status"
                request = AWSRequest(method="GET", url=url)
                S3SigV4Auth(Credentials(USER, PASSWORD), "s3", "us-east-1").add_auth(request)
                with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers)), timeout=2) as r:
                    name = json.load(r).get("leader")
                if name:
                    return int(name[1:]) - 1
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("no leader")

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()


def put_until_acknowledged(cluster, nodes, key):
    clients = [cluster.client(i) for i in nodes]
    turn = 0
    while True:
        try:
            clients[turn % len(clients)].put_object(Bucket="failover", Key=key, Body=b"x" * 4096)
            return
        except Exception:
            turn += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="target/release/basalt")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--writes", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        cluster = Cluster(os.path.abspath(args.binary), workdir)
        try:
            cluster.client(0).create_bucket(Bucket="failover")
            times = []
            for k in range(args.kills):
                leader = cluster.leader()
                others = [i for i in range(3) if i != leader]
                put_until_acknowledged(cluster, others, f"warm/{k}")
                started = time.monotonic()
                cluster.kill(leader)
                put_until_acknowledged(cluster, others, f"after-kill/{k}")
                times.append(time.monotonic() - started)
                print(f"kill {k + 1}: leader n{leader + 1}, first acknowledged write after {times[-1]:.2f} s", flush=True)
                cluster.start(leader)
                cluster.wait_ready(leader)
            print(f"leader SIGKILL -> first acknowledged write: median {statistics.median(times):.2f} s, "
                  f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} kills")

            leader = cluster.leader()
            follower = (leader + 1) % 3
            writers = [i for i in range(3) if i != follower]
            cluster.kill(follower)
            started = time.monotonic()
            def write(n):
                client = cluster.client(writers[n % 2])
                for i in range(n, args.writes, 32):
                    for _ in range(20):
                        try:
                            client.put_object(Bucket="failover", Key=f"catch-up/{i:06}", Body=b"y" * 1024)
                            break
                        except Exception:
                            time.sleep(0.1)
            with concurrent.futures.ThreadPoolExecutor(32) as pool:
                list(pool.map(write, range(32)))
            wrote = time.monotonic() - started
            started = time.monotonic()
            cluster.start(follower)
            cluster.wait_ready(follower)
            last = f"catch-up/{args.writes - 1:06}"
            client = cluster.client(follower)
            while True:
                try:
                    client.head_object(Bucket="failover", Key=last)
                    break
                except Exception:
                    time.sleep(0.02)
            print(f"{args.writes} writes while a follower was down ({wrote:.1f} s); restarted, it served "
                  f"the last of them {time.monotonic() - started:.2f} s after its start")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
