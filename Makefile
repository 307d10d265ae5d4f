# Two commands matter: `make demo` (the whole pipeline, locally) and `make test` (everything CI checks).
# Each builds the virtual environments it needs on first use (see docs/contracts.md).
SHELL := /bin/bash
PYTHON ?= python3.11
# The SageMaker PyTorch 2.6.0 images run Python 3.12 (container/requirements.txt); pyenv provides it.
PYTHON_CONTAINER ?= $(shell p=$$(pyenv prefix 3.12 2>/dev/null) && echo $$p/bin/python3.12 || command -v python3.12 || echo python3.12)
VENV := .venv
VENV_CONTAINER := .venv-container
VENV_TRAIN := .venv-training
VENV_SAM := .venv-sam
VENV_CHECKOV := .venv-checkov
VENV_DATA := .venv-data
VENV_SDK2 := .venv-sdk2
PY := $(VENV)/bin/python
PY_CONTAINER := $(VENV_CONTAINER)/bin/python
PY_TRAIN := $(VENV_TRAIN)/bin/python
PYTEST_ARGS ?=

.PHONY: help venvs training-wheels java real-data-deps aws-cli-v2 bench-rules demo notebook-kernel test test-fast test-fast-app \
	test-fast-training test-training test-app test-sdk lint typecheck template-check checkov sam-build bench clean

help:
	@echo "make demo    run the whole event-driven pipeline locally (no AWS, no Docker)"
	@echo "make test    lint, template checks, and every test suite"
	@echo "make test-fast  the tests not marked slow (no training, TorchServe, toolkit or demo)"
	@echo "make test-fast-app PYTEST_ARGS=--update-snapshots  rewrite the request snapshots (tests/fixtures/requests)"
	@echo "make bench   the benchmarks in bench/ (make bench-rules: the Debugger rules on real photos)"
	@echo "make clean   remove build outputs and local cloud state (keeps the venvs)"

# The repository's three projects, installed editable (each a .pth line naming its folder, see the
# pyproject.toml files): the root (localcloud, cli, tools), functions/ (pipeline) and training/ (dogclf,
# with the entry points as top-level modules, as the toolkit runs them). No module edits sys.path to
# find another. --no-deps: the requirements files pin every dependency.
EDITABLE_PROJECTS := . functions training
PYPROJECTS := $(addsuffix /pyproject.toml,$(EDITABLE_PROJECTS))
# An editable install writes each project's egg-info into its folder: one venv at a time under make -j
# (flock on this Makefile, which always exists).
ONE_EDITABLE_INSTALL_AT_A_TIME := flock $(CURDIR)/Makefile

