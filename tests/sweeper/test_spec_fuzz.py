"""Property-based: malformed specs and overrides never produce a traceback or
an exit status other than 0 (valid) or 2 (a user mistake)."""

from pathlib import Path

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
                               "resources.gpu", ".", "a..b", "train"]),
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


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=overrides, index=st.integers(-3, 6))
def test_malformed_trial_overrides_are_rejected_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], index: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sweeper.run_trial

    monkeypatch.setattr(sweeper.run_trial, "fit", lambda cfg, report=None: {"steps": 0})
    argv = ["trial", str(Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml"),
            "--index", str(index)]
    for override in sets:
        argv += ["--set", override]
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
