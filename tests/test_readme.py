"""README is code: every ```python block runs against a short real run; every file and name
the reading order points to exists; and learn/'s citations of the reading order ("README
reading order 7") point to the item that names their file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from numpyvae.learn.steps import STEPS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
STUBS = REPO / "numpyvae" / "learn" / "stubs"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def reading_order(text: str) -> dict[int, str]:
    """The numbered items of README's reading order, by number."""
    section = text.split("## Reading order", 1)[1].split("\n## ", 1)[0]
    return {int(n): body for n, body in
            re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", section, re.S | re.M)}


def item_files(body: str) -> tuple[list[Path], list[str]]:
    """The files an item names (resolved) and the code names it quotes; a name or path
    that does not resolve is returned as a problem in place of the path."""
    files, names, problems = [], [], []
    bases = [REPO, REPO / "numpyvae"]
    for token in re.findall(r"`([^`]+)`", body):
        if re.fullmatch(r"[\w./-]+/", token):
            folder = REPO / token
            (bases.append(folder) if folder.is_dir() else problems.append(token))
        elif re.fullmatch(r"[\w./-]+\.py", token):
            found = next((b / token for b in reversed(bases) if (b / token).is_file()), None)
            (files.append(found) if found else problems.append(token))
        elif m := re.fullmatch(r"([A-Za-z_]\w*)(\(.*\))?", token):
            names.append(m.group(1))
    return files, names + [f"MISSING FILE {p}" for p in problems]


def test_readme_has_a_reading_order_of_consecutive_items():
    items = reading_order(README)
    assert sorted(items) == list(range(1, len(items) + 1)) and len(items) >= 10


@pytest.mark.parametrize("number", sorted(reading_order(README)))
def test_every_file_and_name_in_the_reading_order_exists(number):
    files, names = item_files(reading_order(README)[number])
    missing = [n for n in names if n.startswith("MISSING FILE")]
    assert files and not missing, (number, missing)
    source = "\n".join(f.read_text() for f in files)
    absent = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", source)]
    assert not absent, f"item {number} names {absent}, which none of {files} contains"


def cited_items(text: str) -> set[int]:
    """The item numbers in "reading order 7", "item 9" or "items 1-2"."""
    out: set[int] = set()
    for a, b in re.findall(r"(?:reading order|[Ii]tems?) (\d+)(?:-(\d+))?", text):
        out.update(range(int(a), int(b or a) + 1))
    return out


def learn_citations() -> list[tuple[str, str]]:
    """(where, the citing text) for every step's ``reading`` and every stub's Read first."""
    cites = [(f"learn/steps.py: {s.name}", s.reading) for s in STEPS]
    for stub in sorted(STUBS.glob("*.py")):
        text = stub.read_text()
        read_first = text.split("Read first:", 1)[1].split("Grade it with", 1)[0]
        cites.append((f"stubs/{stub.name}", read_first))
    return cites


@pytest.mark.parametrize("where, text", learn_citations(), ids=[w for w, _ in learn_citations()])
def test_learn_cites_the_items_that_name_its_files(where, text):
    items = reading_order(README)
    numbers = cited_items(text)
    assert numbers and numbers <= set(items), (where, numbers)
    cited = " ".join(items[n] for n in numbers)
    for path in re.findall(r"numpyvae/[\w/]+\.py", text):
        assert path in cited, f"{where} cites item(s) {sorted(numbers)} for {path}, which " \
                              "they do not name"
        source = (REPO / path).read_text()
        for name in re.findall(r"``(\w+)``", text):  # names quoted next to the files
            assert re.search(rf"\b{name}\b", source) or any(
                re.search(rf"\b{name}\b", (REPO / p).read_text())
                for p in re.findall(r"numpyvae/[\w/]+\.py", text)), (where, name)


def test_python_blocks_run_against_a_short_real_run(tmp_path, shared_datasets):
    """Each block runs in a folder holding the run it names, trained for one short epoch;
    a shape in a comment (``x = ...  # (16, 1, 28, 28)``) is asserted too."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMPYVAE_DATA": str(shared_datasets)}
    blocks = python_blocks(README)
    assert blocks
    for run in sorted(set(re.findall(r"runs/[\w.-]+", "\n".join(blocks)))):
        r = subprocess.run([sys.executable, "-m", "numpyvae", "train", "--epochs", "1",
                            "--train-subset", "512", "--out", run], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
    for block in blocks:
        checks = [f"assert {name}.shape == {shape}, ({name!r}, {name}.shape)"
                  for name, shape in re.findall(r"^(\w+) = .*#\s*(\([\d, ]+\))", block, re.M)]
        r = subprocess.run([sys.executable, "-c", block + "\n" + "\n".join(checks)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, block + r.stderr
