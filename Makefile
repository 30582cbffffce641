# The two commands of the README. Both set up first (quick when nothing changed).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PARAMS ?= config/demo.yaml
RECORD ?= out/demo.mp4

.PHONY: help setup setup-dev demo test lint

help:
	@echo "make demo   set up if needed, run camera source + detector (ONNX Runtime CPU), write $(RECORD)"
	@echo "make test   set up if needed, run lint, type checks and the tests"

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

demo: setup
	@source scripts/env.sh && python -m yolov8_trt_ros.ros.bringup --params $(PARAMS) --record $(RECORD) --report $(RECORD:.mp4=_timings.md)

test: setup-dev
	@source scripts/env.sh && bash scripts/run_tests.sh

lint:
	@source scripts/env.sh && ruff check . && ruff format --check .
