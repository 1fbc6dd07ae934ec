# Product-Categorization: each stage is one target. `make` alone lists them.
# Options: CONFIG=path/to/config.toml  SET="section.key=value ..."  ARGS="extra CLI flags"
.DEFAULT_GOAL := help
SHELL := /bin/bash

PY      := .venv/bin/python
CONFIG  ?= data/config.toml
SET     ?=
ARGS    ?=
# SET travels in the environment, split by Python like a shell line: SET='publish.title="Two Words"' keeps
# its spaces (a make-level split would cut it into words).
export PC_SET = $(SET)
CFG      = --config $(CONFIG) --set-env PC_SET
STAMP   := .venv/.installed
DSTAMP  := .venv/.installed-distributed
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help install install-distributed lock lint test demo fetch-raw extract download-images validate-urls \
        publish-kaggle train train-text train-fusion evaluate predict label apply-labels export serve \
        eda visualise tensorboard bench bench-extract bench-download bench-train bench-text bench-scratch bench-transfer \
        bench-serve bench-label bench-report bench-scale clean

help: ## list the targets with a one-line description
	@echo "Product-Categorization - catalogue -> image dataset -> trained classifier"
	@echo "usage: make TARGET [CONFIG=...] [SET=\"section.key=value ...\"] [ARGS=\"...\"]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## bootstrap Poetry and install the locked dependencies into .venv

$(STAMP): poetry.lock pyproject.toml develop/bootstrap/install.sh
	@bash develop/bootstrap/install.sh

install-distributed: $(DSTAMP) ## also install the optional Ray group (download.distributor=ray, make bench-scale)

$(DSTAMP): $(STAMP)
	@bash develop/bootstrap/install.sh distributed

lock: ## re-resolve dependencies into poetry.lock (only after editing pyproject.toml)
	@test -x .tools/bin/poetry || bash develop/bootstrap/install.sh
	.tools/bin/python develop/bootstrap/lock.py

lint: install ## flake8 and every pre-commit hook over the whole tree
	.venv/bin/flake8
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/pre-commit run --all-files --show-diff-on-failure

test: install install-distributed ## run the test suite (real local servers, tiny models, files in tmp)
	.venv/bin/pytest $(ARGS)

demo: install ## run the whole pipeline offline on a generated, synthetic demo catalogue
	$(PY) -m develop.demo $(CFG) $(ARGS)

fetch-raw: install ## download the Kaggle dataset into data/raw/<version> (needs Kaggle credentials)
	$(PY) -m data.kaggle.fetch $(CFG) $(ARGS)

extract: install ## raw CSVs -> one clean labelled manifest (catalogue.parquet) and a report
	$(PY) -m data.extract $(CFG) $(ARGS)

download-images: install ## fetch, validate, resize and store every image URL of the manifest (resumable)
	$(PY) -m data.download $(CFG) $(ARGS)

validate-urls: install ## check every image URL (HEAD / ranged GET) without storing images
	$(PY) -m data.download --validate-only $(CFG) $(ARGS)

publish-kaggle: install ## publish the image dataset to Kaggle (ARGS=--dry-run to only show it)
	$(PY) -m data.kaggle.publish $(CFG) $(ARGS)

train: install ## train a classifier (from scratch with weights=none, transfer from pretrained weights otherwise)
	$(PY) -m train.train $(CFG) $(ARGS)

train-text: install ## train a title classifier on the catalogue's names (train.modality=text; run -> latest-text)
	$(PY) -m train.train $(CFG) --set train.modality=text $(ARGS)

train-fusion: install ## fuse the title run latest-text with the photo run latest, weight chosen on validation (-> latest-fusion)
	$(PY) -m train.train $(CFG) --set train.modality=both $(ARGS)

evaluate: install ## evaluate a run on its test split (default: the latest run)
	$(PY) -m train.evaluate $(CFG) $(ARGS)

predict: install ## classify images (and titles: a CSV with name[,path]) with a run's model: make predict FILES="photo.jpg folder/ titles.csv" [ARGS=--run ID]
	$(PY) -m train.predict $(CFG) $(ARGS) $(FILES)

label: install ## find mislabelled, duplicate and junk images with a run's model; writes a review page
	$(PY) -m label $(CFG) $(ARGS)

apply-labels: install ## write a corrected data version: make apply-labels DECISIONS=decisions.json (or SET=label.auto_threshold=0.9)
	$(PY) -m label.apply $(CFG) $(if $(DECISIONS),--decisions $(DECISIONS)) $(ARGS)

export: install ## export a run as a TF-Serving SavedModel, TFLite variants and a model card
	$(PY) -m deploy.export $(CFG) $(ARGS)

serve: install ## serve an export over HTTP (TF Serving REST API, /predict, /metrics, upload page)
	$(PY) -m deploy.serve $(CFG) $(ARGS)

eda: install ## one offline HTML report of the catalogue and the downloaded images
	$(PY) -m visualise.eda $(CFG) $(ARGS)

visualise: install ## one offline HTML report of a training run (curves, confusion, calibration, embedding map)
	$(PY) -m visualise.report $(CFG) $(ARGS)

tensorboard: install ## open TensorBoard on the training runs (SET=paths.root=data/demo for the demo's; ARGS="--port 6007")
	$(PY) -m train.tensorboard $(CFG) $(if $(ARGS),-- $(ARGS))

bench: bench-extract bench-download bench-train bench-text bench-scratch bench-transfer bench-serve bench-label bench-report bench-scale ## run every benchmark (prints tables)

bench-extract: install ## time make extract against the original pandas recipe on a full-size replica
	$(PY) -m bench.bench_extract $(ARGS)

bench-download: install ## compare our downloader, the original recipe and img2dataset on a loopback server
	$(PY) -m bench.bench_download $(ARGS)

bench-train: install ## frozen phase: embedding cache vs full backbone forward every epoch
	$(PY) -m bench.bench_train $(ARGS)

bench-text: install ## title model on the real CSVs vs majority and the quick check; fusion on demo pairs; speed
	$(PY) -m bench.bench_text $(ARGS)

bench-scratch: install ## from scratch: make train (weights=none) vs the keras-io recipe, same time budget
	$(PY) -m bench.bench_scratch $(ARGS)

bench-transfer: install ## pretrained EfficientNet-Lite0 on the grocery photos: logreg floor, frozen, fine-tuned vs scratch
	$(PY) -m bench.bench_transfer $(ARGS)

bench-serve: install ## make serve's dynamic batching vs one model.predict per request; TFLite variants
	$(PY) -m bench.bench_serve $(ARGS)

bench-label: install ## planted label noise on pretrained grocery features (10 seeds, 95% intervals): cleanlab defaults vs make label, accuracy before/after cleaning; 400k-embedding scale
	$(PY) -m bench.bench_label $(ARGS)

bench-scale: install-distributed ## download-images past one process: one process vs Ray tasks vs several processes
	$(PY) -m bench.bench_scale $(ARGS)

bench-report: install ## make eda / make visualise on a full-size replica: time, size, byte-identity
	$(PY) -m bench.bench_report $(ARGS)

clean: ## remove generated data (demo, processed, runs, caches); keeps data/raw and .venv
	rm -rf data/demo data/processed data/runs data/cache .pytest_cache
