"""The kinds table: every kind found by load(), the service and the bench from one registration, and no kind
module importing a sibling kind."""

import ast
from pathlib import Path

import numpy as np
import pytest

import adanns
from adanns import kinds
from adanns.kinds import registry
from adanns.server import kinds as service_kinds

SHARED = {"base", "plan", "registry", "result", "pq_base"}  # what kind modules may import from the package


def _small(kind, rng, dim=32):
    x = rng.standard_normal((400, dim)).astype(np.float32)
    metric = "ip"
    params = service_kinds.resolve(dim, metric, kind.name, {"nlist": 4} if "nlist" in kind.params else
                                   ({"m": 4, "nbits": 4} if "m" in kind.params else {}))
    index = kind.new(dim, metric, params)
    if params.get("train_size") is not None:
        index.train(x)
    index.add(x)
    return index, params


@pytest.mark.parametrize("kind", [k for k in kinds.kinds() if k.servable], ids=lambda k: k.name)
def test_every_servable_kind_round_trips_through_the_table(kind, tmp_path):
    rng = np.random.default_rng()
    index, params = _small(kind, rng)
    assert registry.kind_of(index) is kind
    path = tmp_path / "x.idx"
    index.save(path)
    loaded = adanns.load(path)
    assert type(loaded) is kind.cls
    name, described = service_kinds.describe_file(loaded)
    assert name == kind.name
    assert {k: v for k, v in described.items() if k in params} == {k: params[k] for k in described}


def test_service_and_bench_read_the_table():
    from adanns.bench.run import FAMILIES
    servable = [k.name for k in kinds.servable()]
    assert list(service_kinds.KINDS) == servable
    assert set(FAMILIES) == {k.name for k in kinds.kinds() if k.bench_family}
    assert set(service_kinds.KNOBS) == set(servable)


def test_a_plain_code_index_loads_as_codes_and_is_not_servable(tmp_path):
    codes = adanns.BinaryIndex(64)
    codes.add(np.random.default_rng().integers(0, 256, (10, 8), dtype=np.uint8))
    codes.save(tmp_path / "c.idx")
    loaded = adanns.load(tmp_path / "c.idx")
    assert type(loaded) is adanns.BinaryIndex
    with pytest.raises(Exception, match="holds codes only"):
        service_kinds.describe_file(loaded)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(kinds.get("flat"))


def test_no_kind_module_imports_a_sibling_kind():
    folder = Path(kinds.__file__).parent
    for path in folder.glob("*.py"):
        if path.stem in SHARED | {"__init__"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert (node.module or "") in SHARED, f"{path.name} imports .{node.module}"
