"""A bounded OpenAPI-driven fuzz of the live service (schemathesis): every operation in the schema, with
generated valid and invalid bodies, parameters and headers; no answer may be a 5xx, none may hang, and
the server must still be healthy afterwards."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _server import Server

KEY = "fuzz-key"


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed (make test installs it)")
    return str(exe)


@pytest.mark.parametrize("target", ["random names", "an existing index"])
def test_no_request_in_the_schema_gets_a_5xx(tmp_path, target):
    exe = _schemathesis()
    config = tmp_path / "schemathesis.toml"
    # With a fixed name the generated requests reach the index's routes instead of 404s.
    config.write_text('[parameters]\n"path.name" = "fz"\n' if target == "an existing index" else "")
    with Server(tmp_path / "data", api_key=KEY) as server:
        with server.client() as c:
            assert c.put("/indexes/fz", json={"dim": 4, "kind": "ivf",
                                              "params": {"nlist": 2, "train_size": 8}}).status_code == 201
        run = subprocess.run([exe, "--config-file", str(config), "run", f"{server.url}/openapi.json",
                              "-H", f"Authorization: Bearer {KEY}", "--checks", "not_a_server_error",
                              "--max-examples", "15", "--seed", "7", "--request-timeout", "10", "--no-shrink",
                              "--max-time", "20", "-w", "1"], capture_output=True, text=True, timeout=180,
                             cwd=tmp_path)
        summary = re.search(r"(\d+) generated, (\d+) passed.*", run.stdout)
        print(f"HTTP fuzz ({target}): {summary.group(0) if summary else 'no summary'}")
        assert run.returncode == 0, run.stdout[-6000:]
        assert summary and int(summary.group(1)) >= 200 and summary.group(1) == summary.group(2)
        with server.client() as c:
            assert c.get("/healthz").status_code == 200
        log = server.log()
    assert "Traceback" not in log, log
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
