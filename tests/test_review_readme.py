"""The README as a new user reads it: its snippets run, and its facts are the code's facts.

tests/test_readme.py checks the three commands and the encoder table; this file checks the rest of
what the README states: the encoder snippet (executed), the names the torchrun snippet imports, the
`zskit` usage block against the argument parser, the package layout against zskit/, the Python
version against the lock file, the set-up script's Debian packages, the pip extras, the offline
asset packages, the environment variables, the notebook list and the corpus facts.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import re
import runpy
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README text under the heading ``## {title}``, up to the next ``## `` heading."""
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ----------------------------------------------------------------------------- snippets


def test_readme_has_the_encoder_and_torchrun_snippets():
    blocks = python_blocks()
    assert len(blocks) == 2, f"expected the Encoders and torchrun snippets, found {len(blocks)}"
    for block in blocks:
        ast.parse(block)  # a SyntaxError names the line


def imported_names(source: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``from zskit... import name`` and ``(module, None)`` for
    ``import zskit...`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zskit"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("zskit")]
    return found


def zskit_attributes(source: str) -> set[str]:
    """Names used as ``zskit.<name>`` in ``source``."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "zskit"}


@pytest.mark.parametrize("index", [0, 1], ids=["encoders", "torchrun"])
def test_every_zskit_name_in_a_snippet_exists(index):
    import zskit

    source = python_blocks()[index]
    missing = [f"{module}.{name}" for module, name in imported_names(source)
               if name is not None and not hasattr(importlib.import_module(module), name)]
    missing += [f"zskit.{name}" for name in sorted(zskit_attributes(source))
                if not hasattr(zskit, name)]
    assert not missing, f"the README's snippet uses names zskit does not have: {missing}"


def test_imported_names_finds_a_misspelt_name():
    """The check above can fail: a made-up name is reported."""
    source = "from zskit.data import load_corpus, load_corpse\nimport zskit\nzskit.nope()"
    assert ("zskit.data", "load_corpse") in imported_names(source)
    assert zskit_attributes(source) == {"nope"}
    assert not hasattr(importlib.import_module("zskit.data"), "load_corpse")


def test_encoder_snippet_runs_as_written(tmp_path):
    """Runs the Encoders section's snippet (offline weights, the 100-clip smoke corpus)."""
    script = tmp_path / "readme_encoders.py"
    script.write_text(python_blocks()[0])
    namespace = runpy.run_path(str(script))
    enc, waveforms = namespace["enc"], namespace["waveforms"]
    assert waveforms.shape[0] == 2 and waveforms.shape[1] > enc.sample_rate, "two clips of audio"
    assert tuple(namespace["emb"].shape) == (waveforms.shape[0], enc.embed_dim)
    assert namespace["out"].logits is not None, "the comment promises class logits"
    assert tuple(namespace["vectors"].shape) == (2, namespace["text"].embed_dim)
    assert namespace["tiny"].embed_dim < 768, "tiny=True is the small config, not PaSST's 768"


# ----------------------------------------------------------------------------- the zskit command


def usage_lines() -> dict[tuple[str, ...], set[str]]:
    """README usage block: subcommand words -> the option strings shown for them."""
    block = section("The `zskit` command").split("```", 2)[1]
    usage = {}
    for line in block.strip().splitlines():
        shown = line.split("#", 1)[0].split()
        assert shown[0] == "zskit", line
        words = tuple(w for w in shown[1:] if re.fullmatch(r"[a-z]+", w))
        usage[words] = {w.strip("[]") for w in shown if w.lstrip("[").startswith("-")}
    return usage


def parser_options(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The option strings of each option (help excluded) of the ``zskit`` subcommand ``words``."""
    from zskit.cli import build_parser

    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[word]
    return [tuple(a.option_strings) for a in parser._actions
            if a.option_strings and a.dest != "help"]


def unshown_options(words: tuple[str, ...], shown: set[str]) -> list[tuple[str, ...]]:
    """Options of ``zskit words`` of which ``shown`` holds no spelling."""
    return [o for o in parser_options(words) if not shown & set(o)]


def test_usage_block_shows_every_subcommand_with_its_options():
    usage = usage_lines()
    assert set(usage) == {("data", "synth"), ("run",), ("reproduce",), ("encoders",)}
    for words, shown in usage.items():
        known = {s for o in parser_options(words) for s in o}
        assert shown <= known, f"zskit {' '.join(words)}: README shows unknown {shown - known}"
        missing = unshown_options(words, shown)
        assert not missing, f"zskit {' '.join(words)}: README omits {missing}"


def test_usage_check_sees_a_missing_option():
    """The comparison above can fail: a usage line without --out misses run's --out."""
    assert unshown_options(("run",), {"-p", "--smoke"}) == [("--out",)]
    assert unshown_options(("run",), {"--parameter", "--out", "--smoke"}) == []


# ----------------------------------------------------------------------------- package layout


def layout_block() -> str:
    return section("Package layout").split("```", 2)[1]


def layout_names(block: str) -> set[str]:
    """Every ``name.py`` and ``name/`` the layout block mentions."""
    return set(re.findall(r"\b([a-z_0-9]+)(?:\.py\b|/)", block))


def public_modules(folder: Path) -> set[str]:
    return {p.stem if p.is_file() else p.name for p in folder.iterdir()
            if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())}


def test_layout_names_every_top_level_module_and_nothing_else():
    block = layout_block()
    mentioned = layout_names(block)
    missing = public_modules(ROOT / "zskit") - mentioned
    assert not missing, f"README's package layout omits zskit modules {sorted(missing)}"
    files = {p.stem for p in (ROOT / "zskit").rglob("*.py")}
    unknown = set(re.findall(r"\b([a-z_0-9]+)\.py\b", block)) - files
    assert not unknown, f"README's package layout names files that do not exist: {unknown}"


# Sub-packages whose layout entry names each module (the others are described by what they hold).
LISTED_BY_MODULE = ("data", "encoders", "heads", "models")


def unnamed_modules(package: str, block: str) -> list[str]:
    """Modules of ``zskit/<package>/`` that its entry in the layout ``block`` does not name."""
    entry = block.split(f"\n  {package}/", 1)[1]
    entry = re.split(r"\n  [a-z_]+(?:\.py|/)", entry, maxsplit=1)[0]
    words = set(re.findall(r"[a-z_0-9]+", entry))
    return sorted(m for m in public_modules(ROOT / "zskit" / package) if m not in words)


@pytest.mark.parametrize("package", LISTED_BY_MODULE)
def test_layout_names_every_module_of(package):
    missing = unnamed_modules(package, layout_block())
    assert not missing, f"README's layout entry for {package}/ omits {missing}"


def test_layout_check_sees_a_missing_module():
    block = "\n  encoders/        registry + base contracts; audio/ (yamnet)\n  cache.py   x\n"
    assert "weights" in unnamed_modules("encoders", block)
    assert "cache" not in unnamed_modules("encoders", block.replace("yamnet", "yamnet, cache"))


# ----------------------------------------------------------------------------- set-up and installs


def readme_python() -> str:
    match = re.search(r"is Python (3\.\d+)", section("Three commands"))
    assert match, "the Three commands section must say which Python `python3` must be"
    return match.group(1)


def locked_pins() -> dict[str, str]:
    text = (ROOT / "requirements" / "lock.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.MULTILINE))


def too_new_for(python: str, pins: dict[str, str]) -> list[str]:
    """Locked packages, installed here at their pinned version, whose Requires-Python excludes
    ``python``."""
    bad = []
    for name, version in pins.items():
        try:
            meta = md.metadata(name)
        except md.PackageNotFoundError:
            continue
        spec = meta.get("Requires-Python")
        if meta["Version"] == version and spec and not SpecifierSet(spec).contains(python + ".0"):
            bad.append(f"{name}=={version} ({spec})")
    return bad


def test_readme_python_can_install_the_lock_file():
    python = readme_python()
    bad = too_new_for(python, locked_pins())
    assert not bad, f"README says Python {python}, but the lock file holds {bad}"
    env = (ROOT / "environment.yml").read_text()
    assert re.search(rf"^\s*- python={re.escape(python)}\s*$", env, re.MULTILINE), (
        f"environment.yml must ask for the README's Python {python}")


def test_python_check_rejects_a_too_old_python():
    assert md.version("numpy").startswith("2."), "this venv's numpy"
    assert too_new_for("3.8", {"numpy": md.version("numpy")}), "numpy 2 needs Python >= 3.9"


def test_readme_names_the_debian_packages_setup_installs():
    script = (ROOT / "requirements" / "setup.sh").read_text()
    packages = re.search(r"^DEBIAN_PACKAGES=\(([^)]*)\)", script, re.MULTILINE).group(1).split()
    bullet = section("Three commands").split("- **Set up**", 1)[1].split("\n- **", 1)[0]
    missing = [p for p in packages if f"`{p}`" not in bullet]
    assert not missing, f"README's set-up bullet does not name {missing} (setup.sh installs them)"
    counts = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    said = re.search(r"installs (\w+) optional Debian packages", bullet).group(1)
    assert counts[said] == len(packages), f"README says {said}, setup.sh has {len(packages)}"


def pip_extras(text: str) -> list[list[str]]:
    """The extras of every ``pip install -e "...[a,b]"`` in ``text``."""
    return [m.split(",") for m in re.findall(r'pip install (?:-q )?-e "[^"\[]*\[([a-z,]+)\]"', text)]


def test_readme_pip_extras_exist_and_match_the_notebooks_colab_cell():
    extras = set(pyproject()["project"]["optional-dependencies"])
    shown = pip_extras(README)
    assert len(shown) >= 2, "the README shows the existing-environment and the Colab install"
    for group in shown:
        assert set(group) <= extras, f"README installs unknown extras {set(group) - extras}"
    named = set(re.findall(r"More extras: (.*?)\. conda", README, re.DOTALL)[0].split("`")[1::2])
    named = {n for n in named if re.fullmatch(r"[a-z]+", n)}
    assert named and named <= extras, f"README names extras {named - extras} that do not exist"
    notebook = (ROOT / "notebooks" / "00_quickstart.ipynb").read_text()
    cell = pip_extras(notebook.replace('\\"', '"'))
    assert cell and all(sorted(c) == sorted(shown[-1]) for c in cell), (
        f"the notebooks' Colab cell installs {cell}; README's Colab steps say {shown[-1]}")


def test_readme_tinysoundfont_requirement_is_the_colab_one():
    from zskit.colab import RENDERER_REQUIREMENT

    shown = set(re.findall(r'pip install --no-deps "([^"]+)"', README))
    assert shown == {RENDERER_REQUIREMENT}, (shown, RENDERER_REQUIREMENT)


def declared_packages() -> set[str]:
    project = pyproject()["project"]
    requirements = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        requirements += group
    return {canonicalize_name(re.match(r"[A-Za-z0-9_.\-]+", r).group(0)) for r in requirements}


def test_offline_assets_come_from_declared_packages():
    rows = re.findall(r"^\| [^|]+ \| (.+?) \| [^|]+ \|$", section("Offline assets"), re.MULTILINE)
    pypi = [cell.strip("`") for cell in rows if not cell.startswith(("from", "---", "Debian"))]
    assert len(pypi) >= 5, f"expected the PyPI rows of the Offline assets table, found {pypi}"
    undeclared = [p for p in pypi if canonicalize_name(p) not in declared_packages()]
    assert not undeclared, f"Offline assets names packages pyproject.toml does not declare: {undeclared}"


def test_environment_variables_in_readme_are_the_ones_zskit_reads():
    source = "\n".join(p.read_text() for p in (ROOT / "zskit").rglob("*.py"))
    read = set(re.findall(r"environ(?:\.get\(|\[)\"(ZSKIT_[A-Z_]+)\"", source))
    shown = set(re.findall(r"`(ZSKIT_[A-Z_]+)`", README)) - {"ZSKIT_REPOSITORY"}  # a cell variable
    assert read, "zskit reads its environment variables with os.environ.get(\"ZSKIT_...\")"
    assert shown == read, f"README only: {shown - read}; read by zskit, not in README: {read - shown}"


def test_notebook_table_lists_every_notebook():
    table = set(re.findall(r"^\| `(\d\d_[a-z_]+\.ipynb)` \|", section("Notebooks"), re.MULTILINE))
    actual = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert table == actual, f"README only: {table - actual}; not in README: {actual - table}"


# ----------------------------------------------------------------------------- the default corpus


def number(pattern: str, text: str | None = None) -> float:
    text = " ".join((text if text is not None else section("The default corpus")).split())
    match = re.search(pattern, text)
    assert match, f"README's default-corpus section no longer matches {pattern!r}"
    return float(match.group(1).replace(",", ""))


def test_corpus_facts_are_the_generator_defaults():
    from zskit.data.gm import CLASSES, FAMILIES, OPENMIC_CLASSES, hierarchy
    from zskit.data.synth import DEFAULT_CLIPS, SMOKE_CLIPS, SynthConfig

    config = SynthConfig()
    assert number(r"\*\*(\d+) classes\*\*") == len(CLASSES)
    assert number(r"OpenMIC-2018's (\d+) instruments first") == len(OPENMIC_CLASSES)
    assert [c.id for c in CLASSES[: len(OPENMIC_CLASSES)]] == list(OPENMIC_CLASSES)
    listed = re.search(r"instruments first \(([^)]*)\)", section("The default corpus")).group(1)
    assert [n.strip() for n in listed.replace("\n", " ").split(",")] == [
        c.name for c in CLASSES[: len(OPENMIC_CLASSES)]]
    assert number(r"then (\d+) more GM instruments") == len(CLASSES) - len(OPENMIC_CLASSES)
    assert number(r"\*\*Hierarchy\*\* \(paper 3\): (\d+) families") == len(hierarchy()) == len(
        FAMILIES)
    assert number(r"\*\*Clips\*\*: (\d+) s") == config.clip_seconds
    assert number(r"(\d+) kHz mono") * 1000 == config.sample_rate
    assert number(r"1-(\d) instruments") == config.max_instruments
    assert number(r"positives with probability ([\d.]+)") == config.p_annotate_positive
    assert number(r"negatives ([\d.]+);") == config.p_annotate_negative
    splits = re.search(r"\*\*Splits\*\* (\d+)/(\d+)/(\d+)", section("The default corpus")).groups()
    assert tuple(int(s) / 100 for s in splits) == config.split_fractions
    assert number(r"Default ([\d,]+) clips") == DEFAULT_CLIPS
    assert number(r"smoke (\d+)\.") == SMOKE_CLIPS


def test_corpus_fact_check_can_fail():
    with pytest.raises(AssertionError, match="no longer matches"):
        number(r"\*\*(\d+) classes\*\*", "**fifty classes**")
