#!/usr/bin/python3
"""Test driver of tests/test_convert.c: one Python process per test instead of one per step
(importing PyTorch costs seconds). Optionally writes the upstream-layout fixtures first
(make_upstream_checkpoints.py), then runs tools/convert_checkpoint.py's main() on each command
line of a JSON list, in order, and prints one JSON line per case: {"rc": exit code, "out":
everything it printed}.

    /usr/bin/python3 tests/reference/convert_batch.py [--make sf,ll --up DIR] CASES.json
"""
import argparse
import contextlib
import io
import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", help="JSON list of converter command lines (strings)")
    ap.add_argument("--make", help="fixture groups of make_upstream_checkpoints.py to write first")
    ap.add_argument("--up", help="where the fixtures go")
    a = ap.parse_args()
    if a.make:
        import make_upstream_checkpoints as M
        import torch
        torch.set_num_threads(1)
        os.makedirs(a.up, exist_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the results
            for g in a.make.split(","):
                M.GROUPS[g](a.up)
    import convert_checkpoint as C
    with open(a.cases) as f:
        cases = json.load(f)
    for line in cases:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                rc = C.main(shlex.split(line))
            except SystemExit as e:  # argparse usage errors
                rc = e.code if isinstance(e.code, int) else 2
            except Exception:  # noqa: BLE001 - a crash is a test failure, reported as such
                import traceback
                traceback.print_exc()
                rc = 99
        print(json.dumps({"rc": rc, "out": buf.getvalue()}), flush=True)


if __name__ == "__main__":
    main()
