"""The parts of geodns (the folders under geodns/, DESIGN.md "Parts and how data flows") import
each other one way only: no loops, not even through an import inside a function.

Imports are read from the source with ``ast`` (every ``import`` and ``from ... import`` anywhere in
a module, function bodies included), except those under ``if TYPE_CHECKING:``: they never run, and
a type named in an annotation is not a dependency at run time (``http/`` names ``process.server``'s
``Server`` that way, and ``process/`` starts ``http/``).  A loop is reported as the chain of parts
with the ``file:line`` of each import that closes it.

No edge is exempt (``ALLOWED_LOOP_EDGES`` is empty); one that must stay goes there with its reason.
"""

from __future__ import annotations

import ast
import gc
from collections import defaultdict
from pathlib import Path

import geodns

PACKAGE = Path(geodns.__file__).resolve().parent

# The parts from the bottom of DESIGN.md's picture up: a part imports only the parts before it here.
# Finding no loop is not enough: an import that points up (config/ importing gslb/, say) is one
# import away from a loop, so it fails here first.  A new part goes in at its place in the picture.
LAYERS: tuple[str, ...] = (
    "errors",  # geodns/errors.py: the Problem/ConfigError every part raises
    "logs",  # geodns/logs.py: log set-up, used by the commands
    "segmented",  # geodns/segmented.py (the ecs branch): a bounded cache the fast path keeps; imports nothing
    "dns",  # sockets and wire format: nothing above it
    "zones",  # zone files into the lookup structure
    "dnssec",  # keys and signing over zones
    "config",  # the YAML config's typed model; reads key files through dnssec/ (config/load.py)
    "geo",  # where a client is
    "state",  # the live table: the store and the snapshot
    "gslb",  # the policy chain over a snapshot
    "discovery",  # the agent, and the records its leases become (records.py, read by the DNS side)
    "answer",  # engine, fast path, GSLB responder
    "health",  # the checker
    "http",  # metrics, admin API, status page
    "process",  # server, supervisor, workers: wires the parts
    "tooling",  # local stack, drills, simulated ingress
    "cli",  # every `geodns` command
    "__main__",
)

# (from part, to part) -> why it may close a loop.  Empty: every loop is a defect.
ALLOWED_LOOP_EDGES: dict[tuple[str, str], str] = {}

# Imports under ``if TYPE_CHECKING:`` that point back up the picture (the part they name imports,
# at run time, the part that names it).  They never run; each is listed here with its reason.
TYPE_ONLY_BACK_EDGES: dict[tuple[str, str], str] = {
    ("http", "process"): "http/ annotates its handlers with process.server.Server (the object whose "
    "snapshot, counters and store the views read); process/ starts http/. A Protocol for Server "
    "would restate its attributes in http/: left for issue 11's later steps.",
}


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` with the garbage collector held off.  On CPython 3.11 a finalizer that runs
    while the AST is being built (an earlier test's abandoned coroutine, say) upsets the parser's
    recursion count: "SystemError: AST constructor recursion depth mismatch"."""
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        gc.enable()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``); not its ``else``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                skipped.update(id(n) for n in ast.walk(statement))
    return skipped


def _exists(root: Path, module: str) -> bool:
    path = root.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _as_file(root: Path, module: str) -> str:
    """A package stands for its ``__init__`` module, so ``geodns.tooling.drill`` is in tooling/drill."""
    return f"{module}.__init__" if (root.parent.joinpath(*module.split(".")) / "__init__.py").is_file() else module


def imports(root: Path, type_checking: bool = False) -> list[tuple[str, str, str]]:
    """(importing module, imported module, "file:line") for every run-time import inside ``root``;
    with ``type_checking``, the imports under ``if TYPE_CHECKING:`` instead."""
    found = []
    top = root.name
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(root, path)
        package = module if is_package else module.rpartition(".")[0]
        source = _as_file(root, module)
        tree = _parse(path)
        skipped = _type_checking_nodes(tree)
        where = f"{path.relative_to(root.parent)}"
        for node in ast.walk(tree):
            if (id(node) in skipped) != type_checking:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from . import x` imports the module x when there is one, else a name from base.
                targets = [
                    f"{base}.{alias.name}" if _exists(root, f"{base}.{alias.name}") else base for alias in node.names
                ]
            for target in targets:
                if target == top or target.startswith(top + "."):
                    found.append((source, _as_file(root, target), f"{where}:{node.lineno}"))
    return found


