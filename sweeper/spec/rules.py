"""What a setting means for the spec's method, dataset, optimizer, scheduler and search:
the one place that warns about a setting that does nothing and refuses one that can only
be a mistake. docs/spec_rules.md lists every rule, warn or refuse, and why.

These rules apply to a spec a user wrote (sweeper.spec.load.parse_user_spec: validate,
run, trial, submit), never to a recorded one read back as it ran. A refusal is a
SpecError of one line; a warning is a line returned to the command, which prints it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from sweeper.errors import SpecError
from sweeper.spec.messages import Locator, short
from sweeper.spec.overrides import Override
from sweeper.spec.schema import OptunaParam, SweepSpec
from sweeper.spec.trials import param_path
from trainers.config import MIN_TRAIN_IMAGES
from trainers.methods import METHODS
from trainers.metrics import METRICS

CIFAR10_TRAIN_IMAGES = 50_000


def method_uses() -> dict[str, frozenset[str]]:
    """The TrainConfig fields that only some methods read, by method: each method's
    registry entry says it (trainers.methods, torch-free)."""
    return {name: frozenset(info.uses) for name, info in METHODS.items()}


@dataclass(frozen=True)
class Reader:
    """A setting read only when another setting (its selector) takes certain values."""

    path: tuple[str, ...]
    selector: tuple[str, ...]
    readers: frozenset[str]
    what: str  # what the setting is, for the message


_WHAT = {"temperature": "SimCLR's NT-Xent temperature", "ema_decay": "BYOL's target decay"}
# How a message names the setting that decides: "method simclr", "optimizer adamw", ...
_SELECTOR = {("method",): "method", ("train", "optimizer"): "optimizer",
             ("dataset", "name"): "dataset", ("scheduler", "type"): "scheduler",
             ("search", "type"): "search"}


def readers() -> list[Reader]:
    """Every setting that only some values of another read."""
    uses = method_uses()
    by_method = []
    for name in sorted(set().union(*uses.values())):
        methods = frozenset(m for m in uses if name in uses[m])
        by_method.append(Reader(("train", name), ("method",), methods, _WHAT.get(
            name, f"read by method {' and '.join(sorted(methods))} only")))
    return [
        *by_method,
        Reader(("train", "momentum"), ("train", "optimizer"), frozenset({"lars", "sgd"}),
               "the momentum of LARS and SGD; AdamW has its own betas"),
        Reader(("dataset", "root"), ("dataset", "name"), frozenset({"cifar10", "image_folder"}),
               "the folder of CIFAR-10 or an image folder"),
        Reader(("dataset", "download"), ("dataset", "name"), frozenset({"cifar10"}),
               "fetches CIFAR-10"),
        Reader(("dataset", "synthetic_train_size"), ("dataset", "name"),
               frozenset({"synthetic"}), "the synthetic training split's size"),
        Reader(("dataset", "synthetic_test_size"), ("dataset", "name"),
               frozenset({"synthetic"}), "the synthetic test split's size"),
        Reader(("dataset", "synthetic_seed"), ("dataset", "name"), frozenset({"synthetic"}),
               "the seed the synthetic images are drawn from"),
        Reader(("scheduler", "grace_period"), ("scheduler", "type"), frozenset({"asha"}),
               "the epochs ASHA waits before stopping a trial"),
        Reader(("scheduler", "reduction_factor"), ("scheduler", "type"), frozenset({"asha"}),
               "ASHA keeps 1 / factor of the trials at each rung"),
        Reader(("search", "num_samples"), ("search", "type"), frozenset({"optuna"}),
               "how many trials Optuna samples; a grid runs every cell"),
        Reader(("search", "sampler"), ("search", "type"), frozenset({"optuna"}),
               "Optuna's sampler"),
    ]


@dataclass
class _Check:
    """One spec under the rules: where its values came from, and the warnings so far."""

    spec: SweepSpec
    where: Locator
    overrides: list[Override]
    warnings: list[str] = field(default_factory=list)

    def axis(self, path: tuple[str, ...]) -> str | None:
        """The search axis that sweeps the field at `path`, if one does."""
        return next((name for name in self.spec.search.params if param_path(name) == path),
                    None)

    def values(self, path: tuple[str, ...]) -> list[Any]:
        """Every value the field at `path` takes in the sweep: an axis's grid values or
        choices, a range's two ends; else the spec's one value."""
        name = self.axis(path)
        if name is None:
            node: Any = self.spec
            for part in path:
                node = getattr(node, part)
            return [node]
        param = self.spec.search.params[name]
        if isinstance(param, list):
            return list(param)
        if param.type == "categorical":
            return list(param.choices or [])
        return [param.low, param.high]

    def is_set(self, path: tuple[str, ...]) -> bool:
        """Whether the file or --set wrote the field at `path` (not its default)."""
        node: Any = self.spec
        for part in path:
            if not isinstance(node, BaseModel) or part not in node.model_fields_set:
                return False
            node = getattr(node, part)
        return True

    def field(self, path: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        """The location and the name of a setting: its axis when swept."""
        name = self.axis(path)
        if name is None:
            return path, ".".join(path)
        return ("search", "params", name), f"search.params.{name}"

    def warn(self, loc: tuple[str, ...], name: str, message: str) -> None:
        self.warnings.append(f"{self.where.at(*loc)}: {name}: {message}")

    def refuse(self, loc: tuple[str, ...], name: str, message: str) -> None:
        raise SpecError(f"{self.where.at(*loc)}: {name}: {message}")


def check_rules(spec: SweepSpec, where: Locator, overrides: list[Override]) -> list[str]:
    """Apply every rule: a SpecError for the first refusal, else the warnings, each one
    line starting where its setting came from."""
    check = _Check(spec, where, overrides)
    for rule in RULES:
        rule(check)
    return check.warnings


# --- the rules, in the order docs/spec_rules.md lists them --------------------------------


def _name_is_not_an_option(check: _Check) -> None:
    if check.spec.name.startswith("-"):
        check.refuse(("name",), "name", f"{check.spec.name!r} starts with '-': every command "
                     "that names the sweep (sweeper status NAME, --resume, the ones sweeper "
                     "prints) would read it as an option; start it with a letter or digit")


def _set_does_not_fight_the_search(check: _Check) -> None:
    """A --set of a field the search sets for every trial would be silently ignored."""
    for override in check.overrides:
        for leaf in override.leaves(SweepSpec):
            text = short(override.text)
            value = override.value
            for part in leaf[len(override.path):]:
                value = value[part]
            if leaf == ("train", "seed"):
                raise SpecError(f"--set {text}: each trial's seed comes from search.seeds, "
                                "which wins over train.seed; set the seeds instead: --set "
                                f"'search.seeds=[{json.dumps(value)}]'")
            name = check.axis(leaf)
            if name is not None:
                raise SpecError(f"--set {text}: search.params.{name} sweeps "
                                f"{'.'.join(leaf)}, and the swept values win over a fixed "
                                f"one; change the axis instead: --set "
                                f"'search.params.{name}=[{json.dumps(value)}]'")


def _settings_that_nothing_reads(check: _Check) -> None:
    for reader in readers():
        selected = check.values(reader.selector)
        if any(value in reader.readers for value in selected):
            continue
        chooser = f"{_SELECTOR[reader.selector]} {' or '.join(map(str, selected))}"
        name = check.axis(reader.path)
        field_name = ".".join(reader.path)
        if name is not None:
            check.refuse(("search", "params", name), f"search.params.{name}",
                         f"sweeps {field_name}, which {chooser} ignores ({reader.what}): every "
                         "trial would compute the same thing; remove the axis")
        if not check.is_set(reader.path):
            continue
        if reader.selector == ("dataset", "name") and not check.is_set(reader.selector):
            check.refuse(reader.path, field_name, "is set but dataset.name is not, and the "
                         "default synthetic dataset reads no files; name the dataset "
                         "(dataset: {name: cifar10 or image_folder, ...})")
        check.warn(reader.path, field_name,
                   f"does nothing with {chooser} ({reader.what}); remove it")


def _seed_comes_from_the_search(check: _Check) -> None:
    if check.is_set(("train", "seed")) and check.axis(("train", "seed")) is None:
        check.warn(("train", "seed"), "train.seed", "does nothing: each trial's seed comes "
                   f"from search.seeds ({short(check.spec.search.seeds)}); list it there")


def _metric_direction(check: _Check) -> None:
    metric, mode = check.spec.metric, check.spec.mode
    direction = METRICS[metric].direction
    if mode != direction:
        better = "lower" if direction == "min" else "higher"
        check.refuse(("mode",), "mode", f"{mode} would rank the trial with the "
                     f"{'highest' if mode == 'max' else 'lowest'} {metric} best, and {metric} "
                     f"is better {better}: write mode: {direction} (or leave mode out: it "
                     "follows the metric)")


def _metric_is_logged(check: _Check) -> None:
    metric = check.spec.metric
    protocol = next((p for p in ("online_linear", "offline_linear")
                     if metric.startswith(f"{p}_")), None)
    probes = check.values(("eval", "protocol"))
    if protocol is not None and protocol not in probes:
        when = ("only at epoch 0 (the untrained encoder) unless"
                if protocol == "offline_linear" else "only when")
        check.refuse(("metric",), "metric", f"{metric} is logged {when} eval.protocol is "
                     f"{protocol}, and this spec probes {probes[0]}: optimise "
                     f"{metric.removeprefix(protocol + '_')} (the protocol's own), or set "
                     f"eval.protocol: {protocol}")


def _one_value_distributions(check: _Check) -> None:
    for name, param in check.spec.search.params.items():
        if not isinstance(param, OptunaParam):
            continue
        if param.type == "categorical" and len(param.choices or []) == 1:
            value, shape = (param.choices or [None])[0], "one choice"
        elif param.type != "categorical" and param.low == param.high:
            value, shape = param.low, f"low == high == {param.low}"
        else:
            continue
        path = ".".join(param_path(name))
        check.warn(("search", "params", name), f"search.params.{name}",
                   f"a distribution with {shape} samples nothing: every trial gets "
                   f"{value!r}; set {path}: {value!r} and remove the axis, or widen it")


def _resources_reserve_something(check: _Check) -> None:
    cpus, gpus = check.values(("resources", "cpu")), check.values(("resources", "gpu"))
    if 0 in cpus and 0 in gpus:
        check.refuse(("resources",), "resources", "cpu: 0 and gpu: 0 reserve nothing for a "
                     "trial: Ray would start every trial at once and each would cost 0 "
                     "device-seconds; give each trial cpu: 1 (or a share of a GPU)")


def _train_images(check: _Check) -> tuple[int, str, tuple[str, ...]] | None:
    """The fewest training images a trial of the spec gets, when the spec says it: the
    number, the setting that says it, and its path."""
    known: list[tuple[int, str, tuple[str, ...]]] = []
    for cap in check.values(("dataset", "train_size")):
        if cap is not None:
            known.append((int(cap), "dataset.train_size caps it", ("dataset", "train_size")))
    for dataset in check.values(("dataset", "name")):
        if dataset == "synthetic":
            path = ("dataset", "synthetic_train_size")
            known.append((int(min(check.values(path))), f"{'.'.join(path)}", path))
        elif dataset == "cifar10":
            known.append((CIFAR10_TRAIN_IMAGES, "CIFAR-10's training split",
                          ("dataset", "name")))
    return min(known, default=None)


def _enough_training_images(check: _Check) -> None:
    known = _train_images(check)
    if known is None:
        return
    images, said_by, path = known
    if images < MIN_TRAIN_IMAGES:
        loc, name = check.field(path)
        check.refuse(loc, name, f"{images} training image cannot train: a contrastive loss "
                     "needs another image as a negative and the probe standardises features "
                     f"over at least {MIN_TRAIN_IMAGES}; use at least {MIN_TRAIN_IMAGES} images "
                     "(and at least train.batch_size)")
    batch_path = ("train", "batch_size")
    batch = max(check.values(batch_path))
    if batch > images:
        loc, _ = check.field(batch_path if check.is_set(batch_path) or check.axis(batch_path)
                             else path)  # a default batch size: where the size is said
        name = check.field(batch_path)[1]
        check.refuse(loc, name, f"{batch} is more than the {images} training images "
                     f"({said_by}): every step would train on a partial batch of {images} while "
                     f"the learning rate scales by {batch} / 256; use a batch size of at most "
                     f"{images}, or more images")


def _knn_k_within_the_images(check: _Check) -> None:
    if not (check.is_set(("eval", "knn_k")) or check.axis(("eval", "knn_k"))):
        return  # the default adapts: k = min(knn_k, images)
    known = _train_images(check)
    bank = [known[0]] if known else []
    bank += [size for size in check.values(("eval", "probe_train_size")) if size is not None]
    k = max(check.values(("eval", "knn_k")))
    if bank and k > min(bank):
        loc, name = check.field(("eval", "knn_k"))
        check.warn(loc, name, f"{k} is more than the {min(bank)} training images the kNN "
                   "monitor searches: it votes with all of them; lower knn_k to at most "
                   f"{min(bank)}")


def _warmup_within_the_epochs(check: _Check) -> None:
    epochs = [e for e in check.values(("train", "epochs")) if e > 0]
    warmup = max(check.values(("train", "warmup_epochs")))
    if epochs and warmup > min(epochs):
        path = ("train", "warmup_epochs")
        loc, name = check.field(path if check.is_set(path) or check.axis(path) else
                                ("train", "epochs"))
        default = "" if check.is_set(path) or check.axis(path) else " (the default)"
        check.warn(loc, name, f"a warm-up of {warmup:g} epochs{default} is longer than "
                   f"train.epochs {min(epochs)}: the learning rate never reaches its peak "
                   "(learning_rate x batch_size / 256) and never decays; shorten "
                   "train.warmup_epochs")


def _probes_within_the_epochs(check: _Check) -> None:
    epochs = [e for e in check.values(("train", "epochs")) if e > 0]
    every = max(check.values(("eval", "every_epochs")))
    if epochs and every > min(epochs):
        loc, name = check.field(("eval", "every_epochs"))
        check.warn(loc, name, f"{every} is more than train.epochs {min(epochs)}: a trial "
                   "probes only its untrained encoder and its last epoch; lower every_epochs")


def _asha_can_stop_something(check: _Check) -> None:
    if check.spec.scheduler.type != "asha":
        return
    longest = max(check.values(("train", "epochs")))
    grace = check.spec.scheduler.grace_period
    if grace >= longest:
        path = ("scheduler", "grace_period")
        check.warn(path if check.is_set(path) else ("scheduler", "type"), ".".join(path),
                   f"{grace} is not below train.epochs {longest}: ASHA's first comparison "
                   "comes at or after the last epoch, so it stops no trial (the sweep runs as "
                   "fifo); lower grace_period, or train more epochs")


RULES: tuple[Callable[[_Check], None], ...] = (
    _name_is_not_an_option,
    _set_does_not_fight_the_search,
    _settings_that_nothing_reads,
    _seed_comes_from_the_search,
    _metric_direction,
    _metric_is_logged,
    _one_value_distributions,
    _resources_reserve_something,
    _enough_training_images,
    _knn_k_within_the_images,
    _warmup_within_the_epochs,
    _probes_within_the_epochs,
    _asha_can_stop_something,
)
