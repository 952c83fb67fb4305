"""What `sweeper bench` prints: progress lines on stderr and the table of one result.

A result is a plain dict of figures (the JSON line prints it as it is); the table is
its human form. Kept free of torch, so that it can be checked on known inputs alone.
"""

from __future__ import annotations

from typing import Any, TextIO

Result = dict[str, Any]


def say(stream: TextIO | None, message: str) -> None:
    """One progress line (the CLI passes stderr; tests pass None or a buffer)."""
    if stream is not None:
        print(message, file=stream, flush=True)


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """`value` with thousands separators and `digits` decimals, or n/a for None."""
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def format_result(result: Result) -> str:
    """The human table of one benchmark's result: a title, then aligned label/value rows."""
    rows = _ROWS[result["benchmark"]](result)
    title, _ = rows[0]
    width = max(len(label) for label, _ in rows[1:])
    return "\n".join([title, *(f"  {label:<{width}}  {value}" for label, value in rows[1:])])


def _augment_rows(result: Result) -> list[tuple[str, str]]:
    h, w = result["image_size"]
    return [
        (f"augment on {result['device_name']}, batch {result['batch_size']} "
         f"({result['views_per_call']} views per call), {h}x{w}, "
         f"strength {result['strength']}, blur {'on' if result['blur'] else 'off'}", ""),
        (f"batched simclr_augment ({result['device']}, {result['threads']} threads)",
         number(result["images_per_sec"], 0, " images/s")),
        (f"torchvision per image, tensors (cpu, {result['baseline_threads']} threads)",
         number(result["baseline_tensor_images_per_sec"], 0, " images/s")),
        (f"torchvision per image, PIL (cpu, {result['baseline_threads']} threads)",
         number(result["baseline_pil_images_per_sec"], 0, " images/s")),
        (f"ratio (to the faster, {result['baseline']})", number(result["ratio"], 1, "x")),
    ]


def _step_rows(result: Result) -> list[tuple[str, str]]:
    peak = result["peak_tflops"]
    fraction = result["fraction_of_peak"]
    return [
        (f"step: {result['method']} {result['backbone']} width {result['width']}, batch "
         f"{result['batch_size']}, {result['precision']}"
         f"{', compiled' if result['compile'] else ''} on {result['device_name']}", ""),
        ("training throughput (median step)", number(result["images_per_sec"], 1, " images/s")),
        ("  mean over the steps", number(result["images_per_sec_mean"], 1, " images/s")),
        ("seconds per 50k-image epoch", number(result["epoch_seconds_50k"], 1, " s")),
        ("untimed warm-up" + (" (incl. compiling)" if result["compile"] else ""),
         number(result["warmup_seconds"], 1, " s")),
        ("forward GFLOP per image", number(result["forward_flops_per_image"] / 1e9, 3)),
        ("training GFLOP per image", number(result["flops_per_image"] / 1e9, 3)),
        ("achieved", number(result["achieved_tflops"] * 1e3, 1, " GFLOP/s")),
        ("peak", number(peak, 0, " TFLOP/s") if peak else "unknown (--peak-tflops)"),
        ("fraction of peak", number(fraction and 100 * fraction, 1, "%")),
    ]


def _sweep_rows(result: Result) -> list[tuple[str, str]]:
    search = result.get("search", "grid")
    if search == "optuna":
        search = f"optuna ({result['sampler']})"
    loop = number(result["loop_seconds"], 2, " s")
    if result.get("loop_trials", result["trials"]) != result["trials"]:
        loop += f" (timed on {result['loop_trials']:,} trials, scaled)"
    steady, own = result["marginal_overhead_per_trial_ms"], result.get("own_overhead_per_trial_ms")
    verdict = ("" if result["meets_target"] is None else
               f" ({'meets' if result['meets_target'] else 'misses'} "
               f"<= {result['target_overhead_ms']:g} ms)")
    judged_rows = [("  steady (after the first trial)",
                    number(steady, 1, " ms") + ("" if own is not None else verdict))]
    if own is not None:
        judged_rows += [
            ("  steady, less each trial's own time", number(own, 1, " ms") + verdict),
            ("  a trial in its worker / in the plain loop",
             number(1000 * result["own_per_trial_s"], 1, " ms") + " / "
             + number(1000 * result["loop_per_trial_s"], 1, " ms"))]
    return [
        (f"sweep: {result['trials']:,} trivial trials ({search}), one at a time, "
         f"{result['threads_per_trial']} thread each", ""),
        ("plain loop over fit", loop),
        ("run_sweep (Ray already up)", number(result["sweep_seconds"], 2, " s")),
        ("overhead per trial", number(result["overhead_per_trial_s"], 2, " s")),
        *judged_rows,
        ("  first trial (incl. Tuner + worker start)",
         number(result["first_trial_seconds"], 2, " s")),
        ("Ray import + start (one-off)", number(result["ray_start_seconds"], 2, " s")),
        ("MLflow store creation (one-off)", number(result["store_setup_seconds"], 2, " s")),
    ] + ([] if result.get("tune_floor_per_trial_ms") is None else [
        ("Tune alone, per trial (no training, no MLflow)",
         number(result["tune_floor_per_trial_ms"], 1, " ms"))])


def _scale_rows(result: Result) -> list[tuple[str, str]]:
    def verdict(name: str) -> str:
        return (f"{'meets' if result[f'{name}_meets_target'] else 'misses'} "
                f"<= {result['ratio_targets'][name]:g}x, <= {result['peak_mb_target']:,.0f} MB")

    created = (number(result["store_seconds"], 0, " s") + f" ({result['metric_points']:,} "
               f"metric points, --writer {result['store_writer']})" if result["store_created"]
               else "reused (--keep)")
    rows = [(f"scale: {result['trials']:,} trials x {result['epochs']} epochs, "
             f"{result['store']} store", ""),
            ("writing the store (not timed below)", created),
            ("floor: MLflow search_runs, paginated",
             number(result["floor_seconds"], 1, " s") + ", "
             + number(result["floor_peak_mb"], 0, " MB"))]
    for name in ("status", "report"):
        rows.append((f"sweeper {name}",
                     number(result[f"{name}_seconds"], 1, " s") + " ("
                     + number(result[f"{name}_ratio"], 1, "x") + " floor), "
                     + number(result[f"{name}_peak_mb"], 0, " MB") + ": " + verdict(name)))
    rows.append(("resume: re-attach every trial to its run",
                 f"{result['reattached']:,} of {result['trials']:,} in "
                 + number(result["reattach_seconds"], 1, " s") + ", "
                 + number(result["reattach_peak_mb"], 0, " MB")))
    return rows


def _handover_rows(result: Result) -> list[tuple[str, str]]:
    return [
        (f"handover: median of {result['calls']:,} empty calls to a Ray actor", ""),
        ("the actor idle", number(result["idle_ms"], 2, " ms")),
        (f"a busy thread beside, switch interval {result['default_interval_ms']:g} ms "
         "(Python's default)", number(result["busy_default_ms"], 2, " ms")),
        (f"a busy thread beside, switch interval {result['quick_interval_ms']:g} ms "
         "(sweeper's)", number(result["busy_quick_ms"], 2, " ms")),
    ]


_ROWS = {"augment": _augment_rows, "step": _step_rows, "sweep": _sweep_rows,
         "scale": _scale_rows, "handover": _handover_rows}
