"""The Ray Tune side of a sweep, in the driver process; the only package that imports
Ray (besides the job client, sweeper.cluster.submit), so that Ray's API churn stays here.

- sweep.py: one sweep from pre-flight to summary (`run_sweep`, `SweepOutcome`)
- ray_instance.py: which Ray it runs on, and whether a node can hold a trial
- tuner.py: the spec as a Tune experiment (search, scheduler, retries), or restored
- events.py: Tune's trial events -> MLflow writes and progress lines
- worker.py: what runs in a Ray worker
- baseline_hold.py: a trial's baseline rides with its first epoch's report when it is quick
- repeats.py, repeat_search.py: a proposal of a finished configuration is not trained
"""

from sweeper.driver.events import TrackingCallback, trial_name
from sweeper.driver.ray_instance import init_ray, shutdown_ray
from sweeper.driver.sweep import SweepOptions, SweepOutcome, run_sweep

# Part of the storage format: a stored sweep's tuner.pkl refers to its callback and its
# trial-name function by a path in this package (besides sweeper.driver.events), and
# --resume loads it only while these resolve.
_TrackingCallback = TrackingCallback
_trial_name = trial_name

__all__ = ["SweepOptions", "SweepOutcome", "init_ray", "run_sweep", "shutdown_ray"]
