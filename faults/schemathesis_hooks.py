"""schemathesis hooks for the fault suite (loaded through faults/schemathesis.toml)."""

import schemathesis


@schemathesis.hook
def map_body(context, body):
    """A register listing one object key twice is a 400 the schema cannot express
    (JSON Schema has no "unique by field"): keep the first object of each key."""
    if isinstance(body, dict) and isinstance(body.get("objects"), list):
        seen, unique = set(), []
        for obj in body["objects"]:
            key = obj.get("key") if isinstance(obj, dict) else None
            if isinstance(key, str) and key in seen:
                continue
            if isinstance(key, str):
                seen.add(key)
            unique.append(obj)
        body = {**body, "objects": unique}
    return body


@schemathesis.hook
def map_query(context, query):
    """A long poll waits up to `wait` seconds when nothing changes; keep the fuzzer's
    values valid but short (at most 1 s) so that a run stays quick."""
    if isinstance(query, dict) and isinstance(query.get("wait"), int) and query["wait"] > 1:
        query = {**query, "wait": 1}
    return query
