"""`python -m darknet_py wordtree <labels file> -o <tree> [options]`: a WordTree from WordNet.

Writes darknet's tree file (`<wnid> <parent index>` per line), a names file (one name per
node, as 9k.names) and optionally a labels file (the tree's wnids in its order, as 9k.labels,
which darknet's `labels=` needs since the tree's order is not the input's).
"""
import os

from ..errors import DarknetError
from ..fileio import atomic_write_text
from ..tree import tree_from_parents
from ..wordtree import (PRUNE_MODES, TIE_RULES, build_wordtree, read_labels, wordnet_name,
                        wordnet_paths, wordnet_reader)
from . import Args

USAGE = ("python -m darknet_py wordtree <labels file> -o <tree out> [-names <names out>] "
         "[-labels <labels out>] [-prune " + "|".join(PRUNE_MODES) + "] [-tie "
         + "|".join(TIE_RULES) + "] [-nolift] [-wordnet <nltk_data folder>]")


def main(argv):
    args = Args(argv)
    tree_out = args.text("-o", "-out")
    names_out = args.text("-names")
    labels_out = args.text("-labels")
    prune = args.text("-prune", default="single")
    tie = args.text("-tie", default="first")
    lift = not args.flag("-nolift")
    wordnet_root = args.text("-wordnet")
    (labels_file,) = args.positional(1, USAGE)
    if labels_file is None or tree_out is None:
        raise DarknetError(f"usage: {USAGE}")
    if names_out is None:
        # data/9k.tree -> data/9k.names, the pair darknet's cfgs name side by side
        names_out = os.path.splitext(tree_out)[0] + ".names"
    if os.path.abspath(names_out) == os.path.abspath(tree_out):
        raise DarknetError(f"{tree_out}: the names file would overwrite the tree; use -names")

    labels = read_labels(labels_file)
    reader = wordnet_reader(wordnet_root)
    nodes, parents = build_wordtree(labels, wordnet_paths(reader), prune=prune, tie=tie,
                                    lift=lift)
    # The same grouping check darknet's read_tree relies on, before anything is written.
    tree = tree_from_parents(nodes, parents, tree_out)

    atomic_write_text(tree_out, "".join(f"{n} {p}\n" for n, p in zip(nodes, parents)))
    atomic_write_text(names_out, "".join(wordnet_name(reader, n) + "\n" for n in nodes))
    if labels_out is not None:
        atomic_write_text(labels_out, "".join(n + "\n" for n in nodes))
    roots = int((tree.parent < 0).sum())
    print(f"wordtree: {len(labels)} labels -> {tree.n} nodes ({tree.n - len(labels)} added), "
          f"{tree.groups} softmax groups, {roots} roots")
    print(f"wrote {tree_out}, {names_out}" + (f", {labels_out}" if labels_out else ""))
    return 0
