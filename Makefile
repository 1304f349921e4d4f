PYTHON ?= python3

.PHONY: install demo test

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'

demo: install
	$(PYTHON) -m darknet_py.demo

test: install
	$(PYTHON) -m pytest -q tests
