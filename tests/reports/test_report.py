"""`sweeper report` on sweeps logged into MLflow: failed and unfinished trials,
seeds, the default folder, user errors."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sweeper.cli import main
from sweeper.record.contract import OVERRIDES_TAG
from sweeper.record.writer import SweepTracker
from sweeper.reports import plots
from sweeper.reports.collect import load_sweep
from sweeper.search import summary
from sweeper.spec.load import parse_spec
from sweeper.spec.trials import Trial, base_config, resolve_values

from .conftest import Outcome, compile_latex, log_sweep, spec_yaml

pytestmark = pytest.mark.integration

GRID = """\
name: {name}
train: {{epochs: 4}}
search:
  params:
    temperature: [0.1, 0.2]
    color_jitter_strength: [0.5, 1.0]
  seeds: {seeds}
"""
METRICS = {"regularization_loss": 0.01, "top_5_accuracy": 0.9, "steps": 392.0}


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module's sweeps (creating an MLflow SQLite store takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def with_failures(trial: Trial) -> Outcome:
    cell = (trial.params["temperature"], trial.params["color_jitter_strength"])
    return {
        (0.1, 0.5): ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None),
        # The highest top-1 of all, but the trial failed: listed, never "best".
        (0.1, 1.0): ({**METRICS, "top_1_accuracy": 0.9}, "FAILED",
                     "TrainingDiverged: the loss became nan at epoch 3"),
        (0.2, 0.5): ({**METRICS, "top_1_accuracy": 0.7}, "KILLED", None),  # interrupted
        (0.2, 1.0): None,  # never started: no run at all
    }[cell]


def test_failed_and_unfinished_trials_are_listed_and_never_best(
        uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_sweep(uri, GRID.format(name="failures", seeds="[0]"), with_failures, epochs=(4,))
    assert main(["report", "failures", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "appendix_b.csv").read_text() == (
        "temperature,color_jitter,regularization_loss,top_1_accuracy,top_5_accuracy,steps,"
        "state\n"
        "0.1,0.5,0.01,0.5,0.9,392,FINISHED\n"
        "0.1,1.0,0.01,0.9,0.9,392,FAILED\n"
        "0.2,0.5,0.01,0.7,0.9,392,KILLED\n"
        "0.2,1.0,,,,,NOT_STARTED\n")
    # Batch size is not swept: Table 2 shows the fixed one (the spec's default, 512).
    assert (tmp_path / "best_by_batch_size.csv").read_text() == (
        "batch_size,temperature,color_jitter,regularization_loss,top_1_accuracy,"
        "top_5_accuracy,steps\n512,0.1,0.5,0.01,0.5,0.9,392\n")
    trials = pd.read_csv(tmp_path / "trials.csv", keep_default_na=False)
    failed = trials[trials["state"] == "FAILED"].iloc[0]
    assert failed["error"] == "TrainingDiverged: the loss became nan at epoch 3"
    out = capsys.readouterr().out
    assert "(4 trials: 1 finished, 1 failed, 1 killed, 1 not started)" in out
    assert "FAILED t0.1-cj1: TrainingDiverged: the loss became nan at epoch 3" in out
    assert "KILLED t0.2-cj0.5" in out
    assert "NOT_STARTED temperature=0.2 color_jitter_strength=1.0" in out

    tex = (tmp_path / "appendix_b.tex").read_text()
    assert "\n & 1.0 & -- & -- & -- & -- & NOT\\_STARTED" in tex
    assert "\\textbf{0.1} & \\textbf{0.5} & \\textbf{0.01} & \\textbf{0.5}" in tex
    failed_line = next(line for line in tex.splitlines() if "FAILED" in line)
    assert failed_line == " & 1.0 & 0.01 & 0.9 & 0.9 & 392 & FAILED \\\\"  # not bold
    compile_latex(tmp_path, "appendix_b.tex", "best_by_batch_size.tex")


def with_seeds(trial: Trial) -> Outcome:
    t, seed = trial.params["temperature"], trial.params["seed"]
    if trial.params["color_jitter_strength"] == 1.0:
        return None if seed else ({**METRICS, "top_1_accuracy": 0.3}, "FINISHED", None)
    top_1 = 0.5 + 0.01 * seed + (0.1 if t == 0.2 else 0.0)
    if t == 0.2 and seed == 2:
        return {**METRICS, "top_1_accuracy": 0.99}, "FAILED", "worker died"
    return {**METRICS, "top_1_accuracy": top_1}, "FINISHED", None


def test_seeds_of_a_cell_become_mean_and_std(uri: str, tmp_path: Path) -> None:
    log_sweep(uri, GRID.format(name="seeds", seeds="[0, 1, 2]"), with_seeds, epochs=(4,))
    assert main(["report", "seeds", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "appendix_b.csv", dtype={"seeds": str})
    assert list(table.columns) == [
        "temperature", "color_jitter",
        "regularization_loss", "regularization_loss_std", "regularization_loss_ci95",
        "top_1_accuracy", "top_1_accuracy_std", "top_1_accuracy_ci95",
        "top_5_accuracy", "top_5_accuracy_std", "top_5_accuracy_ci95",
        "steps", "seeds", "indistinguishable_from_best", "state"]
    rows = {(r.temperature, r.color_jitter, r.state): r for r in table.itertuples()}
    assert len(table) == 9  # 4 cells averaged, 1 failed seed, 4 seeds never started
    t1 = rows[(0.1, 0.5, "FINISHED")]
    # t_{0.975, 2} = 4.303: 4.303 * 0.01 / sqrt(3) = 0.0248
    assert (t1.top_1_accuracy, t1.top_1_accuracy_std, t1.top_1_accuracy_ci95, t1.seeds) \
        == (0.51, 0.01, 0.025, "0 1 2")
    assert t1.indistinguishable_from_best is False  # 0.51 vs 0.605: clearly below
    t2 = rows[(0.2, 0.5, "FINISHED")]  # seeds 0 and 1; seed 2 failed and stands apart
    # t_{0.975, 1} = 12.71: 12.71 * 0.00707 / sqrt(2) = 0.0635
    assert (t2.top_1_accuracy, t2.top_1_accuracy_std, t2.top_1_accuracy_ci95, t2.seeds) \
        == (0.605, 0.007, 0.064, "0 1")
    assert t2.indistinguishable_from_best is True  # the best cell
    failed = rows[(0.2, 0.5, "FAILED")]
    assert (failed.top_1_accuracy, failed.seeds) == (0.99, "2")
    assert pd.isna(failed.indistinguishable_from_best)  # not a cell of finished runs
    lone = rows[(0.1, 1.0, "FINISHED")]  # one finished seed: no spread, nothing to test
    assert lone.seeds == "0" and pd.isna(lone.top_1_accuracy_std)
    assert pd.isna(lone.top_1_accuracy_ci95) and pd.isna(lone.indistinguishable_from_best)
    missing = table[table["state"] == "NOT_STARTED"]
    assert missing["seeds"].tolist() == ["1", "2", "1", "2"]
    best = pd.read_csv(tmp_path / "best_by_batch_size.csv")
    assert (best["temperature"].tolist(), best["top_1_accuracy"].tolist()) == ([0.2], [0.605])

    tex = (tmp_path / "appendix_b.tex").read_text()
    # The best cell carries the dagger of the indistinguishable group; the note names the test.
    assert "\\textbf{$0.605 \\pm 0.007$\\textsuperscript{\\dag}}" in tex
    assert "& $0.51 \\pm 0.01$ &" in tex
    assert "Welch's one-sided $t$-test over seeds, 5\\% level" in tex
    assert "ci95" not in tex and "indistinguishable" not in tex  # the CSV has them
    compile_latex(tmp_path, "appendix_b.tex", "best_by_batch_size.tex")


def test_a_step_0_point_gives_the_gain_over_random_init(uri: str, tmp_path: Path) -> None:
    """Trials log the untrained network's probe as epoch 0: the curves start there and
    appendix_b.csv states final - step 0 (absent for sweeps without it: the golden test)."""
    def final(trial: Trial) -> Outcome:
        if trial.params["color_jitter_strength"] == 1.0 and trial.params["temperature"] == 0.2:
            return {**METRICS, "top_1_accuracy": 0.4}, "FAILED", "worker died"
        return {**METRICS, "top_1_accuracy": 0.5 + trial.params["temperature"]}, \
            "FINISHED", None

    def init(trial: Trial) -> dict[str, float]:
        return {"top_1_accuracy": 0.1 + trial.params["color_jitter_strength"] / 10,
                "top_5_accuracy": 0.5, "steps": 0.0}

    log_sweep(uri, GRID.format(name="baseline", seeds="[0]"), final, epochs=(2, 4),
              at_init=init)
    assert main(["report", "baseline", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "appendix_b.csv").read_text() == (
        "temperature,color_jitter,regularization_loss,top_1_accuracy,top_5_accuracy,steps,"
        "gain_over_init,state\n"
        "0.1,0.5,0.01,0.6,0.9,392,0.45,FINISHED\n"   # 0.6 - 0.15
        "0.1,1.0,0.01,0.6,0.9,392,0.4,FINISHED\n"    # 0.6 - 0.2
        "0.2,0.5,0.01,0.7,0.9,392,0.55,FINISHED\n"
        "0.2,1.0,0.01,0.4,0.9,392,0.2,FAILED\n")     # its last value - step 0
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials["top_1_accuracy_init"].tolist() == pytest.approx([0.15, 0.2, 0.15, 0.2])
    assert trials["epoch"].tolist() == [4, 4, 4, 4]  # step 0 is not the final value

    sweep = load_sweep(uri, "baseline")
    assert sorted(sweep.history["step"].unique()) == [0, 2, 4]
    first = sweep.history[sweep.history["step"] == 0]
    assert len(first) == 4 and sorted(first["value"]) == pytest.approx([0.15, 0.15, 0.2, 0.2])
    # the curves' title: the mean over finished runs of (last - step 0) = (0.45+0.4+0.55)/3
    assert plots.gain_over_init(sweep.history) == pytest.approx(1.4 / 3)
    assert (tmp_path / "top_1_per_epoch.png").read_bytes()[:4] == b"\x89PNG"


def test_the_gain_over_init_is_of_the_specs_metric(uri: str, tmp_path: Path) -> None:
    spec = GRID.format(name="baseline-loss", seeds="[0]") + "metric: regularization_loss\n" \
        "mode: min\n"
    log_sweep(uri, spec, lambda t: ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None),
              epochs=(4,), at_init=lambda t: {"regularization_loss": 0.05 * t.params["temperature"]
                                              / 0.1, "top_1_accuracy": 0.1})
    assert main(["report", "baseline-loss", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "appendix_b.csv")
    # final 0.01 - step 0 (0.05 or 0.1): negative, the loss went down
    assert table["gain_over_init"].tolist() == [-0.04, -0.04, -0.09, -0.09]
    assert pd.read_csv(tmp_path / "trials.csv")["regularization_loss_init"].tolist() \
        == pytest.approx([0.05, 0.05, 0.1, 0.1])


def test_default_folder_is_the_sweeps_results_folder(uri: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log_sweep(uri, GRID.format(name="default-out", seeds="[0]"),
              lambda t: ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None), epochs=(4,))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "default-out", "--tracking-uri", uri, "--storage", "runs"]) == 0
    folder = tmp_path / "runs" / "default-out" / "report"
    assert (folder / "appendix_b.csv").read_text().startswith("temperature,color_jitter,")
    # A second report replaces the first's files, including ones the second does not write.
    (folder / "reference_comparison.csv").write_text("stale")
    assert main(["report", "default-out", "--tracking-uri", uri, "--storage", "runs"]) == 0
    assert not (folder / "reference_comparison.csv").exists()


def test_user_errors_exit_2_with_a_message(uri: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    log_sweep(uri, GRID.format(name="errors", seeds="[0]"),
              lambda t: ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None), epochs=(4,))
    out = ["--out", str(tmp_path / "out")]
    assert main(["report", "nope", "--tracking-uri", uri, *out]) == 2
    assert capsys.readouterr().err == f"sweeper: no sweep named 'nope' in {uri}\n"

    missing = tmp_path / "elsewhere" / "mlflow.db"
    assert main(["report", "errors", "--tracking-uri", f"sqlite:///{missing}", *out]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not missing.exists()  # the report does not create an empty store

    unrelated = tmp_path / "unrelated.csv"
    unrelated.write_text("a,b\n1,2\n")
    assert main(["report", "errors", "--tracking-uri", uri, "--reference", str(unrelated),
                 *out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sweeper: the reference table {unrelated} has none of the metric "
                          "columns") and "Traceback" not in err
    assert main(["report", "errors", "--tracking-uri", uri, "--reference",
                 str(tmp_path / "absent.csv"), *out]) == 2
    assert "cannot read the reference table" in capsys.readouterr().err

    # Reports are written locally: results kept in a bucket need an explicit --out.
    assert main(["report", "errors", "--tracking-uri", uri, "--storage", "s3://b/x"]) == 2
    assert "--storage s3://b/x is not a local folder: pass --out DIR" in capsys.readouterr().err


def test_without_spec_yaml_the_axes_are_the_params_that_vary(uri: str, tmp_path: Path) -> None:
    tracker = log_sweep(uri, GRID.format(name="no-spec", seeds="[0]"),
                        lambda t: ({**METRICS, "top_1_accuracy": t.params["temperature"]},
                                   "FINISHED", None), epochs=(4,))
    spec_yaml(uri, tracker.parent_id).unlink()
    assert main(["report", "no-spec", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    # Declared order is lost: alphabetical (batch_size would come first).
    assert (tmp_path / "appendix_b.csv").read_text().splitlines()[:2] == [
        "color_jitter,temperature,regularization_loss,top_1_accuracy,top_5_accuracy,steps",
        "0.5,0.1,0.01,0.1,0.9,392"]


SPEC_FILE = """\
name: {name}
train: {{epochs: 4}}
search:
  params:
    temperature: [0.1, 0.5]
