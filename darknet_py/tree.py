"""Darknet's WordTree file format (tree.c): one `<name> <parent index>` line per node.

Consecutive nodes with the same parent form one softmax group; a root has parent -1.
`child[i]` is the group holding node i's children (-1 for a leaf). Nodes must list a parent
before its children and keep siblings together, as darknet's 9k.tree does.
"""
from dataclasses import dataclass

import numpy as np

from .errors import CfgError


@dataclass
class Tree:
    names: list
    parent: np.ndarray
    child: np.ndarray
    group: np.ndarray
    group_offset: np.ndarray
    group_size: np.ndarray
    leaf: np.ndarray

    @property
    def n(self):
        return len(self.names)

    @property
    def groups(self):
        return len(self.group_offset)


def tree_from_parents(names, parents, where="<tree>"):
    """Build the group structure exactly as darknet's read_tree does."""
    n = len(parents)
    child = np.full(n, -1, dtype=np.int64)
    group = np.zeros(n, dtype=np.int64)
    offsets, sizes = [], []
    last_parent, group_size = -1, 0
    for node, parent in enumerate(parents):
        if not -1 <= parent < n:
            raise CfgError(f"{where}: node {node} ({names[node]}) has parent {parent}, "
                           f"outside -1..{n - 1}")
        if parent != last_parent:
            offsets.append(node - group_size)
            sizes.append(group_size)
            group_size, last_parent = 0, parent
        group[node] = len(offsets)
        if parent >= 0:
            if child[parent] not in (-1, len(offsets)):
                raise CfgError(f"{where}: the children of node {parent} ({names[parent]}) are "
                               "not contiguous; darknet needs siblings on consecutive lines")
            child[parent] = len(offsets)
        group_size += 1
    offsets.append(n - group_size)
    sizes.append(group_size)
    leaf = np.ones(n, dtype=bool)
    parent_array = np.asarray(parents, dtype=np.int64)
    leaf[parent_array[parent_array >= 0]] = False
    return Tree(list(names), parent_array, child, group, np.asarray(offsets, np.int64),
                np.asarray(sizes, np.int64), leaf)


def read_tree(path):
    names, parents = [], []
    try:
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise CfgError(f"{path}: cannot open tree file: {err.strerror}") from None
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            parent = int(fields[1]) if len(fields) > 1 else -1
        except ValueError:
            raise CfgError(f"{path}:{line_no}: expected '<name> <parent index>', found "
                           f"'{line}'") from None
        names.append(fields[0])
        parents.append(parent)
    if not names:
        raise CfgError(f"{path}: empty tree file")
    return tree_from_parents(names, parents, path)


def write_tree(tree, path):
    from .fileio import atomic_write_text
    atomic_write_text(path, "".join(f"{name} {parent}\n"
                                    for name, parent in zip(tree.names, tree.parent)))


def hierarchy_predictions(predictions, tree, only_leaves=False):
    """Multiply each node's conditional probability by its parent's, in node order (in place).

    predictions: array whose last axis is the tree's nodes. Darknet walks j = 0..n-1, so a
    parent listed before its children already holds its absolute probability.
    """
    for node in range(tree.n):
        parent = tree.parent[node]
        if parent >= 0:
            predictions[..., node] *= predictions[..., parent]
    if only_leaves:
        predictions[..., ~tree.leaf] = 0
    return predictions


def hierarchy_top_prediction(predictions, tree, thresh):
    """darknet's hierarchy_top_prediction on one box's (already multiplied) class vector."""
    p = 1.0
    group = 0
    while True:
        start = tree.group_offset[group]
        values = predictions[start:start + tree.group_size[group]]
        # darknet starts from max=0 with a strict '>': the first maximum, if it is above 0
        best = int(np.argmax(values))
        max_value, max_i = (values[best], start + best) if values[best] > 0 else (0, start)
        max_value = np.float32(max_value)
        if np.float32(p) * max_value > thresh:
            p = np.float32(p) * max_value
            group = tree.child[max_i]
            if group < 0:
                return max_i
        elif group == 0:
            return max_i
        else:
            return tree.parent[tree.group_offset[group]]


def read_map(path):
    """A map= file: one tree index per line (coco9k.map, inet9k.map)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return [int(line) for line in handle.read().split()]
    except OSError as err:
        raise CfgError(f"{path}: cannot open map file: {err.strerror}") from None
    except ValueError as err:
        raise CfgError(f"{path}: map files hold one integer per line ({err})") from None
