"""`--set` as a user types it: it reaches the search space (a grid axis added or
replaced, one field of a distribution changed, a dotted axis name), is checked exactly
as the same value in the file and says "from --set"; a mapping merges into its section;
a --set the search would silently override is refused (sweeper.spec.overrides,
sweeper.spec.rules)."""

from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.search import summary, trial_at
from sweeper.spec.fields import is_section, models_in, split_key
from sweeper.spec.load import parse_spec, parse_user_spec
from sweeper.spec.schema import OptunaParam, SweepSpec
from trainers.config import TrialConfig

GRID = """\
name: g
dataset: {name: synthetic, synthetic_train_size: 1000}
train:
  epochs: 5
  batch_size: 64
  optimizer: adamw
  learning_rate: 0.03
  warmup_epochs: 1
  temperature: 0.2
search:
  params:
    temperature: [0.2, 0.5]
    color_jitter_strength: [0.5, 1.0]
"""
OPTUNA = """\
name: o
train: {epochs: 20, warmup_epochs: 1}
search:
  type: optuna
  num_samples: 8
  params:
    temperature: {type: float, low: 0.05, high: 1.0, log: true}
    model.width: {type: int, low: 8, high: 32}
"""


def _error(text: str, *overrides: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_user_spec(text, source="s.yaml", overrides=list(overrides))
    message = str(info.value)
    assert "\n" not in message, message
    return message


def _params(text: str, *overrides: str) -> dict[str, object]:
    spec = parse_user_spec(text, source="s.yaml", overrides=list(overrides)).spec
    return {name: param if isinstance(param, list) else param.model_dump()
            for name, param in spec.search.params.items()}


# --- the search space ---------------------------------------------------------------------

def test_a_grid_axis_is_replaced_in_place_and_a_new_one_added_last() -> None:
    spec = parse_spec(GRID, overrides=["search.params.temperature=[0.1,0.3,0.5]",
                                       "search.params.model.width=[8, 16]"])
    assert spec.search.params == {"temperature": [0.1, 0.3, 0.5],
                                  "color_jitter_strength": [0.5, 1.0],
                                  "model.width": [8, 16]}
    assert summary(spec) == ("12 trials: grid over temperature × color_jitter_strength × "
                             "model.width")
    last = trial_at(spec, 11)
    assert (last.config.train.temperature, last.config.train.color_jitter_strength,
            last.config.model.width) == (0.5, 1.0, 16)


def test_one_field_of_a_distribution_changes_and_the_rest_stays() -> None:
    params = _params(OPTUNA, "search.params.temperature.low=0.1",
                     "search.params.temperature.log=false", "search.params.model.width.high=64")
    assert params["temperature"] == {"type": "float", "low": 0.1, "high": 1.0, "log": False,
                                     "choices": None}
    assert params["model.width"] == {"type": "int", "low": 8, "high": 64, "log": False,
                                     "choices": None}


def test_a_distribution_becomes_categorical_by_its_type_and_choices() -> None:
    params = _params(OPTUNA, "search.params.model.width={type: categorical, choices: [8, 16]}")
    assert params["model.width"] == {"type": "categorical", "low": None, "high": None,
                                     "log": False, "choices": [8, 16]}


def test_the_search_size_and_seeds_come_from_set() -> None:
    spec = parse_spec(OPTUNA, overrides=["search.num_samples=3", "search.seeds=[7]"])
    assert (spec.search.num_samples, spec.search.seeds) == (3, [7])
    assert parse_spec(GRID, overrides=["search.seeds=[0, 1, 2]"]).search.seeds == [0, 1, 2]


@pytest.mark.parametrize(("spec", "override", "expected"), [
    # Checked as the same value in the file is, naming where it came from.
    (GRID, "search.params.temperature=[-1]",
     "s.yaml (from --set): search.params.temperature[0]: must be greater than 0 and at most "
     "100 (SimCLR's tau divides cosine similarities; above 100 all logits are equal) "
     "(got -1)"),
    (GRID, "search.params.temperature=[0.2, 0.2]",
     "s.yaml (from --set): search.params.temperature: grid parameter 'temperature' repeats "
     "a value: [0.2, 0.2] (repeat trials with search.seeds instead)"),
    (GRID, "search.params.temperature={type: float, low: 0.1, high: 0.5}",
     "s.yaml (from --set): search.params.temperature: grid parameter 'temperature' must be a "
     "list of values (a distribution needs search.type: optuna)"),
    (OPTUNA, "search.params.temperature.low=2",
     "s.yaml (from --set): search.params.temperature: low (2) must not exceed high (1.0)"),
    (OPTUNA, "search.params.temperature.low=-0.5",
     "s.yaml (from --set): search.params.temperature: a log-scaled range needs low > 0, "
     "got -0.5"),
    (OPTUNA, "search.params.model.width.high=4096",
     "s.yaml (from --set): search.params.model.width.high: must be between 1 and 1024"),
    (OPTUNA, "search.params.model.width.low=8.5",
     "s.yaml (from --set): search.params.model.width: an int parameter needs whole-number "
     "bounds, got low 8.5 and high 32"),
    (OPTUNA, "search.params.temperature.type=int",
     "s.yaml (from --set): search.params.temperature: an int parameter needs whole-number "
     "bounds, got low 0.05 and high 1.0"),
    (OPTUNA, "search.params.temperature.choices=[0.1]",
     "s.yaml (from --set): search.params.temperature: 'choices' only applies to type: "
     "categorical, not float; a range is low..high"),
    (GRID, "search.params.tempreature=[0.1]",
     "s.yaml (from --set): search.params.tempreature: cannot sweep unknown field "
     "'tempreature' (did you mean 'temperature'?)"),
    (GRID, "search.params.model.depth=[8]",
     "s.yaml (from --set): search.params.model.depth: cannot sweep unknown field "
     "'model.depth'"),
    # A field of a distribution the spec does not declare, or of a grid axis.
    (OPTUNA, "search.params.learning_rate.low=0.1",
     "--set 'search.params.learning_rate.low=0.1': search.params has no 'learning_rate' to "
     "change (it sweeps temperature, model.width); set the whole axis, e.g. --set "
     "'search.params.learning_rate={type: float, low: 0.1, high: 1.0}'"),
    (GRID, "search.params.temperature.high=0.9",
     "--set 'search.params.temperature.high=0.9': search.params.temperature is a grid axis "
     "(a list of values), which has no 'high': set its values, e.g. --set "
     "'search.params.temperature=[0.1, 0.5]'"),
    (GRID, "search.nope=1", "--set 'search.nope=1': unknown key 'search.nope'"),
])
def test_search_space_overrides_are_checked_as_the_file_is(spec: str, override: str,
                                                           expected: str) -> None:
    message = _error(spec, override)
    assert message.startswith(expected), message


def test_the_same_value_in_the_file_gives_the_same_message_at_its_line() -> None:
    from_file = _error(GRID.replace("[0.2, 0.5]", "[-1]"))
    from_set = _error(GRID, "search.params.temperature=[-1]")
    assert from_file.replace("s.yaml, line 12", "s.yaml (from --set)") == from_set


def test_a_dotted_key_splits_at_a_distribution_field_and_nowhere_else() -> None:
    assert split_key(SweepSpec, ("search", "params", "model", "width"))[0] == (
        "search", "params", "model.width")
    assert split_key(SweepSpec, ("search", "params", "model", "width", "low"))[0] == (
        "search", "params", "model.width", "low")
    assert split_key(SweepSpec, ("search", "params", "temperature", "type"))[0] == (
        "search", "params", "temperature", "type")
    # What makes the split unambiguous: no setting a search may sweep has the name of a
    # distribution's field.
    names = {f for section in TrialConfig.model_fields.values()
             for model in models_in(section.annotation) for f in model.model_fields}
    assert names & set(OptunaParam.model_fields) == set()


# --- mappings merge into sections -----------------------------------------------------------

def test_a_section_mapping_keeps_the_files_other_settings() -> None:
    base = parse_spec(GRID)
    spec = parse_spec(GRID, overrides=["train={epochs: 1}"])
    assert spec.train == base.train.model_copy(update={"epochs": 1})
    assert (spec.train.batch_size, spec.train.optimizer, spec.train.learning_rate,
            spec.train.warmup_epochs) == (64, "adamw", 0.03, 1)


def test_mappings_merge_recursively_and_lists_replace() -> None:
    spec = parse_spec(GRID, overrides=["search={seeds: [1, 2]}", "dataset={test_size: 50}"])
    assert spec.search.seeds == [1, 2]
    assert spec.search.params == parse_spec(GRID).search.params  # the file's axes kept
    assert (spec.dataset.synthetic_train_size, spec.dataset.test_size) == (1000, 50)


def test_search_params_as_a_mapping_is_the_whole_space() -> None:
    assert _params(GRID, "search.params={model.width: [8, 16]}") == {"model.width": [8, 16]}
    assert _params(GRID, "search={params: {blur: [true, false]}}") == {"blur": [True, False]}
    assert _params(GRID, "search.params.temperature=null") == {
        "color_jitter_strength": [0.5, 1.0]}
    assert _params(GRID, "search.params=null", "search.params.blur=[true, false]") == {
        "blur": [True, False]}


def test_null_resets_a_section_to_its_defaults() -> None:
    spec = parse_spec(GRID, overrides=["train=null", "train.epochs=2",
                                       "search.params=null"])
    assert spec.train == TrialConfig().train.model_copy(update={"epochs": 2})
    assert spec.search.params == {}


def test_a_value_errors_inside_a_merged_mapping_name_the_field_from_set() -> None:
    assert _error(GRID, "train={epochs: -1}").startswith(
        "s.yaml (from --set): train.epochs: must be between 0 and 100000")
    assert _error(GRID, "train={epoch: 1}") == (
        "s.yaml (from --set): train.epoch: unknown key (did you mean 'epochs'?)")
    # A value the file wrote keeps its line, though --set merged into its section.
    assert _error(GRID.replace("batch_size: 64", "batch_size: 1"), "train={epochs: 1}"
                  ).startswith("s.yaml, line 5: train.batch_size: must be between 2")


def test_setting_inside_a_value_that_is_not_a_mapping_is_refused() -> None:
    assert _error("name: a\ntrain: 5\n", "train.epochs=1") == (
        "--set 'train.epochs=1': cannot set train.epochs: train is 5, not a mapping")


def test_sweeper_trial_overrides_merge_into_the_resolved_config_too() -> None:
    trial = trial_at(parse_spec(GRID), 1, ["train={epochs: 1}"])
    assert (trial.config.train.epochs, trial.config.train.batch_size,
            trial.config.train.color_jitter_strength) == (1, 64, 1.0)
    with pytest.raises(SpecError) as info:
        trial_at(parse_spec(GRID), 1, ["search.params.temperature=[0.3]"])
    assert str(info.value) == (
        "--set 'search.params.temperature=[0.3]': sweeper trial --set changes one trial's "
        "config, which has no search, scheduler or sweep settings; set the field itself "
        "(e.g. train.temperature=0.3), or pick another trial with --index")


# --- a --set the search would override is refused ------------------------------------------

@pytest.mark.parametrize(("spec", "override", "expected"), [
    (GRID, "train.temperature=0.3",
     "--set 'train.temperature=0.3': search.params.temperature sweeps train.temperature, and "
     "the swept values win over a fixed one; change the axis instead: --set "
     "'search.params.temperature=[0.3]'"),
    (GRID, "train={temperature: 0.3, epochs: 2}",
     "--set 'train={temperature: 0.3, epochs: 2}': search.params.temperature sweeps "
     "train.temperature, and the swept values win over a fixed one; change the axis "
     "instead: --set 'search.params.temperature=[0.3]'"),
    (OPTUNA, "model.width=16",
     "--set 'model.width=16': search.params.model.width sweeps model.width, and the swept "
     "values win over a fixed one; change the axis instead: --set "
     "'search.params.model.width=[16]'"),
    (GRID, "train.seed=3",
     "--set 'train.seed=3': each trial's seed comes from search.seeds, which wins over "
     "train.seed; set the seeds instead: --set 'search.seeds=[3]'"),
])
def test_a_set_of_a_swept_field_is_refused(spec: str, override: str, expected: str) -> None:
    assert _error(spec, override) == expected


def test_a_fixed_field_is_free_once_its_axis_is_dropped() -> None:
    spec = parse_user_spec(GRID, overrides=["search.params.temperature=null",
                                            "train.temperature=0.3"]).spec
    assert spec.train.temperature == 0.3 and "temperature" not in spec.search.params


def test_the_cli_says_from_set_and_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GRID)
    assert main(["validate", str(path), "--set", "search.params.temperature=[0.1,0.3,0.5]"]
                ) == 0
    assert capsys.readouterr().out == "6 trials: grid over temperature × color_jitter_strength\n"
    assert main(["run", str(path), "--dry-run", "--set", "train.temperature=0.3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweeper: --set 'train.temperature=0.3': ")


def test_sections_and_values_are_told_apart() -> None:
    sections = {name for name, info in SweepSpec.model_fields.items()
                if is_section(info.annotation)}
    assert sections == {"dataset", "model", "train", "eval", "search", "scheduler",
                        "resources"}
    assert not is_section(SweepSpec.model_fields["search"].annotation.model_fields[
        "params"].annotation)
