"""Building a WordTree (YOLO9000, section 4) from WordNet's hypernym graph.

WordNet is a directed graph: a synset can have several hypernyms, so a concept can have
several paths up to the root `entity`. The paper turns it into a tree greedily: concepts with
a single path are added first, then every other concept takes the path that adds the fewest
new nodes to the tree grown so far. Non-label nodes left with a single child are spliced out.
Darknet's 9k.tree shows one more rule, applied here too (docs/WORDTREE.md): a label left with
a single child becomes a leaf and that child moves up beside it, so that no softmax group
holds one node (a group of one always predicts 1 and could never tell the two apart).

The algorithm (`build_wordtree`) only sees a `hypernym_paths(wnid)` function, so it runs on
any graph; `wordnet_paths()` provides the real one from nltk's WordNet reader, imported lazily
so that the rest of darknet_py works without nltk.
"""
import functools
import os
import warnings
from collections import OrderedDict
from pathlib import Path

from .errors import DarknetError

# Where scripts/setup_wordnet.sh puts WordNet by default (git-ignored, inside the project).
PROJECT_NLTK_DATA = Path(__file__).resolve().parents[1] / ".nltk_data"

PRUNE_MODES = ("single", "none", "all")
TIE_RULES = ("first", "last", "short", "long")


def read_labels(path):
    """A labels file: one wnid per line (blank lines ignored); duplicates keep the first."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            words = [line.split()[0] for line in handle if line.split()]
    except OSError as err:
        raise DarknetError(f"{path}: cannot open labels file: {err.strerror}") from None
    if not words:
        raise DarknetError(f"{path}: no labels in the file")
    return list(OrderedDict.fromkeys(words))


def build_wordtree(labels, hypernym_paths, prune="single", tie="first", lift=True):
    """Return (nodes, parents): node ids in darknet's order and each node's parent index.

    labels: ids of the concepts to classify (their order breaks ties between equal choices).
    hypernym_paths(label) -> list of paths, each a list of ids from a root down to `label`.
    prune: 'single' drops non-label nodes that would have one child (the paper), 'none'
        keeps every node on the chosen paths, 'all' keeps only labels (each label hangs
        from its nearest label ancestor, as darknet's 9k.tree does).
    tie: among paths adding equally few nodes, take the 'first' or 'last' one in the order
        hypernym_paths gives, or the 'short'est / 'long'est (then the first of those).
    lift: a label with a single child becomes a leaf beside that child (darknet's 9k.tree).
    """
    if prune not in PRUNE_MODES:
        raise DarknetError(f"unknown prune mode '{prune}' (one of {', '.join(PRUNE_MODES)})")
    if tie not in TIE_RULES:
        raise DarknetError(f"unknown tie rule '{tie}' (one of {', '.join(TIE_RULES)})")
    labels = list(OrderedDict.fromkeys(labels))
    paths = {label: _checked_paths(label, hypernym_paths(label)) for label in labels}

    # parent[node] is fixed the first time a node enters the tree; None marks a root.
    parent = OrderedDict()
    for label in labels:
        if len(paths[label]) == 1:
            _graft(parent, paths[label][0])
    for label in labels:
        if len(paths[label]) > 1:
            _graft(parent, _cheapest(parent, paths[label], tie))

    label_set = set(labels)
    if prune == "single":
        _splice(parent, lambda node, n_children: node not in label_set and n_children == 1)
    elif prune == "all":
        _splice(parent, lambda node, n_children: node not in label_set)
    if lift:
        _lift_only_children(parent, label_set)
    return _darknet_order(parent)


def _checked_paths(label, paths):
    """Paths as tuples, duplicates removed; each must end at its label."""
    unique = list(OrderedDict.fromkeys(tuple(path) for path in paths))
    if not unique:
        raise DarknetError(f"{label}: no hypernym path (not a synset?)")
    for path in unique:
        if not path or path[-1] != label:
            raise DarknetError(f"{label}: hypernym path {list(path)} does not end at it")
    return unique


def _new_nodes(parent, path):
    """How many nodes of `path` are not in the tree yet. Walking up from the label, the first
    node already in the tree is where the path attaches: its own ancestry is kept even where
    this path would reach it through another hypernym, so every node keeps one parent."""
    count = 0
    for node in reversed(path):
        if node in parent:
            break
        count += 1
    return count


def _cheapest(parent, paths, tie):
    costs = [_new_nodes(parent, path) for path in paths]
    fewest = min(costs)
    ties = [path for path, cost in zip(paths, costs) if cost == fewest]
    if tie == "last":
        return ties[-1]
    if tie == "short":
        return min(ties, key=len)  # min/max keep the first of equal lengths
    if tie == "long":
        return max(ties, key=len)
    return ties[0]


def _graft(parent, path):
    """Add the part of `path` below its deepest node already in the tree."""
    keep = len(path) - _new_nodes(parent, path)
    above = path[keep - 1] if keep else None
    for node in path[keep:]:
        parent[node] = above
        above = node


def _splice(parent, drop):
    """Remove nodes for which drop(node, number of children) holds, children moving up to the
    removed node's parent. Splicing a node out does not change how many children any other
    node has, so counting once up front is exact."""
    children = {}
    for node, up in parent.items():
        children[up] = children.get(up, 0) + 1
    doomed = {node for node in parent if drop(node, children.get(node, 0))}
    for node in parent:
        up = parent[node]
        while up in doomed:
            up = parent[up]
        parent[node] = up
    for node in doomed:
        del parent[node]


def _lift_only_children(parent, label_set):
    """A label with exactly one child hands that child up to its own parent. Deepest nodes
    go first, so a node's children are final when it is looked at (a move only adds a child
    to a shallower node). A chain of one-child labels thus ends up as siblings at the lowest
    level where a real choice exists, as in darknet's 9k.tree (kale and collards side by side
    under cabbage)."""
    children = {node: [] for node in parent}
    children[None] = []
    depth = {}
    for node, up in parent.items():  # insertion order puts every parent before its children
        children[up].append(node)
        depth[node] = 0 if up is None else depth[up] + 1
    for node in sorted(parent, key=lambda n: -depth[n]):  # stable: ties keep tree order
        if node in label_set and len(children[node]) == 1:
            only = children[node].pop()
            parent[only] = parent[node]
            children[parent[node]].append(only)


def _darknet_order(parent):
    """Breadth-first from the roots, so a parent precedes its children and each node's
    children are consecutive, which darknet's read_tree needs to form its softmax groups.
    Siblings keep the order in which they entered the tree."""
    children = OrderedDict((node, []) for node in parent)
    roots = []
    for node, up in parent.items():
        (roots if up is None else children[up]).append(node)
    nodes, parents = list(roots), [-1] * len(roots)
    for index, node in enumerate(nodes):  # `nodes` grows while it is walked
        nodes.extend(children[node])
        parents.extend([index] * len(children[node]))
    return nodes, parents


# --- WordNet through nltk ------------------------------------------------------------------

def wordnet_reader(root=None):
    """nltk's WordNet 3.0 reader. root: a folder holding corpora/wordnet (default: NLTK_DATA
    and nltk's usual places, then the project's .nltk_data from scripts/setup_wordnet.sh)."""
    try:
        import nltk
    except ImportError:
        raise DarknetError("building a WordTree needs nltk: pip install nltk") from None
    if root is not None:
        folder = Path(root) / "corpora" / "wordnet"
    else:
        if str(PROJECT_NLTK_DATA) not in nltk.data.path:
            nltk.data.path.append(str(PROJECT_NLTK_DATA))
        try:
            found = nltk.data.find("corpora/wordnet")
        except LookupError:
            found = None
        if found is not None and not hasattr(found, "path"):
            raise DarknetError(f"WordNet is only zipped ({found}): unzip it beside the zip")
        folder = found and Path(found.path)
    if folder is None or not (folder / "data.noun").is_file():
        where = folder or (f"NLTK_DATA ({os.environ.get('NLTK_DATA', 'unset')}) "
                           f"or {PROJECT_NLTK_DATA}")
        raise DarknetError(f"WordNet is not set up in {where}: run scripts/setup_wordnet.sh "
                           "(offline, from Debian's wordnet-base) or nltk.download('wordnet')")
    return _load_reader(str(folder))


@functools.lru_cache(maxsize=2)
def _load_reader(folder):
    """nltk's reader takes seconds to index WordNet; one per folder and process is enough."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    with warnings.catch_warnings():
        # No Open Multilingual Wordnet is needed here; nltk warns when it is absent.
        warnings.simplefilter("ignore")
        try:
            reader = WordNetCorpusReader(folder, None)
        except (OSError, AssertionError, ValueError) as err:
            raise DarknetError(f"{folder}: incomplete WordNet ({err}); "
                               "rerun scripts/setup_wordnet.sh") from None
    if reader.get_version() != "3.0":
        raise DarknetError(f"{folder}: WordNet {reader.get_version()}, but ImageNet wnids are "
                           "WordNet 3.0 offsets")
    return reader


