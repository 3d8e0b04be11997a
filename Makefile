# CNN Reliability Lab. `make run` executes the whole series, `make test` runs the tests;
# both create the virtual environment first when it is missing.
PROFILE ?= standard
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# glibc malloc: keep freed activation memory for reuse instead of unmapping it (CPU steps ~1.3x
# faster); the values are labutils.runtime.MALLOC_ENV, and `make bench` measures the gain.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 268435456

.PHONY: setup lab data run student checkpoints checkpoints-load test test-trains seeds bench doctor clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	# torchattacks pins an old `requests` that clashes with JupyterLab; its real needs
	# (torch, torchvision, scipy, numpy, tqdm) are already installed above.
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (CNN Reliability Lab)"
	touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ --LabApp.news_url=None \
		--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

data: $(STAMP)
	$(PY) -m labutils.data

run: $(STAMP)
	$(PY) -m labutils.course.runner --profile $(PROFILE)

# Instructors: the student versions of the notebooks (solutions replaced by nbgrader's stub, outputs cleared),
# made by `nbgrader generate_assignment`, in student/.
student: $(STAMP)
	$(PY) -m labutils.course.assignments --out student

# Instructors: run the series once, logging every checkpoint it uses (absolute path: the kernels run in
# notebooks/), and pack them with a manifest into one archive students load with checkpoints-load.
ARCHIVE ?= runs/$(PROFILE)/checkpoints-$(PROFILE).tar
CHECKPOINT_LOG := $(CURDIR)/runs/$(PROFILE)/checkpoints-used.txt

checkpoints: $(STAMP)
	mkdir -p runs/$(PROFILE) && : > $(CHECKPOINT_LOG)
	LAB_CHECKPOINT_LOG=$(CHECKPOINT_LOG) $(PY) -m labutils.course.runner --profile $(PROFILE)
	$(PY) -m labutils.training.archive pack --profile $(PROFILE) --log $(CHECKPOINT_LOG) --out $(ARCHIVE)

checkpoints-load: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make checkpoints-load FILE=path/to/checkpoints-<profile>.tar" >&2; exit 2; }
	$(PY) -m labutils.training.archive load $(FILE)

test: $(STAMP)
	LAB_PROFILE=smoke MPLBACKEND=Agg $(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=900 \
		-p no:cacheprovider --durations=15

# The notebooks and the tests whose assertions depend on a trained model (CI runs them again under
# another LAB_SEED and LAB_PRECISION=fp32).
test-trains: $(STAMP)
	LAB_PROFILE=smoke MPLBACKEND=Agg $(PY) -m pytest -m trains tests notebooks --nbval-lax --nbval-cell-timeout=900 \
		-p no:cacheprovider --durations=5

# Seeds 0-4 x (this CPU's default precision, fp32 with AVX2 kernels): one table of every claim's values.
seeds: $(STAMP)
	$(PY) -m labutils.course.seeds

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; MPLBACKEND=Agg $(PY) $$f || exit 1; done

doctor: $(STAMP)
	$(PY) -m labutils.course.doctor

clean:
	rm -rf runs/ build/ dist/ *.egg-info .pytest_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
	find notebooks -name '.ipynb_checkpoints' -type d -prune -exec rm -rf {} +
