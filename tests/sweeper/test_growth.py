"""`run --extend` without Ray: what each search kind takes as a growth (and what it
refuses, naming the field), how a growth is recorded on the parent run and read back,
and the refusals that come before anything is written."""

import io
import json
import shlex
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeper.commands.run import resume_command
from sweeper.driver.admission import Extension, SweepExists, check_extension, should_restore
from sweeper.driver.stages import recorded_stages
from sweeper.record.growth import GrowthEntry, growth_entries
from sweeper.record.read_model import find_parent
from sweeper.record.recorded_spec import recorded_spec, recorded_text
from sweeper.record.sweeps import read_sweep
from sweeper.record.writer import SweepTracker
from sweeper.search import growth, iter_trials, num_trials, summary
from sweeper.search.grid import GridKind
from sweeper.search.optuna import stage_seed
from sweeper.spec.load import parse_spec

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration

MAY_CHANGE = {"resources", "max_concurrent_trials", "max_failures", "save_encoders"}


def grid(params: str, seeds: str = "[0]", epochs: int = 1, extra: str = "") -> str:
    return tiny_sweep("g", f"search:\n  params:\n{params}  seeds: {seeds}\n", epochs=epochs,
                      extra=extra)


def optuna(samples: int, low: float = 0.1, sampler: str = "tpe") -> str:
    return tiny_sweep("o", f"search:\n  type: optuna\n  num_samples: {samples}\n"
                      f"  sampler: {sampler}\n  params:\n"
                      f"    temperature: {{type: float, low: {low}, high: 1.0}}\n")


TAU = "    temperature: [0.1, 0.5]\n"
BS_TAU = "    batch_size: [8, 16]\n    temperature: [0.1, 0.5]\n"


# --- what a kind takes as a growth ----------------------------------------------------

def test_a_grid_grows_by_values_and_seeds_and_its_new_cells_are_numbered_on() -> None:
    before = parse_spec(grid(BS_TAU))
    after = parse_spec(grid("    batch_size: [8, 16]\n    temperature: [0.1, 0.3, 0.5]\n",
                            seeds="[0, 1]"))
    grown = growth(before, after, MAY_CHANGE)
    assert grown.refused == ()
    # The grown grid's cells holding a new value (τ 0.3 or seed 1), in its order
    # (batch size outermost, seeds innermost), numbered after the sweep's 4 trials.
    assert [(t.index, t.params) for t in grown.trials] == [
        (4, {"batch_size": 8, "temperature": 0.1, "seed": 1}),
        (5, {"batch_size": 8, "temperature": 0.3, "seed": 0}),
        (6, {"batch_size": 8, "temperature": 0.3, "seed": 1}),
        (7, {"batch_size": 8, "temperature": 0.5, "seed": 1}),
        (8, {"batch_size": 16, "temperature": 0.1, "seed": 1}),
        (9, {"batch_size": 16, "temperature": 0.3, "seed": 0}),
        (10, {"batch_size": 16, "temperature": 0.3, "seed": 1}),
        (11, {"batch_size": 16, "temperature": 0.5, "seed": 1}),
    ]
    assert grown.added == 8 == num_trials(after) - num_trials(before)
    # Old and new cells together are the grown grid, each once.
    cells = {json.dumps(t.params, sort_keys=True) for t in iter_trials(before)}
    cells |= {json.dumps(t.params, sort_keys=True) for t in grown.trials}
    assert cells == {json.dumps(t.params, sort_keys=True) for t in iter_trials(after)}
    # Each new trial is the grown spec's trial of that cell (same config hash).
    hashes = {json.dumps(t.params, sort_keys=True): t.config_hash for t in iter_trials(after)}
    assert all(hashes[json.dumps(t.params, sort_keys=True)] == t.config_hash
               for t in grown.trials)
    # Tune's param space of the growth holds exactly these trials.
    space = GridKind().growth_space(after, grown)
    assert [e["index"] for e in space["trial"]["grid_search"]] == list(range(4, 12))


def test_a_growth_may_change_how_trials_run_but_nothing_they_compute() -> None:
    before = parse_spec(grid(TAU))
    same = growth(before, parse_spec(grid(TAU)), MAY_CHANGE)
    assert (same.added, same.refused) == (0, ())
    faster = grid("    temperature: [0.1, 0.5, 0.9]\n").replace("cpu: 1", "cpu: 2")
    assert growth(before, parse_spec(faster), MAY_CHANGE).added == 1


