# ktop: `make run` starts it, `make test` runs every test. Both set up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ktop-installed
LAUNCHER := /usr/local/bin/ktop
PYTEST_ARGS ?=

.PHONY: install host host-test venv launcher files prebuild run test test-vm test-fast bench lint clean

install: host venv launcher files prebuild

host:
	@bash scripts/setup-host.sh

host-test:
	@bash scripts/setup-host.sh test

$(PY):
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@$(PY) -c "import bcc" 2>/dev/null || { echo "install: the venv cannot import bcc (python3-bpfcc)"; exit 1; }
	touch $(STAMP)

# Byte-compiled as a pip install would (this one is editable): without it every
# start, and every build helper, compiles ktop's sources again (+0.2 s here
# where PYTHONDONTWRITEBYTECODE is set). Stale files are simply recompiled.
venv: $(STAMP)
	@$(PY) -m compileall -q ktop

launcher: $(STAMP)
	@printf '#!/bin/sh\nexec %s "$$@"\n' "$(abspath $(VENV))/bin/ktop" > $(LAUNCHER).tmp
	@chmod 755 $(LAUNCHER).tmp && mv $(LAUNCHER).tmp $(LAUNCHER)

# The default probes compiled once, as a first start would, and kept (/var/cache/ktop/bpf, or
# $$KTOP_BPF_CACHE): the first `sudo ktop` loads them without clang (0.5-0.7 s to all live instead
# of 1.3-1.8 s here). Again after a kernel update or a change to bpf/; never fails the install.
PREBUILT := $(VENV)/.ktop-prebuilt-$(shell uname -r)
prebuild: $(PREBUILT)
$(PREBUILT): $(wildcard bpf/*.c bpf/*.h) | venv
	@if [ "$$(id -u)" != 0 ]; then echo "install: not root: the first ktop start compiles its probes"; \
	elif timeout 600 $(VENV)/bin/ktop snapshot --duration 0.1 --json >/dev/null 2>$(VENV)/.ktop-prebuild.log; then \
		rm -f $(VENV)/.ktop-prebuilt-*; touch $@; echo "install: the default probes compiled and kept for the first start"; \
	else echo "install: the default probes could not be compiled ahead ($(VENV)/.ktop-prebuild.log; ktop doctor says why)"; fi

# The man page, the bash, zsh and fish completions and the (not enabled) systemd unit for `ktop export`.
# A distribution package: make files PREFIX=/usr DESTDIR=$(pkgdir).
PREFIX ?= /usr/local
DESTDIR ?=
# zsh's fpath has Debian's vendor-completions under /usr only; under /usr/local it has site-functions.
ZSH_COMPLETIONS ?= $(PREFIX)/share/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
files:
	@install -Dm644 contrib/ktop.1 $(DESTDIR)$(PREFIX)/share/man/man1/ktop.1
	@install -Dm644 contrib/completion/ktop.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ktop
	@install -Dm644 contrib/completion/_ktop $(DESTDIR)$(ZSH_COMPLETIONS)/_ktop
	@install -Dm644 contrib/completion/ktop.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/ktop.fish
	@install -Dm644 contrib/ktop-export.service $(DESTDIR)$(PREFIX)/lib/systemd/system/ktop-export.service

run: install
	$(VENV)/bin/ktop

# The whole suite, real probes included (they need root); then the real-probe
# tests again inside a second kernel (Debian's 6.1, kprobes on) under QEMU.
test: install host-test
	$(PY) -m pytest $(PYTEST_ARGS)
	@bash scripts/test-vm.sh

# Only the real-probe tests in the second kernel (docs/testing-vm.md).
test-vm: install host-test
	@bash scripts/test-vm.sh

# Without the real-probe tests.
test-fast: venv
	$(PY) -m pytest -m "not real and not slow" $(PYTEST_ARGS)

bench: install host-test
	$(PY) bench/run.py

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) dist build .pytest_cache .vm-venv .cache/vm-kernel .cache/vm-run
