"""The README's three commands are the ones CI runs, and the files they name exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> dict[str, str]:
    """The `command` cell of each row of the README's "Three commands" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Three commands", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (set up|main job|tests) \| `([^`]+)` \|", section, re.MULTILINE)
    return dict(rows)


def test_readme_has_three_commands():
    cmds = readme_commands()
    assert set(cmds) == {"set up", "main job", "tests"}, f"README table rows found: {sorted(cmds)}"


def test_ci_runs_exactly_the_readme_setup_and_test_commands():
    cmds = readme_commands()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    ci_commands = [ln for ln in ci_lines if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci_commands == [cmds["set up"], cmds["tests"]], (
        ".ci/run must run the README's set-up command and then its test command, nothing else; "
        f"it runs {ci_commands}"
    )


def setup_text() -> str:
    """The set-up command, with the script it runs (``bash <script>``) appended."""
    command = readme_commands()["set up"]
    script = re.match(r"bash (\S+)$", command)
    return command + ("\n" + (ROOT / script.group(1)).read_text() if script else "")


def test_setup_installs_the_lock_file_that_pins_torch():
    lock = re.search(r"-r (\S+)", setup_text()).group(1)
    pins = (ROOT / lock).read_text()
    assert re.search(r"^torch==2\.11\.0$", pins, re.MULTILINE), f"{lock} must pin the tested torch"
    assert re.search(r"^torchaudio==2\.11\.0$", pins, re.MULTILINE), f"{lock} must pin the tested torchaudio"
    assert "pyaudio" not in pins.lower().replace("drops `pyaudio`", ""), f"{lock} must not pull pyaudio"


def test_no_timing_placeholders_left_in_readme():
    text = (ROOT / "README.md").read_text()
    left = re.findall(r"\b(?:TIME|STATUS|SYNTH)_[A-Z0-9_]+\b", text)
    assert not left, f"README still has placeholders {left}: measure and fill them in"


def test_readme_encoder_table_is_the_registry_table():
    from zskit.encoders.registry import weights_markdown

    text = (ROOT / "README.md").read_text()
    assert weights_markdown() in text, (
        "README's encoder table is stale: paste the output of `zskit encoders` into it"
    )
