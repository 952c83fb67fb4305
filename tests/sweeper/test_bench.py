"""`sweeper bench`: the figures' keys and arithmetic, the FLOP count against a hand
computation, the sweep's timings read back from MLflow, the printed table on known
inputs, the JSON-last-line contract and exit 2 on bad input. Speed itself is measured,
never asserted: every run here is as short as the code allows."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from sweeper import bench
from sweeper.bench import (
    BenchError,
    format_result,
    forward_flops,
    measure_augment,
    measure_step,
    resolve_device,
    scale_trials,
    training_flops_per_image,
)
from sweeper.bench import scale as bench_scale
from sweeper.bench import scale_store as bench_store
from sweeper.bench import sweep as bench_sweep
from sweeper.bench.sweep import SweepTiming, TrialTiming, sweep_figures, trial_records
from sweeper.bench.timing import Timing, time_rounds
from sweeper.cli import main
from trainers.byol import BYOL
from trainers.config import ModelConfig, TrainConfig
from trainers.data import make_synthetic
from trainers.method import build_method

CPU = torch.device("cpu")
TINY_STEP = ["--width", "4", "--batch-size", "8", "--steps", "1", "--warmup", "0"]


def positive_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def json_last_line(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


# --- FLOPs ----------------------------------------------------------------------------

def test_forward_flops_of_one_conv_and_one_linear_match_a_hand_count() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every output value (8 x 32 x 32) is 3 x 3 x 3 multiply-adds; 2 FLOPs each
    assert forward_flops(conv, torch.zeros(1, 3, 32, 32)) == 2 * (8 * 32 * 32) * (3 * 3 * 3)
    linear = nn.Linear(16, 4)
    assert forward_flops(linear, torch.zeros(1, 16)) == 2 * 16 * 4
    both = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.Flatten(), nn.Linear(2 * 4 * 4, 5))
    assert forward_flops(both, torch.zeros(1, 3, 4, 4)) == 2 * (2 * 16 * 3) + 2 * (32 * 5)


def test_forward_flops_leaves_the_module_in_its_mode() -> None:
    module = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    forward_flops(module, torch.zeros(1, 4))  # a batch of 1 only works in eval mode
    assert module.training


def test_resnet18_width64_forward_is_the_known_056_gmacs() -> None:
    method = build_method("simclr", ModelConfig(width=64), TrainConfig())
    macs = forward_flops(method.encoder, torch.zeros(1, 3, 32, 32)) / 2
    assert 0.55e9 < macs < 0.57e9  # docs/architecture.md: ~0.56 GMACs


def test_training_flops_are_three_forwards_per_view_plus_byols_target() -> None:
    model, train = ModelConfig(width=4, hidden_dim=16, projection_dim=8), TrainConfig()
    simclr = build_method("simclr", model, train)
    forward, per_image = training_flops_per_image(simclr, (32, 32))
    example = torch.zeros(1, 3, 32, 32)
    assert forward == forward_flops(nn.Sequential(simclr.encoder, simclr.projector), example)
    assert per_image == 2 * 3 * forward

    byol = build_method("byol", model, train)
    assert isinstance(byol, BYOL)
    forward, per_image = training_flops_per_image(byol, (32, 32))
    target = forward_flops(nn.Sequential(byol.target_encoder, byol.target_projector), example)
    assert 0 < target < forward  # the target has no predictor
    assert per_image == 2 * 3 * forward + 2 * target


# --- measurements ---------------------------------------------------------------------------

def test_measure_augment_reports_positive_rates_and_their_ratio() -> None:
    images = make_synthetic(24, seed=0)[0]
    result = measure_augment(images, CPU, batch_size=16, seconds=0.01, threads=1)
    assert result["baseline_images_per_sec"] == max(result["baseline_tensor_images_per_sec"],
                                                    result["baseline_pil_images_per_sec"])
    assert result["baseline"] == ("pil" if result["baseline_pil_images_per_sec"]
                                  >= result["baseline_tensor_images_per_sec"] else "tensor")
    for key in ("images_per_sec", "baseline_images_per_sec", "ratio"):
        assert positive_finite(result[key]), key
    assert result["ratio"] == result["images_per_sec"] / result["baseline_images_per_sec"]
    assert (result["threads"], result["baseline_threads"]) == (1, 1)
    assert result["image_size"] == [32, 32] and result["batch_size"] == 16
    assert result["views_per_call"] == 32  # both views of a batch, as Training.step asks


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_measure_step_reports_throughput_and_the_flop_floor(method: str) -> None:
    result = measure_step(method, CPU, batch_size=8, width=4, steps=1, warmup=0, threads=1)
    for key in ("images_per_sec", "epoch_seconds_50k", "flops_per_image", "achieved_tflops"):
        assert positive_finite(result[key]), key
    assert result["epoch_seconds_50k"] == pytest.approx(50_000 / result["images_per_sec"])
    assert result["achieved_tflops"] == pytest.approx(
        result["images_per_sec"] * result["flops_per_image"] / 1e12)
    assert result["fraction_of_peak"] is None and result["peak_tflops"] is None  # CPU
    assert result["compile"] is False and result["warmup_seconds"] == pytest.approx(0, abs=0.1)

    with_peak = measure_step(method, CPU, batch_size=8, width=4, steps=1, warmup=0,
                             peak=2.0, threads=1)
    assert with_peak["fraction_of_peak"] == pytest.approx(with_peak["achieved_tflops"] / 2.0)


def test_measure_step_names_the_registered_methods() -> None:
    with pytest.raises(BenchError, match=r"^unknown method 'bypl': choose 'simclr' or 'byol' "
                                         r"\(did you mean 'byol'\?\)$"):
        measure_step("bypl", CPU, batch_size=8, width=4, steps=1, warmup=0)


def test_measure_step_deterministic_times_both_ways_and_their_ratio() -> None:
    threads_before = torch.get_num_threads()
    progress = io.StringIO()
    result = measure_step("simclr", CPU, batch_size=8, width=4, steps=3, warmup=1, threads=1,
                          progress=progress, deterministic=True)
    assert result["deterministic"] is True
    for key in ("images_per_sec", "images_per_sec_nondeterministic", "deterministic_ratio"):
        assert positive_finite(result[key]), key
    assert result["deterministic_ratio"] == (result["images_per_sec"]
                                             / result["images_per_sec_nondeterministic"])
    assert result["threads"] == 1  # the same settings both ways
    assert "images/s deterministic" in progress.getvalue().splitlines()[-1]
    # The process is as it was: deterministic mode only held during its own steps.
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads_before

    plain = measure_step("simclr", CPU, batch_size=8, width=4, steps=1, warmup=0, threads=1)
    assert plain["deterministic"] is False
    assert plain["images_per_sec_nondeterministic"] is None
    assert plain["deterministic_ratio"] is None


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.0), ("NVIDIA L40", 181.0),
    ("NVIDIA L4", 121.0), ("NVIDIA A10", 125.0), ("Tesla T4", None)])
def test_peak_table_by_device_name(name: str, peak: float | None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert bench.peak_tflops(torch.device("cuda"), bf16=True) == peak
    assert bench.peak_tflops(torch.device("cuda"), bf16=False) is None  # a bf16 table
    assert bench.peak_tflops(CPU, bf16=True) is None


def _timing(ends: list[float | None], started: float = 1000.0, wall: float = 9.0,
            statuses: list[str] | None = None) -> SweepTiming:
    statuses = statuses or ["FINISHED"] * len(ends)
    records = [TrialTiming(f"seed{i}", status, started + 0.5, end, 0.25)
               for i, (end, status) in enumerate(zip(ends, statuses, strict=True))]
    return SweepTiming(started=started, wall_seconds=wall, finished=len(ends), failed=[],
                       records=records, ray_start_seconds=4.0, store_setup_seconds=1.0)


def test_sweep_figures_arithmetic_on_known_timings() -> None:
    # 3 trials ending 5, 6 and 7.5 s after run_sweep was called; the loop took 1.5 s.
    figures = sweep_figures(3, 1.5, _timing([1007.5, 1005.0, 1006.0]))
    assert figures["sweep_seconds"] == 9.0  # the outcome's wall time, as it is
    assert figures["overhead_per_trial_s"] == pytest.approx((9.0 - 1.5) / 3)
    assert figures["first_trial_seconds"] == pytest.approx(5.0)  # the earliest end
    # from the first end to the last: 2.5 s for 2 trials, less the loop's 0.5 s per trial
    assert figures["marginal_overhead_per_trial_s"] == pytest.approx(2.5 / 2 - 0.5)
    assert figures["trial_epoch_seconds"] == pytest.approx(3 * 0.25)
    assert (figures["ray_start_seconds"], figures["store_setup_seconds"]) == (4.0, 1.0)


def test_sweep_figures_leave_out_what_the_records_do_not_show() -> None:
    assert sweep_figures(1, 1.0, _timing([1003.0]))["marginal_overhead_per_trial_s"] is None
    # a run still open (or failed) is no finish: the steady cost needs every trial's end
    open_run = sweep_figures(2, 1.0, _timing([1003.0, None]))
    assert open_run["marginal_overhead_per_trial_s"] is None
    assert open_run["first_trial_seconds"] == pytest.approx(3.0)
    failed = sweep_figures(2, 1.0, _timing([1004.0, 1003.0], statuses=["FINISHED", "FAILED"]))
    assert failed["marginal_overhead_per_trial_s"] is None
    assert failed["first_trial_seconds"] == pytest.approx(4.0)
    nothing = sweep_figures(2, 1.0, _timing([]))
    assert nothing["first_trial_seconds"] is None and nothing["trial_epoch_seconds"] == 0


@pytest.mark.integration
def test_trial_records_read_ends_and_epoch_seconds_from_mlflow(tmp_path: Path) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from sweeper.record.contract import KIND_TAG, PARENT_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench-sweep")
    parent = client.create_run(experiment, run_name="bench-sweep", start_time=1_000_000,
                               tags={KIND_TAG: "sweep"}).info.run_id
    # written out of order: b ends first; c is still open; a has two epochs
    for name, start, end, epochs in (("a", 1_001_000, 1_009_500, [1.5, 2.0]),
                                     ("b", 1_002_000, 1_004_250, [0.75]),
                                     ("c", 1_005_000, None, [])):
        run = client.create_run(experiment, run_name=name, start_time=start,
                                tags={KIND_TAG: "trial", PARENT_TAG: parent}).info.run_id
        client.log_batch(run, metrics=[Metric("epoch_seconds", value, start, step + 1)
                                       for step, value in enumerate(epochs)])
        if epochs:  # the trial's time so far, at its last epoch: 2 CPUs held
            client.log_batch(run, metrics=[Metric("device_seconds", 4 * sum(epochs), start,
                                                  len(epochs))])
        if end is not None:
            client.set_terminated(run, "FINISHED", end_time=end)
    client.create_run(experiment, run_name="stray")  # not a trial of the sweep

    records = trial_records(uri, "bench-sweep")
    assert [(r.name, r.status) for r in records] == [
        ("b", "FINISHED"), ("a", "FINISHED"), ("c", "RUNNING")]
    assert [r.end for r in records] == [1004.25, 1009.5, None]  # seconds, not ms
    assert [r.start for r in records] == [1002.0, 1001.0, 1005.0]
    assert [r.epoch_seconds for r in records] == [0.75, 3.5, 0.0]
    assert [r.own_seconds for r in records] == [0.75 * 4, 3.5 * 4, None]
    assert [r.own_seconds for r in trial_records(uri, "bench-sweep", cpus=2)] == [
        0.75 * 2, 3.5 * 2, None]
    assert trial_records(uri, "no-such-sweep") == []


@pytest.mark.slow
def test_measure_sweep_times_both_ways(local_ray: None) -> None:
    result = bench.measure_sweep(trials=2, progress=io.StringIO())
    for key in ("sweep_seconds", "loop_seconds", "first_trial_seconds", "trial_epoch_seconds"):
        assert positive_finite(result[key]), key
    assert result["overhead_per_trial_s"] == pytest.approx(
        (result["sweep_seconds"] - result["loop_seconds"]) / 2)
    assert result["ray_start_seconds"] == 0.0  # the fixture's Ray was already running
    assert isinstance(result["marginal_overhead_per_trial_s"], float)
    # the second trial's own time, from its run: within the time between the two ends
    assert 0 < result["own_per_trial_s"] < result["sweep_seconds"]
    assert isinstance(result["own_overhead_per_trial_ms"], float)
    # read back from the trials' MLflow runs: both ended within the sweep, and their
    # epochs are part of it
    assert result["first_trial_seconds"] < result["sweep_seconds"]
    assert result["trial_epoch_seconds"] < result["sweep_seconds"]
    steady = result["marginal_overhead_per_trial_s"] + result["loop_seconds"] / 2
    assert 0 <= steady < result["sweep_seconds"] - result["first_trial_seconds"] + 0.01


@pytest.mark.slow
@pytest.mark.integration
def test_tune_floor_runs_the_sweeps_trials_through_tune_alone(local_ray: None,
                                                             tmp_path: Path) -> None:
    from sweeper.bench.tune_floor import tune_floor_per_trial_ms
    from sweeper.spec.load import parse_spec

    spec = parse_spec(bench_sweep.bench_spec_text(3, "optuna"), source="<test>")
    floor = tune_floor_per_trial_ms(spec, tmp_path)
    assert 0 < floor < 10_000
    # three trials, each in its folder; like the sweep's 1-epoch trials, none hands Tune a
    # checkpoint (sweeper.driver.final_state)
    assert len([f for f in tmp_path.glob("bench-sweep/*") if f.is_dir()]) == 3
    assert not list(tmp_path.glob("bench-sweep/*/checkpoint_*"))


# --- the command line -------------------------------------------------------------------------

def test_bench_augment_json_is_the_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "augment", "--device", "cpu", "--batch-size", "16", "--seconds",
                 "0.01", "--threads", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json_last_line(out)
    assert result["ratio"] == result["images_per_sec"] / result["baseline_images_per_sec"]
    assert result["threads"] == 1
    assert out.splitlines()[-2].strip().startswith("ratio")  # the table, then the JSON
    assert "augment:" in err  # progress goes to stderr


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_bench_step_json_is_the_last_line(method: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "step", "--method", method, "--device", "cpu", "--threads", "1",
                 "--peak-tflops", "1", *TINY_STEP, "--json"]) == 0
    out, _ = capsys.readouterr()
    result = json_last_line(out)
    assert result["method"] == method and result["width"] == 4
    assert set(result) >= {"images_per_sec", "epoch_seconds_50k", "flops_per_image",
                           "achieved_tflops", "fraction_of_peak"}
    assert result["fraction_of_peak"] == pytest.approx(result["achieved_tflops"])
    assert "seconds per 50k-image epoch" in out


def test_bench_step_deterministic_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "step", "--device", "cpu", "--threads", "1", *TINY_STEP,
                 "--deterministic", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json_last_line(out)
    assert result["deterministic"] is True and positive_finite(result["deterministic_ratio"])
    assert "deterministic and not, alternating" in err


def test_bench_step_without_json_prints_only_the_table(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "step", "--device", "cpu", "--threads", "1", *TINY_STEP]) == 0
    out, _ = capsys.readouterr()
    assert "{" not in out and "fraction of peak" in out and "n/a" in out


def test_bench_sweep_prints_the_figures_of_its_timings(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The plain loop runs for real (3 tiny trials); the Ray side needs Ray (see the slow
    # test above), so its timings are given: the figures must follow from both.
    given = _timing([1006.0, 1004.0, 1005.0], wall=9.0)
    seen: list[int] = []

    def timed_sweep(spec: Any, text: str, folder: Path, progress: Any,
                    tune_floor: bool) -> SweepTiming:
        assert not tune_floor
        seen.append(len(spec.search.seeds))
        assert folder.is_dir()
        return given

    monkeypatch.setattr(bench_sweep, "run_timed_sweep", timed_sweep)
    assert main(["bench", "sweep", "--trials", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    assert seen == [3]
    result = json_last_line(out)
    loop = result["loop_seconds"]
    assert positive_finite(loop)
    assert result["sweep_seconds"] == 9.0 and result["trials"] == 3
    assert result["overhead_per_trial_s"] == pytest.approx((9.0 - loop) / 3)
    assert result["marginal_overhead_per_trial_s"] == pytest.approx(1.0 - loop / 3)
    assert result["first_trial_seconds"] == pytest.approx(4.0)
    # the table shows those same figures, two decimals each
    table = dict(line.strip().rsplit("  ", 1) for line in out.splitlines()[1:-1])
    assert {label.strip(): value for label, value in table.items()} == {
        "plain loop over fit": f"{loop:.2f} s",
        "run_sweep (Ray already up)": "9.00 s",
        "overhead per trial": f"{(9.0 - loop) / 3:.2f} s",
        "steady (after the first trial)": f"{1000 * (1.0 - loop / 3):,.1f} ms ("
                                          + ("meets" if 1.0 - loop / 3 <= 0.03 else "misses")
                                          + " <= 30 ms)",
        "first trial (incl. Tuner + worker start)": "4.00 s",
        "Ray import + start (one-off)": "4.00 s",
        "MLflow store creation (one-off)": "1.00 s",
    }
    assert "plain loop" in err  # progress goes to stderr


def test_bench_sweep_optuna_times_a_sample_of_the_loop_and_judges_the_steady_cost(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # 4 Optuna trials; the loop times 2 of them for real, scaled to 4. The sweep's trials
    # end 0.1 s apart after the first: 100 ms per trial less the loop's per-trial time.
    given = _timing([1004.0, 1004.1, 1004.2, 1004.3], wall=6.0)
    seen: list[Any] = []

    def timed_sweep(spec: Any, text: str, folder: Path, progress: Any,
                    tune_floor: bool) -> SweepTiming:
        assert not tune_floor
        seen.append(spec)
        return given

    monkeypatch.setattr(bench_sweep, "run_timed_sweep", timed_sweep)
    assert main(["bench", "sweep", "--search", "optuna", "--trials", "4", "--loop-trials",
                 "2", "--json"]) == 0
    out, err = capsys.readouterr()
    [spec] = seen
    assert (spec.search.type, spec.search.num_samples, spec.search.sampler) == (
        "optuna", 4, "tpe")
    assert list(spec.search.params) == ["temperature"]  # continuous: distinct trials
    result = json_last_line(out)
    assert (result["search"], result["sampler"], result["trials"]) == ("optuna", "tpe", 4)
    assert result["loop_trials"] == 2 and "2 of 4 optuna trial(s)" in err
    per_trial = result["loop_per_trial_s"]
    assert positive_finite(per_trial)
    assert result["loop_seconds"] == pytest.approx(4 * per_trial)
    steady = 0.1 - per_trial
    assert result["marginal_overhead_per_trial_s"] == pytest.approx(steady)
    assert result["marginal_overhead_per_trial_ms"] == pytest.approx(1000 * steady)
    assert result["target_overhead_ms"] == 30.0
    assert result["meets_target"] is (1000 * steady <= 30.0)
    assert result["overhead_per_trial_s"] == pytest.approx((6.0 - 4 * per_trial) / 4)
    assert "timed on 2 trials, scaled" in out and "optuna (tpe)" in out


def test_sweep_figures_judge_the_steady_cost_against_30_ms() -> None:
    # 3 trials 0.125 s apart, the loop 0.1 s per trial: 25 ms steady, within 30 ms.
    figures = sweep_figures(3, 0.3, _timing([1005.0, 1005.125, 1005.25]), loop_trials=1)
    assert figures["marginal_overhead_per_trial_ms"] == pytest.approx(25.0)
    assert figures["meets_target"] is True and figures["loop_trials"] == 1
    assert figures["loop_per_trial_s"] == pytest.approx(0.1)
    slow = sweep_figures(3, 0.3, _timing([1005.0, 1005.25, 1005.5]))
    assert slow["marginal_overhead_per_trial_ms"] == pytest.approx(150.0)
    assert slow["meets_target"] is False and slow["loop_trials"] == 3
    assert sweep_figures(1, 0.1, _timing([1005.0]))["meets_target"] is None


def test_progress_sample_passes_one_line_per_step_of_trials_done() -> None:
    out = io.StringIO()
    sample = bench_sweep.ProgressSample(out, every=10)
    for done in range(0, 31):
        for event in ("epoch 0/1", "epoch 1/1", "finished"):
            print(f"[{done}/30 done, 1 running, 0 pending, 0 failed] t{done} {event}",
                  file=sample, flush=True)
    print("warm start: a note", file=sample)
    lines = out.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines[:-1]] == [
        f"[{n}/30 done, 1 running, 0 pending, 0 failed" for n in (0, 10, 20, 30)]
    assert lines[-1] == "warm start: a note"  # not a progress line: always passed


def test_bench_sweep_fails_with_exit_1_when_a_trial_fails(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    failed = SweepTiming(started=0.0, wall_seconds=1.0, finished=0,
                         failed=[("seed0", "loss became NaN at step 3")], records=[],
                         ray_start_seconds=0.0, store_setup_seconds=0.0)
    monkeypatch.setattr(bench_sweep, "run_timed_sweep", lambda *_: failed)
    assert main(["bench", "sweep", "--trials", "1", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "only 0/1 benchmark trials finished (seed0: loss became NaN at step 3)" in err


def test_format_result_of_known_step_and_augment_figures() -> None:
    step = {"benchmark": "step", "method": "simclr", "backbone": "resnet18", "width": 64,
            "batch_size": 512, "precision": "bf16", "compile": True, "device_name": "GPU",
            "images_per_sec": 40_000.0, "images_per_sec_mean": 39_500.0,
            "epoch_seconds_50k": 1.25, "warmup_seconds": 30.0,
            "forward_flops_per_image": 1_112_000_000, "flops_per_image": 6_672_000_000,
            "achieved_tflops": 266.88, "peak_tflops": 989.0, "fraction_of_peak": 0.25}
    lines = format_result(step).splitlines()
    assert lines[0] == "step: simclr resnet18 width 64, batch 512, bf16, compiled on GPU"
    rows = {label.strip(): value for label, value in
            (line.strip().rsplit("  ", 1) for line in lines[1:])}
    assert rows == {
        "training throughput (median step)": "40,000.0 images/s",
        "mean over the steps": "39,500.0 images/s",
        "seconds per 50k-image epoch": "1.2 s",  # 1.25 rounds half to even
        "untimed warm-up (incl. compiling)": "30.0 s",
        "forward GFLOP per image": "1.112",
        "training GFLOP per image": "6.672",
        "achieved": "266,880.0 GFLOP/s",
        "peak": "989 TFLOP/s",
        "fraction of peak": "25.0%",
    }
    # every value starts in one column
    assert len({line.index(value) for line, value in zip(lines[1:], rows.values(),
                                                          strict=True)}) == 1
    unknown = format_result({**step, "peak_tflops": None, "fraction_of_peak": None})
    assert "unknown (--peak-tflops)" in unknown and unknown.endswith("n/a")

    augment = {"benchmark": "augment", "device": "cpu", "device_name": "cpu",
               "batch_size": 512, "views_per_call": 1024, "image_size": [32, 32],
               "strength": 0.5, "blur": False, "threads": 2, "baseline_threads": 1,
               "images_per_sec": 30_000.4, "baseline_images_per_sec": 1_500.0,
               "baseline": "pil", "baseline_tensor_images_per_sec": 1_000.0,
               "baseline_pil_images_per_sec": 1_500.0, "ratio": 20.0}
    text = format_result(augment)
    assert text.splitlines()[0] == ("augment on cpu, batch 512 (1024 views per call), 32x32, "
                                    "strength 0.5, blur off")
    assert text.splitlines()[-1].split() == ["ratio", "(to", "the", "faster,", "pil)", "20.0x"]
    assert "30,000 images/s" in text and "1,500 images/s" in text and "1,000 images/s" in text


def test_format_result_of_known_handover_figures() -> None:
    text = format_result({"benchmark": "handover", "calls": 1000, "idle_ms": 0.678,
                          "busy_default_ms": 10.404, "busy_quick_ms": 1.281,
                          "default_interval_ms": 5.0, "quick_interval_ms": 0.5})
    lines = text.splitlines()
    assert lines[0] == "handover: median of 1,000 empty calls to a Ray actor"
    assert [line.rsplit("  ", 1)[1] for line in lines[1:]] == ["0.68 ms", "10.40 ms", "1.28 ms"]
    assert "switch interval 5 ms (Python's default)" in lines[2]
    assert "switch interval 0.5 ms (sweeper's)" in lines[3]


@pytest.mark.slow
@pytest.mark.integration
def test_bench_handover_times_calls_each_way(local_ray: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "handover", "--calls", "5", "--json"]) == 0
    result = json_last_line(capsys.readouterr().out)
    assert result["calls"] == 5 and result["quick_interval_ms"] == 0.5
    assert result["default_interval_ms"] == 5.0  # a fresh worker's: Python's default
    for key in ("idle_ms", "busy_default_ms", "busy_quick_ms"):
        assert positive_finite(result[key]), key


def test_no_cuda_device_exits_2_with_a_message(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for which in (["augment"], ["step", *TINY_STEP]):
        assert main(["bench", *which, "--device", "cuda", "--json"]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("sweeper: ") and "no CUDA device" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("device", ["tpu", "nonsense", "cuda:x"])
def test_unknown_device_exits_2(device: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "augment", "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweeper: ") and device in err and "Traceback" not in err


def test_compile_without_warmup_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "step", "--device", "cpu", "--compile", *TINY_STEP]) == 2
    err = capsys.readouterr().err
    assert "--compile needs --warmup of at least 1" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["augment", "--batch-size", "0"],
    ["augment", "--batch-size", "-4"],
    ["augment", "--seconds", "0"],
    ["augment", "--threads", "0"],
    ["step", "--batch-size", "0"],
    ["step", "--steps", "0"],
    ["step", "--method", "moco"],
    ["step", "--peak-tflops", "-1"],
    ["sweep", "--trials", "0"],
    ["handover", "--calls", "0"],
    [],
])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "sweeper: error:" in err and "Traceback" not in err


@pytest.mark.parametrize("strength", ["-0.5", "3"])
def test_out_of_range_strength_exits_2(strength: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "augment", "--device", "cpu", "--strength", strength]) == 2
    assert capsys.readouterr().err.startswith("sweeper: --strength must be in [0, 2.5]")


def test_augment_reads_an_image_folder(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    images = make_synthetic(4, seed=1)[0]
    for split in ("train", "test"):
        for i, name in enumerate(("a", "b")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for j in range(2):
                pixels = images[2 * i + j].permute(1, 2, 0).numpy()
                Image.fromarray(pixels).save(folder / f"{j}.png")
    assert main(["bench", "augment", "--device", "cpu", "--data-root", str(tmp_path),
                 "--batch-size", "8", "--seconds", "0.01", "--threads", "1", "--json"]) == 0
    result = json_last_line(capsys.readouterr().out)
    assert result["image_size"] == [32, 32] and positive_finite(result["ratio"])


def test_missing_data_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["bench", "augment", "--device", "cpu", "--data-root", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweeper: --data-root") and "does not exist" in err


def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BenchError, match="not supported"):
        resolve_device("meta")


def test_rates_are_medians_over_rounds() -> None:
    timing = Timing(rates=[100.0, 1.0, 90.0], images=30, seconds=2.0)
    assert timing.median == 90.0  # one stalled round does not drag the figure down
    assert timing.mean == 15.0
    calls: list[int] = []

    def run() -> int:
        calls.append(1)
        return 4

    rounds = time_rounds(run, CPU, seconds=0.0, min_rounds=3, calls_per_round=2)
    assert len(rounds.rates) == 3 and rounds.images == 24 and len(calls) == 6


# --- scale ------------------------------------------------------------------------------------

SCALE_TRIALS, SCALE_EPOCHS = 6, 2


@pytest.fixture(scope="module")
def scale_store(tmp_path_factory: pytest.TempPathFactory) -> bench_store.Store:
    folder = tmp_path_factory.mktemp("scale")
    return bench_store.make_store(f"sqlite:///{folder / 'mlflow.db'}", SCALE_TRIALS,
                                  SCALE_EPOCHS, folder / "artifacts", threads=2)


@pytest.mark.integration
def test_scale_store_parent_run_follows_the_tracking_contract(
        scale_store: bench_store.Store) -> None:
    from mlflow.tracking import MlflowClient

    from sweeper.record.read_model import find_parent
    from sweeper.record.recorded_spec import recorded_spec
    from sweeper.search import summary

    client = MlflowClient(scale_store.tracking_uri)
    experiment = client.get_experiment(scale_store.experiment_id)
    assert experiment.name == scale_store.name == "bench-scale-6x2"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location.endswith("/artifacts")  # beside the store
    parent = client.get_run(scale_store.parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweeper.kind"] == "sweep"
    assert json.loads(parent.data.tags["sweeper.overrides"]) == [
        "name=bench-scale-6x2", "search.num_samples=6", "train.epochs=2"]
    # the recorded spec.yaml with those overrides is the spec the trials came from
    spec = recorded_spec(client, find_parent(client, scale_store.name))  # type: ignore[arg-type]
    assert (spec.name, spec.search.type, spec.search.num_samples, spec.train.epochs) == (
        "bench-scale-6x2", "optuna", 6, 2)
    assert {getattr(p, "type", None) for p in spec.search.params.values()} == {
        "float", "categorical"}
    assert parent.data.params == {"num_trials": "6", "search": summary(spec),
                                  "warm_start_trials": "0"}
    # the sweep's summary, as run_sweep leaves it
    assert parent.data.metrics["trials_finished"] + parent.data.metrics["trials_failed"] == 6
    assert "best_top_1_accuracy" in parent.data.metrics


@pytest.mark.integration
def test_scale_store_trial_runs_follow_the_tracking_contract(
        scale_store: bench_store.Store) -> None:
    from mlflow.tracking import MlflowClient

    from sweeper.record.contract import run_name, trial_params
    from sweeper.record.read_model import find_parent
    from sweeper.record.recorded_spec import recorded_spec
    from sweeper.spec.trials import base_config, resolve_values

    client = MlflowClient(scale_store.tracking_uri)
    spec = recorded_spec(client, find_parent(client, scale_store.name))  # type: ignore[arg-type]
    runs = client.search_runs([scale_store.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{scale_store.parent_id}'")
    assert len(runs) == SCALE_TRIALS
    assert sorted(int(r.data.tags["sweeper.trial_index"]) for r in runs) == list(range(6))
    assert len({r.data.tags["sweeper.trial_id"] for r in runs}) == 6
    stopped = 0
    points = 0
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert tags["sweeper.kind"] == "trial"
        # the swept values resolve, over the recorded spec, to the run's config and params
        values = {"temperature": float(params["temperature"]),
                  "learning_rate": float(params["learning_rate"]),
                  "color_jitter_strength": float(params["color_jitter_strength"]),
                  "batch_size": int(params["batch_size"]), "seed": int(params["seed"])}
        trial = resolve_values(base_config(spec), values)
        assert tags["sweeper.config_hash"] == trial.config_hash
        assert params == trial_params(trial)
        assert run.info.run_name == run_name(trial.params, with_seed=False)
        assert json.loads(tags["mlflow.note.content"])["train"]["epochs"] == 2
        assert {"sweeper.node", "sweeper.node_ip", "sweeper.worker"} <= set(tags)
        # one point per step, steps 0..the last epoch it reached
        reached = int(tags.get("sweeper.stopped_at_epoch", SCALE_EPOCHS))
        stopped += "sweeper.stopped_at_epoch" in tags
        if run.info.status == "FINISHED":
            assert run.data.metrics["epoch"] == reached
        else:
            assert run.info.status == "FAILED" and tags["sweeper.error"]
            reached = int(run.data.metrics["epoch"])
        steps = list(range(reached + 1))
        for key in ("top_1_accuracy", "top_5_accuracy", "knn_top_1_accuracy", "epoch",
                    "device_seconds", "baseline_top_1_accuracy"):
            assert [p.step for p in client.get_metric_history(run.info.run_id, key)] == steps
        for key in ("loss", "learning_rate", "epoch_seconds", "online_linear_top_1_accuracy"):
            assert [p.step for p in client.get_metric_history(run.info.run_id, key)] == steps[1:]
        assert [p.step for p in client.get_metric_history(
            run.info.run_id, "offline_linear_top_1_accuracy")] == [0]
        assert run.data.metrics["steps"] == reached * math.ceil(50_000 / values["batch_size"])
        points += 13 + 17 * reached  # the keys at step 0, and at each epoch
    assert 0 < stopped < SCALE_TRIALS  # ASHA stopped some at its rung (epoch 1), not all
    assert scale_store.metric_points == points and scale_store.created


@pytest.mark.integration
def test_scale_writes_a_failed_trial_as_a_failed_run(scale_store: bench_store.Store) -> None:
    import random

    from sweeper.record.writer import SweepTracker

    tracker = SweepTracker(scale_store.tracking_uri, scale_store.name)
    tracker.experiment_id, tracker.parent_id = scale_store.experiment_id, scale_store.parent_id
    spec = scale_trials.scale_spec(SCALE_TRIALS, SCALE_EPOCHS)
    trial = next(scale_trials.sampled_trials(spec, random.Random(1)))
    trial = type(trial)(99, trial.params, trial.config)
    outcome = scale_trials.Outcome("FAILED", 1, False, "TrainingDiverged: loss became NaN")
    rng = random.Random(2)
    written = bench_store.write_trial(tracker, trial, outcome,
                                      scale_trials.trial_metrics(trial, outcome, rng, 0))
    run = tracker.client.search_runs([scale_store.experiment_id],
                                     "tags.`sweeper.trial_index` = '99'")[0]
    assert run.info.status == "FAILED" and written == 13 + 17
    assert run.data.tags["sweeper.error"] == "TrainingDiverged: loss became NaN"
    assert "sweeper.stopped_at_epoch" not in run.data.tags
    assert run.data.metrics["epoch"] == 1
    tracker.client.delete_run(run.info.run_id)  # the module's store stays as made


@pytest.mark.integration
def test_scale_reuses_the_store_a_kept_folder_holds(scale_store: bench_store.Store) -> None:
    folder = Path(scale_store.tracking_uri.removeprefix("sqlite:///")).parent
    again = bench_store.make_store(scale_store.tracking_uri, SCALE_TRIALS, SCALE_EPOCHS,
                                   folder / "artifacts", threads=1)
    assert (again.parent_id, again.created, again.metric_points) == (
        scale_store.parent_id, False, 0)


def test_asha_rungs_and_trial_outcomes() -> None:
    import random

    spec = scale_trials.scale_spec(10, 11)  # grace period 1, reduction factor 3
    assert scale_trials.asha_rungs(spec, 11) == [1, 3, 9]
    assert scale_trials.asha_rungs(spec, 1) == []
    rng = random.Random(0)
    outcomes = [scale_trials.trial_outcome(rng, 11, [1, 3, 9]) for _ in range(2000)]
    stopped = [o for o in outcomes if o.stopped]
    failed = [o for o in outcomes if o.status == "FAILED"]
    assert {o.reached for o in stopped} == {1, 3, 9}
    assert all(o.error and 0 <= o.reached < 11 for o in failed)
    assert all(o.reached == 11 for o in outcomes if o.status == "FINISHED" and not o.stopped)
    # the shares, within a few standard errors of 2,000 draws
    assert abs(len(failed) / 2000 - scale_trials.FAILED_SHARE) < 0.01
    assert abs(len(stopped) / 2000 - scale_trials.STOP_SHARE) < 0.05


def _measured(seconds: float, peak_mb: float, output: str = "") -> bench_scale.Measured:
    return bench_scale.Measured(seconds, peak_mb, 0, output)


def test_scale_figures_arithmetic_and_verdicts() -> None:
    store = bench_store.Store("sqlite:////x/mlflow.db", "s", "1", "p", True, 12.5, 4000)
    result = bench_scale.scale_figures(100, 11, store, _measured(8.0, 200.0),
                                       _measured(10.0, 900.0), _measured(40.0, 1600.0),
                                       _measured(9.0, 700.0, "log line\n100 6.25\n"))
    assert result["store"] == "sqlite" and result["store_seconds"] == 12.5
    assert (result["reattached"], result["reattach_seconds"]) == (100, 6.25)
    assert result["reattach_peak_mb"] == 700.0 and result["store_writer"] == "mlflow"
    assert result["status_ratio"] == 1.25 and result["status_meets_target"] is True
    # 5x the floor, and over the memory target: missed on both counts
    assert result["report_ratio"] == 5.0 and result["report_meets_target"] is False
    memory_only = bench_scale.scale_figures(100, 11, store, _measured(8.0, 200.0),
                                            _measured(12.0, 1500.1), _measured(32.0, 100.0),
                                            _measured(1, 1, "100 1.0"))
    assert memory_only["status_meets_target"] is False  # 1.5x: on target, but 1,500.1 MB
    assert memory_only["report_meets_target"] is True  # exactly 4x
    server = bench_store.Store("http://127.0.0.1:5000", "s", "1", "p", False, 0.0, 0)
    assert bench_scale.scale_figures(1, 1, server, _measured(1, 1), _measured(1, 1),
                                     _measured(1, 1), _measured(1, 1, "1 1.0"))["store"] == (
        "server")


@pytest.mark.integration
def test_timed_command_measures_the_commands_own_peak_memory(tmp_path: Path) -> None:
    import os
    import sys

    # This process has torch and MLflow loaded (far above 300 MB): the command's peak
    # must be its own 200 MB, not this process's size.
    measured = bench_scale.timed_command(
        [sys.executable, "-c", "x = bytearray(200_000_000); print('made'); raise SystemExit(3)"],
        tmp_path / "cmd.log", dict(os.environ))
    assert measured.returncode == 3 and measured.output.strip() == "made"
    assert 200 < measured.peak_mb < 300
    assert positive_finite(measured.seconds)


@pytest.mark.integration
def test_bench_scale_prints_figures_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # The store is made for real (3 trials, 1 epoch); the four commands' timings are given.
    given = {"floor": _measured(4.0, 250.0, "3\n"), "status": _measured(5.0, 400.0),
             "report": _measured(20.0, 700.0), "reattach": _measured(3.0, 300.0, "3 0.5\n")}
    ran: list[list[str]] = []

    def timed(argv: list[str], log: Path, env: dict[str, str]) -> bench_scale.Measured:
        ran.append(argv)
        assert log.parent == tmp_path / "kept"
        return given[log.stem]

    monkeypatch.setattr(bench_scale, "timed_command", timed)
    assert main(["bench", "scale", "--trials", "3", "--epochs", "1", "--keep",
                 str(tmp_path / "kept"), "--json"]) == 0
    out, err = capsys.readouterr()
    uri = f"sqlite:///{tmp_path / 'kept' / 'mlflow.db'}"
    assert [argv[3:] for argv in ran[1:]] == [
        ["status", "bench-scale-3x1", "--tracking-uri", uri],
        ["report", "bench-scale-3x1", "--tracking-uri", uri, "--out",
         str(tmp_path / "kept" / "report")],
        [uri, "3", "1"]]
    assert ran[3][1:3] == ["-m", "sweeper.bench.reattach"]
    assert ran[0][-3] == uri  # the floor lists the same store
    result = json_last_line(out)
    assert (result["trials"], result["epochs"], result["store"]) == (3, 1, "sqlite")
    assert (result["status_ratio"], result["report_ratio"]) == (1.25, 5.0)
    assert (result["status_meets_target"], result["report_meets_target"]) == (True, False)
    assert result["store_created"] and positive_finite(result["store_seconds"])
    assert "sweeper status  " in out and "1.2x floor" in out and "misses <= 4x" in out
    assert (result["reattached"], result["reattach_seconds"]) == (3, 0.5)
    assert "3 of 3 in 0.5 s, 300 MB" in out and "--writer mlflow" in out
    assert "scale: timing report" in err

    # a resume that does not re-attach every trial fails the bench
    given["reattach"] = _measured(3.0, 300.0, "2 0.5\n")
    assert main(["bench", "scale", "--trials", "3", "--epochs", "1", "--keep",
                 str(tmp_path / "kept")]) == 1
    assert "a resume re-attached 2 of the sweep's 3 trials" in capsys.readouterr().err

    # a second run with the same folder reuses the store; a failing command exits 1
    given["report"] = bench_scale.Measured(3.0, 100.0, 2, "sweeper: something broke")
    assert main(["bench", "scale", "--trials", "3", "--epochs", "1", "--keep",
                 str(tmp_path / "kept")]) == 1
    out, err = capsys.readouterr()
    assert "reused" not in out and "using the sweep 'bench-scale-3x1' already" in err
    assert "report exited 2:\nsweeper: something broke" in err


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("writer", ["mlflow", "sql"])
def test_bench_scale_times_status_report_and_reattach_end_to_end(tmp_path: Path,
                                                                writer: str) -> None:
    result = bench.measure_scale(3, 1, keep=tmp_path, progress=io.StringIO(), writer=writer)
    for name in ("floor", "status", "report", "reattach"):
        assert positive_finite(result[f"{name}_seconds"]), name
        assert positive_finite(result[f"{name}_peak_mb"]), name
    assert result["status_ratio"] == result["status_seconds"] / result["floor_seconds"]
    assert result["reattached"] == 3 and result["store_writer"] == writer
    assert (tmp_path / "report" / "report.html").is_file()
    assert "3 finished, 0 running" in (tmp_path / "status.log").read_text()
    # the resume left the sweep as it found it: FINISHED, so that --keep reuses it
    again = bench.measure_scale(3, 1, keep=tmp_path, progress=io.StringIO())
    assert again["store_created"] is False and again["reattached"] == 3


@pytest.mark.slow
@pytest.mark.integration
def test_scale_writers_write_the_same_runs(tmp_path: Path) -> None:
    """--writer sql inserts the rows --writer mlflow has MLflow write: every trial run the
    same (name, status, tags, params, every metric point) but for ids and times."""
    from mlflow.tracking import MlflowClient

    from sweeper.record.read_model import trial_records

    def runs(writer: str) -> dict[int, dict[str, Any]]:
        folder = tmp_path / writer
        folder.mkdir()
        store = bench_store.make_store(f"sqlite:///{folder / 'mlflow.db'}", 9, 3,
                                       folder / "artifacts", threads=1, writer=writer)
        assert store.writer == writer and store.metric_points > 9 * 13
        client = MlflowClient(store.tracking_uri)
        found = {}
        for record in trial_records(client, store.experiment_id, store.parent_id):
            run = client.get_run(record.run_id)
            tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"}
            assert run.data.tags["mlflow.parentRunId"] == store.parent_id
            history = sorted((m.key, m.step, m.value) for key in run.data.metrics
                             for m in client.get_metric_history(run.info.run_id, key))
            found[record.index] = {
                "name": run.info.run_name, "status": run.info.status, "tags": tags,
                "params": run.data.params, "latest": run.data.metrics,
                "history": history,
                "artifacts": run.info.artifact_uri.endswith(f"/{run.info.run_id}/artifacts"),
                "ended": run.info.end_time is not None}
        parent = client.get_run(store.parent_id)
        found[-1] = {"parent_metrics": parent.data.metrics,
                     "parent_tags": {k: v for k, v in parent.data.tags.items()
                                     if k not in ("sweeper.driver", "sweeper.best_trial_run_id")}}
        return found

    through_api, inserted = runs("mlflow"), runs("sql")
    assert list(inserted) == [0, 1, 2, 3, 4, 5, 6, 7, 8, -1]  # oldest first, by index
    assert {r["status"] for i, r in inserted.items() if i >= 0} == {"FINISHED", "FAILED"}
    assert inserted[-1]["parent_metrics"].pop("device_seconds") == pytest.approx(
        through_api[-1]["parent_metrics"].pop("device_seconds"))
    assert inserted == through_api


def test_scale_writer_sql_needs_an_sqlite_store() -> None:
    with pytest.raises(bench.BenchError, match="--writer sql inserts into an SQLite"):
        bench_store.make_store("http://127.0.0.1:1", 3, 1, None, threads=1, writer="sql")


def test_sweep_figures_judge_the_steady_cost_less_each_trials_own_time() -> None:
    # 3 trials 0.2 s apart; the two after the first took 0.17 and 0.18 s of their own
    # (the first's 0.5 s is the start-up's): 200 - 175 = 25 ms steady, within 30 ms,
    # whatever the loop measured minutes before (0.3 s a trial here: -100 ms against it).
    records = [TrialTiming(f"t{i}", "FINISHED", 1000.0, end, 0.1, own_seconds=own)
               for i, (end, own) in enumerate([(1005.0, 0.5), (1005.2, 0.17), (1005.4, 0.18)])]
    timing = SweepTiming(started=1000.0, wall_seconds=6.0, finished=3, failed=[],
                         records=records, ray_start_seconds=0.0, store_setup_seconds=0.0)
    figures = sweep_figures(3, 0.9, timing)
    assert figures["own_per_trial_s"] == pytest.approx(0.175)
    assert figures["own_overhead_per_trial_ms"] == pytest.approx(25.0)
    assert figures["marginal_overhead_per_trial_ms"] == pytest.approx(-100.0)
    assert figures["meets_target"] is True
    slow = [TrialTiming(r.name, r.status, r.start, r.end, 0.1, own_seconds=0.15)
            for r in records]
    assert sweep_figures(3, 0.9, SweepTiming(1000.0, 6.0, 3, [], slow, 0.0, 0.0))[
        "meets_target"] is False  # 50 ms
    # a trial without its own time (no device_seconds): judged against the loop, as before
    missing = [*records[:2], TrialTiming("t2", "FINISHED", 1000.0, 1005.4, 0.1)]
    figures = sweep_figures(3, 0.9, SweepTiming(1000.0, 6.0, 3, [], missing, 0.0, 0.0))
    assert figures["own_overhead_per_trial_ms"] is None and figures["meets_target"] is True
    rows = dict(format_sweep_rows_of(sweep_figures(3, 0.9, timing)))
    assert rows["  steady, less each trial's own time"] == "25.0 ms (meets <= 30 ms)"
    assert rows["  steady (after the first trial)"] == "-100.0 ms"
    assert rows["  a trial in its worker / in the plain loop"] == "175.0 ms / 300.0 ms"


def format_sweep_rows_of(figures: dict[str, Any]) -> list[tuple[str, str]]:
    from sweeper.bench.format import _sweep_rows

    return _sweep_rows({"benchmark": "sweep", "trials": 3, "search": "grid",
                        "threads_per_trial": 1, **figures})