@pytest.mark.parametrize(("params", "seeds", "epochs", "named"), [
    (TAU, "[0]", 2, "train.epochs: 1 then, 2 now"),
    ("    temperature: [0.1, 0.9]\n", "[0]", 1, "search.params.temperature: [0.1, 0.5] then, "
                                                "[0.1, 0.9] now"),
    ("    temperature: [0.5, 0.1]\n", "[0]", 1, "search.params.temperature"),
    (TAU, "[1]", 1, "search.seeds: [0] then, [1] now"),
    (BS_TAU, "[0]", 1, "search.params: axes ['temperature'] then, "
                       "['batch_size', 'temperature'] now"),
    ("    learning_rate: [0.01]\n", "[0]", 1, "search.params: axes"),
])
def test_a_grid_change_that_is_no_growth_is_refused_naming_the_field(
        params: str, seeds: str, epochs: int, named: str) -> None:
    refused = growth(parse_spec(grid(TAU)), parse_spec(grid(params, seeds, epochs)),
                     MAY_CHANGE).refused
    assert any(reason.startswith(named) for reason in refused), refused


def test_a_value_inserted_between_kept_ones_is_a_growth() -> None:
    grown = growth(parse_spec(grid(TAU)),
                   parse_spec(grid("    temperature: [0.1, 0.3, 0.5]\n")), MAY_CHANGE)
    assert [(t.index, t.params["temperature"]) for t in grown.trials] == [(2, 0.3)]


def test_an_optuna_search_grows_by_samples_only() -> None:
    grown = growth(parse_spec(optuna(2)), parse_spec(optuna(4)), MAY_CHANGE)
    assert (grown.added, grown.trials, grown.refused) == (2, (), ())
    assert growth(parse_spec(optuna(4)), parse_spec(optuna(2)), MAY_CHANGE).refused == (
        "search.num_samples: 4 then, 2 now (a growth may only raise it)",)
    for other, named in ((optuna(4, low=0.2), "search.params.temperature.low: 0.1 then, "
                                              "0.2 now"),
                         (optuna(4, sampler="random"), "search.sampler: 'tpe' then")):
        refused = growth(parse_spec(optuna(2)), parse_spec(other), MAY_CHANGE).refused
        assert refused and refused[0].startswith(named), refused
    as_grid = parse_spec(tiny_sweep("o", "search:\n  params:\n    temperature: [0.1]\n"))
    assert growth(parse_spec(optuna(2)), as_grid, MAY_CHANGE).refused == (
        "search.type: 'optuna' then, 'grid' now",)


def test_a_growths_sampler_draws_from_a_stream_of_its_own() -> None:
    assert stage_seed(7, 0) == 7  # the sweep as first run keeps the spec's seed
    seeds = [stage_seed(7, stage) for stage in (1, 2)]
    assert seeds == [stage_seed(7, 1), stage_seed(7, 2)]  # deterministic
    assert len({7, *seeds}) == 3 and all(0 <= s < 2**32 for s in seeds)


# --- the record of a growth -----------------------------------------------------------

FIRST, GROWN = grid(TAU), grid("    temperature: [0.1, 0.5, 0.9]\n")


