"""`python -m kubelb.pki [--idle SECONDS]`: the xDS CA's operations for a process that does not
load `cryptography` itself (`isolated.IsolatedAuthority`).

Reads JSON requests on stdin, one a line, and writes each one's answer on stdout as a line,
until stdin ends or, with `--idle`, no request came for that long. A request:
`{"ca": {"cert": PEM, "key": PEM} (absent for "create"), "ops": [op, ...]}`, each op one of
  `{"op": "create", "validity": seconds}`           -> `{"cert", "key"}` (a new CA)
  `{"op": "check"}`                                 -> `{}` (the CA and its key match)
  `{"op": "node", "node_id", "validity"}`           -> a leaf
  `{"op": "server", "dns", "ips", "validity"}`      -> a leaf
  `{"op": "inspect", "cert": PEM}`                  -> `{"info": info or null}`
where a leaf is `{"cert", "key", "ca", "info"}` and an info `{"signed", "uris", "not_before",
"not_after"}` (ISO 8601); every op may name `"now"` (ISO 8601). The answer is
`{"results": [...]}`, one per op, or `{"error": message}` when the CA or an argument is invalid.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import select
import sys
from typing import Any

from kubelb.pki import ca, model

Json = dict[str, Any]


def _time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def info_json(info: model.CertInfo | None) -> Json | None:
    if info is None:
        return None
    return {"signed": info.signed, "uris": list(info.uris),
            "not_before": info.not_before.isoformat(),
            "not_after": info.not_after.isoformat()}  # fmt: skip


def _leaf_json(leaf: ca.Leaf, authority: ca.Authority) -> Json:
    return {"cert": leaf.cert.decode(), "key": leaf.key.decode(), "ca": leaf.ca.decode(),
            "info": info_json(ca.info(leaf.cert, authority))}  # fmt: skip


def run_op(op: Json, authority: ca.Authority | None) -> Json:
    now = _time(op.get("now"))
    validity = datetime.timedelta(seconds=float(op.get("validity", 0)))
    if op["op"] == "create":
        created = ca.Authority.create(validity=validity, now=now)
        return {"cert": created.cert_pem.decode(), "key": created.key_pem().decode()}
    if authority is None:
        raise ValueError(f"{op['op']!r} needs a CA")
    if op["op"] == "check":
        return {}
    if op["op"] == "node":
        return _leaf_json(authority.issue_node(op["node_id"], validity=validity, now=now),
                          authority)  # fmt: skip
    if op["op"] == "server":
        leaf = authority.issue_server(op["dns"], op["ips"], validity=validity, now=now)
        return _leaf_json(leaf, authority)
    if op["op"] == "inspect":
        return {"info": info_json(ca.info(op["cert"].encode(), authority))}
    raise ValueError(f"unknown operation {op['op']!r}")


def answer(request: Json) -> Json:
    try:
        given = request.get("ca")
        authority = None
        if given is not None:
            authority = ca.Authority.from_pem(given["cert"].encode(), given["key"].encode())
        return {"results": [run_op(op, authority) for op in request["ops"]]}
    except (ValueError, TypeError) as exc:  # TypeError: a key that wants a password
        return {"error": str(exc)}


def serve(idle: float | None) -> None:
    """Answer each request line until stdin ends or stays silent for `idle` seconds."""
    fd = sys.stdin.fileno()
    pending = b""
    while True:
        while b"\n" not in pending:
            if idle is not None and not select.select([fd], [], [], idle)[0]:
                return  # the parent starts another child when it needs one
            chunk = os.read(fd, 65536)
            if not chunk:
                if pending.strip():
                    _reply(pending)
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        if line.strip():
            _reply(line)


def _reply(line: bytes) -> None:
    sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelb.pki")
    parser.add_argument("--idle", type=float, default=None,
                        help="exit after this many seconds without a request")  # fmt: skip
    serve(parser.parse_args(argv).idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
