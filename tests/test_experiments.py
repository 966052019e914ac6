"""The common pieces of nas_pruning.experiments: Syne Tune's folder, set for one experiment and
restored after it, and the check of settings a trial script receives on a command line."""

import os

import pytest
from syne_tune.constants import SYNE_TUNE_ENV_FOLDER

from nas_pruning.backends.trial_engine import check_command_line
from nas_pruning.experiments.runner import synetune_folder


@pytest.mark.parametrize("before", [None, "/elsewhere"])
def test_synetune_folder_is_restored_even_after_an_error(monkeypatch, tmp_path, before):
    if before is None:
        monkeypatch.delenv(SYNE_TUNE_ENV_FOLDER, raising=False)
    else:
        monkeypatch.setenv(SYNE_TUNE_ENV_FOLDER, before)
    with pytest.raises(KeyboardInterrupt):
        with synetune_folder(tmp_path):
            assert os.environ[SYNE_TUNE_ENV_FOLDER] == str(tmp_path)
            raise KeyboardInterrupt
    assert os.environ.get(SYNE_TUNE_ENV_FOLDER) == before


@pytest.mark.parametrize("value", ["a b", "tab\there", ""])
def test_a_setting_a_command_line_cannot_carry_is_refused(value):
    check_command_line({"seed": 1, "task": "rte", "model": "/path/without/spaces"})
    with pytest.raises(ValueError, match="data_dir"):
        check_command_line({"task": "rte", "data_dir": value})
