"""Probes a basalt binary for two defects of earlier versions, for before/after figures:
the body flood before authentication (16 connections send 19 MiB each to
`POST /nosuchbucket?delete` and hold: the server's RSS), and GETs racing overwrites (a 24 MiB
object overwritten for 20 s under two readers: how many GETs were cut short).

    .venv/bin/python scripts/probe-flood-and-race.py target/release/basalt

(`scripts/python-setup.sh` makes the venv with boto3.)"""
import os, socket, subprocess, sys, tempfile, threading, time
import boto3
from botocore.config import Config

def start(binary, port, data):
    env = dict(os.environ, BASALT_ROOT_USER="measure", BASALT_ROOT_PASSWORD="measure-secret-0123", BASALT_LOG="error")
    p = subprocess.Popen([binary, "server", "--address", f"127.0.0.1:{port}", "--data", data], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return p
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("no start")

def rss(pid, field="VmRSS:"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    return -1

def flood(port, conns=16, body=19 << 20):
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"POST /nosuchbucket?delete HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: {body}\r\n\r\n".encode())
        socks.append(s)
    piece = b"<" * (1 << 20)
    def send(s):
        s.settimeout(5)
        try:
            for _ in range(body >> 20):
                s.sendall(piece)
        except OSError:
            pass
    ts = [threading.Thread(target=send, args=(s,)) for s in socks]
    [t.start() for t in ts]; [t.join() for t in ts]
    return socks

def race(port, seconds=20):
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="measure",
                     aws_secret_access_key="measure-secret-0123", region_name="us-east-1",
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    c.create_bucket(Bucket="race")
    size = 24 << 20
    versions = [bytes([i]) * size for i in range(4)]
    c.put_object(Bucket="race", Key="k", Body=versions[0])
    stop = threading.Event(); gets = [0]; cut = [0]; wrong = [0]
    def reader():
        while not stop.is_set():
            try:
                b = c.get_object(Bucket="race", Key="k")["Body"]
                got = b.read()
                gets[0] += 1
                if len(got) != size:
                    cut[0] += 1
                elif got not in versions:
                    wrong[0] += 1
            except Exception:
                gets[0] += 1; cut[0] += 1
    rs = [threading.Thread(target=reader) for _ in range(2)]
    [r.start() for r in rs]
    end = time.time() + seconds; i = 0
    while time.time() < end:
        i += 1
        c.put_object(Bucket="race", Key="k", Body=versions[i % 4])
    stop.set(); [r.join() for r in rs]
    return i, gets[0], cut[0], wrong[0]

binary = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    p = start(binary, 9511, d + "/a")
    before = rss(p.pid)
    socks = flood(9511)
    time.sleep(2)
    held = rss(p.pid)
    [s.close() for s in socks]
    print(f"flood: RSS {before} MiB before, {held} MiB with 16 x 19 MiB sent and held")
    p.kill(); p.wait()
    p = start(binary, 9512, d + "/b")
    puts, gets, cut, wrong = race(9512)
    print(f"race: {puts} overwrites of 24 MiB, {gets} GETs, {cut} cut short, {wrong} wrong")
    p.kill(); p.wait()
