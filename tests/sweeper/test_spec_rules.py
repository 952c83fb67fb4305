"""The rules of what a setting means for the spec's method, dataset, optimizer, scheduler
and search (sweeper/spec/rules.py, the table in docs/spec_rules.md): each warns with its
one line, or refuses with it; warnings leave validate's exit status 0 and never apply to
a recorded spec. And a dataset too small to train is refused before training."""

from pathlib import Path

import pytest
from PIL import Image

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.spec.load import parse_spec, parse_user_spec
from sweeper.spec.rules import RULES, method_uses, readers
from trainers.config import MIN_TRAIN_IMAGES, DatasetConfig, TrainConfig
from trainers.data import DatasetError, check_dataset, load_dataset
from trainers.methods import method_names

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "search_spaces").glob("*.yaml"))
# A spec no rule has anything to say about; each case adds top-level keys, or replaces one.
BASE = ("name: r\ndataset: {name: synthetic, synthetic_train_size: 1000}\n"
        "train: {epochs: 20, batch_size: 64, warmup_epochs: 2}\n")


def _spec(extra: str) -> str:
    """BASE with the `key: value` lines of `extra` replacing its own or added after them."""
    lines = dict(line.split(": ", 1) for line in BASE.splitlines())
    lines.update(line.split(": ", 1) for line in extra.splitlines())
    return "".join(f"{key}: {value}\n" for key, value in lines.items())


def _warnings(text: str, *overrides: str) -> list[str]:
    return parse_user_spec(text, source="s.yaml", overrides=list(overrides)).warnings


