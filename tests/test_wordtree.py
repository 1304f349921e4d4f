"""WordTree building: the path-selection rules on a hand-made graph (no nltk needed), darknet's
tree format round trip, the CLI, and the two real measurements against darknet's 9k.tree and
the paper's WordTree1k (these need nltk and WordNet 3.0: scripts/setup_wordnet.sh)."""
import subprocess
import sys

import pytest

from conftest import ROOT, need_shared
from darknet_py.cli import wordtree as cli
from darknet_py.errors import DarknetError
from darknet_py.tree import read_tree, tree_from_parents
from darknet_py.wordtree import build_wordtree, read_labels

# A small WordNet-like DAG: child -> hypernyms (several = several paths to the root 'R').
FAKE_HYPERNYMS = {
    "R": [], "A": ["R"], "B": ["R"], "C": ["A"], "D": ["B"], "E": ["B"],
    "X": ["A", "D"],        # two paths: R-A-X (A already present) or R-B-D-X
    "Y": ["A", "B"],        # two paths that cost the same once A and B are in the tree
    "M": ["R"], "K": ["M"], "Q": ["K"], "S": ["K"],
    "T": ["M"], "U": ["T"], "V": ["U"],
}


def fake_paths(node):
    """All root-first paths, in the order the hypernyms are listed."""
    ups = FAKE_HYPERNYMS[node]
    return [[node]] if not ups else [p + [node] for up in ups for p in fake_paths(up)]


def as_parents(nodes, parents):
    return {node: (nodes[p] if p >= 0 else None) for node, p in zip(nodes, parents)}


def check_darknet_order(nodes, parents):
    """What darknet's read_tree needs: parent before child, siblings on consecutive lines."""
    assert all(p < i for i, p in enumerate(parents))
    tree_from_parents(nodes, parents)  # raises CfgError on split sibling groups


def grown(labels, paths=fake_paths, **options):
    """The tree before pruning and lifting: the path choices alone."""
    return as_parents(*build_wordtree(labels, paths, **{"prune": "none", "lift": False,
                                                        **options}))


def test_single_paths_first_then_fewest_new_nodes():
    nodes, parents = build_wordtree(["X", "C", "E", "D"], fake_paths, prune="none", lift=False)
    check_darknet_order(nodes, parents)
    # C, E and D have single paths and go in first (R, A, C, B, E, D) although X is listed
    # first; X then joins under A (1 new node) rather than under D (also 1: D is present).
    # With both costing 1 the first path in the given order wins: R-A-X.
    assert as_parents(nodes, parents) == {"R": None, "A": "R", "B": "R", "C": "A", "E": "B",
                                          "D": "B", "X": "A"}
    # Without D in the tree, R-B-D-X would add D and X: R-A-X adds only X.
    tree = grown(["C", "X"])
    assert tree["X"] == "A" and "D" not in tree


def test_fewest_new_nodes_beats_path_order():
    # Only E is in: R-A-X would add A and X, R-B-D-X adds D and X: a tie, first wins...
    assert grown(["E", "X"])["X"] == "A"
    # ...but once D is present, R-B-D-X adds 1 node against 2 for R-A-X.
    tree = grown(["D", "X"])
    assert tree["X"] == "D" and "A" not in tree


@pytest.mark.parametrize("tie, parent", [("first", "A"), ("last", "B")])
def test_tie_rules(tie, parent):
    assert grown(["C", "E", "Y"], tie=tie)["Y"] == parent


def test_short_and_long_tie_rules():
    paths = {"Z": [["R", "A", "C", "Z"], ["R", "Z"], ["R", "B", "Z"]], "C": [["R", "A", "C"]],
             "B": [["R", "B"]]}
    assert grown(["C", "B", "Z"], paths.__getitem__, tie="short")["Z"] == "R"
    assert grown(["C", "B", "Z"], paths.__getitem__, tie="long")["Z"] == "C"


def test_existing_node_keeps_its_parent():
    """A path reaching a node already in the tree through another hypernym attaches there:
    every node keeps the single parent it got first."""
    paths = {"C": [["R", "A", "C"]], "W": [["R", "B", "C", "W"], ["R", "E", "C", "W"]]}
    assert grown(["C", "W"], paths.__getitem__) == {"R": None, "A": "R", "C": "A", "W": "C"}


