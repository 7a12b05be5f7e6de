"""Shared by `python -m eval` and `python -m bench`: machine description, markdown tables."""
from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _versions() -> str:
    out = []
    for name in ("torch", "sentence_transformers", "faiss", "bm25s"):
        try:
            mod = __import__(name)
            out.append(f"{name} {getattr(mod, '__version__', '?')}")
        except ImportError:
            continue
    return ", ".join(out)


def machine_description() -> str:
    ram = _ram_gib()
    threads = ""
    try:
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    except ImportError:
        pass
    return (f"{_cpu_model()}, {os.cpu_count()} CPU cores{threads}, "
            f"{ram:.0f} GiB RAM, no GPU used; " if ram else f"{_cpu_model()}, {os.cpu_count()} cores; ") + \
        f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}; {_versions()}"


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def replace_marked(doc: Path, start: str, end: str, body: str, title: str) -> None:
    """Write `body` between the markers `start` and `end` of `doc`, replacing what was there (the
    rest of the page is prose kept as it is); appended, markers included, when they are absent;
    a missing or empty page starts with `title`."""
    block = f"{start}\n{body}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if start in text and end in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else f"# {title}\n\n") + block + "\n"
    doc.write_text(text, encoding="utf-8")

