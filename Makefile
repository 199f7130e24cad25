# Both targets build .venv from pyproject.toml first, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Without a Twilio auth token nothing could be validated: say so explicitly, so the
# simulator works out of the box and /health reports that checks are off.
ifeq ($(strip $(TWILIO_AUTH_TOKEN)$(LEADLINE_TWILIO_AUTH_TOKEN)$(CONFIG)),)
RUN_ENV := LEADLINE_TWILIO_VALIDATE_SIGNATURES=false
endif

run: $(STAMP)
	$(RUN_ENV) $(BIN)/leadline serve $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
