# imgclf: `make help` lists every target. Everything runs inside .venv, created on first use.
SHELL := /bin/bash
# The package needs Python 3.11 (tensorflow/kfp pins): prefer python3.11, else python3 if it is 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR := /usr/share/datasets/fashion-mnist
DATA_PKG := dataset-fashion-mnist
EXTRAS := tf-cpu,serve,dev,jax

.DEFAULT_GOAL := help
.PHONY: help venv data run-local compile test clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install the pinned package set (constraints.txt)
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "error: need Python 3.11 for .venv ($(PYTHON) is $$($(PYTHON) -V 2>&1)); install python3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

data: ## make sure Fashion-MNIST (Debian package dataset-fashion-mnist) is installed
	@if [ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ]; then exit 0; fi; \
	echo "Fashion-MNIST not found in $(DATA_DIR): installing Debian package $(DATA_PKG)"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null; then \
	  echo "error: cannot install $(DATA_PKG): need apt-get and root (run: sudo apt-get install $(DATA_PKG))" >&2; exit 1; fi; \
	($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DATA_PKG) >/dev/null) \
	  || { echo "error: apt-get install $(DATA_PKG) failed; install it by hand or pass a data URI holding MNIST IDX files" >&2; exit 1; }; \
	test -f $(DATA_DIR)/train-images-idx3-ubyte.gz || { echo "error: $(DATA_PKG) installed but $(DATA_DIR) has no IDX files" >&2; exit 1; }

run-local: venv data ## run the whole pipeline locally (kfp local runner) on Fashion-MNIST
	$(BIN)/python -m pipelines.local_runner $(ARGS)

compile: venv ## compile the pipeline YAMLs under pipelines/ (deterministic)
	$(BIN)/python -m pipelines.compile

test: venv data ## run the test suite
	$(BIN)/python -m pytest -q tests $(ARGS)

clean: ## remove local pipeline run outputs (keeps .venv and the pushed models in runs/serving)
	rm -rf runs/local_outputs runs/tune

# --- Serving (manifests, local TF-Serving-compatible server, TFLite, benchmark) ---
.PHONY: manifests check-manifests serve predict export-tflite bench bench-serve report-screenshots
KUBECTL_PKG := kubernetes-client
PUSH_BASE ?= runs/serving
SERVE_PORT ?= 8501

manifests: venv ## regenerate manifests/ from settings.py and render overlays (kubectl kustomize; installs kubernetes-client if missing)
	@if [ -z "$$KUSTOMIZE" ] && ! command -v kubectl >/dev/null; then \
	  echo "kubectl not found: installing Debian package $(KUBECTL_PKG) (kubectl + kustomize)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(KUBECTL_PKG) >/dev/null) \
	    || { echo "error: install kubectl (apt-get install $(KUBECTL_PKG)) or set KUSTOMIZE='kustomize build'" >&2; exit 1; }; fi
	$(BIN)/python -m imgclf.deploy.manifests

check-manifests: venv ## validate rendered manifests offline (strict k8s schemas, KServe CRD, PSS restricted) and freshness
	$(BIN)/python -m imgclf.deploy.manifest_checks

serve: venv ## serve the latest pushed model (PUSH_BASE=runs/serving) on the TF Serving REST API at SERVE_PORT
	$(BIN)/python -m imgclf.serving.server --push-base $(PUSH_BASE) --port $(SERVE_PORT) $(ARGS)

predict: venv data ## send one Fashion-MNIST test image to `make serve` and print the class name (INDEX=0)
	$(BIN)/python -m imgclf.serving.client --url http://localhost:$(SERVE_PORT) --index $${INDEX:-0} $(ARGS)

export-tflite: venv ## export MODEL=<model dir> to TFLite (dynamic range + int8) using DATASET=<dataset dir>
	$(BIN)/python -m imgclf.steps.export_tflite --model $(MODEL) --dataset $(DATASET) --output $${OUTPUT:-$(MODEL)/tflite}

