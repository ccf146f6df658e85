"""Where the saturated process spends its time: ``py-spy record`` and ``py-spy dump``.

The profile is sampled from outside the process (py-spy reads its memory with ptrace),
so the process under test runs unmodified. When py-spy cannot attach (no ptrace
permission, a Java process, py-spy missing) the result says why instead of failing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable beside this Python, or on PATH, or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def top_frames(collapsed: str, n: int = 15) -> list[dict[str, Any]]:
    """The ``n`` leaf frames with the most samples in py-spy's collapsed (raw) output.

    Each line is ``frame;frame;...;leaf COUNT``; the share is of all samples.
    """
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaves[stack.split(";")[-1]] += int(count)
        total += int(count)
    return [{"frame": frame, "samples": c, "share": 100.0 * c / total}
            for frame, c in leaves.most_common(n)] if total else []


def profile(name: str, pid: int, out: Path, seconds: float) -> dict[str, Any]:
    """Record ``pid`` for ``seconds``; write the flame graph, raw stacks and a dump.

    Returns ``{"process", "ok", "message", "top", "files"}``; never raises.
    """
    exe = py_spy()
    result: dict[str, Any] = {"process": name, "pid": pid, "ok": False, "top": [], "files": []}
    if name == "broker":
        result["message"] = "the broker is a Java process: py-spy profiles Python only"
        return result
    if exe is None:
        result["message"] = "py-spy is not installed (pip install py-spy)"
        return result
    out.mkdir(parents=True, exist_ok=True)
    raw, svg, dump = (out / f"{name}.{ext}" for ext in ("folded", "svg", "dump.txt"))
    runs = [[exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100",
             "--nonblocking", "--format", "raw", "-o", str(raw)],
            [exe, "dump", "-p", str(pid)]]
    try:
        rec = subprocess.run(runs[0], capture_output=True, text=True, timeout=seconds + 30,
                             check=False)
        dumped = subprocess.run(runs[1], capture_output=True, text=True, timeout=30,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result["message"] = f"py-spy could not run: {exc}"
        return result
    dump.write_text(dumped.stdout + dumped.stderr, encoding="utf-8")
    result["files"].append(dump.name)
    if rec.returncode != 0 or not raw.exists():
        why = (rec.stderr or rec.stdout).strip().splitlines()[-1:] or ["no output"]
        result["message"] = (f"py-spy could not attach to pid {pid} ({why[0]}); "
                             "ptrace may be forbidden here (run as root or with "
                             "CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope=0)")
        return result
    result["top"] = top_frames(raw.read_text(encoding="utf-8"))
    result["files"].append(raw.name)
    _flamegraph(exe, pid, svg)
    result["ok"] = True
    result["message"] = (f"{int(seconds)} s sampled at 100 Hz; leaf functions by share of "
                         f"samples below, stacks in {raw.name}, a stack dump in {dump.name}")
    return result


def _flamegraph(exe: str, pid: int, svg: Path) -> None:
    """A short flame graph beside the raw stacks, best effort (a second 5 s sample)."""
    try:
        subprocess.run([exe, "record", "-p", str(pid), "-d", "5", "--nonblocking",
                        "-o", str(svg)], capture_output=True, timeout=40, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return
