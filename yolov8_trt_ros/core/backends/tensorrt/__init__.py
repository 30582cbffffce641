"""TensorRT: build (ONNX → engine with in-engine NMS) and run, through the official Python API.

One room per job: ``common.py`` (version, logger bridge, dtypes, CUDA errors), ``plugins.py``
(EfficientNMS_TRT), ``calibrator.py`` (implicit INT8), ``build.py`` (what to build, the build),
``runtime.py`` (:class:`TensorRTBackend`). ``backends/tensorrt_backend.py`` re-exports the
backend for the factory and the scripts. Importing this package needs no TensorRT; its rooms do.

Deliberately thin: everything that does not need TensorRT (cache keys and files, calibration
images and cache format, buffer sizes, CUDA array parsing, output mapping) lives in
``engine_cache.py``, ``calibration.py`` and ``io_plan.py`` and is tested without a GPU.

Build: parse the ONNX, append EfficientNMS_TRT (thresholds, max detections and class-agnostic
mode from :class:`PostprocessConfig`), one optimisation profile for batch 1..max_batch,
workspace limit, and the precision as ``network_typing.plan_typing`` decides for this TensorRT
(``docs/backends.md`` has the table):

* TensorRT >= 10: strongly typed, from the file that carries the precision: ``x.fp16.onnx``
  (``scripts/convert_fp16.py``, or converted by the build into the engine cache) for
  ``fp16``, a Q/DQ ``x.int8.onnx`` (``scripts/quantize_int8.py``) for ``int8``;
* TensorRT 8.x: weakly typed, FP16 and INT8 builder flags, FP16 input tensor (half the upload),
  and for ``int8`` without a Q/DQ file ``IInt8EntropyCalibrator2`` over ``calibration_dir``
  with the keyed calibration cache (``calibration.py``);
* no fast INT8 / FP16 on the platform → FP16 / FP32, said once in the log.

User plugin libraries (``plugin_libraries``) are loaded first (``plugins.load_plugin_libraries``).

Models with an ``embeddings`` output take ``INetworkDefinition.add_nms`` (INMSLayer, TensorRT
≥ 8.5) instead, because their kept detections' anchors are needed to gather the embeddings
(``plugins.append_inms``, ``docs/backends.md``). For the others,
EfficientNMS_TRT rather than ``add_nms``:
the plugin outputs exactly the padded per-image ``num_dets/boxes/scores/classes`` that
:class:`EngineOutput` holds and applies ``max_detections`` per image, while INMSLayer returns
ONNX-style ``(batch, class, box)`` index triples that would need gather and top-k layers
per image to get there. The plugin exists from TensorRT 8.0 through 11.x (deprecated since
10.12), and is looked up through the plugin registry (``get_creator`` on TensorRT ≥ 10,
``get_plugin_creator`` before); where it is missing, the same INMSLayer form without
embeddings builds the NMS, and the log says which one did.
It keeps at most 4096 candidates before NMS (``pre_nms_top_k`` is capped there) and
filters scores below ``conf_threshold``.

Run: deserialize, bind every I/O tensor by name (``set_tensor_address``), device buffers
allocated once at max batch, pinned host output buffers, one CUDA stream per engine
(``self.stream``, which the CUDA preprocessor also uses), ``execute_async_v3``, and
optionally one CUDA graph per batch size. CUDA is driven through cuda-python
(``cuda.bindings.runtime``), not PyCUDA: see ``docs/backends.md``.

Layer timing (opt-in, a diagnostic mode): :meth:`TensorRTBackend.enable_layer_profiling`
attaches a :class:`~yolov8_trt_ros.core.profiling.LayerProfiler` through TensorRT's
``IProfiler``; while attached, inference runs without the CUDA graphs (a replayed graph
records no layer events unless it was captured with the profiler) and each ``infer`` reports
its layer times after the output is on the host.
"""
