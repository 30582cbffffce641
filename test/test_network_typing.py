"""network_typing.plan_typing: which ONNX and typing each TensorRT version builds (no TensorRT needed).

The rows are docs/backends.md's table: JetPack 5 (TensorRT 8.6) weakly typed, JetPack 6 (10.3)
and 7 (11.4) strongly typed, each with and without the FP16 / Q/DQ files next to the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from yolov8_trt_ros.core.backends.network_typing import (
    FP16_COMMAND,
    INT8_COMMAND,
    NetworkTyping,
    OnnxFile,
    plan_typing,
)

FP32 = OnnxFile(Path("m.onnx"))
FP16 = OnnxFile(Path("m.fp16.onnx"), fp16=True)
QDQ_FP32 = OnnxFile(Path("m.int8.onnx"), qdq=True)  # ONNX Runtime's quantizer: FP32 elsewhere
QDQ_FP16 = OnnxFile(Path("m.int8.onnx"), qdq=True, fp16=True)  # Q/DQ with FP16 elsewhere
TRT86, TRT103, TRT114 = (8, 6, 1), (10, 3, 0), (11, 4, 1)


def _shape(t: NetworkTyping) -> tuple[Path, str, str, bool, bool, bool]:
    return (t.model.path, t.precision, t.typing, t.fp16_flag, t.int8_flag, t.implicit_calibration)


@pytest.mark.parametrize(
    ("version", "precision", "fp16", "int8", "expected"),
    [
        # JetPack 5: weak typing only, as the backend always built
        (TRT86, "fp16", FP16, None, (FP32.path, "fp16", "weak", True, False, False)),
        (TRT86, "int8", None, QDQ_FP32, (QDQ_FP32.path, "int8", "weak", True, True, False)),
        (TRT86, "int8", None, None, (FP32.path, "int8", "weak", True, True, True)),
        (TRT86, "fp32", None, None, (FP32.path, "fp32", "weak", False, False, False)),
        # JetPack 6 and 7: strongly typed always, from the file that carries the precision
        (TRT103, "fp16", FP16, None, (FP16.path, "fp16", "strong", False, False, False)),
        (TRT103, "fp16", None, None, (FP32.path, "fp32", "strong", False, False, False)),
        (TRT103, "int8", FP16, QDQ_FP16, (QDQ_FP16.path, "int8", "strong", False, False, False)),
        (TRT103, "int8", None, QDQ_FP32, (QDQ_FP32.path, "int8", "strong", False, False, False)),
        (TRT103, "int8", FP16, None, (FP16.path, "fp16", "strong", False, False, False)),
        (TRT103, "fp32", FP16, QDQ_FP16, (FP32.path, "fp32", "strong", False, False, False)),
        (TRT114, "fp16", FP16, None, (FP16.path, "fp16", "strong", False, False, False)),
        (TRT114, "fp16", None, None, (FP32.path, "fp32", "strong", False, False, False)),
        (TRT114, "int8", None, QDQ_FP32, (QDQ_FP32.path, "int8", "strong", False, False, False)),
        (TRT114, "int8", FP16, None, (FP16.path, "fp16", "strong", False, False, False)),
        (TRT114, "int8", None, None, (FP32.path, "fp32", "strong", False, False, False)),
    ],
)
def test_plan(
    version: tuple[int, ...],
    precision: str,
    fp16: OnnxFile | None,
    int8: OnnxFile | None,
    expected: tuple,
) -> None:
    assert _shape(plan_typing(version, precision, FP32, fp16, int8)) == expected


def test_tensorrt_10_and_11_never_ask_for_a_weak_typing_api() -> None:
    """No FP16/INT8 flag and no calibrator from 10.0 on (gone in 11), whatever files exist."""
    for version in ((10, 0, 0), TRT103, (10, 14, 1), TRT114, (12, 0)):
        for precision in ("fp32", "fp16", "int8"):
            for fp16 in (None, FP16):
                for int8 in (None, QDQ_FP32, QDQ_FP16):
                    t = plan_typing(version, precision, FP32, fp16, int8)
                    assert t.strongly_typed
                    assert not (t.fp16_flag or t.int8_flag or t.implicit_calibration)


def test_a_model_that_carries_its_precision_is_built_as_it_is() -> None:
    assert plan_typing(TRT114, "fp16", FP16).model == FP16
    assert plan_typing(TRT103, "int8", QDQ_FP16).model == QDQ_FP16


def test_notes_name_the_command_that_makes_the_missing_file() -> None:
    assert FP16_COMMAND in plan_typing(TRT103, "fp16", FP32).note
    assert FP16_COMMAND in plan_typing(TRT114, "fp16", FP32).note
    assert INT8_COMMAND in plan_typing(TRT103, "int8", FP32).note
    assert INT8_COMMAND in plan_typing(TRT114, "int8", FP32).note
    assert INT8_COMMAND in plan_typing(TRT114, "int8", FP32, int8_sibling=QDQ_FP32).note  # FP32 elsewhere
    assert plan_typing(TRT103, "fp16", FP32, FP16).note == ""
    assert plan_typing(TRT103, "int8", FP32, FP16, QDQ_FP16).note == ""


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        plan_typing(TRT103, "bf16", FP32)
