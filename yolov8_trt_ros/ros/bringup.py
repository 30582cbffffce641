"""Bring the package's nodes up in one process from the same YAML the launch files use.

``ros2 launch`` is not installable from PyPI, so this entry point does what
``launch/orin.launch.py`` does — camera source (optional), lifecycle detector configured and
activated, recorder of the annotated stream (optional) — under one single-threaded executor
(``ros/spin.py`` says why),
and prints per-stage timings and FPS. The YAML is a standard ROS 2 parameters file
(``/**/<node_name>: {ros__parameters: {...}}``), passed to rclpy as ``--params-file``.

    python -m yolov8_trt_ros.ros.bringup --params config/demo.yaml --record out/demo.mp4
    python -m yolov8_trt_ros.ros.bringup --params config/orin.yaml --no-camera \
        --ros-args -p conf_threshold:=0.4
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from yolov8_trt_ros.ros import signals, spin
from yolov8_trt_ros.ros.camera_source import CameraSourceNode
from yolov8_trt_ros.ros.detector_node import YoloDetectorNode
from yolov8_trt_ros.ros.video_recorder import VideoRecorderNode


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ros_args: list[str] = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, required=True, help="ROS 2 parameters YAML (as for ros2 launch)")
    ap.add_argument(
        "--camera",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the camera source node (default: if the YAML has a camera_source section)",
    )
    ap.add_argument("--record", type=Path, help="write the annotated stream to this video file")
    ap.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (0: when the camera source is done, or never without one)",
    )
    ap.add_argument("--report-every", type=float, default=5.0, help="seconds between progress lines")
    ap.add_argument("--report", type=Path, help="write the timing report (Markdown) here at the end")
    ap.add_argument(
        "--layer-profile",
        action="store_true",
        help="TensorRT only: per-layer times in the report (a diagnostic: CUDA graphs are off)",
    )
    return ap.parse_args(argv), ros_args


def _node_sections(path: Path) -> dict[str, dict]:
    """The file's sections by node name, as rcl matches them to this process's root-namespace nodes.

    ``yolov8_trt_node``, ``/yolov8_trt_node`` and ``/**/yolov8_trt_node`` (the form the config
    files use, so that a node started in a namespace still finds its section) all name
    ``yolov8_trt_node``; a section for every node (``/**``, ``/*``) is merged under each named one.
    """
    data = yaml.safe_load(path.read_text()) or {}
    named: dict[str, dict] = {}
    every: dict = {}
    for key, section in data.items():
        if not isinstance(section, dict):
            continue
        name = str(key).rstrip("/").rsplit("/", 1)[-1]
        if name in ("*", "**"):
            every.update(section.get("ros__parameters") or {})
        elif str(key).strip("/").count("/") == 0 or str(key).startswith("/**/"):
            named[name] = section
    return {
        name: {**section, "ros__parameters": {**every, **(section.get("ros__parameters") or {})}}
        for name, section in named.items()
    }


def _attach_layer_profiler(detector: YoloDetectorNode) -> None:
    backend = detector.pipeline.backend if detector.pipeline is not None else None
    if backend is None or not hasattr(backend, "enable_layer_profiling"):
        print("bringup: --layer-profile needs the TensorRT backend; ignored", file=sys.stderr)
        return
    from yolov8_trt_ros.core.profiling import LayerProfiler

    backend.enable_layer_profiling(LayerProfiler())


def main(argv: list[str] | None = None) -> int:
    args, ros_args = _parse(sys.argv[1:] if argv is None else argv)
    if not args.params.is_file():
        print(f"bringup: no such parameters file: {args.params}", file=sys.stderr)
        return 2
    sections = _node_sections(args.params)
    with_camera = args.camera if args.camera is not None else "camera_source" in sections
    stop = signals.init(["bringup", "--ros-args", "--params-file", str(args.params), *ros_args])
    detector = YoloDetectorNode()
    nodes: list = [detector]
    camera = recorder = None
    executor: SingleThreadedExecutor | None = None
    try:
        if not detector.get_parameter("autostart").value:
            if detector.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                print("bringup: the detector failed to configure (see the log above)", file=sys.stderr)
                return 1
            detector.trigger_activate()
        if args.layer_profile:
            _attach_layer_profiler(detector)
        if args.record:
            rate = float(sections.get("camera_source", {}).get("ros__parameters", {}).get("rate", 30.0))
            fps = rate if rate > 0 else 30.0  # rate 0: a live camera uncapped, its rate unknown here
            recorder = VideoRecorderNode(str(args.record), fps=fps)
            nodes.append(recorder)
        if with_camera:
            camera = CameraSourceNode()
            nodes.append(camera)
        executor = spin.make_executor(*nodes)
        spin.spin_until_stopped(executor, stop, _progress(detector, camera, recorder, args))
    finally:
        print(_final_report(detector, camera, recorder))
        if args.report:  # before shutdown, which resets the profiler
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(detector.timings_markdown())
            print(f"timing report: {args.report}")
        detector.on_shutdown(LifecycleState(state_id=0, label="shutdown"))
        if recorder is not None:
            recorder.close()
        if executor is not None:
            spin.shut_down(executor, *nodes)
        else:
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
    return 0


def _accounted(detector: YoloDetectorNode) -> int:
    c = detector.counters
    return c["processed"] + c["dropped"] + sum(v for k, v in c.items() if k.startswith("bad."))


def _progress(
    detector: YoloDetectorNode,
    camera: CameraSourceNode | None,
    recorder: VideoRecorderNode | None,
    args: argparse.Namespace,
) -> Callable[[], bool]:
    """The per-slice check of the spin loop: progress lines, and True once the run is over."""
    start = last_report = time.monotonic()
    done_at: float | None = None

    def tick() -> bool:
        nonlocal last_report, done_at
        now = time.monotonic()
        if args.duration and now - start >= args.duration:
            return True
        if now - last_report >= args.report_every:
            last_report = now
            c = detector.counters
            print(
                f"[{now - start:6.1f}s] fps={detector.profiler.fps():6.1f} processed={c['processed']} "
                f"dropped={c['dropped']} bad={_accounted(detector) - c['processed'] - c['dropped']}"
                + (f" sent={camera.sent}" if camera else ""),
                flush=True,
            )
        if camera is not None and camera.done:
            done_at = done_at or now
            settled = _accounted(detector) >= camera.sent
            if recorder is not None:
                # The last frames' debug images may still be drawn after they count as processed.
                settled = (
                    settled
                    and detector.debug_images_pending == 0
                    and recorder.frames >= detector.counters["debug_images"]
                )
            return settled or now - done_at > 5.0
        return False

    return tick


def _final_report(
    detector: YoloDetectorNode, camera: CameraSourceNode | None, recorder: VideoRecorderNode | None
) -> str:
    c = detector.counters
    lines = ["", "=== yolov8_trt_ros bring-up report ==="]
    info = detector.diagnostics_values()
    lines.append(
        f"engine: {info.get('engine.backend', '-')} on {info.get('engine.device', '-')} "
        f"({info.get('engine.precision', '-')}, input {info.get('engine.input', '-')})"
    )
    if camera is not None:
        lines.append(f"camera frames sent: {camera.sent}")
    lines.append(
        f"frames processed: {c['processed']}  dropped (stale): {c['dropped']}  "
        f"bad: {_accounted(detector) - c['processed'] - c['dropped']}"
    )
    lines.append(detector.profiler.report())
    if recorder is not None:
        lines.append(f"annotated video: {recorder.path} ({recorder.frames} frames)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
