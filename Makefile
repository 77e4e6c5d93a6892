# The README's two commands are `make lab` and `make test`; both build .venv first.
# Everything is installed inside .venv with the machine's python3; nothing is
# registered outside it (no user-wide kernels, no global packages).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seglib-installed
D2L    := d2l==1.0.3

.PHONY: lab test unit notebooks notebooks-gpu-branch lint bench browser browser-check train camvid-cpu camvid-ablation prose-numbers attention-seeds clean

# Rebuilt only when pyproject.toml changes, so a second `make test` starts at once.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	# d2l 1.0.3 pins numpy 1.23 and pandas 2.0, which break albumentations 2 and do
	# not install on Python 3.12+ (Colab): install it without its pins. The packages
	# it imports are seglib's own dependencies (see pyproject.toml).
	$(BIN)/python -m pip install --no-deps $(D2L)
	$(BIN)/python -c "import seglib, d2l.torch, albumentations, torchvision; print('seglib', seglib.__version__, 'ready')"
	touch $(STAMP)

# --allow-root only when run as root (containers), where JupyterLab refuses to start otherwise.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Every number in a notebook's prose is printed by one of its cells, read from a committed
# results file it loads, or allow-listed with its reason (tools/prose_numbers_allowed.toml)
prose-numbers: $(STAMP)
	$(BIN)/python tools/check_numbers.py

# The browser test (JupyterLab in headless Chromium) has its own target, below.
unit: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -m "not browser"

notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks/

# The GPU branch of the training notebooks, forced on this CPU with tiny sizes (one epoch
# of 64x96 crops, no download, no pretrained weights): a typo in the GPU recipe fails
# here, although no GPU is at hand. Its runs go to a scratch folder, never to runs/.
TINY_RUNS := $(CURDIR)/.pytest_cache/tiny-runs
notebooks-gpu-branch: $(STAMP)
	rm -rf $(TINY_RUNS)
	SEGLIB_MODE=gpu SEGLIB_TINY=1 SEGLIB_RUNS=$(TINY_RUNS) $(BIN)/python -m pytest \
		--nbval-lax --nbval-current-env -p no:cacheprovider \
		notebooks/06_training.ipynb notebooks/07_evaluation.ipynb notebooks/08_attention.ipynb

# Unit tests and notebooks in one pytest run would also work; two runs keep the
# failures of each apart. pytest's exit code 5 (nothing collected) fails the target.
# The browser test skips, saying why, where no chromium can be had.
test: lint prose-numbers unit browser-check notebooks notebooks-gpu-branch

bench: $(STAMP)
	$(BIN)/python benchmarks/attention.py --compile
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/quick_train.py

# JupyterLab in headless Chromium (needs Debian's chromium: apt-get install chromium).
# `make browser` keeps its screenshot in benchmarks/results (the README's picture);
# `make test` runs the same test with the screenshot in a scratch folder, so that a test
# run never changes a tracked file.
browser: $(STAMP)
	SEGLIB_SCREENSHOT_DIR=benchmarks/results $(BIN)/python -m pytest -m browser -rs tests/test_browser.py

browser-check: $(STAMP)
	SEGLIB_SCREENSHOT_DIR=$(CURDIR)/.pytest_cache/browser $(BIN)/python -m pytest -m browser \
		-rs -p no:cacheprovider tests/test_browser.py

train: $(STAMP)
	$(BIN)/python -m seglib.train --data synthetic --out runs/quick $(if $(wildcard runs/quick/last.pt),--resume)

# Real CamVid ($$CAMVID_DIR or data/CamVid), CCNet ResNet-18 from scratch at half resolution
# (output stride 16 with a stride-4 decoder, 60 epochs: 50 minutes on 2 cores), then the
# per-class IoU table on the 233 test images. Interrupt it any time: the same command
# resumes from runs/camvid-cpu/last.pt.
camvid-cpu: $(STAMP)
	$(BIN)/python -m seglib.train --recipe camvid-cpu --out runs/camvid-cpu $(if $(wildcard runs/camvid-cpu/last.pt),--resume)
	$(BIN)/python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test
	$(BIN)/python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test --logit-adjustment auto

# The first CPU recipe (output stride 8, 30 epochs) for CCNet R = 0, 1, 2 and RefineNet;
# table and curves in benchmarks/results/
camvid-ablation: $(STAMP)
	$(BIN)/python benchmarks/camvid_cpu.py

# What the attention buys (notebook 08): the CPU recipe with R = 2 and R = 0, seeds 0, 1, 2,
# on a 10-epoch schedule, each R = 2 run knocked out and its gate logged, and one run of
# the gate remedy; seven runs of 20-30 minutes each on two cores (interrupt any time: the
# same command resumes), then the tables in benchmarks/results/attention_seeds*.csv
attention-seeds: $(STAMP)
	$(BIN)/python benchmarks/attention_seeds.py --variants r2 r0 --seeds 0 1 2
	$(BIN)/python benchmarks/attention_seeds.py --variants r2-gate --seeds 0

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
