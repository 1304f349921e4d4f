PYTHON ?= python3

.PHONY: install wordnet demo test

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test,wordtree]'

# WordNet 3.0 for `wordtree`, from Debian's packages (no other network); its tests skip
# with a reason if this cannot run.
wordnet:
	bash scripts/setup_wordnet.sh || echo "WordNet set-up failed: the WordTree tests will skip"

demo: install
	$(PYTHON) -m darknet_py.demo

test: install wordnet
	$(PYTHON) -m pytest -q tests
