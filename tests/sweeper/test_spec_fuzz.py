"""Property-based: malformed specs and overrides never produce a traceback or
an exit status other than 0 (valid) or 2 (a user mistake); and each class of
mistake docs/reliability.md lists (coercions, non-finite and absurd numbers, YAML
bombs, bad Optuna ranges, malformed trial overrides) is always exit 2 with one line
naming the field and where it came from. Every example is a fresh file parsed
in-process: the whole module costs seconds."""

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeper.cli import main

VALID = yaml.safe_load((Path(__file__).resolve().parents[2] / "search_spaces" /
                        "demo.yaml").read_text())
KEYS = ["name", "method", "dataset", "model", "train", "eval", "search", "scheduler",
        "resources", "metric", "mode", "max_failures", "max_concurrent_trials", "epochs",
        "batch_size", "temperature", "ema_decay", "params", "type", "root", "width", "gpu",
        "cpu", "low", "high", "choices", "seeds", "num_samples", "protocol", "optimizer"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["../x", "simclr", "byol", "grid", "optuna", "asha", "0",
                                     "-1", "1e309", "nan", "synthetic", "image_folder"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12)


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    """The demo spec with a few keys replaced, removed or added at random depths."""
    spec = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(draw(st.integers(1, 3))):
        node = spec
        path = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
        for key in path[:-1]:
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                break
            node = child
        if isinstance(node, dict):
            if draw(st.booleans()) and path[-1] in node:
                del node[path[-1]]
            else:
                node[path[-1]] = draw(values)
    return yaml.safe_dump(spec)


raw_texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "- a\n", "name: [", "name: a\nname: b\n", "a: !!python/object {}\n",
                     "name: x\n\tbad", "{{{", "name: !!binary aGk=\n", "name: &a\nb: *a\n"]),
)
overrides = st.lists(st.one_of(
    st.text(max_size=20),
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["train.epochs", "train.temperature", "name", "dataset.root",
                               "model.width", "train.nope", "search.params.temperature",
                               "resources.gpu", ".", "a..b", "train",
                               # --set into the search space
                               "search.params", "search.params.model.width",
                               "search.params.temperature.low",
                               "search.params.temperature.type", "search.params.x.choices",
                               "search.num_samples", "search.seeds"]),
              st.text(max_size=10)),
), max_size=3)


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.one_of(mutated_specs(), raw_texts), sets=overrides,
       command=st.sampled_from([["validate"], ["run", "--dry-run"]]))
def test_malformed_specs_exit_0_or_2_without_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, sets: list[str],
        command: list[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    argv = [command[0], str(spec), *command[1:]]
    for override in sets:
        argv += ["--set", override]
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.strip(), "a rejected spec must say why"


DEMO = Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml"  # 4 trials


def _trial_code(sets: list[str], index: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The exit status of `sweeper trial demo.yaml`, and how often it started training."""
    import sweeper.commands.trial

    calls: list[Any] = []

    def fit(cfg: Any, report: Any = None) -> dict[str, int]:
        calls.append(cfg)
        return {"steps": 0}

    monkeypatch.setattr(sweeper.commands.trial, "fit", fit)
    argv = ["trial", str(DEMO), "--index", str(index)]
    for override in sets:
        argv += ["--set", override]
    return _exit_code(argv), len(calls)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=overrides, index=st.integers(-3, 6))
def test_trial_overrides_exit_0_and_train_or_exit_2_before_training(
        capsys: pytest.CaptureFixture[str], sets: list[str], index: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, trained = _trial_code(sets, index, monkeypatch)
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    assert trained == (1 if code == 0 else 0), "exit 0 trains once; exit 2 never starts"
    if code == 2:
        assert "sweeper: " in err  # ours, or argparse's usage error


# --- one generator per class of mistake ---------------------------------------------------

INT_FIELDS = ["train.epochs", "train.batch_size", "train.seed", "model.width",
              "eval.every_epochs", "eval.probe_max_iter", "dataset.synthetic_train_size"]
FLOAT_FIELDS = ["train.temperature", "train.learning_rate", "train.weight_decay",
                "train.warmup_epochs", "train.color_jitter_strength", "train.ema_decay",
                "train.momentum", "resources.cpu", "resources.gpu"]
BOOL_FIELDS = ["train.blur", "train.compile", "dataset.download"]


@st.composite
def coercions(draw: st.DrawFn) -> tuple[str, Any]:
    """A value of the wrong type that lax parsing would have converted."""
    kind = draw(st.sampled_from(["int", "float", "bool"]))
    if kind == "int":
        n = draw(st.integers(2, 1000))
        return draw(st.sampled_from(INT_FIELDS)), draw(st.sampled_from(
            [True, False, str(n), float(n), f"{n}.0"]))
    if kind == "float":
        x = draw(st.floats(0.01, 0.99))
        return draw(st.sampled_from(FLOAT_FIELDS)), draw(st.sampled_from(
            [True, False, str(x), f" {x}"]))
    return draw(st.sampled_from(BOOL_FIELDS)), draw(st.sampled_from(
        ["yes", "true", "no", "on", 0, 1, 1.0, "1"]))


non_finite = st.tuples(st.sampled_from(FLOAT_FIELDS),
                       st.sampled_from([math.inf, -math.inf, math.nan]))
absurd = st.one_of(
    st.tuples(st.sampled_from(INT_FIELDS),
              st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64))),
    st.tuples(st.sampled_from(FLOAT_FIELDS),
              st.one_of(st.floats(min_value=1e6, max_value=1e300, exclude_min=True),
                        st.floats(min_value=-1e300, max_value=-1e-9))),
)


def _scalar(value: Any) -> str:
    """`value` as YAML for --set (quoted strings stay strings)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _assert_one_line_naming(err: str, field: str, where: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sweeper: ") and field in lines[0] and where in lines[0], err


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mistake=st.one_of(coercions(), non_finite, absurd), via_set=st.booleans(),
       command=st.sampled_from([["validate"], ["run", "--dry-run"]]))
def test_bad_values_exit_2_naming_field_value_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mistake: tuple[str, Any],
        via_set: bool, command: list[str]) -> None:
    field, value = mistake
    section, name = field.split(".")
    spec = tmp_path / "spec.yaml"
    argv = [command[0], str(spec), *command[1:]]
    if via_set:
        spec.write_text("name: f\n")
        argv += ["--set", f"{field}={_scalar(value)}"]
    else:
        spec.write_text(yaml.safe_dump({"name": "f", section: {name: value}}, sort_keys=False))
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    _assert_one_line_naming(err, f"{field}: ", "(from --set)" if via_set else "line 3")
    assert "(got " in err


@st.composite
def yaml_bombs(draw: st.DrawFn) -> str:
    """Nested aliases that expand past the node budget, or refer to themselves."""
    where = draw(st.sampled_from(["train: {epochs: *top}", "model:\n  width: *top",
                                  "search: {params: {temperature: *top}}",
                                  "search: {params: {batch_size: {type: categorical, "
                                  "choices: *top}}}"]))
    if draw(st.booleans()):
        return f"name: f\nloop: &top [1, *top]\n{where}\n"
    breadth = draw(st.integers(4, 12))
    depth = math.ceil(math.log(60_000) / math.log(breadth)) + draw(st.integers(0, 3))
    lines = ["name: f", f"a0: &a0 [{', '.join(['x'] * breadth)}]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * breadth) + "]"
              for i in range(1, depth + 1)]
    return "\n".join(lines).replace(f"&a{depth} ", "&top ") + f"\n{where}\n"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_bombs(), command=st.sampled_from([["validate"], ["run", "--dry-run"]]))
