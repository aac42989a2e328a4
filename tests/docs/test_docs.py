"""The documentation tells the truth about the code it describes.

For README.md, QUICK_START.md, CONTRIBUTING.md and every page under docs/:
* every relative link (and #anchor) resolves;
* every ``make`` target mentioned exists in the Makefile;
* every ``agenttracer`` command mentioned — in code blocks and in inline code — exists, with every
  option it shows;
* every ``AGENTTRACER_*`` variable mentioned is one something actually reads;
and docs/configuration.md lists every server setting with its real default.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from agenttracer.cli import app
from agenttracer.server.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "QUICK_START.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
DOC_IDS = [str(p.relative_to(ROOT)) for p in DOCS]

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
ENV_VAR = re.compile(r"\bAGENTTRACER_[A-Z0-9_]*[A-Z0-9]\b")
SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}


def code_snippets(text: str) -> list[str]:
    """Lines of fenced code blocks (without shell comments), plus inline code spans from the prose."""
    blocks = [body for lang, body in FENCE.findall(text) if lang.strip() in SHELL_LANGS]
    prose = FENCE.sub("", text)
    lines = [re.sub(r"(^|\s)#.*$", "", line) for block in blocks for line in block.splitlines()]
    return lines + INLINE.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


# ---------------------------------------------------------------------------- links


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md":
            headings = {slug(h) for h in re.findall(r"^#+\s+(.*)$", dest.read_text(), re.M)}
            if anchor not in headings:
                broken.append(target)
    assert not broken, f"{doc.name}: broken links {broken}"


# ---------------------------------------------------------------------------- make


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_make_targets_exist(doc: Path) -> None:
    mentioned = {
        m.group(1)
        for snippet in code_snippets(doc.read_text())
        for m in re.finditer(r"(?:^|[\s;&(])make\s+([A-Za-z][\w.-]*)", snippet)
    }
    assert mentioned <= make_targets(), f"{doc.name} mentions unknown make targets {mentioned - make_targets()}"


# ---------------------------------------------------------------------------- agenttracer commands


@cache
def cli_root() -> Any:
    return typer.main.get_command(app)


def invocations(snippet: str) -> list[list[str]]:
    """The argument lists after each ``agenttracer`` in a snippet, up to a shell operator or comment."""
    found = []
    tokens = snippet.replace("$(", " ").split()
    for i, tok in enumerate(tokens):
        if tok.strip("`'\"") != "agenttracer" or (i and tokens[i - 1] in ("import", "from", "pip", "install")):
            continue
        args = []
        for raw in tokens[i + 1 :]:
            if raw in SHELL_STOP or raw.startswith("#"):
                break
            args.append(raw.strip("`'\")"))
        found.append(args)
    return found


def arg_choices(param: Any) -> list[str]:
    """The values a positional argument accepts, if it is a choice (Typer ships its own click, so we
    look at the parameter's shape rather than its class)."""
    for holder in (getattr(param, "type_descriptor", None), getattr(param, "type", None)):
        choices = getattr(holder, "choices", None)
        if choices:
            return [str(getattr(c, "value", c)) for c in choices]
    return []


def check_invocation(args: list[str]) -> list[str]:
    """Problems with ``agenttracer ARGS``: unknown subcommands, options or choices."""
    cmd = cli_root()
    path = ["agenttracer"]
    rest = list(args)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        if name in ("…", "...") or "<" in name or name.isupper():
            return []  # a placeholder such as <command>
        alternatives = name.split("|")
        unknown = [alt for alt in alternatives if alt not in cmd.commands]
        if unknown:
            return [f"`{' '.join(path)}` has no subcommand {unknown}"]
        if len(alternatives) > 1:
            return [p for alt in alternatives for p in check_invocation([*path[1:], alt, *rest])]
        path.append(name)
        cmd = cmd.commands[name]
    problems = []
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    choice_args = [(p, arg_choices(p)) for p in cmd.params if p.param_type_name == "argument" and arg_choices(p)]
    positional = [t for t in rest if not t.startswith("-")]
    for tok in rest:
        if tok.startswith("-") and tok.split("=")[0] not in opts:
            problems.append(f"`{' '.join(path)}` has no option {tok.split('=')[0]}")
    for _param, choices in choice_args:
        for value in positional[:1]:
            for alt in value.split("|"):
                if alt not in choices:
                    problems.append(f"`{' '.join(path)}` does not accept {alt!r}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_agenttracer_commands_and_options_exist(doc: Path) -> None:
    problems = [
        problem
        for snippet in code_snippets(doc.read_text())
        for args in invocations(snippet)
        for problem in check_invocation(args)
    ]
    assert not problems, f"{doc.name}: {problems}"


def test_the_command_checker_catches_mistakes() -> None:
    assert check_invocation(["keys", "create", "--scope", "read"]) == []
    assert check_invocation(["keys", "destroy"]) != []
    assert check_invocation(["prune", "--older-then", "30d"]) != []
    assert check_invocation(["serve", "ingest|query"]) == []
    assert check_invocation(["serve", "database"]) != []


# ---------------------------------------------------------------------------- environment variables


def known_variables() -> set[str]:
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    try:
        from agenttracer.sdk import config as sdk_config

        known |= {ENV_PREFIX + name.upper() for name in sdk_config._DEFAULTS}
    except ImportError:
        pass
    known |= cli_variables()
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text()
    known |= set(re.findall(r"\$\{(AGENTTRACER_\w+)", compose))
    known |= set(ENV_VAR.findall((ROOT / "tests" / "support" / "db.py").read_text()))
    return known


def cli_variables() -> set[str]:
    """Variables the CLI's options read (e.g. AGENTTRACER_QUERY_URL for the read commands)."""
    import typer.main

    found: set[str] = set()
    stack: list[Any] = [typer.main.get_command(app)]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())  # groups (typer vendors its own click)
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return found


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_environment_variables_mentioned_exist(doc: Path) -> None:
    unknown = set(ENV_VAR.findall(doc.read_text())) - known_variables()
    assert not unknown, f"{doc.name} mentions variables nothing reads: {sorted(unknown)}"


# ---------------------------------------------------------------------------- configuration.md


def rendered_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`"
    return f"`{value}`"


def test_configuration_lists_every_setting_with_its_default() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = {
        cells[0].strip("` "): cells[1].strip()
        for line in text.splitlines()
        if line.startswith("| `AGENTTRACER_")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for f in fields(Settings):
        name = ENV_PREFIX + f.name.upper()
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        assert name in rows, f"docs/configuration.md does not document {name}"
        assert rows[name] == rendered_default(default), f"{name}: documented {rows[name]}, real {default!r}"


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = FENCE.search(text)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(2).splitlines() if line.strip()]
    assert commands == ["make up", "make test"]
    assert text.index("## Start on a fresh machine") < text.index("## ", text.index("## Start") + 3)
