"""Probes of a running `tamis serve` for bench/server.sh (standard library only).

    server_probe.py upload HOST:PORT TOKEN FILE NAME
        Uploads FILE (multipart) and prints JSON: bytes, the seconds from the last body
        byte written to the 202 answer, the whole upload's seconds, the answer.
    server_probe.py live HOST:PORT TOKEN DATASET_ID N
        Queues N profile jobs of the dataset one after another and, for each, follows
        WS /ws/jobs/{id} from before it runs; prints JSON with the latency from each log
        line's server timestamp (`ts`, when it was written) to its arrival here, over all
        lines of all jobs (same machine, same clock).
"""

import base64
import http.client
import json
import os
import socket
import struct
import sys
import time
import uuid


def upload(addr, token, path, name):
    host, port = addr.split(":")
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{os.path.basename(path)}\"\r\n"
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = os.path.getsize(path)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.putrequest("POST", "/api/v1/datasets")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    t0 = time.perf_counter()
    conn.send(head)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            conn.send(chunk)
    conn.send(tail)
    t_last = time.perf_counter()
    r = conn.getresponse()
    body = r.read()
    t_ack = time.perf_counter()
    print(json.dumps({
        "bytes": size,
        "status": r.status,
        "ack_after_last_byte_s": t_ack - t_last,
        "upload_s": t_ack - t0,
        "answer": json.loads(body),
    }))


def request(addr, method, path, token, body=None):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


def ws_connect(addr, path):
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"websocket refused: {head!r}")
    return s, rest


def ws_messages(s, buf):
    """Yields (text, arrival_ms) of server frames (unmasked) until close."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
    while True:
        try:
            need(2)
        except EOFError:
            return
        b0, b1 = buf[0], buf[1]
        op, n, off = b0 & 0x0F, b1 & 0x7F, 2
        if n == 126:
            need(4)
            n, off = struct.unpack(">H", buf[2:4])[0], 4
        elif n == 127:
            need(10)
            n, off = struct.unpack(">Q", buf[2:10])[0], 10
        need(off + n)
        payload, buf = buf[off:off + n], buf[off + n:]
        now = time.time() * 1000.0
        if op == 8:
            return
        if op == 1:
            yield payload.decode(), now


def live(addr, token, dataset, n):
    lat = []
    for i in range(int(n)):
        st, v = request(addr, "POST", "/api/v1/jobs", token, {"kind": "profile", "dataset_id": dataset, "idempotency_key": f"live-{uuid.uuid4().hex}"})
        assert st == 202, v
        job = v["job"]["id"]
        s, rest = ws_connect(addr, f"/ws/jobs/{job}?access_token={token}")
        first = True
        for text, arrived in ws_messages(s, rest):
            m = json.loads(text)
            if m["type"] == "log" and not first:
                lat.append(arrived - m["ts"])
            if m["type"] == "status":
                first = False  # lines before the first status are history
            if m["type"] == "end":
                break
        s.close()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    print(json.dumps({"lines": len(lat), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": lat[-1] if lat else None}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "upload":
        upload(*sys.argv[2:6])
    elif cmd == "live":
        live(*sys.argv[2:6])
    else:
        raise SystemExit(__doc__)
