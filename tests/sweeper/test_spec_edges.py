"""Hard edges: each class of bad spec or override (tracebacks, hangs, silent
coercions in the making) ends in exit 2 with one line naming the field, the
value, the YAML line (or --set) and the fix; and huge grids are answered one
trial at a time."""

import re
from pathlib import Path

import pytest
import yaml

import sweeper.search.grid
import sweeper.spec.checks
import sweeper.spec.yaml_reader
from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.search import expand, iter_trials, summary, trial_at
from sweeper.spec.load import load_spec, parse_spec
from sweeper.spec.schema import MAX_RUN_TRIALS
from sweeper.spec.yaml_reader import MAX_SPEC_BYTES


def _error(text: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml", overrides=overrides)
    message = str(info.value)
    assert "\n" not in message, message  # one mistake, one line
    return message


def _cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *argv: str
         ) -> tuple[int, str, str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    code = main([argv[0], str(spec), *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


# --- coercions are errors -----------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("train: {batch_size: true}", r"line 2: train.batch_size: .*integer \(got True\); write "
     r"a whole number.*true and false are not numbers"),
    ("train: {batch_size: '128'}", r"line 2: train.batch_size: .*\(got '128'\).*without quotes"),
    ("train: {epochs: 100.0}", r"line 2: train.epochs: .*\(got 100.0\); write 100, not 100.0"),
    ("train: {blur: 'yes'}", r"line 2: train.blur: .*boolean \(got 'yes'\); write true or "
     "false, without quotes"),
    ("train: {temperature: '0.5'}", r"line 2: train.temperature: .*\(got '0.5'\).*without"),
    ("model: {width: 16.5}", r"line 2: model.width: .*\(got 16.5\)"),
    ("search: {params: {temperature: [true, 0.5]}}",
     r"line 2: search.params.temperature\[0\]: .*\(got True\)"),
    ("search: {seeds: ['1']}", r"line 2: search.seeds.0: .*\(got '1'\)"),
])
def test_coercions_are_errors(text: str, expected: str) -> None:
    message = _error(f"name: a\n{text}\n")
    assert message.startswith("s.yaml, line 2: ")
    assert re.search(expected, message), message


def test_an_int_is_still_a_float() -> None:
    spec = parse_spec("name: a\ntrain: {temperature: 1, learning_rate: 2}\n"
                      "resources: {cpu: 2}\n")
    assert spec.train.temperature == 1.0 and isinstance(spec.train.temperature, float)
    assert spec.resources.cpu == 2.0


def test_override_coercions_say_from_set() -> None:
    message = _error("name: a\n", ["train.batch_size=true"])
    assert "(from --set)" in message and "train.batch_size" in message and "True" in message


# --- finite numbers in sane ranges ----------------------------------------------------

@pytest.mark.parametrize("field", ["train.temperature", "train.learning_rate",
                                   "train.weight_decay", "train.warmup_epochs",
                                   "resources.cpu", "resources.gpu", "train.ema_decay",
                                   "train.color_jitter_strength"])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(field: str, value: str) -> None:
    section, name = field.split(".")
    message = _error(f"name: a\n{section}:\n  {name}: {value}\n")
    assert f"line 3: {field}: Input should be a finite number" in message
    assert "write a finite number" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("train: {batch_size: 1}", "train.batch_size: must be between 2 and 65536 (NT-Xent"),
    ("train: {batch_size: 10000000}", "train.batch_size: must be between 2 and 65536"),
    ("model: {width: 100000}", "model.width: must be between 1 and 1024"),
    ("train: {epochs: 1000000000}", "train.epochs: must be between 0 and 100000"),
    ("train: {seed: 99999999999999999999999}",
     "train.seed: must be between 0 and 2**63 - 1 (torch seeds are 64-bit)"),
    ("train: {seed: -1}", "train.seed: must be between 0 and 2**63 - 1"),
    ("train: {learning_rate: 1.0e+300}", "train.learning_rate: must be greater than 0 and at "
     "most 1000000"),
    ("train: {temperature: 0}", "train.temperature: must be greater than 0 and at most 100"),
    ("resources: {cpu: 100000}", "resources.cpu: must be between 0 and 1024"),
    ("search: {seeds: [18446744073709551616]}", "search.seeds.0: must be between 0 and 2**63"),
    ("search: {type: optuna, num_samples: 1000000000}",
     "search.num_samples: must be between 1 and 100000"),
    ("search: {type: optuna, num_samples: 4, seeds: [4294967296]}",
     "an optuna seed must be between 0 and 2**32 - 1"),
    ("scheduler: {type: asha, reduction_factor: .inf}", "scheduler.reduction_factor"),
    ("max_failures: 1000000", "max_failures: must be between 0 and 1000"),
    ("dataset: {name: synthetic, synthetic_train_size: 1000000000}",
     "dataset.synthetic_train_size: must be between 1 and 1000000"),
])
def test_absurd_numbers_name_the_range_and_why(text: str, expected: str) -> None:
    message = _error(f"name: a\n{text}\n")
    assert expected in message, message
    assert "line 2" in message


