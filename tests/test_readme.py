"""Every ```python block of README.md runs as pasted, and so do its cheap ``lcpfn`` command lines.

Each Python block runs in a fresh namespace with a temporary working directory holding a copy of
the repository's ``examples/`` (and nothing beside it: no ``../shared``). A block that imports an
optional extra is skipped when that extra is not installed. Of the ```bash blocks, the commands
``lcpfn predict ...``, ``lcpfn --help`` and ``lcpfn --version`` are run (a line may chain several
commands with ``&&``); synopsis lines (``[--option]``, ``a | b``, ``...``) and expensive commands
(``train``, ``evaluate``, ``app``) are not.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: Imports that need an optional extra: top-level third-party modules of the extras, and the lcpfn
#: modules that import one. A block importing any of these is skipped without it.
EXTRA_MODULES = {
    "optuna": "optuna",
    "pymc": "pymc",
    "arviz": "arviz",
    "scipy": "scipy",
    "streamlit": "streamlit",
    "plotly": "plotly",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "sklearn": "sklearn",
    "lcpfn.integrations.optuna": "optuna",
    "lcpfn.mcmc": "pymc",
    "lcpfn.app": "streamlit",
    "lcpfn.server": "fastapi",
    "lcpfn.integrations.ray": "ray",
}
#: ``lcpfn`` subcommands (or options) cheap enough to run here.
CHEAP_COMMANDS = ("predict", "--help", "-h", "--version")
SYNOPSIS = re.compile(r"\[|\]|\s\|\s|\.\.\.")


@dataclass(frozen=True)
class Block:
    language: str
    line: int  # 1-based line of the block's first code line in README.md
    heading: str  # the last Markdown heading above it
    code: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"L{self.line}-{slug}"


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, with their language and position."""
    blocks: list[Block] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            i += 1
            continue
        indent, marks, language = fence.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(marks):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        blocks.append(Block(language.lower(), i + 2, heading, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [b for b in BLOCKS if b.language in ("python", "py")]


def imported_modules(tree: ast.AST) -> set[str]:
    """Dotted names of every module a block imports, with their parent packages."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            full = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            full = [node.module]
        else:
            continue
        for name in full:
            parts = name.split(".")
            names.update(".".join(parts[: k + 1]) for k in range(len(parts)))
    return names


def undefined_names(tree: ast.AST) -> list[str]:
    """Names a block reads but never binds (ignoring scopes): caught before anything slow runs."""
    bound: set[str] = set(dir(builtins))
    loaded: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.setdefault(node.id, None)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return [name for name in loaded if name not in bound]


@pytest.fixture
def examples_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of ``examples/`` and nothing else of the repository."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "examples", work / "examples")
    monkeypatch.chdir(work)
    return work


def test__readme__has_python_blocks_and_cheap_commands():
    # The harness must find what it tests: a change of fence syntax must not empty it silently.
    assert len(PYTHON_BLOCKS) >= 2, [b.id for b in BLOCKS]
    assert any(cmd[1] == "predict" for cmd in CHEAP), CHEAP


def test__fenced_blocks__language_position_and_heading():
    text = "# Top\ntext\n## Use it\n```python\nx = 1\n\ny = x\n```\n```bash\nlcpfn --help\n```\n"
    blocks = fenced_blocks(text)
    assert [(b.language, b.line, b.heading, b.code) for b in blocks] == [
        ("python", 5, "Use it", "x = 1\n\ny = x\n"),
        ("bash", 10, "Use it", "lcpfn --help\n"),
    ]
    assert blocks[0].id == "L5-use-it"


def test__undefined_names__finds_reads_of_names_never_bound():
    code = "import numpy as np\nfrom a.b import c\nx = np.ones(3)\nfor i in x: print(i, y)\nf = lambda v: v + z\n"
    assert undefined_names(ast.parse(code)) == ["y", "z"]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test__readme__python_block_runs_as_pasted(block: Block, examples_dir: Path):
    source = "\n" * (block.line - 1) + block.code  # so tracebacks give README.md's own line numbers
    tree = ast.parse(source, filename=str(README))
    for module in sorted(imported_modules(tree)):
        if module in EXTRA_MODULES:
            pytest.importorskip(EXTRA_MODULES[module])
    missing = undefined_names(tree)
    assert not missing, f"README.md line {block.line}: the block uses names it never defines: {missing}"
    exec(compile(tree, str(README), "exec"), {"__name__": "__readme__"})


def cheap_commands(blocks: list[Block]) -> list[tuple[str, ...]]:
    """The ``lcpfn`` commands of the shell blocks worth running here, as argument tuples."""
    commands: list[tuple[str, ...]] = []
    for block in blocks:
        if block.language not in ("bash", "sh", "shell", "console"):
            continue
        for line in block.code.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                part = part.strip()
                if not part.startswith("lcpfn ") or SYNOPSIS.search(part):
                    continue
                args = tuple(shlex.split(part))
                if args[1] in CHEAP_COMMANDS:
                    commands.append(args)
    return commands


CHEAP = cheap_commands(BLOCKS)


def test__cheap_commands__chained_lines_yes_synopses_and_training_no():
    text = (
        "```bash\n"
        "# 1. install and forecast\n"
        "python3 -m venv .venv && pip install . && lcpfn predict examples/curve.csv --max-epochs 100\n"
        "lcpfn predict curve.csv --max-epochs 100 [--direction minimize]\n"
        "lcpfn train --out-dir runs/x --curves 500000\n"
        "lcpfn --help   # every command\n"
        "```\n"
        "```python\nlcpfn --version\n```\n"
    )
    assert cheap_commands(fenced_blocks(text)) == [
        ("lcpfn", "predict", "examples/curve.csv", "--max-epochs", "100"),
        ("lcpfn", "--help"),
    ]


def lcpfn_executable() -> list[str]:
    """The installed ``lcpfn`` script beside this interpreter, else ``python -m lcpfn.cli``."""
    script = Path(sys.executable).with_name("lcpfn.exe" if os.name == "nt" else "lcpfn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lcpfn.cli"]


@pytest.mark.parametrize("command", CHEAP, ids=[" ".join(c) for c in CHEAP])
def test__readme__lcpfn_command_runs(command: tuple[str, ...], examples_dir: Path):
    proc = subprocess.run(
        lcpfn_executable() + list(command[1:]), cwd=examples_dir, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{' '.join(command)} printed nothing"
