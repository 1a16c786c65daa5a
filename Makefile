# The two commands a newcomer needs: `make lab` and `make test`.
# Everything else here is a step of those two.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
LAB_RELEASE ?= trixie
ROLE ?=
# Every Molecule scenario, in the order make test runs them (cheapest first):
# <role>/<scenario> for a role's own (roles/<role>/molecule/), site/<scenario>
# for the site-wide end-to-end ones (extensions/molecule/). molecule-all checks
# that none is missing.
MOLECULE_SCENARIOS ?= xen_preflight/default xen_hypervisor/boot_failure xen_network/default \
                      site/site_bookworm site/site_trixie
ALL_MOLECULE_SCENARIOS := $(sort \
  $(patsubst roles/%/molecule.yml,%,$(subst /molecule/,/,$(wildcard roles/*/molecule/*/molecule.yml))) \
  $(patsubst extensions/molecule/%/molecule.yml,site/%,$(wildcard extensions/molecule/*/molecule.yml)))
# Scenarios that molecule-all leaves out, with the reason in README (Testing);
# `make molecule ROLE=<role|site> SCENARIO=<scenario>` runs one.
MOLECULE_SKIP ?=
SCENARIO ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
XEN_LAB := $(CURDIR)/$(VENV)/bin/python $(CURDIR)/lab/xen-lab
STAMP := $(VENV)/.installed

.PHONY: help setup host-packages lab lab-destroy lab-ssh test lint sanity ee-check unit integration \
        molecule molecule-all docs docs-check bench

help:
	@echo "make lab        boot a local QEMU VM (LAB_RELEASE=$(LAB_RELEASE)) and run site.yml against it"
	@echo "make test       lint, unit tests, harness tests and every role's Molecule scenarios in VMs"
	@echo "make setup      create $(VENV) and install the host packages the lab needs"
	@echo "make molecule ROLE=<role|site> [SCENARIO=<name>]   a role's (or the site-wide) Molecule scenarios, or one"
	@echo "make bench      time guest provisioning (role vs xen-create-image); writes tests/bench/RESULTS.md"
	@echo "make lab-destroy / make lab-ssh / make docs"

setup: $(STAMP) host-packages

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

host-packages:
	@tools/host-packages.sh

lab: setup
	$(XEN_LAB) lab --hap --release $(LAB_RELEASE) --inventory inventory/lab/hosts.yml -- \
	  ansible-playbook -i inventory/lab site.yml

lab-destroy: $(STAMP)
	$(XEN_LAB) down --name lab
	rm -f inventory/lab/hosts.yml

lab-ssh: $(STAMP)
	$(XEN_LAB) ssh --name lab

# Not part of `make test`: it prints numbers, takes over an hour under emulation and
# uses the one VM slot (see tests/bench/RESULTS.md).
bench: setup
	$(XEN_LAB) run -- $(CURDIR)/$(VENV)/bin/python tests/bench/guests.py

# Lint and the unit tests need no VM: they run in the background, their output
# kept in $(VENV)/test-checks.log and printed at the end, while the harness tests
# and then the scenarios run one VM at a time in the foreground. Every part
# runs to its end; make test fails if any part failed.
CHECKS_LOG := $(VENV)/test-checks.log
test: setup
	@rm -f $(CHECKS_LOG); \
	  ( rc=0; $(MAKE) --no-print-directory lint unit >$(CHECKS_LOG) 2>&1 || rc=$$?; \
	    echo "== lint and unit tests: exit $$rc (output in $(CHECKS_LOG), printed at the end)"; exit $$rc ) & \
	  checks=$$!; \
	  vms=0; $(MAKE) --no-print-directory integration molecule-all || vms=$$?; \
	  wait $$checks && lint_unit=0 || lint_unit=$$?; \
	  echo "== lint and unit tests"; cat $(CHECKS_LOG); \
	  echo "make test: lint and unit tests exit $$lint_unit, VM tests exit $$vms"; \
	  test $$lint_unit -eq 0 && test $$vms -eq 0
	@echo "make test: all passed"

lint: $(STAMP)
	yamllint --strict .
	ansible-lint --offline --strict
	ruff check .
	ruff format --check .
	$(MAKE) --no-print-directory docs-check
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory ee-check

# ansible-test sanity on the collection as built and installed into a temporary
# folder; ansible-test keeps one virtual environment per test (from PyPI) under
# ~/.ansible/test/venv, so only a first run downloads. See tools/sanity.sh.
sanity: $(STAMP)
	tools/sanity.sh

# The execution environment's build context (execution-environment.yml), written
# into a temporary folder and checked; `tools/ee-context.sh DIR` writes one to build.
ee-check: $(STAMP)
	@context=$$(mktemp -d); trap 'rm -rf "$$context"' EXIT; tools/ee-context.sh "$$context"

docs: $(STAMP)
	$(VENV)/bin/python tools/role_docs.py

docs-check: $(STAMP)
	$(VENV)/bin/python tools/role_docs.py --check

unit: $(STAMP)
	pytest -q tests/unit

integration: $(STAMP)
	pytest -q tests/integration

molecule: $(STAMP)
	@test -n "$(ROLE)" || { echo "usage: make molecule ROLE=<role|site> [SCENARIO=<name>]"; exit 2; }
	@start=$$(date +%s); which="$(if $(SCENARIO),-s $(SCENARIO),--all)"; \
	  dir=$(if $(filter site,$(ROLE)),.,roles/$(ROLE)); \
	  rc=0; (cd $$dir && $(XEN_LAB) run -- molecule test $$which) || rc=$$?; \
	  echo "molecule $(ROLE) $(or $(SCENARIO),(all scenarios)): $$(( $$(date +%s) - start )) s, exit $$rc"; \
	  if [ $$rc -ne 0 ]; then \
	    for log in $$(find "$${XEN_LAB_CACHE:-$$HOME/.cache/xen-lab}/logs" -name 'mol-*.last.serial.log' \
	                  -newermt "@$$start" 2>/dev/null); do \
	      echo "== last lines of the serial console, kept as $$log"; tail -n 100 "$$log"; \
	    done; \
	  fi; \
	  exit $$rc

molecule-all: $(STAMP)
	@missing="$(filter-out $(MOLECULE_SCENARIOS),$(ALL_MOLECULE_SCENARIOS))"; \
	  test -z "$$missing" || { echo "scenarios missing from MOLECULE_SCENARIOS: $$missing"; exit 1; }
	@for scenario in $(MOLECULE_SCENARIOS); do \
	  case " $(MOLECULE_SKIP) " in \
	    *" $$scenario "*) echo "== molecule: $$scenario left out (MOLECULE_SKIP)"; continue ;; \
	  esac; \
	  echo "== molecule: $$scenario"; \
	  $(MAKE) --no-print-directory molecule ROLE=$${scenario%%/*} SCENARIO=$${scenario#*/} || exit 1; \
	done