def test_the_shipped_search_spaces_stay_in_range() -> None:
    root = Path(__file__).resolve().parents[2] / "search_spaces"
    for path in root.glob("*.yaml"):
        assert list(iter_trials(load_spec(path)))


# --- Optuna distributions are checked against their fields ----------------------------

OPTUNA = "name: a\nsearch:\n  type: optuna\n  num_samples: 4\n  params:\n    {param}\n"


@pytest.mark.parametrize(("param", "expected"), [
    ("temperature: {type: float, low: -1, high: 1}",
     "search.params.temperature.low: must be greater than 0"),
    ("temperature: {type: float, low: 0.1, high: 1000}",
     "search.params.temperature.high: must be greater than 0 and at most 100"),
    ("batch_size: {type: categorical, choices: ['a', 512]}",
     "search.params.batch_size.choices[0]: Input should be a valid integer (got 'a')"),
    ("batch_size: {type: float, low: 64, high: 512}",
     "search.params.batch_size: a float distribution cannot sweep train.batch_size; it takes "
     "integers: use {type: int, low, high}"),
    ("model.width: {type: int, low: 0.5, high: 0.7}",
     "search.params.model.width: an int parameter needs whole-number bounds, got low 0.5 and "
     "high 0.7; no integer lies between them"),
    ("temperature: {type: float, low: .nan, high: 1}",
     "search.params.temperature.low: must be a finite number"),
    ("temperature: {type: float, low: 0.1, high: .inf}",
     "search.params.temperature.high: must be a finite number"),
    ("learning_rate: {type: float, low: 0, high: 1, log: true}",
     "search.params.learning_rate: a log-scaled range needs low > 0"),
    ("optimizer: {type: categorical, choices: [sgd, adam]}",
     "search.params.optimizer.choices[1]: Input should be 'lars', 'sgd' or 'adamw'"),
    ("blur: {type: int, low: 0, high: 1}",
     "search.params.blur: an int distribution cannot sweep train.blur; it takes a fixed set "
     "of values: use {type: categorical, choices}"),
    ("optimizer: {type: float, low: 0, high: 1}", "use {type: categorical, choices}"),
    ("temperature: {type: float, low: 0.1, high: 1, choices: [1]}",
     "'choices' only applies to type: categorical"),
    ("blur: {type: categorical, choices: [true, true]}", "choices repeat a value"),
    ("temperature: {type: categorical, choices: [1, 1.0]}",
     "search.params.temperature.choices[1]: 1.0 repeats"),
    ("temperature: {type: float, low: '0.1', high: 1}",
     "search.params.temperature.low: must be a finite number"),
])
def test_optuna_ranges_are_checked_against_their_field(param: str, expected: str) -> None:
    message = _error(OPTUNA.format(param=param))
    assert message.startswith("s.yaml, line 6: "), message
    assert expected in message, message


def test_optuna_int_ranges_over_float_fields_are_fine() -> None:
    spec = parse_spec(OPTUNA.format(param="warmup_epochs: {type: int, low: 0, high: 10}"))
    assert summary(spec) == "4 trials: optuna (tpe) over warmup_epochs"


@pytest.mark.parametrize("command", [["validate"], ["run", "--dry-run"]])
def test_bad_optuna_ranges_exit_2_from_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    text = OPTUNA.format(param="temperature: {type: float, low: -1, high: 1}")
    code, out, err = _cli(tmp_path, capsys, text, *command)
    assert code == 2 and not out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "line 6: search.params.temperature.low" in err


# --- swept values never become unsafe path fragments ---------------------------------

