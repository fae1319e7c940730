# Two entry points an operator needs: `make demo` (the demo cluster) and `make test`.
# Everything else is plumbing they depend on.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-packages test unit bench demo clean image dockerd

setup: system-packages $(STAMP)

system-packages:
	bash scripts/install-system-packages.sh

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: setup
	$(VPY) -m pytest -q -ra

bench: setup
	$(VPY) -m bench

# The node image, calico-node-py:latest: wheels built here, a local Debian bookworm base
# (debootstrap + docker import, cached) unless BASE_IMAGE names one, docker build through
# the Docker API. Starts dockerd (without iptables, bridge or forwarding changes) when no
# daemon answers. See scripts/build_image.py.
image: setup
	$(VPY) scripts/build_image.py

# Only make sure a Docker daemon answers (started as above when none does).
dockerd: setup
	$(VPY) scripts/dockerd.py

# A 3-host cluster in network namespaces, shown working, then torn down (KEEP=1 leaves it
# running and says how to use it and remove it).
demo: setup
	KEEP=$(KEEP) $(VPY) -m e2e.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
