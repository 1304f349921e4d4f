"""[region]: YOLOv2's detection layer (region_layer.c), forward.

The output keeps darknet's entry_index layout: for each anchor, the entries
x, y, w, h, objectness, class 0..classes-1, each an (h, w) plane. At inference x, y and
objectness go through the logistic, classes through a softmax, or through a tree softmax
(one softmax per sibling group) when `tree=` is set; w and h stay raw.

The tree softmax follows darknet's GPU kernel (softmax_tree), since darknet's CPU version
divides by a zero temperature and reads the wrong elements: see docs/QUIRKS.md.
"""
import math

from .. import log
from ..config import find_data_file
from ..region_loss import region_loss
from ..tree import read_map, read_tree
from .base import Layer
from .params import Param


class RegionLayer(Layer):
    type = "region"
    has_cost = True

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.coords = section.integer("coords", 4)
        self.classes = section.integer("classes", 20)
        self.n_anchors = section.integer("num", 1)
        self.log = section.integer("log", 0)
        self.sqrt = section.integer("sqrt", 0)
        self.softmax = section.integer("softmax", 0)
        self.background = section.integer("background", 0)
        self.max_boxes = section.integer("max", 30)
        self.jitter = section.number("jitter", 0.2)
        self.rescore = section.integer("rescore", 0)
        self.thresh = section.number("thresh", 0.5)
        self.classfix = section.integer("classfix", 0)
        self.absolute = section.integer("absolute", 0)
        self.random = section.integer("random", 0)
        self.coord_scale = section.number("coord_scale", 1)
        self.object_scale = section.number("object_scale", 1)
        self.noobject_scale = section.number("noobject_scale", 1)
        self.mask_scale = section.number("mask_scale", 1)
        self.class_scale = section.number("class_scale", 1)
        self.bias_match = section.integer("bias_match", 0)
        self._check_values(section)
        tree_path = find_data_file(section, "tree")
        self.tree = read_tree(tree_path) if tree_path else None
        map_path = find_data_file(section, "map")
        self.map = read_map(map_path) if map_path else None
        if self.tree is not None and self.tree.n != self.classes:
            raise self.error(f"tree {tree_path} has {self.tree.n} nodes but classes="
                             f"{self.classes}", "tree")
        # darknet fills biases with .5, then reads anchors=; it writes every listed number,
        # overrunning the 2*num buffer when more are given (ttt4.cfg). We keep the first 2*num.
        self.allocate_params()
        anchors = section.numbers("anchors", float, [])
        if len(anchors) > 2 * self.n_anchors:
            log.warn(f"{section.where(section.options['anchors'])} {len(anchors)} anchor "
                     f"values for num={self.n_anchors}; using the first {2 * self.n_anchors} "
                     "as darknet reads them")
        used = anchors[:2 * self.n_anchors]
        if not all(math.isfinite(value) and value > 0 for value in used):
            raise self.error(f"anchors must be positive finite numbers (found "
                             f"{section.options['anchors'].value})", "anchors")
        self.biases[:len(used)] = used
        self.entries = self.coords + self.classes + 1
        self._check_shape()

    def _check_values(self, section):
        """Values darknet would run with and produce garbage or a crash from."""
        if self.classes < 1:
            raise self.error(f"classes must be at least 1 (found {self.classes})", "classes")
        if self.n_anchors < 1:
            raise self.error(f"num (anchors) must be at least 1 (found {self.n_anchors})",
                             "num")
        if self.coords != 4:
            raise self.error(f"coords must be 4 (found {self.coords})", "coords")
        for name in ("jitter", "thresh", "coord_scale", "object_scale", "noobject_scale",
                     "class_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise self.error(f"{name} must be a finite number >= 0 (found {value})", name)

    def _check_shape(self):
        self.out_c, self.out_h, self.out_w = self.n_anchors * self.entries, self.h, self.w
        if self.c != self.out_c:
            raise self.error(f"num={self.n_anchors} anchors x (coords {self.coords} + classes "
                             f"{self.classes} + 1) = {self.out_c} channels expected, but the "
                             f"previous layer gives {self.c}")

    def params(self):
        # the anchors (darknet's l.biases): neither trained nor saved; on the host, where
        # the loss and the box decoding read them
        return [Param("biases", (2 * self.n_anchors,), fill=0.5, in_file=False,
                      on_device=False)]

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self._check_shape()

    def forward(self, x, step):
        ops = step.ops
        batch = x.shape[0]
        tree_offsets = self.tree.group_offset if self.tree is not None else None
        out = ops.region_activate(x, self.n_anchors, self.entries, self.coords, self.classes,
                                  self.background, self.softmax, tree_offsets,
                                  fast=not (step.train or step.exact))
        self.output = out.reshape(batch, self.out_c, self.out_h, self.out_w)
        if step.train and not self.onlyforward:
            # the loss runs on the host (region_loss.py), as darknet's GPU path pulls the
            # output to the CPU for it; the delta goes back to the backend's memory. The
            # statistics (darknet's "Region Avg IOU" line) are left in self.stats.
            grid = ops.to_host(self.output).reshape(batch, self.n_anchors, self.entries, -1)
            delta, self.cost, self.stats = region_loss(self, grid, ops.to_host(step.truth),
                                                       step.seen)
            self.delta = ops.to_device(delta).reshape(self.output.shape)
        return self.output

    def backward(self, step, input_delta):
        """backward_region_layer_gpu (darknet's CPU version is empty): the logistic's
        gradient on x, y and objectness, then net.delta += delta."""
        ops = step.ops
        batch = self.delta.shape[0]
        delta = self.delta.reshape(batch, self.n_anchors, self.entries, -1).copy()
        out = self.output.reshape(delta.shape)
        delta[:, :, 0:2] *= ops.gradient(out[:, :, 0:2], "logistic")
        if not self.background:
            delta[:, :, self.coords] *= ops.gradient(out[:, :, self.coords], "logistic")
        self.delta = delta.reshape(self.output.shape)
        if input_delta is not None:
            input_delta += self.delta

    def describe(self):
        return "detection"
