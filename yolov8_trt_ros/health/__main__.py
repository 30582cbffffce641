"""``python -m yolov8_trt_ros.health [--node NAME]``: exit 0 healthy, 1 not, one line on stdout.

For Docker's HEALTHCHECK, systemd's ``ExecStartPost``/timers and fleet monitors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rclpy
from rclpy.signals import SignalHandlerOptions

from yolov8_trt_ros.health.check import Options, check


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m yolov8_trt_ros.health", description=__doc__)
    p.add_argument("--node", default="yolov8_trt_node", help="the detector's node name (with namespace)")
    p.add_argument("--topic", action="append", default=[], help="diagnostics topic (repeatable)")
    p.add_argument("--window", type=float, default=3.0, help="seconds of diagnostics to judge")
    p.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds")
    p.add_argument("--jetson-root", type=Path, default=Path("/"), help="filesystem root for the sysfs reads")
    p.add_argument("--no-jetson", action="store_true", help="skip the Jetson sysfs checks")
    p.add_argument("--max-temp", type=float, default=90.0, help="fail at or above this temperature (C)")
    p.add_argument("--fail-on-throttle", action="store_true", help="fail while a throttle device is active")
    args = p.parse_args(argv)
    opts = Options(
        node=args.node,
        topics=args.topic,
        window_s=args.window,
        timeout_s=max(args.timeout, args.window + 1.0),
        jetson_root=None if args.no_jetson else args.jetson_root,
        max_temp_c=args.max_temp,
        fail_on_throttle=args.fail_on_throttle,
    )
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        ok, reason = check(opts)
    except Exception as exc:  # the one line must always come, whatever broke
        ok, reason = False, f"health check failed: {type(exc).__name__}: {exc}"
    finally:
        rclpy.try_shutdown()
    print(reason, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
