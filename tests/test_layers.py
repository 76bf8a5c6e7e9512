"""No import cycles anywhere in the shipped packages.

import-linter (run by scripts/test.sh) checks the direction between packages; this
checks what it does not: that no module reaches itself again through its imports,
including imports inside functions (a lazy import is still a dependency) and imports
only made for type checking. grimp is import-linter's own graph builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grimp

PACKAGES = ("integrity", "config", "archive", "ingest", "records", "retention", "docks",
            "evidock")


def strongly_connected(adj: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: every component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, iter(adj[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next((w for w in edges if w in adj), None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(adj[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_tarjan_finds_a_planted_cycle() -> None:
    adj = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["e2"], "e2": []}
    assert strongly_connected(adj) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_shipped_packages() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False)
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(adj) > 100  # the whole tree was read, not an empty graph
    assert strongly_connected(adj) == []