def test_pruning_modes():
    labels = ["V", "Q", "S"]  # R-M-T-U-V and R-M-K-{Q,S}
    assert grown(labels) == {"R": None, "M": "R", "T": "M", "U": "T", "V": "U", "K": "M",
                    "Q": "K", "S": "K"}
    # 'single': R (one child M), T and U (one child each) go; M has T's line and K.
    single = as_parents(*build_wordtree(labels, fake_paths, prune="single"))
    assert single == {"M": None, "V": "M", "K": "M", "Q": "K", "S": "K"}
    # 'all': only labels remain, each under its nearest label ancestor (none here).
    assert as_parents(*build_wordtree(labels, fake_paths, prune="all")) == {
        "V": None, "Q": None, "S": None}
    # A label is never pruned, even with a single child.
    kept = as_parents(*build_wordtree(["U", "V", "Q", "S"], fake_paths, prune="single",
                                      lift=False))
    assert kept["V"] == "U" and kept["U"] == "M"


def test_lift_makes_a_one_child_label_a_sibling():
    """darknet's 9k.tree: kale (a label) with the one child collards becomes its sibling."""
    labels = ["T", "U", "V", "K", "Q"]  # chain of labels M-T-U-V; K has one child Q
    tree = as_parents(*build_wordtree(labels, fake_paths, prune="single"))
    # Deepest first: U hands V to T, T now has two children (U, V) and keeps them;
    # K hands Q to M. No node is left with exactly one child.
    assert tree == {"M": None, "T": "M", "U": "T", "V": "T", "K": "M", "Q": "M"}
    children = {}
    for node, up in tree.items():
        children.setdefault(up, []).append(node)
    assert all(len(kids) != 1 for up, kids in children.items() if up is not None)


def test_order_and_duplicates():
    nodes, parents = build_wordtree(["Q", "S", "Q", "V", "X", "Y"], fake_paths)
    check_darknet_order(nodes, parents)
    assert len(nodes) == len(set(nodes))
    assert nodes[0] == "R" and parents[0] == -1


def test_bad_input():
    with pytest.raises(DarknetError, match="does not end"):
        build_wordtree(["C"], lambda node: [["R", "A"]])
    with pytest.raises(DarknetError, match="no hypernym path"):
        build_wordtree(["C"], lambda node: [])
    with pytest.raises(DarknetError, match="prune"):
        build_wordtree(["C"], fake_paths, prune="some")
    with pytest.raises(DarknetError, match="tie"):
        build_wordtree(["C"], fake_paths, tie="random")


def test_read_labels(tmp_path):
    path = tmp_path / "x.labels"
    path.write_text("n01\n\nn02 extra\nn01\n")
    assert read_labels(path) == ["n01", "n02"]
    path.write_text("\n")
    with pytest.raises(DarknetError, match="no labels"):
        read_labels(path)
    with pytest.raises(DarknetError, match="cannot open"):
        read_labels(tmp_path / "absent")


class FakeWordNet:
    """Stands in for nltk's reader in the CLI (see the fake_wordnet fixture)."""


@pytest.fixture
def fake_wordnet(monkeypatch):
    monkeypatch.setattr(cli, "wordnet_reader", lambda root=None: FakeWordNet())
    monkeypatch.setattr(cli, "wordnet_paths", lambda reader: fake_paths)
    monkeypatch.setattr(cli, "wordnet_name", lambda reader, node: f"name {node.lower()}")


def test_cli_writes_darknet_tree_names_and_labels(tmp_path, fake_wordnet, capsys):
    labels = tmp_path / "in.labels"
    labels.write_text("X\nC\nE\nD\nQ\nS\n")
    out = tmp_path / "my.tree"
    assert cli.main([str(labels), "-o", str(out), "-labels", str(tmp_path / "my.labels")]) == 0
    assert "6 labels" in capsys.readouterr().out
    tree = read_tree(out)  # darknet's reader semantics, groups included
    nodes, parents = build_wordtree(["X", "C", "E", "D", "Q", "S"], fake_paths)
    assert tree.names == nodes and tree.parent.tolist() == parents
    assert (tmp_path / "my.names").read_text().splitlines() == [
        f"name {n.lower()}" for n in nodes]
    assert (tmp_path / "my.labels").read_text().splitlines() == nodes
    # every sibling group is one softmax: the group sizes add up to the node count
    assert tree.group_size.sum() == tree.n
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporaries


