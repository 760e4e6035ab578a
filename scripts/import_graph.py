"""The import graph of WeakSegLib, from the source (ast), with the checks DESIGN.md "Layout" asks:
no cycle between modules, no import of another module's private (_name) names, and the layer
direction cli/slicer → pipeline/inference/export → stages → models/explain/data → runtime/config.

    python scripts/import_graph.py [--dot graph.dot]     # prints layer edges and any violation

Counts every import, also those inside functions (a lazy import is still a dependency).
Exit status 1 when a cycle or a private import is found.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "WeakSegLib"
#: layer of each top-level part; an import may only go to the same or a lower layer
LAYERS = {"cli": 5, "slicer": 5, "pipeline": 4, "inference": 4, "export": 4, "evaluation": 4,
          "stages": 3, "mixed": 3, "postprocess": 2,
          "models": 2, "explain": 2, "data": 2, "baselines": 2, "metrics": 1, "manifest": 1,
          "progress": 1, "runtime": 0, "config": 0, "events": 0, "errors": 0, "__init__": 0}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every WeakSegLib import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("WeakSegLib"):
                names = [a.name for a in node.names]
                if not node.module and node.level:       # from . import x → modules
                    found += [(f"{target}.{n}", []) for n in names]
                else:
                    found.append((target, names))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("WeakSegLib")]
    return found


def part(module: str) -> str:
    if module == "WeakSegLib.data.errors":     # the error type every layer raises: a leaf
        return "errors"
    if module == "WeakSegLib.evaluation.metrics":     # Dice & co., which stages report too
        return "metrics"
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dot", type=Path, help="also write the module graph as Graphviz dot")
    args = parser.parse_args()
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private, upward = [], []
    for module, path in modules.items():
        for target, names in imports(path):
            resolved = target if target in modules else target.rsplit(".", 1)[0]
            if resolved not in modules:
                continue
            graph[module].add(resolved)
            for name in names:
                if name.startswith("_") and not name.startswith("__") and \
                        part(resolved) != part(module):
                    private.append(f"{module} imports {resolved}.{name}")
            if LAYERS.get(part(resolved), 0) > LAYERS.get(part(module), 0):
                upward.append(f"{module} → {resolved}")
    cycles = find_cycles(graph)
    layer_edges = sorted({(part(a), part(b)) for a, bs in graph.items() for b in bs
                          if part(a) != part(b)})
    print("layer edges:")
    for a, b in layer_edges:
        print(f"  {a} → {b}")
    print(f"\n{len(modules)} modules, {sum(len(v) for v in graph.values())} imports")
    print(f"cycles: {len(cycles)}" + "".join(f"\n  {' → '.join(c)}" for c in cycles))
    print(f"private imports across parts: {len(private)}" + "".join(f"\n  {p}" for p in private))
    print(f"imports against the layer order: {len(upward)}" + "".join(f"\n  {u}" for u in upward))
    if args.dot:
        args.dot.write_text("digraph weakseg {\n" + "".join(
            f'  "{a}" -> "{b}";\n' for a, b in layer_edges) + "}\n")
    return 1 if cycles or private else 0


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a list."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
