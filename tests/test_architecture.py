"""Dependencies run one way (docs/architecture.md): product code never imports the sandbox, the sandbox never imports
product code, ingestion and activations know nothing of Dagster's wiring or of each other, the settings
(read by the orchestration and ingestion alike) and what both sides of the vendor conversation share
(``vendor_http``: the one ApiError, masking, wait headers and vendor messages) know nothing of anyone, and the bench
drives the product and the sandbox only from the outside (the command line, HTTP, the warehouse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ingestion": {"sandbox", "orchestration", "activations", "dagster", "dagster_dlt", "dagster_dbt"},
    "activations": {"sandbox", "orchestration", "ingestion", "dagster", "dagster_dlt", "dagster_dbt"},
    "orchestration": {"sandbox"},
    "settings": {"sandbox", "orchestration", "ingestion", "activations", "bench", "dagster", "dagster_dlt",
                 "dagster_dbt"},
    "vendor_http": {"sandbox", "orchestration", "ingestion", "activations", "settings", "bench", "dagster",
                    "dagster_dlt", "dagster_dbt", "dlt", "httpx", "requests"},
    "sandbox": {"orchestration", "ingestion", "activations", "bench", "vendor_http"},
    "bench": {"sandbox", "ingestion", "activations", "vendor_http"},
}


def imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files or package == "activations", f"no Python files found under {package}/"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_level_modules(path) & FORBIDDEN[package])
        for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom sandbox.app import create_app\nfrom . import sibling\n")
    assert imported_top_level_modules(sample) == {"os", "sandbox"}


MAX_LINES = 600
"""A room a newcomer can read: past this, a file is split by what it does (see the sandbox's packages)."""
PRODUCT_CODE = ("orchestration", "ingestion", "activations", "settings", "vendor_http", "sandbox", "bench",
                "dbt_project")


def test_no_product_file_is_longer_than_a_newcomer_can_read() -> None:
    files = [path for package in PRODUCT_CODE for pattern in ("*.py", "*.sql")
             for path in (ROOT / package).rglob(pattern)
             if not {"target", "dbt_packages", "logs"} & set(path.relative_to(ROOT).parts)]
    assert len(files) > 100
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in files}
    assert {path: lines for path, lines in lengths.items() if lines > MAX_LINES} == {}
