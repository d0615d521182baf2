"""The quickstart notebook runs top to bottom (a real kernel, nothing mocked)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "optimum: optimal" in text
    assert "PPO after 2048 steps" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the episode figure is displayed"
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert errors == [], errors
