"""No kubelb module imports itself through others, not even for type checking only.

`test_layout.py` imports every module alone in a fresh interpreter, which catches a cycle only
once it breaks an import; a cycle held together by late attribute access or `TYPE_CHECKING`
imports passes there and still ties the modules into one. This reads the import graph instead
(grimp, the library behind import-linter): every import counts, wherever it is written.
"""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> set[tuple[str, ...]]:
    """One shortest cycle through each direct import that has a way back, rotated to start at
    its smallest module so each cycle is listed once."""
    modules = graph.modules
    found = set()
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer) & modules:
            # imported -> ... -> importer, which imports `imported` again
            cycle = graph.find_shortest_chain(importer=imported, imported=importer)
            if cycle is not None:
                start = cycle.index(min(cycle))
                found.add(cycle[start:] + cycle[:start])
    return found


def test_no_import_cycles() -> None:
    found = cycles(grimp.build_graph("kubelb", cache_dir=None))
    assert not found, "\n".join(" -> ".join((*c, c[0])) for c in sorted(found))


def test_a_cycle_is_reported() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert cycles(graph) == {("p.a", "p.b", "p.c")}
