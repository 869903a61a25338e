"""Replay every fuzz harness over its seed corpus, without atheris: the CI smoke test for the parsers.

Each `fuzz/<name>_fuzz.py` defines `TestOneInput(data)`, which lets only fluxkit's ProtocolError family through.
Each seed is replayed whole and cut at a few points (truncation is the commonest real-world damage), so a
harness that raises anything else fails the run with the seed and cut named. A harness without seeds is an error:
it would prove nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

FUZZ_DIR = Path(__file__).resolve().parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cuts(data: bytes) -> list[bytes]:
    n = len(data)
    return [data] + [data[:k] for k in sorted({n // 4, n // 2, (3 * n) // 4, n - 1}) if 0 < k < n]


def main() -> int:
    harnesses = sorted(FUZZ_DIR.glob("*_fuzz.py"))
    if not harnesses:
        print("fuzz/replay: no harnesses found", file=sys.stderr)
        return 1
    failures = 0
    for harness in harnesses:
        name = harness.stem.removesuffix("_fuzz")
        seeds = sorted(p for p in (FUZZ_DIR / "corpus" / name).glob("*") if p.is_file())
        if not seeds:
            print(f"fuzz/replay: {harness.name} has no seeds in fuzz/corpus/{name}/", file=sys.stderr)
            failures += 1
            continue
        test_one_input = _load(harness).TestOneInput
        runs = 0
        for seed in seeds:
            for data in _cuts(seed.read_bytes()):
                runs += 1
                try:
                    test_one_input(data)
                except Exception:
                    failures += 1
                    where = f"{harness.name} failed on {seed.name} cut to {len(data)} bytes"
                    print(f"fuzz/replay: {where}:", file=sys.stderr)
                    traceback.print_exc()
        print(f"{harness.name}: {len(seeds)} seeds, {runs} inputs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