@pytest.mark.parametrize(("param", "expected"), [
    ("dataset.root: [a, b]", "search.params.dataset.root: cannot sweep dataset.root: it is a "
     "path"),
    ("dataset.root: {type: categorical, choices: ['../../x', 'a/b']}",
     "cannot sweep dataset.root"),
    ("optimizer: ['../../x', sgd]", "search.params.optimizer[0]: Input should be 'lars'"),
    ("seed: [1, 2]", "cannot sweep train.seed: list the seeds under search.seeds"),
    ("name: [a, b]", "cannot sweep unknown field 'name'"),
    ("model: [a]", "cannot sweep unknown field"),
])
def test_sweeping_paths_and_unsafe_values_is_refused(param: str, expected: str) -> None:
    kind = "optuna\n  num_samples: 2" if "categorical" in param else "grid"
    message = _error(f"name: a\nsearch:\n  type: {kind}\n  params:\n    {param}\n")
    assert expected in message, message


def test_unsafe_text_values_are_refused_even_where_a_field_takes_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # No sweepable field takes free text: the test makes one take it, so the check runs.
    monkeypatch.setattr(sweeper.spec.checks, "_UNSWEEPABLE", {})
    monkeypatch.setattr(sweeper.spec.checks, "field_kinds", lambda annotation: {"choice"})
    message = _error("name: a\nsearch:\n  params:\n    dataset.root: [ok, ../../x]\n")
    assert "line 4: search.params.dataset.root[1]: '../../x' cannot name a run" in message


def test_sweeping_the_search_seed_alone_is_a_no_op() -> None:
    # The seed each trial gets comes from search.seeds; only a swept seed that agrees stays.
    assert summary(parse_spec("name: a\nsearch: {params: {seed: [0]}}\n")).startswith("1 trial")
    assert "cannot sweep train.seed" in _error("name: a\nsearch: {params: {seed: [3]}}\n")


def test_one_field_swept_twice_is_refused() -> None:
    message = _error("name: a\nsearch: {params: {temperature: [1], train.temperature: [2]}}\n")
    assert "sweeps the same field as search.params.temperature" in message


