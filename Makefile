# Set-up and the two everyday jobs. `make demo` and `make test` each create the virtual
# environment and install chromalab first, so either works on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test benchmark browser clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lpips,ray]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/chromalab demo

# The web app's end-to-end test drives Debian's headless Chromium; install it when we can
# (as root, as in CI), otherwise that one test is skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the browser test will be skipped"; }

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest

benchmark: $(BIN)/.installed
	$(BIN)/python benchmarks/foundation.py

clean:
	rm -rf $(VENV) demo-output demo-output-[0-9]* .pytest_cache
