"""``vision_msgs/LabelInfo``: the class map of the detections, published once, latched.

vision_msgs (4.x) asks detectors to publish their class map as a ``LabelInfo`` on a topic
named ``label_info`` beside the detections, transient-local so a consumer that joins later
still gets the last one, and ``Detection2D`` results then carry the class id alone. The
class names come from :func:`~yolov8_trt_ros.core.labels.resolve_class_names` (labels file
or model).
"""

from __future__ import annotations

from collections.abc import Sequence

from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import LabelInfo, VisionClass

from yolov8_trt_ros.core.config import ConfigError

#: Relative: it belongs beside the node's ``detections`` (vision_msgs' convention).
LABEL_INFO_TOPIC = "label_info"
#: Transient local, reliable, keep last 1: a late subscriber gets the current class map.
#: (A subscriber must ask for transient local as well to receive it on joining.)
LABEL_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
_MAX_CLASS_ID = 65535  # VisionClass.class_id is uint16


def label_info_msg(
    class_names: Sequence[str], threshold: float, frame_id: str = "", stamp: Time | None = None
) -> LabelInfo:
    """The ``LabelInfo`` for ``class_names`` (index = class id) and the score ``threshold`` in use.

    ``threshold`` is the global ``conf_threshold`` (per-class thresholds have no field here).
    """
    if len(class_names) - 1 > _MAX_CLASS_ID:
        raise ConfigError(f"{len(class_names)} classes: LabelInfo class ids are uint16 (at most 65536)")
    msg = LabelInfo(
        class_map=[VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)],
        threshold=float(threshold),
    )
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg
