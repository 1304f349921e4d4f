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
from . import make_parser, parse


def wordtree_parser():
    parser = make_parser("wordtree", __doc__.split("\n", 2)[2].strip(), ignored=False)
    parser.add_argument("labels_file", metavar="labels", help="labels file (one wnid a line)")
    parser.add_argument("-o", "-out", dest="tree_out", required=True, metavar="TREE",
                        help="tree file to write")
    parser.add_argument("-names", dest="names_out", default=None,
                        help="names file to write (default: the tree's name with .names)")
    parser.add_argument("-labels", dest="labels_out", default=None,
                        help="labels file to write (the tree's wnids in its order)")
    parser.add_argument("-prune", default="single", choices=PRUNE_MODES,
                        help="default single")
    parser.add_argument("-tie", default="first", choices=TIE_RULES, help="default first")
    parser.add_argument("-nolift", action="store_true", help="do not lift single children")
    parser.add_argument("-wordnet", default=None, metavar="DIR", help="nltk_data folder")
    return parser


def main(argv):
    args = parse(wordtree_parser(), argv)
    labels_file, tree_out, names_out = args.labels_file, args.tree_out, args.names_out
    labels_out, prune, tie, lift = args.labels_out, args.prune, args.tie, not args.nolift
    wordnet_root = args.wordnet
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


PARSERS = {"wordtree": [wordtree_parser]}
