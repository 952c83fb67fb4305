from pathlib import Path

import pytest

from sweeper.errors import SpecError
from sweeper.search import expand, summary, trial_at
from sweeper.spec.load import load_spec, parse_spec
from sweeper.spec.trials import config_hash

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_search_space_validates(path: Path) -> None:
    spec = load_spec(path)
    assert expand(spec)


def test_simclr_grid_is_the_thesis_grid() -> None:
    spec = load_spec(ROOT / "search_spaces" / "simclr_grid.yaml")
    assert summary(spec) == (
        "32 trials: grid over batch_size × temperature × color_jitter_strength")
    trials = expand(spec)
    assert len(trials) == 32
    assert trials[0].params == {"batch_size": 512, "temperature": 0.25,
                                "color_jitter_strength": 0.25, "seed": 0}
    assert trials[-1].params["batch_size"] == 1024
    assert trials[5].config.train.temperature == 0.5  # second temperature, second jitter
    assert trials[5].config.train.color_jitter_strength == 0.5
    assert spec.model.backbone == "resnet18" and spec.train.epochs == 100
    assert len({t.config_hash for t in trials}) == 32


def test_trial_overrides_win_over_swept_values_and_are_type_checked() -> None:
    spec = load_spec(ROOT / "search_spaces" / "simclr_grid.yaml")
    trial = trial_at(spec, 0, ["train.temperature=0.2", "model.width=16",
                               "dataset.name=image_folder", "dataset.root=/tmp/x",
                               "resources.gpu=0", "eval.protocol=offline_linear"])
    assert trial.config.train.temperature == 0.2
    assert trial.params["temperature"] == 0.2
    assert trial.config.model.width == 16
    assert trial.config.dataset.root == "/tmp/x"
    assert trial.config_hash != trial_at(spec, 0).config_hash
    with pytest.raises(SpecError, match=r"train.epochs.*valid integer.*'many'"):
        trial_at(spec, 0, ["train.epochs=many"])
    with pytest.raises(SpecError, match=r"unknown key 'train.temprature'.*'temperature'"):
        trial_at(spec, 0, ["train.temprature=1"])
    with pytest.raises(SpecError, match="expected key=value"):
        trial_at(spec, 0, ["train.epochs"])
    with pytest.raises(SpecError, match=r"out of range.*32 trials"):
        trial_at(spec, 32)


def test_config_hash_is_stable_and_sensitive() -> None:
    spec = parse_spec("name: a\n")
    base = expand(spec)[0].config
    assert config_hash(base) == config_hash(expand(parse_spec("name: a\n"))[0].config)
    changed = trial_at(spec, 0, ["train.epochs=3"]).config
    assert config_hash(changed) != config_hash(base)
    assert len(config_hash(base)) == 16


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("- a\n- b\n", "must be a mapping"),
    ("name: [x\n", "not valid YAML"),
    ("name: a\nname: b\n", "duplicate key 'name' at line 2"),
    ("name: a\ntrain:\n  temprature: 0.5\n", r"line 3: train.temprature: unknown key "
     r"\(did you mean 'temperature'\?\)"),
    ("name: a\ntrain:\n  temperature: 0\n", "line 3: train.temperature: .*greater than 0"),
    ("name: a\ntrain:\n  ema_decay: 1.5\n", "line 3: train.ema_decay"),
    ("name: a\ntrain:\n  batch_size: -1\n", "line 3: train.batch_size"),
    ("name: a\ntrain:\n  epochs: -1\n", "line 3: train.epochs"),
    ("name: a\nresources: {gpu: -1}\n", "line 2: resources.gpu"),
    ("name: a\nmethod: moco\n", "line 2: method"),
    ("name: a\ndataset: {name: imagenet}\n", "line 2: dataset.name"),
    ("name: a\nsearch: {type: random}\n", "line 2: search.type"),
    ("name: ../etc\n", "line 1: name: .*names a folder"),
    ("name: a\nsearch:\n  params:\n    tempreture: [1]\n",
     "line 4: search.params.tempreture: cannot sweep unknown field.*'temperature'"),
    ("name: a\nsearch:\n  params:\n    temperature: [0.5,\n      -1]\n",
     r"line 5: search.params.temperature\[1\]: .*greater than 0"),
    ("name: a\nsearch:\n  type: optuna\n  num_samples: 2\n  params:\n"
     "    temperature: {type: float, low: 1, high: 0.1}\n",
     r"line 6: search.params.temperature: low \(1\) must not exceed high"),
    ("name: a\nsearch: {type: optuna, params: {}}\n", "needs num_samples"),
    ("name: a\nmetric: top1\n", "line 2: metric: unknown metric"),
    ("name: a\ndataset: {name: image_folder}\n", "dataset.root is required"),
])
def test_bad_specs_name_the_field_and_line(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(text, source="s.yaml")


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_optuna_spec_counts_samples_times_seeds() -> None:
    spec = parse_spec(
        "name: o\nsearch:\n  type: optuna\n  num_samples: 6\n  params:\n"
        "    temperature: {type: float, low: 0.1, high: 1.0, log: true}\n"
        "    blur: {type: categorical, choices: [true, false]}\n")
    assert summary(spec) == "6 trials: optuna (tpe) over temperature × blur"