def synset(reader, wnid):
    """The synset of an ImageNet-style wnid: pos letter + 8-digit byte offset (n02084071)."""
    if len(wnid) < 2 or not wnid[1:].isdigit() or wnid[0] not in "nvasr":
        raise DarknetError(f"'{wnid}' is not a wnid like n02084071")
    try:
        with warnings.catch_warnings():  # nltk warns, then returns None, on a bad offset
            warnings.simplefilter("ignore")
            found = reader.synset_from_pos_and_offset(wnid[0], int(wnid[1:]))
    except Exception:  # older nltk raises WordNetError instead
        found = None
    if found is None:
        raise DarknetError(f"{wnid}: no such synset in WordNet 3.0")
    return found


def wnid_of(syn):
    return f"{syn.pos()}{syn.offset():08d}"


def wordnet_paths(reader):
    """hypernym_paths for build_wordtree: every path from a root down to the synset through
    hypernyms and instance hypernyms (as nltk's Synset.hypernym_paths), as wnids.

    nltk keeps a synset's pointers in a set, so its own path order changes with Python's
    hash seed; sorting the paths (as tuples of wnids, root first) makes the tree the same on
    every run, and is also the order whose 'first' tie rule comes closest to darknet's tree.
    """
    memo = {}

    def paths_of(syn):
        key = wnid_of(syn)
        if key not in memo:
            above = syn.hypernyms() + syn.instance_hypernyms()
            memo[key] = [path + (key,) for up in above for path in paths_of(up)] or [(key,)]
        return memo[key]

    def hypernym_paths(wnid):
        return [list(path) for path in sorted(set(paths_of(synset(reader, wnid))))]
    return hypernym_paths


def wordnet_name(reader, wnid):
    """A node's human-readable name: its synset's first lemma, underscores as spaces (the
    form of darknet's 9k.names)."""
    return synset(reader, wnid).lemma_names()[0].replace("_", " ")