def test_yaml_bombs_exit_2_before_expanding(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
        command: list[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert _exit_code([command[0], str(spec), *command[1:]]) == 2
    err = capsys.readouterr().err
    _assert_one_line_naming(err, "alias", "line ")


@st.composite
def bad_optuna_params(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A distribution that cannot sweep its field."""
    bad = draw(st.sampled_from(["negative", "non_finite", "log", "inverted", "float_on_int",
                                "fractional_int", "choice", "numeric_on_choice", "stray"]))
    floats, ints = [f.removeprefix("train.") for f in FLOAT_FIELDS], INT_FIELDS
    if bad == "negative":
        return draw(st.sampled_from(floats)), {
            "type": "float", "low": draw(st.floats(-1e300, -1e-6)), "high": 0.5}
    if bad == "non_finite":
        return draw(st.sampled_from(floats)), {
            "type": "float", "low": 0.1, "high": draw(st.sampled_from(
                [math.inf, math.nan, "1", True]))}
    if bad == "log":
        return draw(st.sampled_from(floats)), {
            "type": "float", "low": draw(st.floats(-10, 0)), "high": 0.5, "log": True}
    if bad == "inverted":
        return draw(st.sampled_from(floats)), {"type": "float", "low": 0.9, "high": 0.1}
    if bad == "float_on_int":
        return draw(st.sampled_from(ints)), {"type": "float", "low": 1, "high": 8}
    if bad == "fractional_int":
        low = draw(st.floats(1.01, 7.99))
        return draw(st.sampled_from(ints)), {"type": "int", "low": low, "high": 8}
    if bad == "choice":
        field, value = draw(st.one_of(coercions(), non_finite, absurd))
        name = field.removeprefix("train.")
        return name, {"type": "categorical", "choices": [value]}
    if bad == "numeric_on_choice":
        return draw(st.sampled_from(["optimizer", "blur", "precision", "model.backbone",
                                     "eval.protocol", "dataset.name"])), {
            "type": draw(st.sampled_from(["int", "float"])), "low": 0, "high": 1}
    return draw(st.sampled_from(floats)), {"type": "float", "low": 0.1, "high": 0.5,
                                           "choices": [0.2]}


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(param=bad_optuna_params(), command=st.sampled_from([["validate"], ["run", "--dry-run"]]))
def test_bad_optuna_ranges_exit_2_naming_the_param_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], param: tuple[str, dict[str, Any]],
        command: list[str]) -> None:
    name, dist = param
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: f\nsearch:\n  type: optuna\n  num_samples: 4\n  params:\n"
                    f"    {name}: {_scalar(dist)}\n")
    assert _exit_code([command[0], str(spec), *command[1:]]) == 2
    err = capsys.readouterr().err
    _assert_one_line_naming(err, f"search.params.{name}", "line 6")


def _keeps_a_section(override: str) -> bool:
    """`train=null` (the default section) and `train={}` (nothing merged) are valid."""
    key, _, value = override.partition("=")
    if key != "train" or not value.strip():
        return False
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return False
    return parsed is None or parsed == {}


malformed_overrides = st.one_of(
    st.text(max_size=20).filter(lambda t: "=" not in t),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
        ["train.nope", "model.depth", "a..b", ".", "train", "search.params.temperature",
         "train.temperature.x", "=", " "]), st.text(max_size=10)
    ).filter(lambda override: not _keeps_a_section(override)),
    st.builds(lambda m: f"{m[0]}={_scalar(m[1])}", st.one_of(coercions(), non_finite, absurd)),
)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=malformed_overrides, others=overrides, index=st.integers(0, 3))
def test_malformed_trial_overrides_are_rejected_before_training(
        capsys: pytest.CaptureFixture[str], bad: str, others: list[str], index: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, trained = _trial_code([*others, bad], index, monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    assert trained == 0
    assert "sweeper: " in err and "Traceback" not in err
