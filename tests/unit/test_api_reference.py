"""The README's list of public names is the code's: a test that fails with what to change.

The block under "### Every public name" in README.md holds one line per
public name of ``SxServer``, ``SxClient`` and the client's errors, plus the
export lists of ``shotx.server`` and ``shotx.client``. This test renders the
same lines from the code and compares the two sets; its failure says which
lines to add to the block and which to remove. To print the whole block as
the code has it now:

    .venv/bin/python tests/unit/test_api_reference.py

A line is written as ``[async ]Class.name(signature)`` for a method (no
annotations; defaults as ``repr``; ``Class(signature)`` for the
constructor), ``Class.name: property`` for a property, and ``Class.name``
for an attribute: a class attribute of ours, or one ``__init__`` assigns to
``self``. Names from outside the package (``Exception``'s ``args``,
``OSError``'s ``errno``) are not ours and are left out. A long line may be
wrapped after a comma; the lines that follow it, indented, continue it.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import shotx.client
import shotx.server
from shotx.client import errors

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Every public name"
CLASSES = [shotx.server.SxServer, shotx.client.SxClient, errors.SxError, errors.AuthError, errors.MessageError,
           errors.JoinRefused, errors.SxTimeoutError, errors.PayloadTooLarge, errors.ConnectError, errors.OutboxFull]


def _ours(owner: type) -> bool:
    return owner.__module__.startswith("shotx.")


def signature(fn: object, drop_self: bool) -> str:
    """``(a, *, b=1)``: names, kinds and defaults, no annotations."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def init_attributes(cls: type) -> set[str]:
    """Public names the ``__init__`` of ``cls`` and its bases of ours assign to ``self``."""
    names: set[str] = set()
    for owner in cls.__mro__:
        init = owner.__dict__.get("__init__")
        if not _ours(owner) or init is None:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                for leaf in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) \
                            and leaf.value.id == "self" and not leaf.attr.startswith("_"):
                        names.add(leaf.attr)
    return names


def member_line(cls: type, name: str) -> str:
    owner = next(klass for klass in cls.__mro__ if name in klass.__dict__)
    found = owner.__dict__[name]
    if isinstance(found, property):
        return f"{cls.__name__}.{name}: property"
    if isinstance(found, (staticmethod, classmethod)):
        kind = "staticmethod" if isinstance(found, staticmethod) else "classmethod"
        return f"{cls.__name__}.{name}{signature(found.__func__, kind == 'classmethod')}  # {kind}"
    if inspect.isfunction(found):
        prefix = "async " if inspect.iscoroutinefunction(found) else ""
        return f"{prefix}{cls.__name__}.{name}{signature(found, True)}"
    return f"{cls.__name__}.{name}"


def class_lines(cls: type) -> list[str]:
    """The constructor, then every public member and attribute of ours, by name."""
    members = {name for klass in cls.__mro__ if _ours(klass) for name in klass.__dict__ if not name.startswith("_")}
    lines = [f"{cls.__name__}{signature(cls.__init__, True)}"]
    lines += [member_line(cls, name) for name in sorted(members)]
    lines += [f"{cls.__name__}.{name}" for name in sorted(init_attributes(cls) - members)]
    return lines


def code_lines() -> list[str]:
    lines = [f"{module.__name__} exports: {', '.join(sorted(module.__all__))}" for module in (shotx.server, shotx.client)]
    for cls in CLASSES:
        lines += class_lines(cls)
    return lines


def readme_lines(text: str) -> list[str]:
    """The lines of the fenced block under ``HEADING``, continuation lines joined."""
    start = text.index(HEADING)
    block = re.search(r"```[a-z]*\n(.*?)```", text[start:], re.S)
    assert block is not None, f"README.md: no code block under {HEADING!r}"
    lines: list[str] = []
    for raw in block.group(1).splitlines():
        if raw[:1].isspace() and lines:
            lines[-1] += " " + raw.strip()
        elif raw.strip():
            lines.append(raw.strip())
    return lines


def wrapped(line: str, width: int = 100) -> str:
    """The line as the README may hold it: wrapped after commas, continuations indented."""
    parts, current = [], ""
    for piece in re.split(r"(?<=,) ", line):
        if current and len(current) + 1 + len(piece) > width:
            parts.append(current)
            current = "    " + piece
        else:
            current = f"{current} {piece}" if current else piece
    return "\n".join([*parts, current])


def test_the_readme_lists_every_public_name_with_its_signature() -> None:
    documented, code = readme_lines(README.read_text(encoding="utf-8")), code_lines()
    missing = [line for line in code if line not in documented]
    extra = [line for line in documented if line not in code]
    assert not missing and not extra, (
        f"README.md's block under {HEADING!r} is not what the code has.\n"
        + (f"Add these lines:\n{chr(10).join(map(wrapped, missing))}\n" if missing else "")
        + (f"Remove these lines:\n{chr(10).join(map(wrapped, extra))}\n" if extra else "")
        + "(The whole block as the code has it: .venv/bin/python tests/unit/test_api_reference.py)")


def test_the_parser_joins_wrapped_lines_and_renders_what_it_reads() -> None:
    text = f"{HEADING}\n\n```text\nA(x,\n    y=1)\nA.b: property\n```\n"
    assert readme_lines(text) == ["A(x, y=1)", "A.b: property"]
    assert readme_lines(wrapped("B(" + ", ".join(f"p{n}=None" for n in range(40)) + ")").join(
        [f"{HEADING}\n```\n", "\n```"]))[0] == "B(" + ", ".join(f"p{n}=None" for n in range(40)) + ")"


def test_every_kind_of_name_is_rendered() -> None:
    class Sample:
        __module__ = "shotx.sample"
        limit = 3

        def __init__(self, a: int, *, b: str = "x") -> None:
            self.seen, self._hidden = a, b

        @property
        def size(self) -> int:
            return 1

        async def go(self, n: int = 2) -> None:
            return None

    assert class_lines(Sample) == ["Sample(a, *, b='x')", "async Sample.go(n=2)", "Sample.limit",
                                   "Sample.size: property", "Sample.seen"]


if __name__ == "__main__":
    print("\n".join(wrapped(line) for line in code_lines()))
