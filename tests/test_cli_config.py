"""CLI options generated from config dataclasses: one --field-name per setting, validated by the dataclass."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from jepa_pilot.common.config import (Config, ConfigError, add_config_arguments, config_from_args,
                                      overrides_from_args, setting)

pytestmark = pytest.mark.unit


@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
    rate_hz: float = setting(10.0, "steps per second, 100 % of the time", low=1.0, high=50.0)
    count: int = setting(3, "how many", low=1)
    mode: str = setting("fast", "how", choices=("fast", "slow"))
    verbose: bool = setting(False, "say more")
    size: tuple = setting((), "(width, height) or empty", low=1)
    name: str = setting("toy", "a name")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size and len(self.size) != 2:
            self._fail("size", self.size, "expected (width, height) or empty")


def parser_for(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy", exit_on_error=True)
    add_config_arguments(parser, ToyConfig, **kwargs)
    return parser


def test_no_options_give_the_dataclass_defaults():
    assert config_from_args(ToyConfig, parser_for().parse_args([])) == ToyConfig()


def test_each_field_becomes_a_typed_option():
    args = parser_for().parse_args(["--rate-hz", "20", "--count", "7", "--mode", "slow", "--verbose",
                                    "--size", "64", "48", "--name", "x"])
    config = config_from_args(ToyConfig, args)
    assert config == ToyConfig(rate_hz=20.0, count=7, mode="slow", verbose=True, size=(64, 48), name="x")
    assert isinstance(config.count, int) and config.size == (64, 48)
    assert config_from_args(ToyConfig, parser_for().parse_args(["--no-verbose"])).verbose is False


def test_help_carries_the_doc_range_and_default():
    text = parser_for().format_help()
    assert "steps per second, 100 % of the time; in [1, 50] (default: 10.0)" in " ".join(text.split())
    assert "how many; at least 1 (default: 3)" in " ".join(text.split())
    assert "{fast,slow}" in text


def test_a_value_out_of_range_gets_the_configs_message():
    args = parser_for().parse_args(["--rate-hz", "99"])
    with pytest.raises(ConfigError, match=r"ToyConfig.rate_hz = 99.0: expected a value in \[1, 50\]"):
        config_from_args(ToyConfig, args)
    with pytest.raises(ConfigError, match=r"ToyConfig.size = \(64,\): expected \(width, height\) or empty"):
        config_from_args(ToyConfig, parser_for().parse_args(["--size", "64"]))


@pytest.mark.parametrize("argv", [["--count", "two"], ["--mode", "medium"], ["--rate-hz", "x"]])
def test_a_value_of_the_wrong_type_or_choice_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser_for().parse_args(argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


def test_exclude_prefix_and_overrides():
    parser = parser_for(exclude=("name",), prefix="toy-", defaults_from="the file's")
    with pytest.raises(SystemExit):
        parser.parse_args(["--toy-name", "x"])
    args = parser.parse_args(["--toy-count", "5"])
    assert overrides_from_args(ToyConfig, args, prefix="toy-") == {"count": 5}  # only what was given
    assert config_from_args(ToyConfig, args, prefix="toy-", mode="slow") == ToyConfig(count=5, mode="slow")
    assert "(default: the file's; built-in 3)" in " ".join(parser.format_help().split())


# --- the commands that use it ------------------------------------------------------
def options_of(module_name: str) -> set[str]:
    import importlib

    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"jepa_pilot.cli.{module_name}").register(sub)
    (parser,) = sub.choices.values()
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


def fields_as_options(cls) -> set[str]:
    options = set()
    for f in dataclasses.fields(cls):
        options.add("--" + f.name.replace("_", "-"))
        if f.type in (bool, "bool"):
            options.add("--no-" + f.name.replace("_", "-"))
    return options


def test_collect_and_import_bag_options_are_their_config_fields():
    from jepa_pilot.data.bag import BagImportConfig
    from jepa_pilot.data.collect import CollectConfig

    assert options_of("collect") - {"--help", "--out", "--workers"} == fields_as_options(CollectConfig)
    assert options_of("import_bag") - {"--help", "--out", "--quiet"} == fields_as_options(BagImportConfig)


def test_train_options_are_the_train_section(tmp_path):
    from jepa_pilot.world_model.train import TrainConfig, build_parser

    parser = build_parser()
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    assert options - {"--help", "--data", "--config", "--out", "--resume", "--stop-at"} == fields_as_options(TrainConfig)


def test_bad_settings_exit_2_with_the_configs_message(tmp_path, capsys):
    from jepa_pilot.cli.main import main
    from jepa_pilot.data import DatasetInfo, DatasetWriter, Episode

    assert main(["collect", "--out", str(tmp_path / "c"), "--episodes", "0"]) == 2
    assert "CollectConfig.episodes = 0: expected a value in [1, inf]" in capsys.readouterr().out
    assert main(["import-bag", str(tmp_path / "nobag"), "--out", str(tmp_path / "b"), "--image-size", "64"]) == 2
    assert "BagImportConfig.image_size = (64,): expected (width, height) or empty" in capsys.readouterr().out
    data = tmp_path / "d"
    writer = DatasetWriter(data, DatasetInfo(robot="toy", image_height=16, image_width=16))
    writer.add(Episode(np.zeros((3, 16, 16, 3), np.uint8), np.zeros((2, 2), np.float32), np.arange(3) * 0.1))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--lr", "2"]) == 2
    assert "TrainConfig.lr = 2.0: expected a value in [0, 1]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "--out", str(tmp_path / "c"), "--episodes", "many"])
    assert exit_info.value.code == 2


def test_without_torch_the_learning_commands_say_what_to_install(capsys):
    from jepa_pilot.cli.train import register_missing

    parser = argparse.ArgumentParser()
    register_missing(parser.add_subparsers(dest="command"), "torch", {"finetune": "fine-tune a bundle"})
    args = parser.parse_args(["finetune", "two_rooms", "--data", "x", "--help"])  # every argument is taken
    assert args.func(args) == 2
    assert capsys.readouterr().out == "jepa-pilot finetune: error: needs torch (not installed): " \
                                      "pip install 'jepa-pilot[learn]'\n"