# --- keys and YAML shapes --------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("name: a\n? [a, b]\n: 1\n", "s.yaml, line 2: a key must be a name, not a list"),
    ("name: a\n? {a: b}\n: 1\n", "s.yaml, line 2: a key must be a name, not a mapping"),
    ("name: a\ntrain: {1: 2}\n", "s.yaml, line 2: key '1' reads as a number, not a name"),
    ("name: a\non: 1\n", "s.yaml, line 2: key 'on' reads as a boolean, not a name; quote it"),
    ("name: a\nname: b\n", "duplicate key 'name' at line 2 (first at line 1); keep one"),
])
def test_keys_must_be_names(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_merge_keys_still_work() -> None:
    spec = parse_spec("name: a\ntrain:\n  <<: {epochs: 3, batch_size: 64}\n  batch_size: 32\n")
    assert (spec.train.epochs, spec.train.batch_size) == (3, 32)


# --- bounded work ------------------------------------------------------------------------

def _billion_laughs(field: str) -> str:
    lines = ["name: a", "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + f"\n{field}\n"


@pytest.mark.parametrize("field", ["train: {epochs: *a9}",
                                   "search: {params: {temperature: *a9}}"])
def test_a_billion_laughs_fails_before_it_expands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        field: str) -> None:
    def never(*args: object) -> None:
        raise AssertionError("the document was constructed")

    monkeypatch.setattr(sweeper.spec.yaml_reader._UniqueKeyLoader, "construct_document", never)
    code, _, err = _cli(tmp_path, capsys, _billion_laughs(field), "validate")
    assert code == 2 and "Traceback" not in err
    assert "expands to more than 50000 values once its aliases" in err


def test_small_aliases_still_work() -> None:
    spec = parse_spec("name: a\nsearch:\n  params:\n    temperature: &t [0.1, 0.2]\n"
                      "    color_jitter_strength: *t\n")
    assert summary(spec).startswith("4 trials")


@pytest.mark.parametrize(("text", "expected"), [
    ("name: a\nsearch: {params: {temperature: &a [*a]}}\n", "a recursive alias"),
    ("name: a\ntrain: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels"),
    ("name: a\ntrain: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("name: a\nsearch: {params: {temperature: [" + ",".join(["1"] * 60000) + "]}}\n",
     "the spec holds more than 50000 values"),
])
def test_recursive_deep_and_huge_documents_are_refused(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: a\n" + "#" * MAX_SPEC_BYTES)
    with pytest.raises(SpecError, match="larger than 1024 KiB"):
        load_spec(path)


def test_an_alias_bomb_in_an_override_is_refused() -> None:
    levels = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    bomb = "[" + ", ".join(levels) + "]"  # 10**10 values in one flow sequence
    message = _error("name: a\n", [f"search.params={{temperature: {bomb}}}"])
    assert message.startswith("--set 'search.params=") and "aliases" in message


MEGA = ("name: mega\nsearch:\n  params:\n"
        "    temperature: [" + ", ".join(f"{0.01 * (i + 1):.2f}" for i in range(100)) + "]\n"
        "    color_jitter_strength: [" + ", ".join(f"{0.01 * i:.2f}" for i in range(100)) + "]\n"
        "    weight_decay: [" + ", ".join(f"{0.001 * i:.3f}" for i in range(100)) + "]\n")


class _Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = sweeper.spec.checks.with_values

        def counting(*args: object) -> object:
            self.calls += 1
            return original(*args)  # type: ignore[arg-type]

        # Where trials are resolved: the value checks and the grid's cells.
        monkeypatch.setattr(sweeper.spec.checks, "with_values", counting)
        monkeypatch.setattr(sweeper.search.grid, "with_values", counting)


def test_a_million_cell_grid_validates_without_building_its_trials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = _Counter(monkeypatch)
    code, out, _ = _cli(tmp_path, capsys, MEGA, "validate")
    assert code == 0
    assert out == "1000000 trials: grid over temperature × color_jitter_strength × weight_decay\n"
    assert built.calls == 300  # one resolution per grid value, none per cell


def test_a_million_cell_grid_dry_run_lists_the_first_thousand(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = _Counter(monkeypatch)
    code, out, _ = _cli(tmp_path, capsys, MEGA, "run", "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 + 1000 + 1
    assert lines[-1].startswith("  ... and 999000 more")
    assert built.calls == 300 + 1000


def test_trial_index_of_a_million_cell_grid_builds_one_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sweeper.commands.trial

    monkeypatch.setattr(sweeper.commands.trial, "fit", lambda cfg, report=None: {"steps": 0})
    built = _Counter(monkeypatch)
    code, out, _ = _cli(tmp_path, capsys, MEGA, "trial", "--index", "999999", "--json")
    assert code == 0
    assert built.calls == 300 + 1
    result = yaml.safe_load(out.splitlines()[-1])
    assert result["params"] == {"temperature": 1.0, "color_jitter_strength": 0.99,
                                "weight_decay": 0.099, "seed": 0}
    code, _, err = _cli(tmp_path, capsys, MEGA, "trial", "--index", "1000000")
    assert code == 2 and "expands to 1000000 trials (0..999999)" in err


def test_trial_at_is_the_expansion_cell_by_cell() -> None:
    spec = parse_spec("name: a\nsearch:\n  params:\n    temperature: [0.1, 0.2, 0.3]\n"
                      "    blur: [false, true]\n    model.width: [8, 16]\n  seeds: [0, 7]\n")
    trials = expand(spec)
    assert len(trials) == 24
    assert [trial_at(spec, i) for i in range(24)] == trials
    assert trials[1].params == {"temperature": 0.1, "blur": False, "model.width": 8, "seed": 7}
    assert trials[2].params["model.width"] == 16


def test_expand_refuses_a_grid_ray_cannot_run() -> None:
    spec = parse_spec(MEGA)
    with pytest.raises(SpecError, match=f"more than the {MAX_RUN_TRIALS} one sweep can run"):
        expand(spec)
    assert trial_at(spec, 999_999).index == 999_999


# --- numbers are read as YAML 1.2 (and JSON) read them --------------------------------

@pytest.mark.parametrize(("written", "number"), [
    ("1e-5", 1e-5), ("1E5", 1e5), ("1e+2", 100.0), (".5", 0.5), ("-.5", -0.5),
    ("+1.0e+3", 1000.0), ("2.", 2.0), ("0.001", 0.001), ("3", 3), ("010", 10),
    ("0x10", 16), ("0o10", 8),
])
def test_numbers_read_as_yaml_1_2(written: str, number: float) -> None:
    data, _ = sweeper.spec.yaml_reader.parse_yaml(f"a: {written}\nb: [{written}]\n", "s.yaml")
    assert data == {"a": number, "b": [number]}
    assert type(data["a"]) is type(number)


@pytest.mark.parametrize("written", ["1_000", "1:30", "0b10", "-0x10", "0x1_0", "2026-12-02",
                                     "1e", "e5", "1.2.3"])
def test_what_yaml_1_2_reads_as_text_stays_text(written: str) -> None:
    data, _ = sweeper.spec.yaml_reader.parse_yaml(f"a: {written}\n", "s.yaml")
    assert data == {"a": written}


@pytest.mark.parametrize(("field", "written", "value"), [
    ("learning_rate", "1e-5", 1e-5), ("learning_rate", ".5", 0.5),
    ("weight_decay", "1E-6", 1e-6), ("temperature", "+1.0e-1", 0.1),
    ("batch_size", "0x100", 256), ("epochs", "010", 10),
])
def test_numbers_in_a_spec_and_through_set(field: str, written: str, value: float) -> None:
    assert getattr(parse_spec(f"name: a\ntrain: {{{field}: {written}}}\n").train,
                   field) == value
    assert getattr(parse_spec("name: a\n", overrides=[f"train.{field}={written}"]).train,
                   field) == value


def test_a_number_range_in_exponent_form_samples_in_optuna() -> None:
    spec = parse_spec("name: a\nsearch:\n  type: optuna\n  num_samples: 2\n  params:\n"
                      "    learning_rate: {type: float, low: 1e-5, high: 1e-1, log: true}\n")
    param = spec.search.params["learning_rate"]
    assert (param.low, param.high) == (1e-5, 0.1)


@pytest.mark.parametrize(("text", "expected"), [
    # Quoted: removing the quotes gives the number, so the message says so.
    ("train: {learning_rate: '1e-5'}", r"\(got '1e-5'\); write a number, e\.g\. 0\.5, "
     "without quotes$"),
    # Never quoted: YAML 1.2 reads these as text; no word about quotes.
    ("train: {learning_rate: 1_000}", r"\(got '1_000'\); write 1000: YAML reads a number "
     "with _ as text$"),
    ("train: {batch_size: 1_024}", r"\(got '1_024'\); write 1024: YAML reads"),
    ("train: {epochs: 1:30}", r"\(got '1:30'\); write a whole number, e\.g\. 512$"),
    ("train: {batch_size: 0b100}", r"\(got '0b100'\); write a whole number, e\.g\. 512$"),
    ("search: {type: optuna, num_samples: 2, params: {learning_rate: "
     "{type: float, low: 1_0, high: 1}}}",
     r"low: must be a finite number; write 10: YAML reads a number with _ as text \(got '1_0'\)$"),
    ("search: {type: optuna, num_samples: 2, params: {learning_rate: "
     "{type: float, low: '1e-5', high: 1}}}",
     r"low: must be a finite number; write a number, e\.g\. 0\.5, without quotes \(got '1e-5'\)$"),
    ("train: {learning_rate: 1e999}", r"finite number \(got inf\)"),
    (f"train: {{seed: 1{'0' * 5000}}}", r"line 2: a number of 5001 digits; write a number"),
    (f"train: {{seed: 0x{'f' * 5000}}}", r"line 2: a number of 5000 digits"),
])
def test_number_mistakes_name_the_fix_without_false_quotes(text: str, expected: str) -> None:
    message = _error(f"name: a\n{text}\n")
    assert "line 2" in message and len(message) < 300, message
    assert re.search(expected, message), message
    if "'" not in text.split(":", 1)[1]:  # the user wrote no quotes: none are mentioned
        assert "quotes" not in message, message


@pytest.mark.parametrize("value", [".inf", "-.Inf", "+.INF", ".NaN", ".NAN"])
def test_every_yaml_1_2_spelling_of_inf_and_nan_is_refused(value: str) -> None:
    assert "write a finite number" in _error(f"name: a\ntrain: {{learning_rate: {value}}}\n")
    assert "write a finite number" in _error("name: a\n", [f"train.learning_rate={value}"])


def test_an_exponent_key_is_a_number_not_a_name() -> None:
    assert "key '1e5' reads as a number, not a name" in _error("name: a\n1e5: 2\n")


def test_number_forms_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    code, out, err = _cli(tmp_path, capsys,
                          "name: a\nsearch: {params: {learning_rate: [1e-5, 3E-4]}}\n",
                          "run", "--dry-run", "--set", "train.weight_decay=5E-4")
    assert code == 0, err
    assert re.findall(r"lr\S+", out) == ["lr1e-05", "lr0.0003"], out
    code, _, err = _cli(tmp_path, capsys, "name: a\ntrain: {learning_rate: 1_0}\n", "validate")
    assert code == 2 and err.count("\n") == 1 and "write 10:" in err, err
