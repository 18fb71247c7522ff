"""Execute the tutorials: each lesson's jupytext source becomes a notebook with its outputs.

    python tutorials/build.py [-o build/tutorials] [LESSON.py ...]

writes, per lesson, NAME.ipynb (executed), NAME.html and NAME.png (the figure of the cell tagged
``readme-figure``, the one the README shows). A lesson is a ``NN_name.py`` file in this folder,
in jupytext's percent format; a new one is picked up by ``make tutorials`` and the test suite.
The kernel is this interpreter (``sys.executable``), so the lessons import the installed project.
"""
from __future__ import annotations

import argparse
import base64
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Longest a whole lesson may run (s) before its execution is stopped as hung.
NOTEBOOK_TIMEOUT = 300.0

#: Tag of the cell whose figure stands for the lesson in the README.
README_TAG = "readme-figure"


def lessons() -> list[Path]:
    """The lesson sources, in lesson order."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def _kernel_manager():
    """A kernel manager that starts an IPython kernel on this very interpreter."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        # A user's own "python3" kernelspec could point at an interpreter without dlion-sim.
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher",
                                    "-f", "{connection_file}"],
                              display_name="Python (dlion-sim)", language="python")

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def execute(source: Path, timeout: float = NOTEBOOK_TIMEOUT):
    """Run the lesson ``source`` top to bottom; returns (executed notebook, seconds per cell).

    Raises nbclient's ``CellExecutionError`` (naming the cell and the exception) when a cell
    fails, an assertion of the lesson included, and ``TimeoutError`` past ``timeout`` seconds
    for the whole lesson.
    """
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    client = NotebookClient(notebook, km=_kernel_manager(), timeout=timeout,
                            resources={"metadata": {"path": str(source.parent)}})
    deadline = time.monotonic() + timeout
    seconds = []
    with client.setup_kernel(cleanup_kc=True):  # shut the kernel down even though we made it
        for index, cell in enumerate(notebook.cells):
            left = deadline - time.monotonic()
            if left <= 0:
                slowest = max(range(index), key=seconds.__getitem__, default=None)
                took = ("" if slowest is None else
                        f"; the slowest, cell {slowest}, took {seconds[slowest]:.0f} s")
                raise TimeoutError(f"{source.name}: still running after {timeout:.0f} s "
                                   f"(at cell {index}{took})")
            client.timeout = math.ceil(left)  # what remains of the lesson's budget
            begin = time.monotonic()
            client.execute_cell(cell, index)
            seconds.append(time.monotonic() - begin)
    return notebook, seconds


def readme_figure(notebook) -> bytes | None:
    """The last PNG shown by the cell tagged ``readme-figure``, or None."""
    for cell in notebook.cells:
        if README_TAG in cell.get("metadata", {}).get("tags", []):
            images = [out["data"]["image/png"] for out in cell.get("outputs", [])
                      if "image/png" in out.get("data", {})]
            if images:
                return base64.b64decode(images[-1])
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute the dlion-sim tutorials.")
    parser.add_argument("lessons", nargs="*", type=Path, help="lesson sources (default: all)")
    parser.add_argument("-o", "--out", type=Path, default=Path("build/tutorials"),
                        help="output folder (default: build/tutorials)")
    args = parser.parse_args(argv)
    try:
        import jupytext  # noqa: F401
        import nbformat
        from nbclient.exceptions import CellExecutionError
        from nbconvert import HTMLExporter
    except ImportError as err:
        print(f"dlion-sim: error: the tutorials need {err.name}: "
              "pip install -e '.[tutorials]' (make tutorials does it)", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for source in args.lessons or lessons():
        begin = time.monotonic()
        try:
            notebook, _ = execute(source)
        except (CellExecutionError, TimeoutError) as err:
            print(f"{source.name}: FAILED\n{err}", file=sys.stderr)
            failed.append(source.name)
            continue
        nbformat.write(notebook, args.out / f"{source.stem}.ipynb")
        html, _ = HTMLExporter().from_notebook_node(notebook)
        (args.out / f"{source.stem}.html").write_text(html, encoding="utf-8")
        figure = readme_figure(notebook)
        if figure is not None:
            (args.out / f"{source.stem}.png").write_bytes(figure)
        print(f"{source.name}: executed in {time.monotonic() - begin:.1f} s -> "
              f"{args.out / source.stem}.ipynb, .html" + (", .png" if figure else ""))
    if failed:
        print(f"dlion-sim: error: {len(failed)} lesson(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