"""


def first_trial_only(trial: Trial) -> Outcome:
    """A sweep interrupted after its first trial: the others have no run."""
    return ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None) if trial.index == 0 else None


def test_the_cells_not_started_are_those_of_the_grid_that_ran(uri: str, tmp_path: Path) -> None:
    # `--set` replaces search.params whole; `--name` adds name=...
    log_sweep(uri, SPEC_FILE.format(name="in-file"), first_trial_only, epochs=(4,),
              overrides=["search.params={temperature: [0.2, 0.3, 0.4]}", "name=overridden"])
    sweep = load_sweep(uri, "overridden")
    assert (sweep.axes, sweep.expected_trials) == (["temperature"], 3)
    assert sweep.trials[["temperature", "seed", "state"]].values.tolist() == [
        [0.2, 0, "FINISHED"], [0.3, 0, "NOT_STARTED"], [0.4, 0, "NOT_STARTED"]]
    assert main(["report", "overridden", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "appendix_b.csv").read_text() == (
        "temperature,regularization_loss,top_1_accuracy,top_5_accuracy,steps,state\n"
        "0.2,0.01,0.5,0.9,392,FINISHED\n"
        "0.3,,,,,NOT_STARTED\n"
        "0.4,,,,,NOT_STARTED\n")


@pytest.mark.parametrize("grid", ["[0.2, 0.3, 0.4]", "[0.2, 0.3]"],
                         ids=["other-size", "same-size"])
def test_a_sweep_recorded_without_its_overrides_gets_no_invented_cells(
        uri: str, grid: str) -> None:
    name = f"unrecorded-{grid.count(',')}"
    tracker = log_sweep(uri, SPEC_FILE.format(name=name), first_trial_only, epochs=(4,),
                        overrides=[f"search.params={{temperature: {grid}}}"])
    MlflowClient(uri).delete_tag(tracker.parent_id, OVERRIDES_TAG)
    # spec.yaml alone sweeps 0.1 and 0.5: its size or the run at 0.2 says it did not run.
    sweep = load_sweep(uri, name)
    assert sweep.trials[["temperature", "state"]].values.tolist() == [[0.2, "FINISHED"]]


def test_a_recorded_spec_that_no_longer_validates_falls_back_to_the_runs(
        uri: str, caplog: pytest.LogCaptureFixture) -> None:
    spec = GRID.format(name="stale-spec", seeds="[0]") + "metric: loss\nmode: min\n"
    tracker = log_sweep(uri, spec, lambda t: ({**METRICS, "top_1_accuracy": 0.5, "loss": 1.0},
                                              "FINISHED", None), epochs=(4,))
    path = spec_yaml(uri, tracker.parent_id)
    path.write_text(path.read_text() + "retired_setting: 1\n")
    with caplog.at_level(logging.WARNING, logger="sweeper.reports.collect"):
        sweep = load_sweep(uri, "stale-spec")
    assert "retired_setting: unknown key" in caplog.text
    assert "reading the sweep from its runs alone" in caplog.text
    # Alphabetical, not the declared order; the default metric, not the recorded one.
    assert sweep.axes == ["color_jitter_strength", "temperature"]
    assert (sweep.metric, sweep.mode, sweep.search_type) == ("top_1_accuracy", "max", "grid")
    assert sweep.trials["state"].tolist() == ["FINISHED"] * 4


def test_imports_stay_light() -> None:
    """The CLI imports sweeper.reports.command for every subcommand: no MLflow, pandas or
    matplotlib until a report runs; and reports never import Ray."""
    code = ("import sys, sweeper.reports.command\n"
            "assert not {'mlflow', 'pandas', 'matplotlib'} & set(sys.modules)\n"
            "import sweeper.reports.collect, sweeper.reports.tables, sweeper.reports.plots\n"
            "assert 'ray' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_trials_stopped_early_are_marked_and_never_best(uri: str, tmp_path: Path) -> None:
    def outcome(trial: Trial) -> Outcome:
        top_1 = {(0.1, 0.5): 0.5, (0.1, 1.0): 0.9, (0.2, 0.5): 0.6, (0.2, 1.0): 0.4}[
            (trial.params["temperature"], trial.params["color_jitter_strength"])]
        return {**METRICS, "top_1_accuracy": top_1}, "FINISHED", None

    tracker = log_sweep(uri, GRID.format(name="asha", seeds="[0]"), outcome, epochs=(4,))
    # ASHA stopped t0.1-cj1 at epoch 2: its 0.9 is from fewer epochs, not a candidate.
    stopped = next(r for r in tracker.trial_runs() if r.name == "t0.1-cj1")
    MlflowClient(uri).set_tag(stopped.run_id, "sweeper.stopped_at_epoch", "2")
    assert main(["report", "asha", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "appendix_b.csv").read_text() == (
        "temperature,color_jitter,regularization_loss,top_1_accuracy,top_5_accuracy,steps,"
        "stopped_at_epoch\n"
        "0.1,0.5,0.01,0.5,0.9,392,\n"
        "0.1,1.0,0.01,0.9,0.9,392,2\n"
        "0.2,0.5,0.01,0.6,0.9,392,\n"
        "0.2,1.0,0.01,0.4,0.9,392,\n")
    best = pd.read_csv(tmp_path / "best_by_batch_size.csv")
    assert best[["temperature", "color_jitter", "top_1_accuracy"]].values.tolist() == [
        [0.2, 0.5, 0.6]]
    assert "the scheduler (ASHA) stopped a trial" in (tmp_path / "appendix_b.tex").read_text()


def test_status_names_the_cells_indistinguishable_from_the_best(
        uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    log_sweep(uri, GRID.format(name="tiestatus", seeds="[0, 1, 2]"), with_seeds, epochs=(4,))
    capsys.readouterr()
    assert main(["status", "tiestatus", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    heading, *cells = out[out.index("indistinguishable from the best"):].splitlines()
    assert "Welch's one-sided t-test over seeds, 5%" in heading
    # t0.2-cj0.5: 0.60 and 0.61 (its third seed failed); t0.1-cj0.5: 0.50-0.52, far below
    assert cells == ["  temperature=0.2 color_jitter_strength=0.5  mean 0.6050 ± 0.0635 "
                     "(95% CI, 2 seeds)"]


OPTUNA = """\
name: optuna-report
train: {epochs: 4}
search:
  type: optuna
  num_samples: 12
  params:
    temperature: {type: float, low: 0.05, high: 1.0, log: true}
    color_jitter_strength: {type: float, low: 0.0, high: 1.0}
    optimizer: {type: categorical, choices: [lars, adamw]}
