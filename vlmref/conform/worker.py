"""Run a conformance adapter in another Python (its own venv) for ``vlmref conform --adapter_python PY``.

Standard library only, so it runs under any interpreter that can import the adapter: ``PY worker.py
module:function`` reads one JSON request per line on stdin (``{"model_type", "example", "options"}``) and writes one
JSON line per request: ``{"ok": {...}}`` with the adapter's result, or ``{"error": "Type: message"}``. Only the
protocol writes to stdout: anything the adapter or its framework prints goes to stderr. The first line
it writes describes the adapter (``{"describe": {"model_types", "image_placement", "name", "version"}}``).

    $ echo '{"model_type": "qwen-vl-chat", "example": {"query": "hi", "response": "yo"}, "options": {}}' \\
        | .venv-swift/bin/python vlmref/conform/worker.py my_adapter:encode
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _load(target):
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"expected module:function, got {target!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _plain(value):
    """The adapter's result as JSON-able lists (tensors and arrays via ``tolist``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: worker.py module:function", file=sys.stderr)
        return 2
    # the protocol keeps the real stdout; whatever the adapter or its framework prints goes to stderr
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        adapter = _load(argv[0])
    except Exception as err:  # noqa: BLE001 - reported to the parent as one line
        send({"error": f"cannot load adapter {argv[0]}: {type(err).__name__}: {err}"})
        return 2
    encode = getattr(adapter, "encode", adapter)
    describe = {key: _plain(getattr(adapter, key, None))
                for key in ("model_types", "image_placement", "name", "version", "image_token_ids",
                            "supports_truncation")}
    send({"describe": describe})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = {"ok": _plain(encode(request["model_type"], request["example"], **request.get("options", {})))}
        except Exception as err:  # noqa: BLE001 - one failing case must not end the run
            last = traceback.extract_tb(err.__traceback__)[-1]
            result = {"error": f"{type(err).__name__}: {err} ({last.filename}:{last.lineno})"}
        send(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
