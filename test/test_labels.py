"""Class names from a labels file (core/labels.py) and the LabelInfo class map (ros/labels.py)."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import numpy as np
import pytest

from _ros import spin_until
from yolov8_trt_ros.core.config import ConfigError
from yolov8_trt_ros.core.labels import MAX_LABELS_FILE_BYTES, read_labels_file, resolve_class_names

_names = count()


def _random_names(n: int) -> list[str]:
    rng = np.random.default_rng()
    words = {
        "".join(rng.choice(list("abcdefghij_ "), size=int(rng.integers(3, 12)))).strip() for _ in range(4 * n)
    }
    names = sorted(w for w in words if w and not w.isdigit())[:n]
    assert len(names) == n
    rng.shuffle(names)
    return names


@pytest.mark.parametrize(
    "suffix, render",
    [
        (".txt", lambda ns: "\n".join(ns) + "\n"),
        (".names", lambda ns: "\r\n".join(f"  {n}  " for n in ns) + "\r\n\r\n"),
        (".yaml", lambda ns: "".join(f"- '{n}'\n" for n in ns)),
        (".yml", lambda ns: "".join(f"{i}: '{n}'\n" for i, n in reversed(list(enumerate(ns))))),
        (".yaml", lambda ns: "path: data\nnames:\n" + "".join(f"  {i}: '{n}'\n" for i, n in enumerate(ns))),
        (".yaml", lambda ns: "nc: 3\nnames: [" + ", ".join(f"'{n}'" for n in ns) + "]\n"),
    ],
)
def test_labels_files_of_each_form_give_names_in_id_order(tmp_path, suffix, render):
    names = _random_names(int(np.random.default_rng().integers(2, 40)))
    path = tmp_path / f"labels{suffix}"
    path.write_text(render(names))
    assert read_labels_file(path) == tuple(names)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "cannot read it"),
        ("gap.txt", "circle\n\nsquare\n", "line 2 is empty"),
        ("dup.txt", "circle\nsquare\ncircle\n", "'circle' names both class 0 and class 2"),
        ("empty.txt", "\n\n", "no class names"),
        ("gap.yaml", "0: circle\n2: square\n", "missing [1]"),
        ("keys.yaml", "circle: 0\nsquare: 1\n", "keys must be class ids"),
        ("scalar.yaml", "circle\n", "not str"),
        ("broken.yaml", "names: [circle, square\n", "not valid YAML"),
        ("blank.yaml", "- circle\n- ''\n", "class ids [1] have empty names"),
        ("binary.txt", b"\xff\xfe\x00circle", "cannot read it"),
        ("huge.txt", "x\n" * (MAX_LABELS_FILE_BYTES // 2 + 1), "too large"),
    ],
)
def test_a_bad_labels_file_is_refused_with_a_clear_reason(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        read_labels_file(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_directory_is_not_a_labels_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        read_labels_file(tmp_path)


def test_labels_file_overrides_the_model_names_and_must_match_its_class_count(tmp_path):
    model = ("circle", "square", "triangle")
    path = tmp_path / "labels.txt"
    path.write_text("rond\ncarre\ntriangle\n")
    assert resolve_class_names(model, 3, str(path)) == ("rond", "carre", "triangle")
    assert resolve_class_names(model, 3) == model
    # Missing model names (no metadata) are filled with the id, never left short.
    assert resolve_class_names(("circle",), 3) == ("circle", "1", "2")
    assert resolve_class_names((), 2) == ("0", "1")
    with pytest.raises(ConfigError, match="3 names, but the model has 4 classes"):
        resolve_class_names((*model, "star"), 4, str(path))


@pytest.mark.ros
def test_labels_file_names_select_classes(tmp_path):
    """Parameters name classes by the served names: a labels file's, once it overrides the model's."""
    from yolov8_trt_ros.ros.parameters import build_configs

    path = tmp_path / "labels.yaml"
    path.write_text("names: {0: person, 1: car, 2: bicycle}\n")
    names = resolve_class_names(("circle", "square", "triangle"), 3, str(path))
    cfg = build_configs({"classes": ["car"], "class_thresholds": ["bicycle:0.7"]}, names)
    assert cfg.filters.classes == [1] and cfg.filters.class_thresholds == {2: 0.7}
    with pytest.raises(ConfigError, match="unknown class 'circle'"):
        build_configs({"classes": ["circle"]}, names)


@pytest.mark.ros
def test_label_info_message_holds_the_class_map():
    from yolov8_trt_ros.ros.labels import label_info_msg

    names = _random_names(12)
    threshold = float(np.random.default_rng().uniform(0, 1))
    msg = label_info_msg(names, threshold, frame_id="camera")
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(names))
    assert msg.threshold == pytest.approx(threshold, abs=1e-7)  # float32 field
    assert msg.header.frame_id == "camera"
    with pytest.raises(ConfigError, match="uint16"):
        label_info_msg([str(i) for i in range(65537)], 0.5)


@pytest.mark.ros
def test_label_info_reaches_a_subscriber_that_joins_later(rclpy_session):
    """Transient local: a consumer started after the detector still gets the class map."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import LabelInfo

    from yolov8_trt_ros.ros.labels import LABEL_INFO_QOS, LABEL_INFO_TOPIC, label_info_msg

    i = next(_names)
    detector = rclpy.create_node(f"labels_pub_{i}", namespace=f"/cam{i}")
    executor = SingleThreadedExecutor()
    executor.add_node(detector)
    consumer = None
    try:
        pub = detector.create_publisher(LabelInfo, LABEL_INFO_TOPIC, LABEL_INFO_QOS)
        assert pub.topic_name == f"/cam{i}/label_info"
        names = _random_names(5)
        pub.publish(label_info_msg(names, 0.25))
        executor.spin_once(timeout_sec=0.1)
        consumer = rclpy.create_node(f"labels_sub_{i}")
        executor.add_node(consumer)
        got: list[LabelInfo] = []
        consumer.create_subscription(LabelInfo, f"/cam{i}/label_info", got.append, LABEL_INFO_QOS)
        assert spin_until(executor, lambda: bool(got), timeout=20.0), "late subscriber got no LabelInfo"
        assert [c.class_name for c in got[0].class_map] == names and len(got) == 1
    finally:
        executor.shutdown()
        detector.destroy_node()
        if consumer is not None:
            consumer.destroy_node()


def test_labels_reader_is_ros_free():
    import subprocess
    import sys

    code = "import sys, yolov8_trt_ros.core.labels; print(any(m.startswith('rclpy') for m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
