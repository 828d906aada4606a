# One-command install, demo and tests for a fresh Debian 12 machine (Python 3.11, 2 cores).
# Every target installs what is missing first; a second `make install` with nothing to do takes seconds.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMPS := $(ROOT)/.stamps
ENV := source $(ROOT)/include/airflow/env.sh
APT_PACKAGES := tesseract-ocr tesseract-ocr-eng orthanc orthanc-dicomweb dicom3tools
PYTEST_ARGS ?=

.PHONY: install demo test airflow apt clean-state

install: apt $(STAMPS)/venv $(STAMPS)/editable $(STAMPS)/airflow-db
	@# Areas with their own install needs (npm builds, browsers) ship an idempotent install.sh.
	@if [ -f annotation/install.sh ]; then $(ENV) && bash annotation/install.sh; fi
	@echo "install: ready (venv $(VENV), AIRFLOW_HOME $(ROOT)/.airflow)"

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "install: apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMPS)/venv: requirements.txt
	@mkdir -p $(STAMPS)
	@[ -x $(PY) ] || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	@touch $@

$(STAMPS)/editable: pyproject.toml $(STAMPS)/venv
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $@

$(STAMPS)/airflow-db: $(STAMPS)/venv include/airflow/pools.json
	$(ENV) && airflow db migrate >/dev/null && airflow pools import include/airflow/pools.json >/dev/null
	@touch $@

demo: install
	$(ENV) && curate demo

test: install
	set +e; $(ENV); $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing"; exit 1; fi; exit $$rc

airflow: install
	$(ENV) && bash include/airflow/start.sh

clean-state:
	rm -rf $(ROOT)/.airflow $(ROOT)/var $(STAMPS)/airflow-db
