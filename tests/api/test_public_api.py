"""The public surface is exactly ``__all__``, and every name in it resolves."""

import subprocess
import sys

import flaskprod


def test_all_names_resolve() -> None:
    for name in flaskprod.__all__:
        assert getattr(flaskprod, name) is not None


def test_production_is_the_runtime_class() -> None:
    from flaskprod.runtime.production import Production

    assert flaskprod.Production is Production


def test_unknown_attribute_raises() -> None:
    try:
        flaskprod.NotAThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("an unknown attribute resolved")


def test_cli_import_does_not_import_flask() -> None:
    code = "import sys, flaskprod.cli; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