report-screenshots: venv data ## regenerate bench/screenshots/*.png: each report on Fashion-MNIST, shot in headless chromium
	$(BIN)/python bench/report_screenshots.py $(ARGS)

bench: venv data ## every speed ratio of the README's "Speed" section in one run -> bench/results.json (ARGS=--quick: ~2 min)
	$(BIN)/python bench/bench.py $(ARGS)

bench-serve: venv ## benchmark `make serve` vs the in-process SavedModel (latency p50/p99, batch-64 images/s)
	$(BIN)/python bench/serve_bench.py --push-base $(PUSH_BASE) $(ARGS)

# --- On a cluster: images, offline spec check, submit (README "On a cluster") ---
.PHONY: images push-images check-spec submit podman-setup run-containers test-images
images: venv ## build the CPU and GPU images with docker/podman, offline pip from wheels/; no registry: base from apt (ARGS="--variant cpu")
	$(BIN)/python -m imgclf.deploy.images build $(ARGS)

podman-setup: venv ## install podman, runc, debootstrap (Debian) and the containers.conf drop-in only if this host needs it
	$(BIN)/python -m imgclf.deploy.podman_setup

run-containers: venv ## run the pipeline with every step in the built CPU image: no network, read-only root, tmpfs /tmp, uid 1000
	$(BIN)/python -m pipelines.container_runner $(ARGS)

test-images: venv podman-setup ## CI: build base + CPU image from nothing, run every CLI --help and the whole DAG in it (restricted)
	@start=$$(date +%s); rm -f runs/image_facts.json; \
	$(BIN)/python -m imgclf.deploy.images build --variant cpu --fresh && \
	IMGCLF_IMAGE_TESTS=1 $(BIN)/python -m pytest -q -s tests/deploy/test_images_live.py $(ARGS); rc=$$?; \
	echo "make test-images: $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

push-images: venv ## push the CPU and GPU images (fails in one line when no docker/podman engine answers)
	$(BIN)/python -m imgclf.deploy.images push $(ARGS)

check-spec: venv ## validate the compiled pipeline YAMLs offline against kfp's protobuf schemas
	$(BIN)/python -m imgclf.kfp_client.spec_check pipelines/training_pipeline.yaml pipelines/training_pipeline_gpu.yaml

submit: venv ## upload the compiled pipeline (a new version if it exists) and start a run: ARGS="--host URL [--gpu] [--wait]"
	$(BIN)/python -m imgclf.kfp_client.submit $(ARGS)

# --- Hyperparameter tuning (one search space: src/imgclf/model/search_space.yaml) ---
.PHONY: katib check-katib tune
TUNE_DATASET ?= runs/tune/dataset
TUNE_OUTPUT ?= runs/tune/search
katib: venv ## regenerate katib/experiment.yaml and katib/experiment-gpu.yaml from the search space
	$(BIN)/imgclf-katib $(ARGS)

check-katib: venv ## fail if the committed Katib YAML is stale
	$(BIN)/imgclf-katib --check

tune: venv data ## KerasTuner search on Fashion-MNIST (re-run to resume); ARGS="--max-trials 3 --epochs 1"
	@test -f $(TUNE_DATASET)/metadata.json || $(BIN)/imgclf-ingest --output $(TUNE_DATASET)
	$(BIN)/imgclf-tune --dataset $(TUNE_DATASET) --output $(TUNE_OUTPUT) $(ARGS)

# --- Cluster readiness: backend compatibility, serving runtime parity, doctor (README "On a cluster") ---
.PHONY: runtime-parity doctor
doctor: venv ## check a cluster before a run, one line per check with its fix: ARGS="--host URL --namespace NS --push-base URI"
	$(BIN)/python -m imgclf.kfp_client.doctor $(ARGS)

runtime-parity: venv data ## load our SavedModel with the serving image's TensorFlow (throwaway venv from PyPI) and compare predictions
	$(BIN)/python -m tests.runtime_parity $(ARGS)
