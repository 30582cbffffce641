"""How a TensorRT build is told its precision: which ONNX, strongly or weakly typed, which flags.

TensorRT 11 (JetPack 7.2+) removed weak typing: ``BuilderFlag.FP16`` / ``INT8``, the INT8
calibrators and ``platform_has_fast_fp16`` / ``int8`` are gone, and every network is strongly
typed, its precision read from the ONNX itself (FP16 tensors, Q/DQ nodes for INT8). TensorRT 10
(JetPack 6: 10.3) builds strongly typed networks on request (``STRONGLY_TYPED``) and deprecated
weak typing in 10.12; TensorRT 8.6 (JetPack 5) only knows weak typing. Sources:
NVIDIA's "Migrating from TensorRT 10.x to 11.x" (Python API removals) and the 10.x release
notes; ``docs/backends.md`` has the table.

The choice is a pure function of the TensorRT version, the requested precision and the ONNX
files at hand (the model and its ``x.fp16.onnx`` / ``x.int8.onnx`` siblings), so it is tested
without TensorRT. Where the file that would carry the precision is missing, the build falls
back to what the version still allows and ``note`` says which command makes the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: First TensorRT whose networks can be strongly typed on request (``STRONGLY_TYPED``).
STRONG_MIN_VERSION = (10,)
#: First TensorRT without weak typing (no precision flags, no calibrators).
WEAK_REMOVED_VERSION = (11,)
FP16_COMMAND = "scripts/convert_fp16.py"
INT8_COMMAND = "scripts/quantize_int8.py"


@dataclass(frozen=True)
class OnnxFile:
    """What a candidate ONNX carries: Q/DQ nodes (INT8) and FP16 tensors."""

    path: Path
    qdq: bool = False
    fp16: bool = False


@dataclass(frozen=True)
class NetworkTyping:
    """The build's typing decision (``BuildPlan`` applies it, the engine cache keys on it)."""

    model: OnnxFile
    #: The precision the engine runs: ``fp32``, ``fp16`` or ``int8``.
    precision: str
    strongly_typed: bool
    fp16_flag: bool = False
    int8_flag: bool = False
    #: INT8 by ``IInt8EntropyCalibrator2`` over calibration images (weak typing only).
    implicit_calibration: bool = False
    #: One line for the log when the build is not what was asked for, else empty.
    note: str = ""

    @property
    def typing(self) -> str:
        return "strong" if self.strongly_typed else "weak"


def plan_typing(
    version: tuple[int, ...],
    precision: str,
    model: OnnxFile,
    fp16_sibling: OnnxFile | None = None,
    int8_sibling: OnnxFile | None = None,
) -> NetworkTyping:
    """Which file and which typing builds ``precision`` on TensorRT ``version``.

    ``precision`` is what is asked after the platform checks (``fp32``, ``fp16``, ``int8``);
    a sibling is passed only where its file exists.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8, not {precision!r}")
    strong_ok = version >= STRONG_MIN_VERSION
    weak_ok = version < WEAK_REMOVED_VERSION
    if not strong_ok:  # TensorRT 8.x: weak typing, as it always built
        return _weak(precision, model, int8_sibling)
    if precision == "int8":
        qdq = model if model.qdq else int8_sibling
        if qdq is not None and (qdq.fp16 or not weak_ok):
            note = (
                ""
                if qdq.fp16
                else f"{qdq.path.name} keeps FP32 outside its Q/DQ nodes: strongly typed, those "
                "layers run FP32 (quantize with the float part in FP16 for speed)"
            )
            return NetworkTyping(qdq, "int8", strongly_typed=True, note=note)
        if qdq is not None:  # TensorRT 10: Q/DQ with FP16 kernels allowed elsewhere, as before
            return NetworkTyping(
                qdq,
                "int8",
                strongly_typed=False,
                fp16_flag=True,
                int8_flag=True,
                note=f"{qdq.path.name} has FP32 outside its Q/DQ nodes: weakly typed build "
                "(deprecated since TensorRT 10.12, gone in 11)",
            )
        if weak_ok:
            return NetworkTyping(
                model,
                "int8",
                strongly_typed=False,
                fp16_flag=True,
                int8_flag=True,
                implicit_calibration=True,
                note=f"implicit INT8 calibration is deprecated since TensorRT 10.1; run "
                f"{INT8_COMMAND} for explicit (Q/DQ) INT8",
            )
        fallback = _fp16_or_fp32(model, fp16_sibling, weak_ok)
        return NetworkTyping(
            fallback.model,
            fallback.precision,
            fallback.strongly_typed,
            fallback.fp16_flag,
            note=f"TensorRT {_dotted(version)} has no INT8 calibration and {model.path.name} no "
            f"Q/DQ model: building {fallback.precision.upper()}; run {INT8_COMMAND} for INT8",
        )
    if precision == "fp16":
        return _fp16_or_fp32(model, fp16_sibling, weak_ok)
    return NetworkTyping(model, "fp32", strongly_typed=True)


def _fp16_or_fp32(model: OnnxFile, fp16_sibling: OnnxFile | None, weak_ok: bool) -> NetworkTyping:
    """FP16 from the file that carries it; else the FP16 flag where it exists; else FP32."""
    carrier = model if model.fp16 else fp16_sibling
    if carrier is not None:
        return NetworkTyping(carrier, "fp16", strongly_typed=True)
    if weak_ok:
        return NetworkTyping(
            model,
            "fp16",
            strongly_typed=False,
            fp16_flag=True,
            note=f"no FP16 ONNX next to {model.path.name}: weakly typed FP16 build (gone in "
            f"TensorRT 11); run {FP16_COMMAND}",
        )
    return NetworkTyping(
        model,
        "fp32",
        strongly_typed=True,
        note=f"no FP16 ONNX next to {model.path.name} and no FP16 flag in TensorRT 11: "
        f"building FP32; run {FP16_COMMAND}",
    )


def _weak(precision: str, model: OnnxFile, int8_sibling: OnnxFile | None) -> NetworkTyping:
    if precision == "int8":
        qdq = model if model.qdq else int8_sibling
        return NetworkTyping(
            qdq or model,
            "int8",
            strongly_typed=False,
            fp16_flag=True,
            int8_flag=True,
            implicit_calibration=qdq is None,
        )
    return NetworkTyping(model, precision, strongly_typed=False, fp16_flag=precision == "fp16")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)
