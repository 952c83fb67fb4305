#!/usr/bin/env bash
# GPU check: training-step and augmentation throughput of a CIFAR ResNet-18 (width 64) on
# CIFAR-sized 32x32 images (the built-in synthetic set: the machine needs no download),
# SimCLR and BYOL at batch 512 and 1024, then both compiled (train.compile) at the first
# batch size, printed as one table, a row as each figure comes in, so a timeout still
# leaves the rows done so far.
#
#   benchmarks/gpu_check.sh                  # ~6 minutes on an H100/H200; never over 8
#
# Needs only the project installed (.venv/bin/python, else `python` with it importable)
# and nvidia-smi. Knobs for a smoke test elsewhere, e.g. on a CPU:
#   DEVICE=cpu WIDTH=4 BATCHES="8 16" STEPS=1 WARMUP=0 AUG_SECONDS=0.2 benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python}; fi
DEVICE=${DEVICE:-cuda}
WIDTH=${WIDTH:-64}
BATCHES=${BATCHES:-512 1024}
STEPS=${STEPS:-30}           # timed steps per run, after WARMUP untimed ones
WARMUP=${WARMUP:-5}
AUG_SECONDS=${AUG_SECONDS:-3}
RUN_LIMIT=${RUN_LIMIT:-70}   # seconds per measurement (process start included)
COMPILE_LIMIT=${COMPILE_LIMIT:-150}  # the same for a compiled step (compiling included)
COMPILE=${COMPILE:-1}        # 0: skip the compiled rows
END=${END:-470}              # no run may end after this: the whole stays under 8 minutes
LOG=$(mktemp -t gpu_check.XXXXXX)
ROW=$(mktemp -t gpu_check_row.XXXXXX)

# Formats one table row from a `sweeper bench ... --json` line on stdin.
cat >"$ROW" <<'PY'
import json
import sys

r = json.loads(sys.stdin.read())
if r["benchmark"] == "step":
    target = {"simclr": 1.5, "byol": 2.0}[r["method"]]  # H200 targets, docs/benchmarks.md
    frac = r["fraction_of_peak"]
    verdict = "ok" if r["epoch_seconds_50k"] <= target else "MISS"
    print(f"{'step':<8} {r['method']:<7} {r['batch_size']:>6} {r['images_per_sec']:>12,.0f} "
          f"{r['epoch_seconds_50k']:>9.2f}s {r['achieved_tflops']:>9.1f} "
          f"{f'{100 * frac:.1f}' if frac is not None else '-':>7}  "
          f"target <= {target} s: {verdict}; {r['precision']}"
          f"{', compiled (' + format(r['warmup_seconds'], '.0f') + ' s warm-up)' if r['compile'] else ''}, "
          f"{r['flops_per_image'] / 1e9:.2f} GFLOP/img")
else:
    print(f"{'augment':<8} {'-':<7} {r['batch_size']:>6} {r['images_per_sec']:>12,.0f} "
          f"{'-':>10} {'-':>9} {'-':>7}  {r['ratio']:,.0f}x torchvision per image "
          f"({r['baseline_images_per_sec']:,.0f}/s, {r['baseline_threads']} thread)")
PY

nvidia-smi --query-gpu=name,memory.total --format=csv || echo "(nvidia-smi not available)"
"$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuda available: {torch.cuda.is_available()}")'
echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ); stderr of each run in $LOG"
echo
printf '%-8s %-7s %6s %12s %10s %9s %7s  %s\n' \
    bench method batch images/s epoch_50k TFLOP/s %peak note
printf '%s\n' "--------------------------------------------------------------------------------"

# One measurement: run `sweeper bench ... --json` for at most LIMIT seconds (default
# RUN_LIMIT) and print its row from the JSON line.
measure() {
    local limit=${LIMIT:-$RUN_LIMIT}
    if [ $((SECONDS + limit)) -gt "$END" ]; then
        printf '%-8s %-7s %6s  skipped: it could end after %s s\n' "$1" "$2" "$3" "$END"
        return
    fi
    local kind=$1 method=$2 batch=$3 out
    shift 3
    out=$(timeout "$limit" "$PY" -m sweeper.cli bench "$kind" --device "$DEVICE" \
          --batch-size "$batch" --json "$@" 2>>"$LOG")
    local rc=$?
    if [ $rc -ne 0 ]; then
        printf '%-8s %-7s %6s  failed (exit %s%s): %s\n' "$kind" "$method" "$batch" "$rc" \
            "$([ $rc -eq 124 ] && echo ", over ${limit} s")" \
            "$(tail -n 1 "$LOG" | cut -c1-100)"
        return
    fi
    printf '%s\n' "$out" | tail -n 1 | "$PY" "$ROW"
}

# The epoch targets first: they matter most if the budget runs out.
for batch in $BATCHES; do
    for method in simclr byol; do
        measure step "$method" "$batch" --method "$method" --width "$WIDTH" \
            --steps "$STEPS" --warmup "$WARMUP"
    done
done
for batch in $BATCHES; do
    measure augment - "$batch" --seconds "$AUG_SECONDS"
done
if [ "$COMPILE" != 0 ]; then
    for method in simclr byol; do
        LIMIT=$COMPILE_LIMIT measure step "$method" "${BATCHES%% *}" --method "$method" \
            --width "$WIDTH" --steps "$STEPS" --warmup "$WARMUP" --compile
    done
fi
echo
echo "done in ${SECONDS} s"
