"""Configure loads its engine off the executor: the node answers while it configures.

Regression test: configure ran the engine load (a TensorRT build takes minutes on a Jetson)
and the warm-up inside the change_state callback of the node's single-threaded executor, so
``get_state`` and the parameter services were not answered until it ended. Here a real, slow
configure (six cameras warmed up at every batch size 1..6 on ONNX Runtime, seconds on two
cores) runs while a probe asks for the state and sets a parameter.
"""

from __future__ import annotations

import time

import pytest

from _ros import node_and_probe, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = [f"cam{i}/image" for i in range(6)]


def test_state_and_parameters_answer_while_configure_loads(rclpy_session, detector_model, tmp_path):
    params = {
        "backend": "onnxruntime",
        "model_path": str(detector_model),
        "autostart": False,
        "debug_image": False,
        "image_topics": CAMERAS,
        "batch_size": len(CAMERAS),
    }
    with node_and_probe("slow_configure", params, tmp_path) as (proc, probe):
        assert probe.state() == "unconfigured"
        start = time.monotonic()
        configure = probe.transition_async("configure")
        states: list[tuple[float, str, bool]] = []  # (time, state, configure finished when it came)
        refusals: list[str] = []
        while not configure.done() and time.monotonic() - start < 120:
            states.append((time.monotonic() - start, probe.state(), configure.done()))
            time.sleep(0.05)
            if states[-1][1] == "configuring" and not refusals:
                (result,) = probe.set_params(conf_threshold=0.3)
                assert not result.successful
                refusals.append(result.reason)
        assert spin_until(probe.executor, configure.done, 5)
        took = time.monotonic() - start
        during = [t for t, _, finished in states if not finished]
        gaps = [b - a for a, b in zip([0.0, *during], during, strict=False)]
        longest = max(gaps, default=0.0)
        print(
            f"configure took {took:.1f} s; {len(during)} state answers meanwhile, longest gap {longest:.2f} s"
        )
        assert configure.result().success, proc.log()[-2000:]
        answered_during = [s for _, s, finished in states if not finished]
        assert "configuring" in answered_during, f"get_state only answered after configure ({took:.1f} s)"
        assert "configuring" in refusals[0]
        assert probe.state() == "inactive"
        # The loaded engine serves: activate, and a parameter set now applies.
        assert probe.transition("activate")
        assert all(r.successful for r in probe.set_params(conf_threshold=0.3))
        assert proc.log().count("configured: backend=onnxruntime") == 1
