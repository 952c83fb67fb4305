"""The dependency direction, enforced. From the top: the command line
(sweeper/cli.py, which nothing imports, and the commands it runs, sweeper/commands/);
the driver, the reports (sweeper/reports/, which read the record but never drive a
sweep) and the benchmarks; below them the record (MLflow), the cluster, the search
kinds and the spec; trainers/ at the bottom, which imports neither Ray, MLflow nor
anything above it, so a trial can be run, tested and reused alone."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_TRAINERS = ("ray", "mlflow", "sweeper")
# What the reports may use above themselves: the record's read side, the spec, the search
# kinds, the errors; never the driver, the cluster or the record's writer.
REPORTS_MAY_IMPORT = ("sweeper.record.", "sweeper.spec.", "sweeper.search", "sweeper.errors")
REPORTS_MAY_NOT_IMPORT = ("sweeper.record.writer", "sweeper.record.delivery")


def imported_modules(path: Path, members: bool = False) -> set[str]:
    """What `path` imports, lazy imports included; `members`: also `package.name` for
    each `from package import name` (which may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if members:
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "trainers").glob("*.py")), ids=lambda p: p.name)
def test_trainers_import_no_orchestration(path: Path) -> None:
    bad = {name for name in imported_modules(path)
           if name.split(".")[0] in FORBIDDEN_IN_TRAINERS}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_the_driver_and_the_job_client_import_ray() -> None:
    users = {path.relative_to(ROOT).as_posix() for path in (ROOT / "sweeper").rglob("*.py")
             if any(name.split(".")[0] == "ray" for name in imported_modules(path))}
    outside = {user for user in users if not user.startswith("sweeper/driver/")}
    assert outside == {"sweeper/cluster/submit.py"}  # the job client
    assert "sweeper/driver/sweep.py" in users  # the walk did see the driver


@pytest.mark.integration
def test_process_settings_import_no_ray() -> None:
    """The entry points apply them before Ray is imported: Ray reads some at import."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, sweeper.cluster.driver_process, "
                           "sweeper.commands.dry_run; print('ray' in sys.modules)"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"


def test_nothing_imports_the_command_line() -> None:
    for package in ("sweeper", "trainers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "cli.py":
                assert "sweeper.cli" not in imported_modules(path), path


def _is_command_line(path: Path) -> bool:
    return path.name == "cli.py" or "commands" in path.parts


def test_only_the_command_line_imports_the_commands_and_the_reports() -> None:
    for path in (ROOT / "sweeper").rglob("*.py"):
        if _is_command_line(path):
            continue
        allowed = ("sweeper.reports",) if "reports" in path.parts else ()
        used = {name for name in imported_modules(path)
                if name.startswith(("sweeper.reports", "sweeper.commands"))
                and not name.startswith(allowed or ("-",))}
        assert not used, f"{path.relative_to(ROOT)} imports {sorted(used)}"


def test_the_reports_read_the_record_and_never_drive_a_sweep() -> None:
    for path in (ROOT / "sweeper" / "reports").glob("*.py"):
        upward = {name for name in imported_modules(path) if name.startswith("sweeper.")
                  and not name.startswith("sweeper.reports")}
        bad = {name for name in upward if not name.startswith(REPORTS_MAY_IMPORT)
               or name.startswith(REPORTS_MAY_NOT_IMPORT)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_spec_and_the_search_kinds_import_no_ray_mlflow_or_torch() -> None:
    """`sweeper validate` and `run --dry-run` must start in about a second."""
    for folder in ("spec", "search"):
        for path in (ROOT / "sweeper" / folder).glob("*.py"):
            heavy = {name for name in imported_modules(path)
                     if name.split(".")[0] in ("ray", "mlflow", "torch", "torchvision")}
            assert not heavy, f"{path.relative_to(ROOT)} imports {sorted(heavy)}"


def test_no_module_imports_itself_back() -> None:
    """No circle among the project's modules, lazy (in-function) imports included."""
    import graphlib

    modules = {}
    for package in ("sweeper", "trainers"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path

    graph = {name: (imported_modules(path, members=True) & modules.keys()) - {name}
             for name, path in modules.items()}
    assert len(graph) > 60  # the walk saw the project
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle


@pytest.mark.parametrize(("argv", "absent"), [
    (["validate", "search_spaces/demo.yaml"], ("torch", "ray", "mlflow")),
    (["run", "search_spaces/simclr_grid.yaml", "--dry-run"], ("torch", "ray", "mlflow")),
    (["run", "search_spaces/simclr_optuna.yaml", "--dry-run"], ("torch", "ray", "mlflow")),
    (["report", "--help"], ("torch", "ray", "mlflow")),
    (["ui", "--help"], ("torch", "ray", "mlflow")),
    (["status", "absent", "--tracking-uri", "sqlite:///absent/mlflow.db"], ("torch", "ray")),
])
@pytest.mark.integration
def test_commands_that_only_read_import_neither_torch_nor_ray(argv: list[str],
                                                              absent: tuple[str, ...]) -> None:
    """They start in about a second: torch alone takes seconds to import."""
    import subprocess
    import sys

    code = ("import sys\nfrom sweeper.cli import main\ntry:\n    main(" + repr(argv) + ")\n"
            "except SystemExit:\n    pass\n"
            "print([m for m in " + repr(list(absent)) + " if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