def test_cli_options_and_errors(tmp_path, fake_wordnet):
    labels = tmp_path / "in.labels"
    labels.write_text("V\nQ\nS\n")
    names = tmp_path / "n.txt"
    assert cli.main([str(labels), "-o", str(tmp_path / "t"), "-names", str(names),
                     "-prune", "none", "-nolift"]) == 0
    assert len(names.read_text().splitlines()) == 8
    with pytest.raises(DarknetError, match="usage"):
        cli.main([str(labels)])
    with pytest.raises(DarknetError, match="unknown option"):
        cli.main([str(labels), "-o", str(tmp_path / "t"), "-bogus"])
    with pytest.raises(DarknetError, match="prune"):
        cli.main([str(labels), "-o", str(tmp_path / "t"), "-prune", "x"])
    with pytest.raises(DarknetError, match="overwrite"):
        cli.main([str(labels), "-o", str(tmp_path / "t.names")])


def test_package_imports_without_nltk():
    code = ("import sys; sys.modules['nltk'] = None\n"
            "import darknet_py, darknet_py.wordtree, darknet_py.cli.wordtree\n"
            "from darknet_py.wordtree import wordnet_reader\n"
            "from darknet_py.errors import DarknetError\n"
            "try:\n    wordnet_reader()\nexcept DarknetError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install nltk" in done.stdout


# --- real WordNet ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wordnet():
    pytest.importorskip("nltk", reason="nltk is not installed (pip install nltk)")
    from darknet_py.wordtree import wordnet_reader
    try:
        return wordnet_reader()
    except DarknetError as err:
        pytest.skip(f"WordNet 3.0 is not available ({err})")


def test_wordnet_is_3_0(wordnet):
    from darknet_py.wordtree import wordnet_name, wordnet_paths
    assert wordnet.get_version() == "3.0"
    assert wordnet_name(wordnet, "n02084071") == "dog"
    paths = wordnet_paths(wordnet)("n02084071")
    assert len(paths) == 2 and all(p[0] == "n00001740" and p[-1] == "n02084071" for p in paths)
    assert paths == sorted(paths)  # deterministic whatever Python's hash seed
    with pytest.raises(DarknetError, match="no such synset"):
        wordnet_name(wordnet, "n99999999")


def test_9k_tree_matches_darknet(wordnet, tmp_path, capsys):
    """Acceptance: >= 91% of 9k.tree's nodes get the same parent. With path ties broken by
    the sorted path order and the lifting of one-child labels, it is about 98.6%."""
    data = need_shared("darknet", "data")
    out = tmp_path / "9k.tree"
    assert cli.main([str(data / "9k.labels"), "-o", str(out)]) == 0
    mine, ref = read_tree(out), read_tree(data / "9k.tree")
    parent_of = {n: (mine.names[p] if p >= 0 else None) for n, p in zip(mine.names, mine.parent)}
    same = sum(parent_of.get(n) == (ref.names[p] if p >= 0 else None)
               for n, p in zip(ref.names, ref.parent))
    fraction = same / ref.n
    print(f"9k.labels: {mine.n} nodes, same parent as darknet's 9k.tree for "
          f"{same}/{ref.n} = {fraction:.4f}")
    assert fraction >= 0.91
    assert fraction >= 0.98, "below the tuned figure: a rule in darknet_py/wordtree.py changed"
    names = (tmp_path / "9k.names").read_text().splitlines()
    ref_names = dict(zip(ref.names, (data / "9k.names").read_text().splitlines()))
    assert sum(names[i] == ref_names.get(n) for i, n in enumerate(mine.names)) >= 9400


def test_imagenet_1k_tree_size(wordnet):
    """The paper's WordTree1k: 1000 ImageNet labels + 369 intermediate nodes = 1369."""
    from darknet_py.wordtree import wordnet_paths
    data = need_shared("darknet", "data")
    labels = read_labels(data / "imagenet.labels.list")[:1000]
    nodes, parents = build_wordtree(labels, wordnet_paths(wordnet))
    check_darknet_order(nodes, parents)
    print(f"imagenet 1k: {len(nodes)} nodes (paper: 1369)")
    assert 1355 <= len(nodes) <= 1383  # within 1% of the paper's count (1372 measured)
    assert set(labels) <= set(nodes)
