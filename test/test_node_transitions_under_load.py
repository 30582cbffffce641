"""Lifecycle transitions while frames arrive: the node must never die of them.

Regression test for a crash: cycling deactivate/activate at 200 Hz input killed the process
within 5-33 cycles (rclpy's ``InvalidHandle: cannot use Destroyable because destruction was
requested``), because the multi-threaded executor destroyed the subscription on a pool thread
while its main thread built a wait set. Bounded in time; the cycle count reached is reported.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from _ros import image_msg, node_and_probe

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CYCLES = 2000
BUDGET_S = 90.0
MIN_CYCLES = 300  # the old node died within 33


def test_deactivate_activate_cycles_under_200hz_input(rclpy_session, detector_model, tmp_path):
    params = {
        "backend": "onnxruntime",
        "model_path": str(detector_model),
        "autostart": True,
        "debug_image": False,
        "diagnostics_period": 0.05,  # timers created and destroyed with every cycle too
    }
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    with node_and_probe("cycle_detector", params, tmp_path, subscribed=True) as (proc, probe):
        stop = threading.Event()

        def camera() -> None:
            msg = image_msg(frame)
            while not stop.is_set():
                probe.image_pub.publish(msg)
                time.sleep(0.005)

        sender = threading.Thread(target=camera, daemon=True)
        sender.start()
        cycles = 0
        start = time.monotonic()
        try:
            while cycles < CYCLES and time.monotonic() - start < BUDGET_S and proc.alive():
                assert probe.transition("deactivate"), f"deactivate refused at cycle {cycles}"
                assert probe.transition("activate"), f"activate refused at cycle {cycles}"
                cycles += 1
        finally:
            stop.set()
            sender.join(2)
        print(f"{cycles} deactivate/activate cycles in {time.monotonic() - start:.1f} s under 200 Hz input")
        assert proc.alive(), f"node died after {cycles} cycles:\n{proc.log()[-3000:]}"
        assert cycles >= MIN_CYCLES
        assert probe.state() == "active"
        # Still answering frames after all that.
        assert probe.send_and_wait(image_msg(frame, stamp_sec=424242)) is not None
    code = proc.stop()
    log = proc.log()
    assert code == 0, f"exit code {code}:\n{log[-3000:]}"
    assert "Destroyable" not in log and "never retrieved" not in log, log[-3000:]
