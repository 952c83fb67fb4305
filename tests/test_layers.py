"""The dependency direction, enforced: trainers/ (the training code that runs in
every worker) imports neither Ray, MLflow, nor the packages above it, so a trial
can be run, tested and reused without the orchestration."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_TRAINERS = ("ray", "mlflow", "sweeper", "reports")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "trainers").glob("*.py")), ids=lambda p: p.name)
def test_trainers_import_no_orchestration(path: Path) -> None:
    bad = {name for name in imported_modules(path)
           if name.split(".")[0] in FORBIDDEN_IN_TRAINERS}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_the_driver_and_the_job_client_import_ray() -> None:
    users = {path.relative_to(ROOT).as_posix() for package in ("sweeper", "reports")
             for path in (ROOT / package).rglob("*.py")
             if any(name.split(".")[0] == "ray" for name in imported_modules(path))}
    assert users == {"sweeper/driver.py", "sweeper/submit.py"}


def test_nothing_imports_the_command_line() -> None:
    for package in ("sweeper", "reports", "trainers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "cli.py":
                assert "sweeper.cli" not in imported_modules(path), path
