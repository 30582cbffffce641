"""How a TensorRT build is told its precision: which ONNX, strongly or weakly typed, which flags.

TensorRT 11 (JetPack 7.2+) removed weak typing: ``BuilderFlag.FP16`` / ``INT8``, the INT8
calibrators and ``platform_has_fast_fp16`` / ``int8`` are gone, and every network is strongly
typed, its precision read from the ONNX itself (FP16 tensors, Q/DQ nodes for INT8). TensorRT 10
(JetPack 6: 10.3) builds strongly typed networks on request (``STRONGLY_TYPED``) and deprecated
weak typing in 10.12; TensorRT 8.6 (JetPack 5) only knows weak typing. Sources:
NVIDIA's "Migrating from TensorRT 10.x to 11.x" (Python API removals) and the 10.x release
notes; ``docs/backends.md`` has the table.

One build path for TensorRT >= 10, strongly typed, so that JetPack 6 builds what JetPack 7
will; weak typing (FP16/INT8 flags, ``IInt8EntropyCalibrator2``) only for TensorRT 8.x. The
choice is a pure function of the TensorRT version, the requested precision and the ONNX files
at hand (the model and its ``x.fp16.onnx`` / ``x.int8.onnx`` siblings), so it is tested without
TensorRT. Where the file that would carry the precision is missing, the build falls back
(INT8 → FP16 → FP32) and ``note`` says which command makes the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: First TensorRT built strongly typed here (``STRONGLY_TYPED``: on request in 10.x, implied in
#: 11.x, which has no weak typing left). Weak typing stays for 8.x (JetPack 5) only.
STRONG_MIN_VERSION = (10,)
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
    a sibling is passed only where its file exists (the build makes the FP16 one itself where
    it can, ``core/fp16_onnx.cached_fp16``). TensorRT >= 10 is always strongly typed; weak
    typing (precision flags, implicit calibration) only for 8.x.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8, not {precision!r}")
    if version < STRONG_MIN_VERSION:  # TensorRT 8.x (JetPack 5): weak typing, as it always built
        return _weak(precision, model, int8_sibling)
    if precision == "int8":
        qdq = model if model.qdq else int8_sibling
        if qdq is not None:
            note = (
                ""
                if qdq.fp16
                else f"{qdq.path.name} keeps FP32 outside its Q/DQ nodes: strongly typed, those "
                f"layers run FP32 (for FP16 there: {INT8_COMMAND} with ModelOpt)"
            )
            return NetworkTyping(qdq, "int8", strongly_typed=True, note=note)
        fallback = _fp16_or_fp32(model, fp16_sibling)
        return NetworkTyping(
            fallback.model,
            fallback.precision,
            strongly_typed=True,
            note=f"no Q/DQ model next to {model.path.name} and no implicit calibration on "
            f"TensorRT {_dotted(version)} (strong typing): building {fallback.precision.upper()}; "
            f"run {INT8_COMMAND} for INT8",
        )
    if precision == "fp16":
        return _fp16_or_fp32(model, fp16_sibling)
    return NetworkTyping(model, "fp32", strongly_typed=True)


def _fp16_or_fp32(model: OnnxFile, fp16_sibling: OnnxFile | None) -> NetworkTyping:
    """FP16 from the file that carries it; else FP32, said with the command that makes the file."""
    carrier = model if model.fp16 else fp16_sibling
    if carrier is not None:
        return NetworkTyping(carrier, "fp16", strongly_typed=True)
    return NetworkTyping(
        model,
        "fp32",
        strongly_typed=True,
        note=f"no FP16 ONNX for {model.path.name} (strong typing has no FP16 flag): building "
        f"FP32; run {FP16_COMMAND}",
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
