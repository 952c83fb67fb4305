import resource
import sys

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
