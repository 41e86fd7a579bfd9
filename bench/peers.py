"""The peers pipeplex is measured against, installed into an ignored folder on demand.

    .venv/bin/python bench/peers.py            # install what is missing, print what is there
    .venv/bin/python bench/peers.py --check    # print what is there, install nothing

Everything goes under ``bench/.peers/`` (ignored by git):

- ``venv/``: a virtual environment with honcho and pexpect (the peers), matplotlib (the
  plot in docs/benchmarks.png) and py-spy (profiling), from PyPI with pip;
- ``node/``: concurrently from npm (``npm install --prefix bench/.peers/node concurrently``).

A peer that cannot be installed (no network, no ``npm``) is skipped, with the reason; the
benchmarks then run without it and say so in their tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
VENV = PEERS / "venv"
NODE = PEERS / "node"
PY_PACKAGES = ["honcho", "pexpect", "matplotlib", "py-spy"]
STAMP = PEERS / "installed.json"


@dataclass(frozen=True)
class Peers:
    """Where each installed peer is; None (with the reason in ``missing``) when it is not."""

    python: str | None
    honcho: str | None
    pexpect: bool
    matplotlib: bool
    py_spy: str | None
    concurrently: str | None
    versions: dict[str, str]
    missing: dict[str, str]


def concurrently_bin() -> str | None:
    path = NODE / "node_modules" / ".bin" / "concurrently"
    return str(path) if path.exists() else None


def honcho_bin() -> str | None:
    path = VENV / "bin" / "honcho"
    return str(path) if path.exists() else None


def venv_python() -> str | None:
    """The Python of the peers' venv (pexpect, matplotlib), if it is there."""
    path = VENV / "bin" / "python"
    return str(path) if path.exists() else None


def _run(argv: list[str], timeout: float = 600) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    text = (done.stdout + done.stderr).strip()
    return done.returncode == 0, text


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def install(log: bool = True) -> None:
    """Install what is missing; never fails, a peer that cannot be installed is reported."""
    PEERS.mkdir(exist_ok=True)
    notes: dict[str, str] = {}
    py = _venv_python()
    if not py.exists():
        ok, text = _run([sys.executable, "-m", "venv", str(VENV)])
        if not ok:
            notes["venv"] = text.splitlines()[-1] if text else "python -m venv failed"
    if py.exists():
        missing = [p for p in PY_PACKAGES if not _has_module(p)]
        if missing:
            if log:
                print(f"bench setup: pip install {' '.join(missing)} into {VENV}", flush=True)
            ok, text = _run([str(py), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", *missing])  # fmt: skip
            if not ok:  # one at a time, so that one failure does not cost the others
                for package in missing:
                    ok, text = _run([str(py), "-m", "pip", "install", "--quiet",
                                     "--disable-pip-version-check", package])  # fmt: skip
                    if not ok:
                        notes[package] = (text.splitlines() or ["pip failed"])[-1]
    conc = NODE / "node_modules" / ".bin" / "concurrently"
    if not conc.exists():
        npm = shutil.which("npm")
        if npm is None:
            notes["concurrently"] = "npm not found"
        else:
            if log:
                print(f"bench setup: npm install --prefix {NODE} concurrently", flush=True)
            ok, text = _run([npm, "install", "--prefix", str(NODE), "--no-audit", "--no-fund",
                             "--silent", "concurrently"])  # fmt: skip
            if not ok:
                notes["concurrently"] = (text.splitlines() or ["npm failed"])[-1]
    STAMP.write_text(json.dumps(notes, indent=1))


_MODULES = {"honcho": "honcho", "pexpect": "pexpect", "matplotlib": "matplotlib"}


def _has_module(package: str) -> bool:
    if package == "py-spy":
        return (VENV / "bin" / "py-spy").exists()
    ok, _ = _run([str(_venv_python()), "-c", f"import {_MODULES[package]}"], timeout=60)
    return ok


def _version(argv: list[str]) -> str | None:
    ok, text = _run(argv, timeout=60)
    return text.splitlines()[-1].strip() if ok and text else None


def locate() -> Peers:
    """What is installed now (no installing)."""
    notes: dict[str, str] = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    missing: dict[str, str] = {}
    versions: dict[str, str] = {}
    py = _venv_python()
    python = str(py) if py.exists() else None
    honcho = VENV / "bin" / "honcho"
    have: dict[str, bool] = {}
    for package in ("pexpect", "matplotlib"):
        have[package] = bool(python) and _has_module(package)
    if python:
        code = ("import importlib.metadata as m\n"
                "for p in ('honcho', 'pexpect', 'matplotlib', 'py-spy'):\n"
                "    try: print(p, m.version(p))\n"
                "    except Exception: pass\n")  # fmt: skip
        ok, text = _run([python, "-c", code], timeout=60)
        if ok:
            for line in text.splitlines():
                name, _, ver = line.partition(" ")
                versions[name] = ver
    conc = NODE / "node_modules" / ".bin" / "concurrently"
    if conc.exists():
        ver = _version([str(conc), "--version"])
        if ver:
            versions["concurrently"] = ver
        node = _version(["node", "--version"])
        if node:
            versions["node"] = node
    spy = VENV / "bin" / "py-spy"
    for name, present in (("honcho", honcho.exists()), ("pexpect", have["pexpect"]),
                          ("matplotlib", have["matplotlib"]), ("concurrently", conc.exists()),
                          ("py-spy", spy.exists())):  # fmt: skip
        if not present:
            missing[name] = notes.get(name) or notes.get("venv") or "not installed"
    return Peers(
        python=python,
        honcho=str(honcho) if honcho.exists() else None,
        pexpect=have["pexpect"],
        matplotlib=have["matplotlib"],
        py_spy=str(spy) if spy.exists() else None,
        concurrently=str(conc) if conc.exists() else None,
        versions=versions,
        missing=missing,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="install nothing, just report")
    args = parser.parse_args(argv)
    if not args.check:
        install()
    peers = locate()
    for name, ver in sorted(peers.versions.items()):
        print(f"  {name} {ver}")
    for name, why in sorted(peers.missing.items()):
        print(f"  {name}: SKIPPED ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