def _refusal(text: str, *overrides: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_user_spec(text, source="s.yaml", overrides=list(overrides))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_base_spec_and_every_shipped_spec_raise_nothing() -> None:
    assert _warnings(BASE) == []
    for path in SPECS:
        assert parse_user_spec(path.read_text(), source=path.name).warnings == [], path.name


WARNINGS = [
    # A setting only another method reads.
    ("train: {epochs: 20, batch_size: 64, warmup_epochs: 2, ema_decay: 0.9}",
     "s.yaml, line 3: train.ema_decay: does nothing with method simclr (BYOL's target "
     "decay); remove it"),
    ("method: byol\ntrain: {epochs: 20, batch_size: 64, warmup_epochs: 2, temperature: 0.2}",
     "s.yaml, line 3: train.temperature: does nothing with method byol (SimCLR's NT-Xent "
     "temperature); remove it"),
    # ... another optimizer, dataset, scheduler or search.
    ("train: {epochs: 20, batch_size: 64, warmup_epochs: 2, optimizer: adamw, momentum: 0.8}",
     "s.yaml, line 3: train.momentum: does nothing with optimizer adamw (the momentum of "
     "LARS and SGD; AdamW has its own betas); remove it"),
    ("dataset: {name: synthetic, synthetic_train_size: 1000, root: data}",
     "s.yaml, line 2: dataset.root: does nothing with dataset synthetic (the folder of "
     "CIFAR-10 or an image folder); remove it"),
    ("dataset: {name: image_folder, root: data, download: true}",
     "s.yaml, line 2: dataset.download: does nothing with dataset image_folder (fetches "
     "CIFAR-10); remove it"),
    ("dataset: {name: cifar10, root: data, synthetic_seed: 3}",
     "s.yaml, line 2: dataset.synthetic_seed: does nothing with dataset cifar10 (the seed "
     "the synthetic images are drawn from); remove it"),
    ("scheduler: {grace_period: 5}",
     "s.yaml, line 4: scheduler.grace_period: does nothing with scheduler fifo (the epochs "
     "ASHA waits before stopping a trial); remove it"),
    ("search: {num_samples: 8}",
     "s.yaml, line 4: search.num_samples: does nothing with search grid (how many trials "
     "Optuna samples; a grid runs every cell); remove it"),
    ("train: {epochs: 20, batch_size: 64, warmup_epochs: 2, seed: 3}",
     "s.yaml, line 3: train.seed: does nothing: each trial's seed comes from search.seeds "
     "([0]); list it there"),
    # An Optuna axis that samples one value.
    ("search: {type: optuna, num_samples: 4, params: {temperature: {type: float, low: 0.5, "
     "high: 0.5}}}",
     "s.yaml, line 4: search.params.temperature: a distribution with low == high == 0.5 "
     "samples nothing: every trial gets 0.5; set train.temperature: 0.5 and remove the axis, "
     "or widen it"),
    ("search: {type: optuna, num_samples: 4, params: {optimizer: {type: categorical, "
     "choices: [sgd]}}}",
     "s.yaml, line 4: search.params.optimizer: a distribution with one choice samples "
     "nothing: every trial gets 'sgd'; set train.optimizer: 'sgd' and remove the axis, or "
     "widen it"),
    # Epoch counts the schedule, the probes or ASHA cannot use.
    ("train: {epochs: 5, batch_size: 64, warmup_epochs: 10}",
     "s.yaml, line 3: train.warmup_epochs: a warm-up of 10 epochs is longer than "
     "train.epochs 5: the learning rate never reaches its peak (learning_rate x batch_size "
     "/ 256) and never decays; shorten train.warmup_epochs"),
    ("train: {epochs: 5, batch_size: 64}",
     "s.yaml, line 3: train.epochs: a warm-up of 10 epochs (the default) is longer than "
     "train.epochs 5: the learning rate never reaches its peak (learning_rate x batch_size "
     "/ 256) and never decays; shorten train.warmup_epochs"),
    ("eval: {every_epochs: 50}",
     "s.yaml, line 4: eval.every_epochs: 50 is more than train.epochs 20: a trial probes "
     "only its untrained encoder and its last epoch; lower every_epochs"),
    ("scheduler: {type: asha, grace_period: 20}",
     "s.yaml, line 4: scheduler.grace_period: 20 is not below train.epochs 20: ASHA's first "
     "comparison comes at or after the last epoch, so it stops no trial (the sweep runs as "
     "fifo); lower grace_period, or train more epochs"),
    # A kNN monitor asked for more neighbours than there are images.
    ("eval: {knn_k: 2000}",
     "s.yaml, line 4: eval.knn_k: 2000 is more than the 1000 training images the kNN "
     "monitor searches: it votes with all of them; lower knn_k to at most 1000"),
    ("search: {params: {eval.knn_k: [10, 5000]}}",
     "s.yaml, line 4: search.params.eval.knn_k: 5000 is more than the 1000 training images "
     "the kNN monitor searches: it votes with all of them; lower knn_k to at most 1000"),
    ("eval: {knn_k: 300, probe_train_size: 200}",
     "s.yaml, line 4: eval.knn_k: 300 is more than the 200 training images the kNN monitor "
     "searches: it votes with all of them; lower knn_k to at most 200"),
]


@pytest.mark.parametrize(("extra", "expected"), WARNINGS)
def test_each_warning_is_its_one_line(extra: str, expected: str) -> None:
    assert _warnings(_spec(extra)) == [expected]


REFUSALS = [
    # Sweeping what the method, optimizer or dataset ignores: every trial the same.
    ("search: {params: {ema_decay: [0.9, 0.99]}}",
     "s.yaml, line 4: search.params.ema_decay: sweeps train.ema_decay, which method simclr "
     "ignores (BYOL's target decay): every trial would compute the same thing; remove the "
     "axis"),
    ("method: byol\nsearch: {type: optuna, num_samples: 4, params: {temperature: {type: "
     "float, low: 0.1, high: 1.0}}}",
     "s.yaml, line 5: search.params.temperature: sweeps train.temperature, which method byol "
     "ignores (SimCLR's NT-Xent temperature): every trial would compute the same thing; "
     "remove the axis"),
    ("train: {epochs: 20, batch_size: 64, warmup_epochs: 2, optimizer: adamw}\n"
     "search: {params: {momentum: [0.8, 0.9]}}",
     "s.yaml, line 4: search.params.momentum: sweeps train.momentum, which optimizer adamw "
     "ignores (the momentum of LARS and SGD; AdamW has its own betas): every trial would "
     "compute the same thing; remove the axis"),
    # A folder for the default synthetic dataset: a forgotten dataset.name.
    ("dataset: {root: data/cifar10}",
     "s.yaml, line 2: dataset.root: is set but dataset.name is not, and the default "
     "synthetic dataset reads no files; name the dataset (dataset: {name: cifar10 or "
     "image_folder, ...})"),
    # A metric ranked the wrong way, or one the protocol does not log.
    ("metric: loss\nmode: max",
     "s.yaml, line 5: mode: max would rank the trial with the highest loss best, and loss is "
     "better lower: write mode: min (or leave mode out: it follows the metric)"),
    ("metric: top_1_accuracy\nmode: min",
     "s.yaml, line 5: mode: min would rank the trial with the lowest top_1_accuracy best, and "
     "top_1_accuracy is better higher: write mode: max (or leave mode out: it follows the "
     "metric)"),
    ("metric: online_linear_top_1_accuracy\neval: {protocol: offline_linear}",
     "s.yaml, line 4: metric: online_linear_top_1_accuracy is logged only when "
     "eval.protocol is online_linear, and this spec probes offline_linear: optimise "
     "top_1_accuracy (the protocol's own), or set eval.protocol: online_linear"),
    ("metric: offline_linear_top_5_accuracy",
     "s.yaml, line 4: metric: offline_linear_top_5_accuracy is logged only at epoch 0 (the "
     "untrained encoder) unless eval.protocol is offline_linear, and this spec probes "
     "online_linear: optimise top_5_accuracy (the protocol's own), or set eval.protocol: "
     "offline_linear"),
    # Nothing reserved for a trial.
    ("resources: {cpu: 0, gpu: 0}",
     "s.yaml, line 4: resources: cpu: 0 and gpu: 0 reserve nothing for a trial: Ray would "
     "start every trial at once and each would cost 0 device-seconds; give each trial cpu: 1 "
     "(or a share of a GPU)"),
    # A training set too small for the batch, or to train at all, where the spec says it.
    ("dataset: {name: synthetic, synthetic_train_size: 1}",
     "s.yaml, line 2: dataset.synthetic_train_size: 1 training image cannot train: a "
     "contrastive loss needs another image as a negative and the probe standardises "
     "features over at least 2; use at least 2 images (and at least train.batch_size)"),
    ("dataset: {name: cifar10, root: data, train_size: 1}",
     "s.yaml, line 2: dataset.train_size: 1 training image cannot train: a contrastive loss "
     "needs another image as a negative and the probe standardises features over at least "
     "2; use at least 2 images (and at least train.batch_size)"),
    ("dataset: {name: synthetic, synthetic_train_size: 50}",
     "s.yaml, line 3: train.batch_size: 64 is more than the 50 training images "
     "(dataset.synthetic_train_size): every step would train on a partial batch of 50 while "
     "the learning rate scales by 64 / 256; use a batch size of at most 50, or more images"),
    ("dataset: {name: image_folder, root: data, train_size: 40}",
     "s.yaml, line 3: train.batch_size: 64 is more than the 40 training images "
     "(dataset.train_size caps it): every step would train on a partial batch of 40 while "
     "the learning rate scales by 64 / 256; use a batch size of at most 40, or more images"),
    ("search: {params: {batch_size: [64, 2048]}}",
     "s.yaml, line 4: search.params.batch_size: 2048 is more than the 1000 training images "
     "(dataset.synthetic_train_size): every step would train on a partial batch of 1000 "
     "while the learning rate scales by 2048 / 256; use a batch size of at most 1000, or "
     "more images"),
]


@pytest.mark.parametrize(("extra", "expected"), REFUSALS)
def test_each_refusal_is_its_one_line(extra: str, expected: str) -> None:
    assert _refusal(_spec(extra)) == expected


def test_a_sweep_name_that_reads_as_an_option_is_refused_from_the_file_and_from_set(
        ) -> None:
    expected = ("name: '-rf' starts with '-': every command that names the sweep (sweeper "
                "status NAME, --resume, the ones sweeper prints) would read it as an option; "
                "start it with a letter or digit")
    assert _refusal(BASE.replace("name: r", "name: -rf")) == f"s.yaml, line 1: {expected}"
    assert _refusal(BASE, "name=-rf") == f"s.yaml (from --set): {expected}"


def test_mode_left_out_follows_the_metric() -> None:
    spec = parse_user_spec(BASE + "metric: loss\n").spec
    assert (spec.metric, spec.mode) == ("loss", "min")
    assert parse_user_spec(BASE).spec.mode == "max"


def test_a_setting_swept_by_a_selector_that_reads_it_is_fine() -> None:
    # Momentum is read by the sgd cells of an optimizer axis.
    text = BASE + "search: {params: {optimizer: [sgd, adamw], momentum: [0.8, 0.9]}}\n"
    assert _warnings(text) == []


def test_warnings_come_from_set_too() -> None:
    assert _warnings(BASE, "train.ema_decay=0.9") == [
        "s.yaml (from --set): train.ema_decay: does nothing with method simclr (BYOL's "
        "target decay); remove it"]


def test_a_recorded_spec_is_read_as_it_ran_without_the_rules() -> None:
    text = _spec("metric: loss\nmode: max")
    assert parse_spec(text).mode == "max"
    with pytest.raises(SpecError, match="mode: max would rank"):
        parse_user_spec(text)


def test_the_method_mapping_names_methods_and_train_fields() -> None:
    uses = method_uses()
    assert set(uses) == set(method_names())
    assert set().union(*uses.values()) <= set(TrainConfig.model_fields)
    for reader in readers():
        assert reader.readers, reader


def test_every_rule_is_in_the_docs_table() -> None:
    table = (ROOT / "docs" / "spec_rules.md").read_text()
    for rule in RULES:
        assert f"`{rule.__name__}`" in table, rule.__name__


# --- through the command line -------------------------------------------------------------

def test_validate_prints_warnings_on_stderr_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(_spec("scheduler: {grace_period: 5}"))
    assert main(["validate", str(path), "--set", "train.ema_decay=0.9"]) == 0
    out, err = capsys.readouterr()
    assert out == "1 trial: grid over no parameters\n"
    assert err.splitlines() == [
        f"sweeper: warning: {path} (from --set): train.ema_decay: does nothing with method "
        "simclr (BYOL's target decay); remove it",
        f"sweeper: warning: {path}, line 4: scheduler.grace_period: does nothing with "
        "scheduler fifo (the epochs ASHA waits before stopping a trial); remove it"]


def test_a_refusal_exits_2_with_one_line(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    assert main(["run", str(path), "--dry-run", "--set", "resources={cpu: 0, gpu: 0}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"sweeper: {path} (from --set): resources: cpu: 0 and gpu: 0 reserve nothing")


# --- a dataset too small to train -----------------------------------------------------------

def _one_image_tree(root: Path, classes: tuple[str, ...] = ("cat",)) -> Path:
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 200, 30)).save(root / split / name / "0.png")
    return root


def test_a_one_image_folder_is_refused_at_the_preflight_and_the_first_load(
        tmp_path: Path) -> None:
    cfg = DatasetConfig(name="image_folder", root=str(_one_image_tree(tmp_path / "one")))
    expected = (f"dataset image_folder at {cfg.root}: the training split has 1 image; training "
                f"needs at least {MIN_TRAIN_IMAGES} (a contrastive loss needs another image as a "
                "negative, and the probe standardises features over at least 2): add images")
    for check in (check_dataset, load_dataset):
        with pytest.raises(DatasetError) as info:
            check(cfg)
        assert str(info.value) == expected


def test_a_folder_smaller_than_the_batch_is_refused_before_training(tmp_path: Path) -> None:
    cfg = DatasetConfig(name="image_folder",
                        root=str(_one_image_tree(tmp_path / "two", ("cat", "dog"))))
    check_dataset(cfg, batch_size=2)
    with pytest.raises(DatasetError) as info:
        check_dataset(cfg, batch_size=4)
    assert str(info.value) == (
        f"train.batch_size 4 is more than the 2 training images of dataset image_folder at "
        f"{cfg.root}: every step would train on a partial batch of 2 while the learning rate "
        "scales by 4 / 256; use a batch size of at most 2, or more images")


def test_a_one_class_folder_trains_with_a_warning(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    root = _one_image_tree(tmp_path / "cat")
    Image.new("RGB", (8, 8), (200, 10, 30)).save(root / "train" / "cat" / "1.png")
    cfg = DatasetConfig(name="image_folder", root=str(root))
    with caplog.at_level("WARNING", logger="trainers.data"):
        assert load_dataset(cfg).train_images.shape[0] == 2
    assert caplog.messages == [f"dataset image_folder at {root} has one class: every probe "
                               "scores 1.0, so accuracies compare nothing (optimise loss, or "
                               "add a class)"]


def test_sweeper_trial_on_a_one_image_folder_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _one_image_tree(tmp_path / "one")
    path = tmp_path / "s.yaml"
    path.write_text(f"name: one\ndataset: {{name: image_folder, root: {root}}}\n"
                    "model: {width: 4}\ntrain: {epochs: 1, batch_size: 2, warmup_epochs: 0}\n")
    assert main(["validate", str(path)]) == 0  # the folder's size is not in the spec
    assert main(["trial", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"sweeper: dataset image_folder at {root}: the training split has 1 image; training "
        "needs at least 2 (a contrastive loss needs another image as a negative, and the "
        "probe standardises features over at least 2): add images")


def test_one_synthetic_image_is_refused_at_validate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: one\ndataset: {name: synthetic, synthetic_train_size: 1}\n"
                    "train: {batch_size: 2}\n")
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"sweeper: {path}, line 2: dataset.synthetic_train_size: 1 training image cannot "
        "train: a contrastive loss needs another image as a negative and the probe "
        "standardises features over at least 2; use at least 2 images (and at least "
        "train.batch_size)\n")
