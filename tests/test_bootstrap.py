"""script/bootstrap: C extensions build against a Python that lives outside the checkout."""

from pathlib import Path
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = REPO / "script" / "bootstrap"


def _base_python() -> str:
    """The interpreter this venv was made from."""
    return str(getattr(sys, "_base_executable", sys.executable))


def _needs_nested_pyconfig() -> bool:
    """Whether this Python's pyconfig.h includes a multiarch one outside the system folders."""
    include = Path(sysconfig.get_paths()["include"])
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    root = include.parent
    return (
        bool(multiarch)
        and str(root) not in ("/usr/include", "/usr/local/include")
        and (root / multiarch / include.name / "pyconfig.h").is_file()
    )


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.skipif(
    not _needs_nested_pyconfig(), reason="this Python keeps its pyconfig.h in the system folders"
)
def test_extensions_compile_against_a_python_outside_the_checkout(tmp_path: Path) -> None:
    """A copy of the script in another checkout: Python.h of this (foreign) Python compiles."""
    assert "--build-flags" in BOOTSTRAP.read_text(), "bootstrap cannot report its build flags"
    checkout = tmp_path / "other-checkout"
    (checkout / "script").mkdir(parents=True)
    shutil.copy(BOOTSTRAP, checkout / "script" / "bootstrap")
    flags = subprocess.run(
        ["bash", str(checkout / "script" / "bootstrap"), "--build-flags", _base_python()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert flags, "no include root for a Python whose pyconfig.h needs one"
    source = tmp_path / "probe.c"
    source.write_text("#include <Python.h>\nint main(void) { return Py_IsInitialized(); }\n")
    include = sysconfig.get_paths()["include"]
    plain = subprocess.run(
        ["cc", "-fsyntax-only", f"-I{include}", str(source)], capture_output=True, check=False
    )
    assert plain.returncode != 0  # the problem exists: without the flags it does not compile
    built = subprocess.run(
        ["cc", "-fsyntax-only", f"-I{include}", *flags, str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr


def test_build_flags_are_empty_for_a_system_python() -> None:
    """A Python installed in the system folders needs no extra include root."""
    system = shutil.which("python3", path="/usr/bin")
    if system is None:
        pytest.skip("no /usr/bin/python3")
    # Without that mode the script would set up the venv instead: do not run it then.
    assert "--build-flags" in BOOTSTRAP.read_text(), "bootstrap cannot report its build flags"
    result = subprocess.run(
        ["bash", str(BOOTSTRAP), "--build-flags", system],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == ""
