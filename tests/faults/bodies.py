"""Fuzzed Evolution webhook bodies: realistic events with hostile values.

Seeded and deterministic: `fuzzed_bodies(n, seed)` yields `n` raw request
bodies (bytes). Most are a real event shape (messages.upsert in each LID
layout, messages.update, send.message, other events) with a few leaves
replaced by what breaks storage or parsing: NUL and lone surrogates in
strings, NaN/Infinity/huge numbers, wrong types, missing keys, very long
strings, deep nesting; some are not JSON at all.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

from tests import payloads

PHONES = [f"55119{n:08d}" for n in range(1, 9)]
LAYOUTS = ("classic", "v2_3_5", "v2_3_7", "sender_pn", "lid_only")

NASTY_STRINGS = [
    "\x00",
    "a\x00b",
    "x\ud800y",
    "\udfff",
    "\ud83d",
    "\U0001f600 emoji",
    "\u202eRTL",
    "%s %(x)s {0}",
    "'; DROP TABLE clientes; --",
    "",
    " ",
    "\n\t",
    "é" * 3000,
    "A" * 70_000,
    "5511@lid",
    "@s.whatsapp.net",
    "status@broadcast",
    "123@g.us",
]
# Raw JSON number texts (some are not valid for Postgres' jsonb).
NASTY_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 60, "-1", "0", "1.5e-300", "2e9"]
NASTY_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, 1.5, [], {}, [None], {"": None}, "x"]


def _base(rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    phone = rng.choice(PHONES)
    if kind < 0.6:
        return payloads.upsert(
            layout=rng.choice(LAYOUTS), text=f"fuzz {rng.randrange(10**6)}", phone=phone, lid=f"9{phone}@lid"
        )
    if kind < 0.75:
        return {
            "event": "messages.update",
            "instance": "julia-test",
            "data": {
                "keyId": payloads.new_id(),
                "remoteJid": f"{phone}@s.whatsapp.net",
                "fromMe": True,
                "participant": f"{phone}@s.whatsapp.net",
                "status": rng.choice(["ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED", "DELETED"]),
                "instanceId": "b1e6c1a0-0000-4000-8000-000000000001",
            },
        }
    if kind < 0.85:
        body = payloads.upsert(text="Oi! Aqui é a Julia.", phone=phone, from_me=True)
        body["event"] = "send.message"
        return body
    return {"event": rng.choice(["connection.update", "presence.update", "chats.upsert", "qrcode.updated"]), "data": {}}


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    yield path


def _set(body: Any, path: tuple, value: Any) -> None:
    if not path:
        return
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value


RAW_MARK = "@@RAW@@"


def _mutate(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace a few leaves; returns the body and raw texts to splice in for number marks."""
    raws: dict[str, str] = {}
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _leaves(body) if p]
        if not paths:
            break
        path = rng.choice(paths)
        roll = rng.random()
        if roll < 0.45:
            _set(body, path, rng.choice(NASTY_STRINGS))
        elif roll < 0.65:
            mark = f"{RAW_MARK}{len(raws)}"
            raws[mark] = rng.choice(NASTY_NUMBERS)
            _set(body, path, mark)
        elif roll < 0.85:
            _set(body, path, copy.deepcopy(rng.choice(NASTY_VALUES)))
        else:
            parent = body
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, dict):
                del parent[path[-1]]
    return body, raws


def _serialize(rng: random.Random, body: dict[str, Any], raws: dict[str, str]) -> bytes:
    text = json.dumps(body, ensure_ascii=rng.random() < 0.7)
    for mark, raw in raws.items():
        text = text.replace(f'"{mark}"', raw)
    return text.encode("utf-8", errors="surrogatepass")


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([65, 500, 5_000, 50_000])
    opener, closer = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
    return ('{"event": "messages.upsert", "data": ' + opener * depth + "1" + closer * depth + "}").encode()


def _garbage(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if choice < 0.6:
        return json.dumps(payloads.upsert())[: rng.randint(0, 80)].encode()
    return rng.choice([b"null", b"[]", b'"x"', b"1", b"{}", b'{"event": null}', b'{"event": 1}', b"\xef\xbb\xbf{}"])


def fuzzed_body(rng: random.Random) -> bytes:
    """One request body."""
    roll = rng.random()
    if roll < 0.05:
        return _deep(rng)
    if roll < 0.10:
        return _garbage(rng)
    if roll < 0.20:
        return json.dumps(_base(rng)).encode()  # a clean body among the bad ones
    body, raws = _mutate(rng, _base(rng))
    return _serialize(rng, body, raws)


def fuzzed_bodies(n: int, seed: int = 12) -> Iterator[bytes]:
    """`n` request bodies from `seed` (the same seed gives the same bodies)."""
    rng = random.Random(seed)
    for _ in range(n):
        yield fuzzed_body(rng)