"""


def test_an_optuna_report_weighs_the_parameters_on_their_search_scales(
        uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sampled trials logged as the driver logs them: the spec's distributions reach the
    report (scatter scales, importance); trials stopped early count for neither."""
    spec = parse_spec(OPTUNA)
    tracker = SweepTracker(uri, spec.name)
    MlflowClient(uri).create_experiment(
        spec.name, artifact_location=(tmp_path / "artifacts").as_uri())
    tracker.open_sweep(OPTUNA, summary(spec), 12)
    for index in range(12):
        t = 0.05 * 1.3 ** index  # top-1 is decided by the temperature alone
        values = {"temperature": t, "color_jitter_strength": (index % 4) / 4,
                  "optimizer": ("lars", "adamw")[index % 2], "seed": 0}
        run_id = tracker.trial_run(resolve_values(base_config(spec), values, index), False)
        tracker.log_metrics(run_id, {**METRICS, "top_1_accuracy": 1 - abs(t - 0.3),
                                     "epoch": 4}, step=4)
        stopped = {"sweeper.stopped_at_epoch": "2"} if index == 5 else None
        tracker.end_trial(run_id, "FAILED" if index == 7 else "FINISHED", tags=stopped)
    tracker.end_sweep("FINISHED")

    sweep = load_sweep(uri, "optuna-report")
    assert sweep.distributions == dict(spec.search.params)
    assert main(["report", "optuna-report", "--tracking-uri", uri, "--out",
                 str(tmp_path / "report")]) == 0
    weights = pd.read_csv(tmp_path / "report" / "param_importance.csv")
    assert weights["param"].tolist()[0] == "temperature"
    assert set(weights["param"]) == {"temperature", "color_jitter", "optimizer"}
    assert weights[["finished_trials", "evaluated_trials"]].values.tolist()[0] == [10, 10]
    line = next(x for x in capsys.readouterr().out.splitlines() if "importance of" in x)
    assert line.startswith("  importance of top_1_accuracy (mean decrease impurity over 10 "
                           "finished trials): temperature ")
    html = (tmp_path / "report" / "report.html").read_text()
    assert "I" + line.strip()[1:] in html  # the page says it too ("Importance of ...")
    for name in ("top_1_vs_params.png", "param_importance.png", "top_1_per_epoch.png"):
        assert name in html and (tmp_path / "report" / name).exists()


