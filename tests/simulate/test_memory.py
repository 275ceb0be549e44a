"""keep_freed_memory: a process-wide glibc setting, applied once, harmless elsewhere."""

import sys

from lensnet.simulate.memory import keep_freed_memory


def test_keep_freed_memory_sets_glibcs_top_pad_on_linux():
    assert keep_freed_memory() is sys.platform.startswith("linux")
    assert keep_freed_memory() is keep_freed_memory()  # cached: set once per process
