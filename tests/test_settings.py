"""The settings classes (``diffprobe.base.Settings``): pydantic dataclasses whose bounds are declared at the field.
A value out of its type or bounds, or an unknown key, is a DiffprobeError naming the class and the setting; the lists
a JSON or TOML file holds still read as tuples, and settings saved by older versions still load."""

from __future__ import annotations

import dataclasses

import pytest

import diffprobe.app.config
import diffprobe.config.evaluate
import diffprobe.config.probe
import diffprobe.workflows.config  # noqa: F401 - every settings class is a subclass of Settings once imported
from diffprobe.base import DiffprobeError, Settings
from diffprobe.config.backbones import RCDiTConfig, UNetConfig, ViTConfig
from diffprobe.config.features import FeatureSpec
from diffprobe.config.pretrain import BaselineConfig, FinetuneConfig, PretrainConfig, RCDiTPretrainConfig


def _settings_classes(cls=Settings):
    for sub in cls.__subclasses__():
        if dataclasses.is_dataclass(sub):
            yield sub
        yield from _settings_classes(sub)


# The fields a class cannot be built without (no default stands for them).
REQUIRED = {PretrainConfig: {"steps": 10}, RCDiTPretrainConfig: {"steps": 10},
            FinetuneConfig: {"model_dir": "runs/ddpm"}}


def test_every_settings_class_is_checked_and_its_defaults_lie_within_its_bounds():
    """Defaults are not validated when a class is built; each class is built again from its defaults given as
    values, so a default outside its declared bounds fails here."""
    classes = list(_settings_classes())
    assert len(classes) > 25
    for cls in classes:
        defaults = cls(**REQUIRED.get(cls, {}))
        assert cls(**{f.name: getattr(defaults, f.name) for f in dataclasses.fields(cls)}) == defaults, cls.__name__


@pytest.mark.parametrize("build, message", [
    (lambda: PretrainConfig(steps=10, batch_size=-64),
     "PretrainConfig.batch_size: Input should be greater than 0, got -64"),
    (lambda: PretrainConfig.from_dict({"steps": 10, "lr": 0}),
     "PretrainConfig.lr: Input should be greater than 0, got 0"),
    (lambda: BaselineConfig(batch_size=1),
     "BaselineConfig.batch_size: Input should be greater than or equal to 2, got 1"),
    (lambda: BaselineConfig(label_smoothing=1.0),
     "BaselineConfig.label_smoothing: Input should be less than 1, got 1.0"),
    (lambda: FeatureSpec(views=3), "FeatureSpec.views: Value error, views must be one of (1, 2, 4, 8), got 3"),
    (lambda: FeatureSpec(timesteps=(10, 1000)), "FeatureSpec.timesteps[1]: Input should be less than 1000, got 1000"),
    (lambda: FeatureSpec(timesteps=()), "FeatureSpec.timesteps: Tuple should have at least 1 item after validation, "
                                        "not 0, got ()"),
    (lambda: RCDiTConfig(prediction="x0"), "RCDiTConfig.prediction: Input should be 'epsilon' or 'v_prediction', "
                                           "got 'x0'"),
])
def test_a_value_out_of_bounds_is_refused_naming_the_setting(build, message):
    with pytest.raises(DiffprobeError) as e:
        build()
    assert str(e.value) == message


@pytest.mark.parametrize("build, message", [
    (lambda: PretrainConfig(steps=10, batch_size=True), "PretrainConfig.batch_size: Input should be a valid integer, "
                                                        "got True"),
    (lambda: FeatureSpec(views=True), "FeatureSpec.views: Input should be a valid integer, got True"),
    (lambda: RCDiTConfig(r_tokens=False), "RCDiTConfig.r_tokens: Input should be a valid integer, got False"),
    (lambda: PretrainConfig(steps=10, lr=True), "PretrainConfig.lr: Input should be a valid number, got True"),
    (lambda: UNetConfig(channels=(64, "128")), "UNetConfig.channels[1]: Input should be a valid integer, got '128'"),
])
def test_a_bool_or_a_string_is_no_number(build, message):
    with pytest.raises(DiffprobeError) as e:
        build()
    assert str(e.value) == message


def test_unknown_keys_are_refused_naming_the_known_ones():
    with pytest.raises(DiffprobeError) as e:
        FeatureSpec.from_dict({"timesteps": [1], "stepz": 1})
    known = sorted(f.name for f in dataclasses.fields(FeatureSpec))
    assert str(e.value) == f"unknown setting(s) ['stepz'] in FeatureSpec; known: {known}"
    with pytest.raises(DiffprobeError) as e:  # a run's config.json keeps its own message, naming the trainer
        PretrainConfig.from_dict({**PretrainConfig(steps=10).to_dict(), "learning_rate": 1})
    known = sorted(f.name for f in dataclasses.fields(PretrainConfig))
    assert str(e.value) == f"unknown pretrain settings ['learning_rate']; known: {known}"
    with pytest.raises(DiffprobeError, match=r"unknown setting\(s\) \['colour'\] in UNetConfig"):
        PretrainConfig.from_dict({**PretrainConfig(steps=10).to_dict(), "unet": {"colour": True}})


def test_json_lists_and_objects_read_as_the_declared_tuples_and_settings():
    spec = FeatureSpec.from_dict({"timesteps": [1, 10], "blocks": ["mid"], "bf16": False})
    assert spec == FeatureSpec(timesteps=(1, 10), blocks=("mid",), precision="fp32")
    cfg = PretrainConfig(steps=10, unet=UNetConfig(channels=(8, 16)))
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["unet"]["channels"] == [8, 16]
    baseline = BaselineConfig(method="mae")
    again = BaselineConfig.from_dict(baseline.to_dict())
    assert again == baseline and isinstance(again.arch, ViTConfig) and again.arch.name == "vit"
    # Saved before flatfield existed: read as trained then, without it.
    saved = {k: v for k, v in cfg.to_dict().items() if k != "flatfield"}
    assert PretrainConfig.from_dict(saved).flatfield is False


def test_replace_checks_the_new_value_too():
    spec = FeatureSpec(timesteps=(1,))
    assert dataclasses.replace(spec, views=4).views == 4
    with pytest.raises(DiffprobeError, match="FeatureSpec.n_noise: Input should be greater than 0, got 0"):
        dataclasses.replace(spec, n_noise=0)
