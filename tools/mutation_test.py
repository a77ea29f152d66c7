"""Mutation testing of the science: change one operator or constant at a time in the modules that compute the loss,
the attention, the detector, the heatmap codec, the metrics, the point mapping, the landmark label image, the shape
model, the error radii and the trust transforms, run the
tests that cover that module, and count a mutant as killed when a test fails. Survivors are listed for a person to
kill (a new test) or to explain (an equivalent mutant). A small tool of our own: it needs nothing but the standard
library and pytest.

Mutations, one per run (Python's ``ast``): arithmetic ``+ - * / ** //`` swapped with a partner, comparisons
``< <= > >= == !=`` swapped, ``and``/``or`` swapped, ``not`` dropped, unary minus dropped, numbers changed (0 <-> 1,
n -> n + 1, a float x -> 2x), ``True``/``False`` swapped. Docstrings and string constants are left alone. Plus a few
named mutants, the bugs this project's reviews found the suite letting through (``NAMED``).

Usage: python -m tools.mutation_test [--modules bundle/losses/central.py ...] [--limit N] [--json out.json]
       [--markdown docs/studies/mutation.md]
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bundle.errors import InputError

REPO = Path(__file__).resolve().parents[1]

# module -> the tests that should notice a change in it (the quick ones; `slow` tests are left out)
TARGETS = {
    "bundle/losses/central.py": ["tests/losses"],
    "bundle/networks/coor_transformer.py": ["tests/networks"],
    "bundle/networks/detector.py": ["tests/networks"],
    "bundle/networks/attention.py": ["tests/networks"],
    "bundle/networks/window_attention.py": ["tests/networks/test_attention_baselines.py"],
    "bundle/networks/deformable_attention.py": ["tests/networks/test_attention_baselines.py"],
    "bundle/codecs/heatmap.py": ["tests/codecs", "tests/transforms"],
    "bundle/metrics/radial_error.py": ["tests/metrics", "tests/handlers"],
    "bundle/geometry.py": ["tests/test_geometry.py", "tests/transforms"],
    "bundle/handlers/finite.py": ["tests/handlers/test_finite.py"],
    "bundle/transforms/label_map.py": ["tests/transforms/test_label_map.py"],
    "bundle/sigma/policies.py": ["tests/sigma"],
    "bundle/handlers/adaptive_sigma.py": ["tests/handlers/test_adaptive_sigma.py"],
    "bundle/transforms/patches.py": ["tests/transforms/test_patches.py"],
    "bundle/transforms/refine.py": ["tests/transforms/test_patches.py"],
    "bundle/transforms/image.py": ["tests/transforms/test_image.py", "tests/transforms/test_patches.py"],
    "bundle/shape/similarity.py": ["tests/shape"],
    "bundle/shape/model.py": ["tests/shape", "tests/transforms/test_trust.py"],
    "bundle/uncertainty/conformal.py": ["tests/uncertainty", "tests/transforms/test_trust.py"],
    "bundle/uncertainty/risk.py": ["tests/uncertainty/test_risk.py", "tests/transforms/test_trust.py"],
    "bundle/metrics/trust.py": ["tests/metrics/test_trust.py"],
    "bundle/transforms/plausibility.py": ["tests/transforms/test_trust.py"],
    "bundle/transforms/detector.py": ["tests/transforms/test_trust.py"],
    "bundle/transforms/review.py": ["tests/transforms/test_trust.py"],
    "bundle/io/formats/label_image.py": ["tests/io/test_label_image.py"],
}

# (module, what the bug is, text to find, its replacement): bugs that once got past the suite
NAMED = [
    (
        "bundle/networks/coor_transformer.py",
        "values from the sampled features instead of the input",
        "v = self.v(self._tokens(self.pool(n)))",
        "v = self.v(self._tokens(self.pool(source)))",
    ),
    ("bundle/networks/detector.py", "the detector ignores kv_strides", "int(kv_strides[s])", "1"),
    (
        "bundle/metrics/radial_error.py",
        "no tolerance in the SDR comparison",
        "errors[None] <= radii + self.tolerance",
        "errors[None] <= radii",
    ),
    (
        "bundle/uncertainty/conformal.py",
        "the conformal quantile one rank off",
        "rank = math.ceil((n + 1) * float(coverage))",
        "rank = math.ceil(n * float(coverage))",
    ),
    (
        "bundle/transforms/review.py",
        "the radius's spread and confidence features swapped",
        'torch.as_tensor(d[f"{self.prefix}spread"], dtype=torch.float64).cpu().numpy(),\n'
        '                    torch.as_tensor(d[f"{self.prefix}confidence"], dtype=torch.float64).cpu().numpy(),',
        'torch.as_tensor(d[f"{self.prefix}confidence"], dtype=torch.float64).cpu().numpy(),\n'
        '                    torch.as_tensor(d[f"{self.prefix}spread"], dtype=torch.float64).cpu().numpy(),',
    ),
]

SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every node a mutation applies to, with a description; in source order."""
    skip = _docstring_nodes(tree)
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            sites.append((node, f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
            sites.append((node, f"{type(node.ops[0]).__name__} -> {SWAPS[type(node.ops[0])].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            sites.append((node, f"drop {type(node.op).__name__}"))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, bool):
                sites.append((node, f"{node.value} -> {not node.value}"))
            elif isinstance(node.value, (int, float)):
                sites.append((node, f"{node.value!r} -> {_changed(node.value)!r}"))
    return sorted(sites, key=lambda s: (s[0].lineno, s[0].col_offset, s[1]))


def _changed(value):
    if isinstance(value, float):
        return 1.0 if value == 0 else value * 2
    return {0: 1, 1: 0}.get(value, value + 1)


class _Mutator(ast.NodeTransformer):
    def __init__(self, target: int):
        self.target, self.index = target, -1

    def _hit(self, node) -> bool:
        return id(node) == self.target

    def generic_visit(self, node):
        node = super().generic_visit(node)
        if not self._hit(node):
            return node
        if isinstance(node, ast.BinOp):
            node.op = SWAPS[type(node.op)]()
        elif isinstance(node, ast.BoolOp):
            node.op = SWAPS[type(node.op)]()
        elif isinstance(node, ast.Compare):
            node.ops = [SWAPS[type(node.ops[0])]()]
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value = (not node.value) if isinstance(node.value, bool) else _changed(node.value)
        return node


def mutants(path: Path):
    """(line, description, mutated source) for every mutation site of ``path``, then its named mutants."""
    source = path.read_text()
    for i, (node, what) in enumerate(_sites(ast.parse(source))):
        tree = ast.parse(source)  # a fresh tree per mutant: find the same site again by its position in order
        target = _sites(tree)[i][0]
        mutated = ast.unparse(ast.fix_missing_locations(_Mutator(id(target)).visit(tree)))
        yield node.lineno, what, mutated
    relative = str(path.relative_to(REPO))
    for module, what, find, replace in NAMED:
        if module == relative:
            if find not in source:
                raise InputError(f"{module}: the named mutant '{what}' no longer applies ({find!r} not found).")
            line = source[: source.index(find)].count("\n") + 1
            yield line, f"named: {what}", source.replace(find, replace, 1)


PYTEST_ARGS = ["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider"]


def run_tests(tests: list[str], timeout: int) -> bool:
    """True when the tests fail (the mutant is killed): pytest in a fresh process, on the mutated file."""
    command = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, timeout=timeout, env={**os.environ})
    except subprocess.TimeoutExpired:
        return True  # a mutant that makes the tests hang is noticed too
    return result.returncode != 0


def run_tests_forked(module: str, mutated: str, tests: list[str], timeout: int) -> bool:
    """The same verdict, faster: a child forked from this process (torch, MONAI and the package already imported)
    puts the mutant in place of the module's code, rebinds every name the package imported from it, and runs
    pytest in-process; the test modules, imported in the child, see only the mutant."""
    import importlib

    name = module[: -len(".py")].replace("/", ".")
    target = importlib.import_module(name)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            import pytest

            old = dict(vars(target))
            exec(compile(mutated, str(REPO / module), "exec"), vars(target))  # noqa: S102 - the mutant, on purpose
            replaced = {
                id(value): vars(target)[key] for key, value in old.items() if vars(target).get(key) is not value
            }
            for loaded in list(sys.modules.values()):
                if getattr(loaded, "__name__", "").startswith("bundle"):
                    for key, value in list(vars(loaded).items()):
                        if id(value) in replaced:
                            setattr(loaded, key, replaced[id(value)])
            # objects made from the module's classes at import (a registry's format readers, say) keep the old
            # class and its unmutated methods: they are turned into instances of the mutated class
            classes = {}
            for value in old.values():
                if isinstance(value, type) and isinstance(replaced.get(id(value)), type):
                    classes[id(value)] = replaced[id(value)]
            for instance in gc.get_objects():
                if id(type(instance)) in classes:
                    instance.__class__ = classes[id(type(instance))]
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = int(pytest.main([*PYTEST_ARGS, *(str(REPO / t) for t in tests)]))
        finally:
            os._exit(code)
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) != 0
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=list(TARGETS))
    parser.add_argument("--limit", type=int, default=0, help="at most this many mutants per module (0: all)")
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--no_fork", action="store_true", help="a fresh pytest process per mutant (slower)")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    import pytest  # noqa: F401

    import bundle  # noqa: F401 - imported once here, so that each forked child starts with it

    results, started = {}, time.time()
    for module in args.modules:
        path = REPO / module
        original = path.read_text()
        rows = []
        try:
            for n, (line, what, mutated) in enumerate(mutants(path)):
                if args.limit and n >= args.limit:
                    break
                # on disk in both modes: TorchScript reads a class's source from its file, and the mutant is
                # regenerated by ast (other line numbers), so a stale file fails every scripting test
                path.write_text(mutated)
                if args.no_fork or not hasattr(os, "fork"):
                    killed = run_tests(TARGETS[module], args.timeout)
                else:
                    killed = run_tests_forked(module, mutated, TARGETS[module], args.timeout)
                rows.append({"line": line, "mutation": what, "killed": killed})
                print(f"{module}:{line} {what}: {'killed' if killed else 'SURVIVED'}", flush=True)
        finally:
            path.write_text(original)
        results[module] = rows
    summary = {
        m: {"mutants": len(r), "killed": sum(x["killed"] for x in r), "survivors": [x for x in r if not x["killed"]]}
        for m, r in results.items()
    }
    total = sum(s["mutants"] for s in summary.values())
    killed = sum(s["killed"] for s in summary.values())
    report = {"mutants": total, "killed": killed, "score": killed / total if total else None, "modules": summary,
              "seconds": round(time.time() - started)}  # fmt: skip
    print(json.dumps({k: v for k, v in report.items() if k != "modules"}))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report, " ".join(["python -m tools.mutation_test", *sys.argv[1:]])))


def markdown(report: dict, command: str) -> str:
    lines = [
        "# Mutation testing",
        "",
        f"Measured by `{command}`: {report['killed']} of {report['mutants']} mutants killed "
        f"(score {100 * report['score']:.1f} %), {report['seconds']} s.",
        "",
        "| module | mutants | killed | score |",
        "|---|---|---|---|",
    ]
    for module, s in report["modules"].items():
        lines.append(
            f"| `{module}` | {s['mutants']} | {s['killed']} | {100 * s['killed'] / max(1, s['mutants']):.0f} % |"
        )
    lines += ["", "## Survivors", ""]
    for module, s in report["modules"].items():
        for row in s["survivors"]:
            lines.append(f"- `{module}:{row['line']}` {row['mutation']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