$(VENV)/.stamp: requirements-dev.txt functions/requirements.txt $(PYPROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(ONE_EDITABLE_INSTALL_AT_A_TIME) $(PY) -m pip install -q --no-deps $(addprefix -e ,$(EDITABLE_PROJECTS))
	touch $@

# The base: what the SageMaker PyTorch training and inference images install (no smdebug).
$(VENV_CONTAINER)/.stamp: container/requirements.txt
	test -x $(PY_CONTAINER) || $(PYTHON_CONTAINER) -m venv $(VENV_CONTAINER)
	$(PY_CONTAINER) -m pip install -q -r container/requirements.txt
	touch $@

# tests/training's interpreter: an overlay over the base with the job's requirements plus pytest, and
# the three projects editable (never in .venv-container: it plays the image, which has none of them).
$(VENV_TRAIN)/.stamp: $(VENV_CONTAINER)/.stamp training/requirements.txt training/requirements-dev.txt \
		localcloud/environment/containerenv.py $(PYPROJECTS)
	$(ONE_EDITABLE_INSTALL_AT_A_TIME) $(PY_CONTAINER) -m localcloud.environment.containerenv build \
		training/requirements-dev.txt --dest $(VENV_TRAIN) $(addprefix --editable ,$(EDITABLE_PROJECTS))
	touch $@

# training/wheels/: one wheel per pin of training/requirements.txt, built for the training image
# (CPython 3.12, x86_64, glibc 2.35; sdists compiled here and checked by auditwheel). The profiled
# job's source dir ships them and installs them with --no-index (functions/pipeline/source_dir.py);
# the TrainingCodeLayer (ContentUri: training/) carries them to the Lambda, so `sam-build` needs them.
VENV_WHEELS := .venv-wheels
TRAINING_WHEELS := build/training-wheels.stamp
$(VENV_WHEELS)/.stamp: requirements-wheels.txt
	test -x $(VENV_WHEELS)/bin/python || $(PYTHON) -m venv $(VENV_WHEELS)
	$(VENV_WHEELS)/bin/python -m pip install -q -r requirements-wheels.txt
	touch $@

$(TRAINING_WHEELS): training/requirements.txt tools/training_wheels.py $(VENV)/.stamp \
		$(VENV_CONTAINER)/.stamp $(VENV_WHEELS)/.stamp
	$(PY) tools/training_wheels.py --python $(PY_CONTAINER) --auditwheel $(VENV_WHEELS)/bin/auditwheel
	mkdir -p build && touch $@

training-wheels: $(TRAINING_WHEELS)

# TorchServe (the inference image's model server) needs a Java runtime.
java:
	command -v java >/dev/null || (apt-get update && apt-get install -y --no-install-recommends default-jre-headless)

# `aws logs tail` exists only in the AWS CLI v2 (PyPI's awscli, in .venv-sdk2, is v1): Debian's
# awscli package is the v2 CLI (bookworm: 2.9.19), at /usr/bin/aws (installed as root, as `java` is).
# tests/sdk/test_aws_cli.py calls it by that path, so .venv-sdk2's v1 `aws` cannot shadow it.
aws-cli-v2:
	/usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2\.' || \
		(apt-get update && apt-get install -y --no-install-recommends awscli)

# Real photos for the Debugger rules' calibration (bench/bench_rule_calibration.py) and tests/training's
# real-data rule tests: Debian's Fashion-MNIST package (installed as root, as `java` is) ...
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
real-data-deps:
	test -f $(FASHION_MNIST) || (apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist)

# ... and scikit-learn's bundled digit scans, in tools/real_data.py's own environment (which imports
# dogclf.layout: the projects editable, as in .venv).
$(VENV_DATA)/.stamp: requirements-data.txt $(PYPROJECTS)
	test -x $(VENV_DATA)/bin/python || $(PYTHON) -m venv $(VENV_DATA)
	$(VENV_DATA)/bin/python -m pip install -q -r requirements-data.txt
	$(ONE_EDITABLE_INSTALL_AT_A_TIME) $(VENV_DATA)/bin/python -m pip install -q --no-deps \
		$(addprefix -e ,$(EDITABLE_PROJECTS))
	touch $@

$(VENV_SAM)/.stamp: requirements-sam.txt
	test -x $(VENV_SAM)/bin/python || $(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/python -m pip install -q -r requirements-sam.txt
	touch $@

# checkov's own environment: its dependency pins conflict with requirements-dev.txt's.
$(VENV_CHECKOV)/.stamp: requirements-checkov.txt
	test -x $(VENV_CHECKOV)/bin/python || $(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

# The SDK conformance suite's clients (tests/sdk): SageMaker Python SDK v2 and the AWS CLI, Python 3.12;
# the projects editable (the suite packs the training code with pipeline.source_dir).
$(VENV_SDK2)/.stamp: requirements-sdk2.txt $(PYPROJECTS)
	test -x $(VENV_SDK2)/bin/python || $(PYTHON_CONTAINER) -m venv $(VENV_SDK2)
	$(VENV_SDK2)/bin/python -m pip install -q -r requirements-sdk2.txt
	$(ONE_EDITABLE_INSTALL_AT_A_TIME) $(VENV_SDK2)/bin/python -m pip install -q --no-deps \
		$(addprefix -e ,$(EDITABLE_PROJECTS))
	touch $@

# notebooks/walkthrough.ipynb's kernel: .venv-sdk2's interpreter, registered for Jupyter under the name
# the notebook's metadata gives (tests/sdk/test_walkthrough_notebook.py runs it with the same name).
notebook-kernel: $(VENV_SDK2)/.stamp
	$(VENV_SDK2)/bin/python -m ipykernel install --user --name dogclf-sdk2 --display-name "Python 3 (.venv-sdk2)"

venvs: $(VENV)/.stamp $(VENV_CONTAINER)/.stamp $(VENV_TRAIN)/.stamp $(VENV_SAM)/.stamp $(VENV_CHECKOV)/.stamp \
		$(VENV_DATA)/.stamp $(VENV_SDK2)/.stamp $(TRAINING_WHEELS) java real-data-deps aws-cli-v2

# GNU make exits 2 for any failed recipe, whatever its code: `make demo` alone cannot tell a rejected
# model (2) from a pipeline failure (1), the timeout (3) or missing ImageNet weights (4). The recipe
# names the demo's own code; `$(PY) -m localcloud.demo` returns it as its exit status (docs/local.md).
demo: $(VENV)/.stamp $(VENV_CONTAINER)/.stamp $(TRAINING_WHEELS) java
	$(PY) -m localcloud.demo $(if $(DATA),--data $(DATA),) $(DEMO_ARGS) || { code=$$?; \
		echo "make demo: the demo exited with code $$code (make itself reports 2 for any failure)" >&2; \
		exit $$code; }

lint: $(VENV)/.stamp typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy once over the tree per environment, which resolves the projects through their editable
# installs: the dev environment's code and tests; training/ against the training environment, so
# that torch's and smdebug's types resolve; tests/sdk against .venv-sdk2 (SageMaker SDK v2). Test
# helpers are top-level modules (pytest puts each test folder on the path), so a second conftest.py
# would be a second module named conftest: tests/template and tests/sdk3, which have their own, run apart.
MYPY_APP := functions localcloud cli bench tools tests/functions tests/localcloud tests/cli tests/e2e
typecheck: $(VENV)/.stamp $(VENV_TRAIN)/.stamp $(VENV_SDK2)/.stamp
	$(VENV)/bin/mypy $(MYPY_APP)
	$(VENV)/bin/mypy tests/template
	$(VENV)/bin/mypy tests/sdk3
	# The programs tests hand to the local cloud (tests/fixtures): standalone scripts and handlers whose
	# imports (torch, the toolkits) live in other environments.
	$(VENV)/bin/mypy tests/fixtures tests/conftest.py
	$(VENV)/bin/mypy --python-executable $(PY_TRAIN) training tests/training
	$(VENV)/bin/mypy --python-executable $(VENV_SDK2)/bin/python tests/sdk

template-check: $(VENV)/.stamp $(VENV_SAM)/.stamp checkov
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV_SAM)/bin/sam validate --lint --template template.yaml --region us-east-1

# checkov over template.yaml, SAM resources included; findings that do not apply are skipped in the
# template next to the resource, with the reason. --skip-download: offline (no Prisma Cloud calls).
# checkov exits 0 on a template it cannot parse, hence the check of its summary line.
checkov: $(VENV_CHECKOV)/.stamp
	out=$$($(VENV_CHECKOV)/bin/checkov --file template.yaml --framework cloudformation --skip-download \
		--compact --quiet 2>&1); status=$$?; echo "$$out"; \
	if ! grep -q "Failed checks: " <<<"$$out" || grep -q "Parsing errors: [1-9]" <<<"$$out"; then \
		echo "checkov did not scan template.yaml" >&2; exit 1; fi; exit $$status

# Three suites, one per interpreter (tests/conftest.py says which runs where). pytest-timeout is on
# (pyproject.toml: timeout); PYTEST_ARGS adds to every suite, e.g. PYTEST_ARGS="-k gate --timeout=0", or
# PYTEST_ARGS=--update-snapshots to rewrite the request snapshots (tests/functions/request_snapshots.py).
# The application suite runs on pytest-xdist workers, a test file per worker at a time (--dist loadfile:
# a module's fixtures, such as its local cloud, are set up once): it waits more than it computes (jobs,
# TorchServe, Lambda workers: 0.64 of a core on average when run alone, 552 s; 2 workers: 470 s beside
# the other suites). The training suite computes: two workers on this repository's 2-core machines cost
# 1.45 times its CPU for 1.2 times its speed and made `make test` slower (715 s against 624 s), so it runs
# in one process by default (TRAINING_WORKERS=2 where cores are free), one thread per process
# (OMP_NUM_THREADS=1, as its training subprocesses already run: tests/training/trainhelpers.py), so that
# in-process torch never spins on a core the other suites need. N=0: one process, no xdist.
# Under make test the training suite is the longest (361 s alone, 610 s beside the others, which end
# 140 s before it): the application and SDK suites, which mostly wait, yield the CPU to it (nice).
YIELD ?= nice -n 10
APP_WORKERS ?= 2
TRAINING_WORKERS ?= 0
xdist = $(if $(filter 0,$(1)),,-n $(1) --dist loadfile)
test-training: $(VENV_TRAIN)/.stamp $(TRAINING_WHEELS) java real-data-deps
	OMP_NUM_THREADS=1 $(PY_TRAIN) -m pytest tests/training $(call xdist,$(TRAINING_WORKERS)) $(PYTEST_ARGS)

test-app: $(VENV)/.stamp $(VENV_CONTAINER)/.stamp $(VENV_TRAIN)/.stamp $(TRAINING_WHEELS) java
	$(YIELD) $(PY) -m pytest tests --ignore=tests/training --ignore=tests/sdk $(call xdist,$(APP_WORKERS)) $(PYTEST_ARGS)

# AWS's own clients against `python -m localcloud` (which runs with .venv): see tests/sdk/conftest.py. It
# also runs notebooks/walkthrough.ipynb top to bottom (its executed copy: build/notebooks/).
test-sdk: $(VENV)/.stamp $(VENV_CONTAINER)/.stamp $(VENV_SDK2)/.stamp $(TRAINING_WHEELS) java aws-cli-v2
	$(YIELD) $(VENV_SDK2)/bin/python -m pytest tests/sdk $(PYTEST_ARGS)

# The fast lane: every test not marked `slow` (pyproject.toml: no training, no TorchServe, no training
# toolkit, no demo), each held to FAST_TIMEOUT seconds, so a test that starts one of those without the
# mark fails here instead of slowing the lane. Needs no wheels, Java or data packages. The application
# half is CPU-bound (moto and a fresh import of each handler per test), so it runs on FAST_WORKERS
# pytest-xdist workers, a test file per worker at a time (--dist loadfile: module fixtures stay shared).
FAST_TIMEOUT ?= 60
FAST_WORKERS ?= 2
FAST_ARGS = -m "not slow" --timeout=$(FAST_TIMEOUT) $(PYTEST_ARGS)
test-fast-app: $(VENV)/.stamp $(VENV_CONTAINER)/.stamp
	$(PY) -m pytest tests --ignore=tests/training --ignore=tests/sdk -n $(FAST_WORKERS) --dist loadfile $(FAST_ARGS)

test-fast-training: $(VENV_TRAIN)/.stamp
	$(PY_TRAIN) -m pytest tests/training $(FAST_ARGS)

# The two halves side by side; --output-sync keeps each one's report in one piece.
test-fast:
	$(MAKE) --no-print-directory -j2 --output-sync=target test-fast-app test-fast-training

# Everything CI checks: TEST_JOBS targets side by side (the environments they need are built first, as
# their prerequisites), the longest suites first; each report is printed whole when its target ends
# (--output-sync). On a 2-core machine with warm venvs it took 550 s (the suites' worker and nice
# settings above say why). TEST_JOBS=1 runs them one by one.
TEST_JOBS ?= 3
test:
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-app test-training lint template-check test-sdk

# sam build for the python3.13 runtime needs that interpreter first on PATH.
sam-build: $(VENV_SAM)/.stamp $(TRAINING_WHEELS)
	PATH="$$(pyenv prefix 3.13 2>/dev/null || echo /root/.pyenv/versions/3.13.0)/bin:$$PATH" \
		$(VENV_SAM)/bin/sam build --template template.yaml

# The rule calibration on real photos: healthy runs must deploy, purpose-broken ones be caught.
bench-rules: $(VENV_TRAIN)/.stamp $(VENV_DATA)/.stamp $(TRAINING_WHEELS) real-data-deps
	$(PY_TRAIN) bench/bench_rule_calibration.py

bench: $(VENV)/.stamp $(VENV_TRAIN)/.stamp $(TRAINING_WHEELS) java bench-rules
	$(PY_TRAIN) bench/bench_feature_cache.py
	$(PY_TRAIN) bench/bench_backbone.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_cold_start.py
	$(PY) bench/bench_endpoint.py
	$(PY) bench/bench_demo.py
	$(PY_TRAIN) bench/bench_trials.py
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_soak.py
	$(PY) bench/bench_cloudwatch_logs.py

clean:
	rm -rf .aws-sam build .localcloud .pytest_cache .ruff_cache .mypy_cache
