"""Every ```python block of README.md and docs/*.md runs as written.

A block is run on every backend unless an HTML comment on the line right
before its fence names the backends it claims:

    <!-- backends: jax -->
    <!-- backends: tensorflow, torch -->
    <!-- backends: jax; subprocess -->

No comment means all three. Signatures and fragments that are not meant to
run go in another fence (```text).

How a block runs. By default in this process, with a fresh namespace, the
current directory set to an empty temporary folder (blocks may write files)
and `keras.utils.clear_session()` before it (conftest.py); the environment
variables are restored after it. Measured on the 2-core machine (load
about 1), this file took 16 s (JAX), 7 s (PyTorch) and 6 s (TensorFlow)
per backend in pytest, imports included, against 22 s, 36 s and 31 s for
the same 12-13 blocks run as one subprocess each (each pays 1.5-3 s to
import Keras and its backend, more on a loaded machine). In process keeps
the default tox run well inside its 30-minute budget; JAX's time is its
compilation of the row-sparse `fit` (5 s).
"; subprocess" runs a block in a fresh interpreter instead, for a block
that must set something before its backend starts (the 8 virtual devices of
docs/distribution.md set XLA_FLAGS before JAX is imported); it inherits
this process's environment, KERAS_BACKEND included, so a block's
`os.environ.setdefault(...)` keeps the backend under test.

A block that runs in process cannot show that it imports all it needs from
keras_embed (the tests have already imported it); a block that loads a
`.keras` file imports keras_embed itself, which the README says to do.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests import testing

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BACKENDS = ("tensorflow", "jax", "torch")
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*backends:\s*(?P<spec>[^>]*?)\s*-->$")


class Block:
    def __init__(self, path, line, code, backends, subprocess):
        self.path = path
        self.line = line
        self.code = code
        self.backends = backends
        self.subprocess = subprocess

    @property
    def name(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path):
    """The ```python blocks of one Markdown file, with their claims."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{index + 1}: the fence is never closed")
        if fence.group(1) == "python":
            previous = lines[index - 1].strip() if index else ""
            backends, own_process = _claims(previous, path, index)
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Block(path, index + 1, code, backends, own_process))
        index = end + 1
    return found


def _claims(line, path, index):
    marker = MARKER.match(line)
    if marker is None:
        return BACKENDS, False
    parts = [part.strip() for part in marker.group("spec").split(";")]
    backends = tuple(b.strip() for b in parts[0].split(",") if b.strip())
    options = set(parts[1:])
    unknown = (set(backends) - set(BACKENDS)) | (options - {"subprocess"})
    if unknown or not backends:
        raise ValueError(
            f"{path}:{index}: bad marker {line!r}: write "
            "'<!-- backends: jax, torch -->' (of tensorflow, jax, torch), "
            "optionally followed by '; subprocess'."
        )
    return backends, "subprocess" in options


ALL_BLOCKS = [block for path in DOCUMENTS for block in blocks(path)]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda block: block.name)
def test_documented_block_runs(block, tmp_path, monkeypatch):
    if testing.backend() not in block.backends:
        pytest.skip(f"{block.name} claims {', '.join(block.backends)} only")
    monkeypatch.chdir(tmp_path)
    if block.subprocess:
        _run_in_subprocess(block, tmp_path)
    else:
        _run_in_process(block)


def _run_in_process(block):
    environment = dict(os.environ)
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(block.code, block.name, "exec"), namespace)
    finally:
        os.environ.clear()
        os.environ.update(environment)


def _run_in_subprocess(block, folder):
    script = folder / "block.py"
    script.write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.name} exited {done.returncode}:\n{done.stderr[-4000:]}"
    )


def test_the_documents_hold_python_blocks():
    names = {block.path.name for block in ALL_BLOCKS}
    assert {"README.md", "features.md", "migrating.md"} <= names


def test_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n"
        "<!-- backends: jax -->\n```python\ny = 2\n```\n"
        "```text\nnot python(\n```\n"
        "<!-- backends: tensorflow, torch; subprocess -->\n"
        "```python\nz = 3\n```\n",
        encoding="utf-8",
    )
    found = [(b.line, b.backends, b.subprocess) for b in blocks(page)]
    assert found == [
        (1, BACKENDS, False),
        (5, ("jax",), False),
        (12, ("tensorflow", "torch"), True),
    ]


@pytest.mark.parametrize(
    "marker",
    ["<!-- backends: theano -->", "<!-- backends: jax; forked -->"],
)
def test_a_bad_marker_is_refused(tmp_path, marker):
    page = tmp_path / "page.md"
    page.write_text(f"{marker}\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad marker"):
        blocks(page)
