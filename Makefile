# Product-Categorization: each stage is one target. `make` alone lists them.
# Options: CONFIG=path/to/config.toml  SET="section.key=value ..."  ARGS="extra CLI flags"
.DEFAULT_GOAL := help
SHELL := /bin/bash

PY      := .venv/bin/python
CONFIG  ?= data/config.toml
SET     ?=
ARGS    ?=
CFG      = --config $(CONFIG) $(foreach s,$(SET),--set $(s))
STAMP   := .venv/.installed
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help install lock lint test demo fetch-raw extract download-images validate-urls \
        publish-kaggle train evaluate tensorboard bench bench-extract bench-download bench-train clean

help: ## list the targets with a one-line description
	@echo "Product-Categorization - catalogue -> image dataset -> trained classifier"
	@echo "usage: make TARGET [CONFIG=...] [SET=\"section.key=value ...\"] [ARGS=\"...\"]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## bootstrap Poetry and install the locked dependencies into .venv

$(STAMP): poetry.lock pyproject.toml develop/bootstrap/install.sh
	@bash develop/bootstrap/install.sh

lock: ## re-resolve dependencies into poetry.lock (only after editing pyproject.toml)
	@test -x .tools/bin/poetry || bash develop/bootstrap/install.sh
	.tools/bin/python develop/bootstrap/lock.py

lint: install ## flake8 and every pre-commit hook over the whole tree
	.venv/bin/flake8
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/pre-commit run --all-files --show-diff-on-failure

test: install ## run the test suite (real local servers, tiny models, files in tmp)
	.venv/bin/pytest $(ARGS)

demo: install ## run the whole pipeline offline on a generated, synthetic demo catalogue
	$(PY) -m data.demo $(CFG) $(ARGS)

fetch-raw: install ## download the Kaggle dataset into data/raw/<version> (needs Kaggle credentials)
	$(PY) -m data.fetch_raw $(CFG) $(ARGS)

extract: install ## raw CSVs -> one clean labelled manifest (catalogue.parquet) and a report
	$(PY) -m data.extract $(CFG) $(ARGS)

download-images: install ## fetch, validate, resize and store every image URL of the manifest (resumable)
	$(PY) -m data.download $(CFG) $(ARGS)

validate-urls: install ## check every image URL (HEAD / ranged GET) without storing images
	$(PY) -m data.download --validate-only $(CFG) $(ARGS)

publish-kaggle: install ## publish the image dataset to Kaggle (ARGS=--dry-run to only show it)
	$(PY) -m data.publish_kaggle $(CFG) $(ARGS)

train: install ## train a transfer-learning classifier on the downloaded images
	$(PY) -m train.train $(CFG) $(ARGS)

evaluate: install ## evaluate a run on its test split (default: the latest run)
	$(PY) -m train.evaluate $(CFG) $(ARGS)

tensorboard: install ## open TensorBoard on the training runs (SET=paths.root=data/demo for the demo's)
	.venv/bin/tensorboard --logdir $$($(PY) -c "import sys; from data.config import load_config; \
	print(load_config(sys.argv[1], sys.argv[2:]).path('runs'))" $(CONFIG) $(SET))

bench: bench-extract bench-download bench-train ## run every benchmark (prints tables)

bench-extract: install ## time make extract against the original pandas recipe on a full-size replica
	$(PY) -m bench.bench_extract $(ARGS)

bench-download: install ## compare our downloader, the original recipe and img2dataset on a loopback server
	$(PY) -m bench.bench_download $(ARGS)

bench-train: install ## frozen phase: embedding cache vs full backbone forward every epoch
	$(PY) -m bench.bench_train $(ARGS)

clean: ## remove generated data (demo, processed, runs, caches); keeps data/raw and .venv
	rm -rf data/demo data/processed data/runs data/cache .pytest_cache
