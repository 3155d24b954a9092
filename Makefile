# Thresher: `make demo` sets up and starts the demo; `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.thresher-installed

.PHONY: setup demo test test-fast lint browser-deps bench bench-tune clean

setup: $(STAMP)

# The constraints file pins the CPU PyTorch wheels; without it open-clip-torch pulls a CUDA torch.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(BIN)/thresher demo

browser-deps:
	@bash scripts/install-browser.sh

lint: setup
	$(BIN)/ruff check backend app tests bench
	$(BIN)/lint-imports

test: setup browser-deps lint
	THRESHER_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not browser and not slow"

bench: setup
	$(BIN)/python bench/label_noise.py
	$(BIN)/python bench/pruning.py
	$(BIN)/python bench/pruning.py --noisy
	$(BIN)/python bench/distillation.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/ray_runner.py
	$(BIN)/python bench/review_latency.py
	$(BIN)/python bench/label_noise_families.py
	$(BIN)/python bench/health.py
	$(BIN)/python bench/outlier_fit.py
	$(BIN)/python bench/blur_reference.py
	$(BIN)/python bench/near_duplicate_rule.py
	$(BIN)/python bench/embed_throughput.py
	$(BIN)/python bench/ingest_folder.py
	$(BIN)/python bench/umap_scale.py
	$(BIN)/python bench/vector_search.py
	$(BIN)/python bench/scale_app.py
	$(BIN)/python bench/scores_read.py
	$(BIN)/python bench/near_duplicates_scale.py
	$(BIN)/python bench/storage_growth.py

bench-tune: setup
	$(BIN)/python bench/pruning.py --select
	$(BIN)/python bench/pruning.py --tune
	$(BIN)/python bench/pruning.py --alternatives
	$(BIN)/python bench/distillation.py --tune

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