def part_of(module: str, depth: int = 1) -> str:
    """``geodns.answer.engine`` -> ``answer``; a module at the top (``geodns.errors``) is its own part,
    and ``geodns/__init__.py`` is ``geodns``.  With depth 2, a sub-package inside a part is a node of
    its own (``geodns.tooling.drill.report`` -> ``tooling/drill``, ``geodns.tooling.dnsclient`` -> ``tooling``)."""
    names = module.split(".")[1:]
    if names == ["__init__"]:
        return "geodns"
    if len(names) == 1:
        return names[0]
    return "/".join(names[: min(depth, len(names) - 1)])


def part_graph(root: Path, depth: int = 1) -> dict[tuple[str, str], list[str]]:
    """(from part, to part) -> every "file:line" that makes that arrow."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, target, where in imports(root):
        a, b = part_of(source, depth), part_of(target, depth)
        if a != b and (a, b) not in ALLOWED_LOOP_EDGES:
            edges[(a, b)].append(where)
    return edges


def find_loop(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """One cycle of parts, as [a, b, ..., a], or None."""
    successors: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(edges):
        successors[a].append(b)
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in successors[node]:
            if colour.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in colour:
                loop = visit(nxt)
                if loop:
                    return loop
        path.pop()
        colour[node] = 2
        return None

    for node in sorted(successors):
        if node not in colour:
            loop = visit(node)
            if loop:
                return loop
    return None


def describe(loop: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    lines = [" -> ".join(loop)]
    for a, b in zip(loop, loop[1:]):
        lines.append(f"  {a} -> {b}: " + ", ".join(edges[(a, b)]))
    return "\n".join(lines)


def test_the_parts_import_each_other_one_way():
    edges = part_graph(PACKAGE)
    loop = find_loop(edges)
    assert loop is None, "import loop between parts:\n" + describe(loop, edges)


def test_every_part_imports_only_the_parts_below_it():
    """Each arrow points down ``LAYERS`` (DESIGN.md's picture, bottom first); a part not in the
    table fails too, so a new part gets its place on purpose."""
    edges = part_graph(PACKAGE)
    parts = {part for edge in edges for part in edge}
    assert parts - set(LAYERS) == set(), "parts missing from LAYERS in tests/test_layers.py"
    rank = {part: i for i, part in enumerate(LAYERS)}
    upward = {f"{a} -> {b}": where for (a, b), where in edges.items() if rank[b] >= rank[a]}
    assert upward == {}, "imports that point up the picture"


def test_the_sub_packages_of_a_part_import_each_other_one_way():
    """tooling/drill uses tooling/stack and the shared tooling/dnsclient.py; stack must not use drill."""
    edges = part_graph(PACKAGE, depth=2)
    loop = find_loop(edges)
    assert loop is None, "import loop between sub-packages:\n" + describe(loop, edges)


def _reaches(edges: dict[tuple[str, str], list[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


def test_type_only_imports_that_point_back_are_listed_with_their_reason():
    runtime = part_graph(PACKAGE)
    back = {}
    for source, target, where in imports(PACKAGE, type_checking=True):
        a, b = part_of(source), part_of(target)
        if a != b and _reaches(runtime, b, a):
            back.setdefault((a, b), []).append(where)
    assert set(back) == set(TYPE_ONLY_BACK_EDGES), back


def test_dns_knows_bytes_and_nothing_above_it():
    """DESIGN.md: dns/ (sockets, wire format) imports no other part; answer/ calls into it, not back."""
    outside = {
        where: target for source, target, where in imports(PACKAGE) if part_of(source) == "dns" != part_of(target)
    }
    assert outside == {}


def test_the_answer_path_does_not_reach_the_process_or_the_commands():
    edges = part_graph(PACKAGE)
    for below in ("answer", "dnssec", "gslb", "zones", "geo", "state", "dns", "discovery"):
        for above in ("process", "cli", "http", "tooling"):
            assert (below, above) not in edges, f"{below} imports {above}: {edges[(below, above)]}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_loop_through_a_function_level_import_is_found_and_named(tmp_path):
    """The reader itself: a loop hidden inside a function is a loop; one under TYPE_CHECKING is not."""
    pkg = _write(
        tmp_path / "geodns",
        {
            "__init__.py": "",
            "a/__init__.py": "",
            "a/one.py": "from ..b import two\n",
            "b/__init__.py": "",
            "b/two.py": "import os\n\n\ndef later():\n    from ..a.one import x\n    return x\n",
            "c/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import one\n",
            "a/three.py": "from .. import c\n",
        },
    )
    edges = part_graph(pkg)
    assert find_loop(edges) == ["a", "b", "a"]
    assert edges[("b", "a")] == ["geodns/b/two.py:5"]
    assert ("c", "a") not in edges  # under TYPE_CHECKING: never runs
    assert "geodns/b/two.py:5" in describe(["a", "b", "a"], edges)


def test_top_level_modules_and_relative_names_resolve(tmp_path):
    pkg = _write(
        tmp_path / "geodns",
        {
            "__init__.py": "",
            "errors.py": "",
            "dns/__init__.py": "",
            "dns/wire.py": "from ..errors import Problem\nfrom . import names\n",
            "dns/names.py": "",
            "answer/__init__.py": "",
            "answer/engine.py": "from ..dns import wire, names\nimport geodns.dns.wire\n",
        },
    )
    edges = part_graph(pkg)
    assert set(edges) == {("dns", "errors"), ("answer", "dns")}
    assert edges[("answer", "dns")] == [
        "geodns/answer/engine.py:1",
        "geodns/answer/engine.py:1",
        "geodns/answer/engine.py:2",
    ]


def test_the_dns_side_does_not_load_the_kubernetes_client():
    """discovery/records.py is read by every DNS process; only discovery/agent and its helpers (run by
    `geodns agent`) may import kubernetes_asyncio."""
    loaders = sorted(
        where
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(_parse(path))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        if name.startswith("kubernetes_asyncio")
        for where in [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"]
    )
    assert all(where.startswith("geodns/discovery/kube") for where in loaders), loaders


def test_answering_uses_the_responder_only_through_gslb_api():
    """answer/engine.py, fastpath.py and subnets.py ask the GSLB responder only what ``GslbAPI`` names
    (issue 11: the fast path reached into the responder's counters, random generator, clients and
    live view).  Every ``<something>.responder.x`` and ``responder.x`` in them is read from the source."""
    from geodns.answer.gslb_api import GslbAPI

    allowed = {name for name in vars(GslbAPI) if not name.startswith("_")}
    used: dict[str, list[str]] = defaultdict(list)
    for module in ("engine.py", "fastpath.py", "subnets.py"):
        path = PACKAGE / "answer" / module
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "responder") or (
                isinstance(owner, ast.Attribute) and owner.attr == "responder"
            ):
                used[node.attr].append(f"answer/{module}:{node.lineno}")
    assert used, "the reader found no use of the responder: the test would pass whatever the code did"
    outside = {attr: where for attr, where in used.items() if attr not in allowed}
    assert outside == {}, f"responder attributes outside GslbAPI: {outside}"
