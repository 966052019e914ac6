"""The package's layers (setup.cfg, [importlinter]) hold: each layer imports only from those below it."""

import configparser
from pathlib import Path

from importlinter.cli import lint_imports

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
CONTRACT = "importlinter:contract:layers"


def test_package_keeps_its_layers(capsys):
    # The report of a broken contract names every import chain that goes upward.
    assert lint_imports(str(SETUP_CFG), no_cache=True, no_logo=True) == 0, capsys.readouterr().out


def test_the_contract_counts_lazy_imports(tmp_path, monkeypatch):
    # The same contract settings on a toy package whose lower layer imports the upper one
    # inside a function, as lazy imports that hide a cycle do.
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from layered import low\n")
    (package / "low.py").write_text("def later():\n    from layered import high\n")
    settings = configparser.ConfigParser()
    settings.read(SETUP_CFG)
    contract = dict(settings[CONTRACT], layers="\nlayered.high\nlayered.low")
    toy = configparser.ConfigParser()
    toy.read_dict({"importlinter": {"root_package": "layered"}, CONTRACT: contract})
    with open(tmp_path / "setup.cfg", "w") as file:
        toy.write(file)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lint_imports(str(tmp_path / "setup.cfg"), no_cache=True, no_logo=True) == 1
