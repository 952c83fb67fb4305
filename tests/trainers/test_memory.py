import resource
import subprocess
import sys
import textwrap

import pytest
import torch

from trainers.memory import retain_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_batches_come_back_without_page_faults() -> None:
    assert retain_freed_memory()
    assert retain_freed_memory()  # idempotent

    def batch() -> None:  # a float batch of 512 CIFAR views: 6 MiB, 1,536 pages
        torch.empty(512, 3, 32, 32).fill_(1.0)

    for _ in range(40):  # the heap grows until its freed pieces coalesce, then stays
        batch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        batch()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Handed back to the kernel, each batch would fault all its 1,536 pages in again.
    assert faults < 500


@pytest.mark.integration
def test_startup_objects_are_frozen_once_and_later_garbage_is_still_collected() -> None:
    script = textwrap.dedent("""
        import gc
        import weakref

        import torch  # noqa: F401  (what a worker holds from its start)
        from trainers.memory import freeze_startup_objects

        class Cycle:
            def __init__(self):
                self.me = self

        earlier = weakref.ref(Cycle())  # garbage before the freeze: collected, not kept
        assert freeze_startup_objects() is True
        assert earlier() is None
        frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen  # torch's
        assert freeze_startup_objects() is False
        assert gc.get_freeze_count() == frozen
        later = weakref.ref(Cycle())
        gc.collect()
        assert later() is None  # a trial's garbage is collected as before
        print("ok")
    """)
    assert_runs_fresh(script)


@pytest.mark.integration
def test_set_aside_survivors_keeps_the_living_out_of_full_collections() -> None:
    script = textwrap.dedent("""
        import gc
        import weakref

        from trainers.memory import set_aside_survivors

        class Cycle:
            def __init__(self):
                self.me = self

        held = [Cycle() for _ in range(5_000)]  # what a driver keeps of finished trials
        dropped = weakref.ref(Cycle())  # garbage made before: collected, not set aside
        before = gc.get_freeze_count()
        set_aside_survivors()
        assert dropped() is None
        assert gc.get_freeze_count() - before >= len(held)
        later = weakref.ref(Cycle())
        gc.collect()
        assert later() is None  # later garbage is collected as before
        assert all(isinstance(h, Cycle) for h in held)
        died = weakref.ref(held.pop())  # set aside, then garbage in a cycle
        set_aside_survivors()
        assert died() is not None  # out of the collector's sight...
        set_aside_survivors(walk_all=True)
        assert died() is None  # ...until everything is walked again
        assert gc.get_freeze_count() >= len(held)
        print("ok")
    """)
    assert_runs_fresh(script)


def assert_runs_fresh(script: str) -> None:
    """Run `script` in a fresh interpreter (freezing is process-wide and cannot be undone
    for a test); it prints "ok" once its own assertions pass."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
