"""What the machine can post with no queue and no database, and what the receiver can take.

python -m bench.ceiling MODE --port P --duration S --start-at T --out FILE

MODE:
- plain:  one http.client keep-alive connection, the same request in a loop (the ceiling);
- sender: the service's own `shared.sender.Sender.post` in a loop (urllib3 pool, its timeout,
          its response handling): what HTTP alone costs the workers;
- flood:  the same request bytes over raw sockets, pipelined 64 at a time, so that the client
          costs almost nothing and the receiver is what is measured.
Every mode sends the bytes a delivery sends: the envelope and the service's headers, signed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import time
import uuid

from bench.fixtures import connection_event
from shared import signing
from shared.attempt_rules import USER_AGENT
from shared.publishing import encode_envelope
from shared.sender import Sender
from shared.settings import load_settings
from shared.timeutil import utcnow

PATH = "/ceiling"
PIPELINE = 64


def delivery_request() -> tuple[bytes, dict[str, str]]:
    event_id = uuid.uuid4()
    body = encode_envelope(
        event_id, "ConnectionUpdated", utcnow(), connection_event(), uuid.uuid4()
    )
    body = body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": str(event_id),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            (signing.generate_secret(),), str(event_id), timestamp, body
        ),
    }
    return body, headers


def plain(port: int, until: float) -> int:
    body, headers = delivery_request()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    count = 0
    while time.time() < until:
        conn.request("POST", PATH, body, headers)
        response = conn.getresponse()
        response.read()
        count += 1
    conn.close()
    return count


def sender(port: int, until: float) -> int:
    body, headers = delivery_request()
    send = Sender(load_settings({})).post
    url = f"http://127.0.0.1:{port}{PATH}"
    count = 0
    while time.time() < until:
        if not send(url, body, headers).ok:
            raise RuntimeError("the receiver refused a request")
        count += 1
    return count


def flood(port: int, until: float) -> int:
    body, headers = delivery_request()
    lines = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    answer = len(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") * PIPELINE
    batch = request * PIPELINE
    count = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while time.time() < until:
            sock.sendall(batch)
            received = 0
            while received < answer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the receiver closed the connection")
                received += len(chunk)
            count += PIPELINE
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["plain", "sender", "flood"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = {"plain": plain, "sender": sender, "flood": flood}[args.mode]
    time.sleep(max(0.0, args.start_at - time.time()))
    start = time.time()
    count = run(args.port, start + args.duration)
    with open(args.out, "w") as out:
        json.dump({"count": count, "seconds": time.time() - start}, out)


if __name__ == "__main__":
    main()
