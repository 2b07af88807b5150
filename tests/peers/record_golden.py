"""Turns a capture's JSON export into recordings for the views' golden tests
(crates/wstap-views/tests/golden.rs): per session, what the detector reads (subprotocol,
URL) and every data message (direction, text or binary, microseconds since the first
message, payload in hexadecimal), as the real libraries sent them.

Usage:
  wstap export CAPTURE --format json --no-redact \
    | python3 tests/peers/record_golden.py OUT_DIR NAME=SESSION [NAME=SESSION ...]
Then bless the expected decodes: WSTAP_BLESS=1 cargo test -p wstap-views --test golden
"""

import base64
import json
import sys
from datetime import datetime


def micros(stamp):
    return int(datetime.strptime(stamp.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1_000_000)


def payload_bytes(payload):
    if payload.get("encoding") == "base64":
        return base64.b64decode(payload["data"])
    return payload["data"].encode("utf-8")


def main():
    out_dir = sys.argv[1]
    wanted = {session: name for name, session in (arg.split("=", 1) for arg in sys.argv[2:])}
    doc = json.load(sys.stdin)
    for session in doc["sessions"]:
        name = wanted.get(str(session["session"]))
        if name is None:
            continue
        data = [m for m in session["messages"] if m["opcode"] in (1, 2)]
        if any(m["payload"].get("truncated") for m in data):
            sys.exit(f"session {session['session']}: a payload was cut short")
        start = micros(data[0]["time"]) if data else 0
        recording = {
            "subprotocol": session["handshake"].get("subprotocol"),
            "url": session["handshake"]["url"],
            "messages": [
                {
                    "dir": m["dir"],
                    "text": m["opcode"] == 1,
                    "at_us": micros(m["time"]) - start,
                    "payload": payload_bytes(m["payload"]).hex(),
                }
                for m in data
            ],
        }
        with open(f"{out_dir}/{name}.json", "w") as f:
            json.dump(recording, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
