# ssdboard: make venv | run | test | bench | lint | docs
VENV ?= .venv
PYTHON ?= python3
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv run test bench lint docs

venv: $(VENV)/.installed

# Reinstall only when pyproject.toml or this file changes; the stamp keeps re-runs fast.
# deepforest brings real aerial tree-crown tiles for the dataset tests (tools/deepforest_tiles.py):
# only its package data is used, so none of its dependencies (PyTorch) is installed.
# tidecv is the reference TIDE (tests/ssd/test_analysis.py checks ssd.analysis.tide against it): its
# error and AP code needs numpy and pycocotools only, so its plotting packages (OpenCV, pandas,
# seaborn, matplotlib) are not installed; the test stands in for them.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[test]'
	$(VENV)/bin/python -m pip install --no-deps 'deepforest==2.1.0'
	$(VENV)/bin/python -m pip install --no-deps 'tidecv==1.0.1'
	touch $@

# The dashboard on http://127.0.0.1:8000 (jobs and database in ./data; SSDBOARD_* settings apply).
run: venv
	$(VENV)/bin/ssdboard serve

# PYTEST_ARGS narrows a run, e.g. make test PYTEST_ARGS='tests/ssd/test_loss.py -x'.
test: venv
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# The benchmarks (benchmarks/, not installed) run from the repository root and write .bench/*.json.
# TTA_BENCH_ARGS the time-to-accuracy benchmark (the default config, ~7 min on 2 cores), e.g. '--eval-every 50';
# TRAIN_BENCH_ARGS narrows the training-speed benchmark, e.g. make bench TRAIN_BENCH_ARGS=--quick;
# SSE_BENCH_ARGS the live-stream benchmark, e.g. make bench SSE_BENCH_ARGS='--clients 5 --steps 20';
# MODELS_BENCH_ARGS the backbones' table (~10 min on 2 cores), e.g. '--quick' or '--variants notebook';
# LOAD_BENCH_ARGS the load benchmark (200 SSE clients + REST reads vs. no clients, ~3 min), e.g. '--clients 50';
# COMPARE_BENCH_ARGS the compare benchmark (10 jobs x 10,000 steps), e.g. '--jobs 3 --steps 2000';
# JOBS_LIST_BENCH_ARGS the runs-table benchmark (1,000 stored jobs, ~1 min), e.g. '--jobs 200 --repeats 50'.
# IMPORT_MEMORY_BENCH_ARGS the server's memory while it imports a 57 MB COCO JSON and 1,000 12-megapixel photos
# (~2 min on 2 cores, 1.6 GB of temporary disk), e.g. '--cases coco' or '--photos 100'.
# EXECUTORS_BENCH_ARGS the ray vs. local executor benchmark (a Ray head on loopback, 3 x 2 jobs of 200 steps,
# ~5 min on 2 cores), e.g. '--repeats 1'.
bench: venv
	$(VENV)/bin/python -m benchmarks.time_to_accuracy $(TTA_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.train $(TRAIN_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.input_pipeline
	$(VENV)/bin/python -m benchmarks.models $(MODELS_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.sse $(SSE_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.priors
	$(VENV)/bin/python -m benchmarks.suggest
	$(VENV)/bin/python -m benchmarks.load $(LOAD_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.sse_clients $(CLIENTS_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.detect
	$(VENV)/bin/python -m benchmarks.analysis
	$(VENV)/bin/python -m benchmarks.export
	$(VENV)/bin/python -m benchmarks.compare $(COMPARE_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.jobs_list $(JOBS_LIST_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.tensorboard_log
	$(VENV)/bin/python -m benchmarks.eval_memory
	$(VENV)/bin/python -m benchmarks.memory
	$(VENV)/bin/python -m benchmarks.datasets_import
	$(VENV)/bin/python -m benchmarks.import_memory $(IMPORT_MEMORY_BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.file_pipeline
	$(VENV)/bin/python -m benchmarks.executors $(EXECUTORS_BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy ssd app benchmarks

# The docs site (mkdocs.yml) into build/site/; `make test` builds it with --strict too (tests/test_docs.py).
# After changing a command, a config field, a route or a setting: $(VENV)/bin/python tools/gen_reference.py
docs: venv
	$(VENV)/bin/mkdocs build --strict