# --- a report replaces the previous one whole, or leaves it as it was ------------------

def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _attached(uri: str, parent_id: str) -> set[str]:
    return {Path(a.path).name for a in MlflowClient(uri).list_artifacts(parent_id, "report")}


def test_a_failing_report_leaves_the_previous_one_and_no_partial_file(
        uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    log_sweep(uri, GRID.format(name="atomic", seeds="[0]"),
              lambda t: ({**METRICS, "top_1_accuracy": t.params["temperature"]}, "FINISHED",
                         None), epochs=(4,))
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # --out may hold other things: they stay
    assert main(["report", "atomic", "--tracking-uri", uri, "--out", str(out)]) == 0
    before = _files(out)
    assert {"appendix_b.csv", "report.html", "notes.txt"} <= set(before)

    def disk_full(*args: object, **kwargs: object) -> bool:
        raise OSError(28, "No space left on device")

    # The tables are written by then; the curves fail: nothing of the new report lands.
    monkeypatch.setattr(plots, "curves", disk_full)
    capsys.readouterr()
    assert main(["report", "atomic", "--tracking-uri", uri, "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("sweeper: cannot write the report: [Errno 28] No space "
                                       "left on device\n")
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left


def test_a_report_without_reference_removes_the_earlier_comparison_everywhere(
        uri: str, tmp_path: Path) -> None:
    tracker = log_sweep(uri, GRID.format(name="replaced", seeds="[0]"),
                        lambda t: ({**METRICS, "top_1_accuracy": t.params["temperature"]},
                                   "FINISHED", None), epochs=(4,))
    reference = tmp_path / "reference.csv"
    reference.write_text("temperature,color_jitter,top_1_accuracy\n"
                         "0.1,0.5,0.1\n0.1,1.0,0.1\n0.2,0.5,0.2\n0.2,1.0,0.25\n")
    out = tmp_path / "out"
    assert main(["report", "replaced", "--tracking-uri", uri, "--out", str(out),
                 "--reference", str(reference)]) == 0
    compared = {"reference_comparison.csv", "reference_comparison.tex",
                "reference_diff_heatmap.png", "reference_agreement.json"}
    assert compared <= _attached(uri, tracker.parent_id) == set(_files(out))

    assert main(["report", "replaced", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert not compared & set(_files(out))
    assert _attached(uri, tracker.parent_id) == set(_files(out))


def test_an_artifact_store_that_cannot_delete_is_warned_about(
        uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    tracker = log_sweep(uri, GRID.format(name="undeletable", seeds="[0]"),
                        lambda t: ({**METRICS, "top_1_accuracy": 0.5}, "FINISHED", None),
                        epochs=(4,))
    parent = tracker.parent_id
    MlflowClient(uri).log_text(parent, "an earlier file", "report/old_plot.png")

    def refuse(self: object, artifact_path: str | None = None) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(LocalArtifactRepository, "delete_artifacts", refuse)
    with caplog.at_level(logging.WARNING):
        assert main(["report", "undeletable", "--tracking-uri", uri,
                     "--out", str(tmp_path)]) == 0
    assert (f"run {parent} keeps report/old_plot.png from an earlier report: its artifact "
            "store (LocalArtifactRepository) cannot delete: [Errno 13] Permission denied"
            ) in caplog.text
    assert "old_plot.png" in _attached(uri, parent)
