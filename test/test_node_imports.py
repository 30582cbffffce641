"""The node runs without the tools only installing needs.

Regression: the node imported the bundle installer for its rollback, and with it
``cryptography``; on a machine without that package (the GPU machine's image) the node process
died at import and answered nothing.
"""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'cryptography'}:
            raise ImportError('blocked for the test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import yolov8_trt_ros.ros.detector_node
print('ok')
"""


def test_detector_node_imports_without_cryptography():
    out = subprocess.run([sys.executable, "-c", BLOCK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
