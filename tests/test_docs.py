"""The documents point at tests that exist: every `tests/test_x.py::test_name` in docs/ and the README."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_test_a_document_names_exists(doc):
    named = re.findall(r"tests/(test_\w+\.py)::(\w+)", doc.read_text())
    missing = [f"{f}::{name}" for f, name in named
               if not (ROOT / "tests" / f).is_file() or f"def {name}(" not in (ROOT / "tests" / f).read_text()]
    assert not missing, f"{doc.name} names tests that do not exist: {missing}"


def test_ci_runs_exactly_the_readmes_test_command():
    blocks = re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