@pytest.fixture
def tracker(tmp_path: Path) -> SweepTracker:
    """Sweep g ran FIRST (2 trials, both FINISHED); its parent run ended FINISHED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("g", artifact_location=(tmp_path / "a").as_uri())
    spec = parse_spec(FIRST)
    opened = SweepTracker(uri, "g")
    opened.open_sweep(FIRST, summary(spec), 2, storage=str(tmp_path / "results" / "g"))
    for trial in iter_trials(spec):
        run_id = opened.trial_run(trial, with_seed=False, key=f"ray-{trial.index}")
        opened.log_metrics(run_id, {"top_1_accuracy": 0.5, "epoch": 1}, step=1)
        opened.end_trial(run_id, "FINISHED")
    opened.end_sweep("FINISHED")
    return SweepTracker(uri, "g")


def extension(tracker: SweepTracker, text: str, tmp_path: Path, restorable: bool = True,
              overrides: tuple[str, ...] = ()) -> Extension:
    return check_extension(parse_spec(text, overrides=list(overrides)),
                           str(tmp_path / "results" / "g"), restorable, tracker, overrides)


def test_a_growth_is_recorded_on_the_parent_and_read_back_as_the_sweeps_spec(
        tracker: SweepTracker, tmp_path: Path) -> None:
    client = tracker.client
    before = {r.run_id: r for r in read_sweep(tracker.tracking_uri, "g", client).trials}
    tracker.open_sweep(GROWN, summary(parse_spec(GROWN)), 3)
    entry = tracker.record_growth(GROWN, ["max_failures=3"], "3 trials: grid", 1, 3)
    assert (entry.growth, entry.trials, entry.num_trials) == (1, 1, 3)
    parent = find_parent(client, "g")
    assert parent is not None
    assert growth_entries(parent.tags) == [entry]
    assert json.loads(parent.tags["sweeper.overrides"]) == ["max_failures=3"]
    # num_trials: the param as opened, the metric one point per growth (step 0: as opened,
    # at the parent's start).
    assert parent.params["num_trials"] == "2"
    history = client.get_metric_history(parent.run_id, "num_trials")
    run = client.get_run(parent.run_id)
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 3.0)]
    assert history[0].timestamp == run.info.start_time
    assert read_sweep(tracker.tracking_uri, "g", client).expected_trials == 3
    # The spec files: the original kept, the grown one current.
    assert recorded_text(client, parent.run_id, "growth/0/spec.yaml") == FIRST
    for artifact in ("growth/1/spec.yaml", "spec.yaml"):
        assert recorded_text(client, parent.run_id, artifact) == GROWN
    assert recorded_spec(client, parent) == parse_spec(GROWN, overrides=["max_failures=3"])
    # The growth's own spec file is what counts: spec.yaml is a copy written after the
    # growth's record (a driver killed in between leaves it behind, harmlessly).
    client.log_text(parent.run_id, FIRST, "spec.yaml")
    assert num_trials(recorded_spec(client, parent)) == 3
    # The finished trial runs are untouched.
    after = {r.run_id: r for r in read_sweep(tracker.tracking_uri, "g", client).trials}
    assert after == before


def test_an_extension_is_admitted_with_what_it_adds(tracker: SweepTracker,
                                                    tmp_path: Path) -> None:
    found = extension(tracker, GROWN, tmp_path)
    assert (found.growth.added, found.growths, num_trials(found.recorded)) == (1, [], 2)
    assert [t.params["temperature"] for t in found.growth.trials] == [0.9]


def test_a_resume_with_a_grown_spec_names_extend(tracker: SweepTracker) -> None:
    with pytest.raises(SweepExists, match=r"--resume: the spec adds 1 trial to sweep 'g' "
                                          r"\(it has 2\): pass --extend"):
        should_restore(parse_spec(GROWN), "results/g", restorable=True, tracker=tracker,
                       resume=True, progress=io.StringIO())


@pytest.mark.parametrize(("text", "named"), [
    (grid("    temperature: [0.1, 0.5, 0.9]\n", epochs=2), "train.epochs: 1 then, 2 now"),
    (grid("    temperature: [0.1, 0.9]\n"), "search.params.temperature: [0.1, 0.5] then"),
    (grid("    temperature: [0.1, 0.5, 0.9]\n").replace("method: simclr", "method: byol"),
     "method: 'simclr' then, 'byol' now"),
])
def test_an_extension_that_changes_what_trials_compute_is_refused_naming_it(
        tracker: SweepTracker, tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SweepExists) as refused:
        extension(tracker, text, tmp_path)
    message = str(refused.value)
    assert named in message and "--name" in message and "\n" not in message
    parent = tracker.existing_sweep()
    assert parent is not None and parent.status == "FINISHED"
    assert growth_entries(parent.tags) == []


def test_an_extension_that_adds_nothing_says_so(tracker: SweepTracker, tmp_path: Path) -> None:
    with pytest.raises(SweepExists, match="adds no trial to sweep 'g'") as refused:
        extension(tracker, FIRST, tmp_path)
    assert "--resume" not in str(refused.value)  # it finished: nothing to continue
    parent = tracker.existing_sweep()
    assert parent is not None
    tracker.client.set_terminated(parent.run_id, "KILLED")
    with pytest.raises(SweepExists, match=r"ended it KILLED.*--resume continues it"):
        extension(tracker, FIRST, tmp_path)


def test_an_extension_needs_the_sweep_its_storage_and_its_record(
        tracker: SweepTracker, tmp_path: Path) -> None:
    with pytest.raises(SweepExists, match=r"holds no state of sweep 'g'.*--storage"):
        extension(tracker, GROWN, tmp_path, restorable=False)
    other = SweepTracker(tracker.tracking_uri, "nothing")
    with pytest.raises(SweepExists, match="has no sweep 'nothing' to extend"):
        check_extension(parse_spec(GROWN.replace("name: g", "name: nothing")), "x", True,
                        other, ())
    with pytest.raises(SweepExists, match="overrides do not fit"):
        extension(tracker, GROWN, tmp_path, overrides=("max_failures=3",) * 1000)
    parent = tracker.existing_sweep()
    assert parent is not None
    tracker.client.delete_tag(parent.run_id, "sweeper.overrides")
    with pytest.raises(SweepExists, match="no record of its --set overrides"):
        extension(tracker, GROWN, tmp_path)


def test_growths_beyond_what_the_tag_can_record_are_refused(tracker: SweepTracker,
                                                            tmp_path: Path) -> None:
    parent = tracker.existing_sweep()
    assert parent is not None
    many: list[dict[str, object]] = []
    while True:  # as many growths as MLflow's 8000 characters hold
        entry = {"growth": len(many) + 1, "at": "2026-12-02T00:00:00Z", "trials": 1,
                 "num_trials": len(many) + 3}
        if len(json.dumps([*many, entry], separators=(",", ":"))) > 8000:
            break
        many.append(entry)
    tracker.client.set_tag(parent.run_id, "sweeper.growth",
                           json.dumps(many, separators=(",", ":")))
    tracker.client.log_text(parent.run_id, FIRST, f"growth/{len(many)}/spec.yaml")
    with pytest.raises(SweepExists, match=f"has grown {len(many)} times"):
        extension(tracker, GROWN, tmp_path)


def test_the_stages_of_a_grown_sweep_must_all_be_stored(tracker: SweepTracker,
                                                        tmp_path: Path) -> None:
    parent = tracker.existing_sweep()
    assert parent is not None
    folder = tmp_path / "results" / "g"
    (folder / "growth-1").mkdir(parents=True)
    (folder / "growth-1" / "tuner.pkl").write_bytes(b"")  # what Tune looks for
    growths = [GrowthEntry(1, "t", 1, 3), GrowthEntry(2, "t", 3, 6)]
    with pytest.raises(SweepExists, match="growth-2 holds no state of growth 2"):
        recorded_stages(str(folder), parent, growths)
    stages = recorded_stages(str(folder), parent, growths[:1])
    assert [(s.number, s.folder, s.first_number) for s in stages] == [
        (0, str(folder), 0), (1, f"{folder}/growth-1", 2)]


# --- the command line -------------------------------------------------------------------

def test_an_interrupted_extension_is_resumed_with_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/sweeper"])
    command = resume_command(["run", "grown.yaml", "--extend", "--storage", "r"])
    assert shlex.split(command) == ["/opt/venv/bin/sweeper", "run", "grown.yaml", "--storage",
                                    "r", "--resume"]


def test_submit_passes_extend_to_the_job(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sweeper.cluster.access as access
    import sweeper.cluster.submit as job_client
    from sweeper.cli import build_parser
    from sweeper.commands.submit import submit_command

    sent: list[list[str]] = []
    monkeypatch.setattr(job_client, "submit", lambda address, spec, run_args, wait, datasets:
                        sent.append(run_args) or 0)
    monkeypatch.setattr(access, "use_token_if_available", lambda: None)  # Ray's settings
    (workdir / "spec.yaml").write_text(GROWN)
    args = build_parser().parse_args(["submit", "spec.yaml", "--address", "http://h:8265",
                                      "--extend", "--retry-failed"])
    assert submit_command(args) == 0
    assert sent == [["--storage", "results", "--retry-failed", "--extend"]]
