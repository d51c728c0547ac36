"""make bench's CPU accounting: the server workers' and the client's CPU per request come from /proc (Linux)."""
import os
import sys
import time

import pytest

from bench.services import _children, _cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def test_children_finds_this_process_under_its_parent():
    assert os.getpid() in _children(os.getppid())
    assert _children(os.getpid()) == [] or all(isinstance(p, int) for p in _children(os.getpid()))


def test_cpu_seconds_grows_with_work_and_is_none_for_a_gone_process():
    before = _cpu_seconds([os.getpid()])
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    after = _cpu_seconds([os.getpid()])
    assert before is not None and after is not None and after > before
    assert _cpu_seconds([2 ** 22 + 12345]) is None
