"""Training loops: darknet's train_detector and train_classifier (detector.c, classifier.c).

Each iteration loads batch*subdivisions images (in background workers), runs one
train_step, and prints darknet's line. Checkpoints are darknet's: `<backup>/<cfg>.backup`
and `<backup>/<cfg>_<N>.weights` on darknet's schedule, `<cfg>_final.weights` (detector) or
`<cfg>.weights` (classifier) at the end. Saves are atomic; Ctrl-C saves the backup first.
"""
import os
import sys
import time

import numpy as np

from . import log, signals
from .config import read_data_cfg, read_list
from .data.checks import check_detection_labels
from .data.loader import BatchLoader, LoaderError
from .errors import DarknetError
from .network import load_network
from .tree import read_tree


def region_line(stats):
    """forward_region_layer's statistics line, from the loss's statistics."""
    return (f"Region Avg IOU: {stats['avg_iou']:f}, Class: {stats['class']:f}, "
            f"Obj: {stats['obj']:f}, No Obj: {stats['no_obj']:f}, "
            f"Avg Recall: {stats['recall']:f},  count: {stats['count']}")


def _how_to_make_lists(data):
    """What to run when a shipped .data file's lists (pjreddie's own paths) are absent."""
    name = os.path.basename(data)
    if name == "voc.data":
        return ("Make the lists, labels and a .data file from a VOC devkit with `python -m "
                "darknet_py voc_label VOCdevkit/VOC2007 -out voc07`, then train with "
                "`python -m darknet_py detector train voc07/voc.data <cfg> [weights]`.")
    if name in ("coco.data", "combine9k.data"):
        return ("Write a text file with one image path per line (labels beside them in "
                "labels/ folders, one `class x y w h` line per box) and point train= of a "
                "copy of this .data file at it; for VOC-style XML datasets `python -m "
                "darknet_py voc_label <root> -out <folder>` writes everything.")
    return ("It is a text file with one image path per line; for VOC-style datasets "
            "`python -m darknet_py voc_label <root> -out <folder>` writes it with the labels "
            "and a .data file.")


def base_name(cfg):
    """darknet's basecfg: the cfg's file name without folder and extension."""
    return os.path.splitext(os.path.basename(cfg))[0]


class Trainer:
    """What the two loops share: the network, the loader, the log and the checkpoints."""

    def __init__(self, data, cfg, weights, clear, seed, workers, device, out=sys.stdout):
        self.options = read_data_cfg(data)
        self.out = out
        self.paths = self.training_list(data)   # before the network: a missing list is quick
        self.net = load_network(cfg, weights, device=device, seed=1 if seed is None else seed)
        if clear:
            self.net.seen = 0
        self.backup = self.options.get("backup")
        if self.backup is None:
            # darknet's default is /backup/ at the filesystem root: say where instead
            self.backup = "backup"
            log.warn(f"{data} has no 'backup =' line: checkpoints go to "
                     f"{os.path.abspath(self.backup)} (darknet would write to /backup/)")
        try:
            os.makedirs(self.backup, exist_ok=True)
        except OSError as err:
            raise DarknetError(f"{self.backup}: cannot create the backup folder: "
                               f"{err.strerror}") from None
        self.base = base_name(cfg)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.workers = workers
        self.images = self.net.options.batch * self.net.options.subdivisions
        self.last_good = None   # (path, batch) of the last checkpoint written
        opts = self.net.options
        self.log(f"Learning Rate: {opts.learning_rate:g}, Momentum: {opts.momentum:g}, "
                 f"Decay: {opts.decay:g}")

    def training_list(self, data):
        """The image paths of the .data file's train= list (blank lines skipped)."""
        listed = self.options.get("train")
        if listed is None and not os.path.exists("data/train.list"):
            raise DarknetError(f"{data}: no 'train =' line (the list of training images), "
                               "and darknet's default data/train.list does not exist")
        listed = listed or "data/train.list"
        if not os.path.exists(listed):
            raise DarknetError(f"{data}: train = {listed}: the list of training images does "
                               f"not exist. {_how_to_make_lists(data)}")
        paths = [line.strip() for line in read_list(listed, "training list") if line.strip()]
        if not paths:
            raise DarknetError(f"{data}: train = {listed}: the list is empty")
        return paths

    def check_classes(self, data, classes):
        """A .data file's classes= must agree with the network's."""
        declared = self.options.get("classes")
        if declared is not None and declared.strip().lstrip("-").isdigit() and \
                int(declared) != classes:
            raise DarknetError(f"{data}: classes = {declared}, but {self.net.path} has "
                               f"{classes} classes")

    def log(self, line):
        print(line, file=self.out, flush=True)

    def save(self, name):
        path = os.path.join(self.backup, name)
        with signals.deferred():   # a checkpoint is written whole or not at all
            self.net.save_weights(path)
        self.last_good = (path, self.batch_number())
        self.log(f"Saving weights to {path}")
        return path

    def where_good_weights_are(self):
        if self.last_good is None:
            return "no checkpoint was written in this run"
        path, batch = self.last_good
        return f"the last good weights are in {path} (batch {batch})"

    def batch_number(self):
        from .policy import current_batch
        return current_batch(self.net.options, self.net.seen)

    def _check_finite(self, loss):
        """Stop before anything is saved when the step went non-finite, naming the first
        layer where it did."""
        problem = self.net.first_non_finite()
        if problem is None and np.isfinite(loss):
            return
        where = "" if problem is None else \
            (f": layer {problem[0]} ({self.net.layers[problem[0]].type}) {problem[1]} holds "
             f"{problem[2]} NaN or infinite values")
        raise DarknetError(f"training diverged at batch {self.batch_number()} (loss {loss})"
                           f"{where}; nothing of this batch was saved; "
                           f"{self.where_good_weights_are()} (a lower learning_rate or a "
                           "longer burn_in may help)")

    def run(self, loader, step_log, checkpoints, final_name, max_batches, resize_rule):
        """The loop; `resize_rule(count)` returns a new size or None. Ctrl-C or SIGTERM
        saves the backup of the last whole iteration and exits."""
        avg_loss = -1.0
        count = 0
        seen_before, in_step = self.net.seen, False
        try:
            with signals.sigterm_as_interrupt():
                while self.batch_number() < max_batches or max_batches == 0:
                    size = resize_rule(count)
                    count += 1
                    if size:
                        self.log("Resizing")
                        self.log(f"{size}")
                        self.net.resize(size, size)
                    start = time.time()
                    try:
                        x, truth = loader.next_batch(self.net.width, self.net.height)
                    except LoaderError as err:
                        saved = self.save(f"{self.base}.backup")
                        raise DarknetError(f"{err}; the weights of batch "
                                           f"{self.batch_number()} are saved in {saved}") \
                            from None
                    self.log(f"Loaded: {time.time() - start:f} seconds")
                    start = time.time()
                    seen_before, in_step = self.net.seen, True
                    loss = self.net.train_step(x, truth)
                    in_step = False
                    for stats in self.net.statistics:
                        self.log(region_line(stats))
                    self._check_finite(loss)
                    avg_loss = loss if avg_loss < 0 else avg_loss * .9 + loss * .1
                    self.log(step_log(loss, avg_loss, time.time() - start))
                    checkpoints()
        except KeyboardInterrupt as interrupt:
            if in_step:   # the interrupted iteration does not count
                self.net.seen = seen_before
            what = "Terminated" if isinstance(interrupt, signals.Terminated) else "Interrupted"
            self.log(f"{what}: saving before exit")
            self.save(f"{self.base}.backup")
            raise
        finally:
            loader.close()
        return self.save(final_name)


def train_detector(data, cfg, weights=None, clear=False, seed=None, workers=2, device=None,
                   max_batches=None, out=sys.stdout):
    trainer = Trainer(data, cfg, weights, clear, seed, workers, device, out)
    net = trainer.net
    region = net.layers[-1]
    if region.type != "region":
        raise DarknetError(f"{cfg}: detector training needs a [region] layer last")
    paths = trainer.paths
    opts = net.options
    params = dict(jitter=region.jitter, hue=opts.hue, saturation=opts.saturation,
                  exposure=opts.exposure, max_boxes=region.max_boxes)
    if "labels" in trainer.options:   # joint detection + classification (combine9k.data)
        params["class_labels"] = [label for label in read_list(
            trainer.options["labels"], "labels list") if label]
    # dataset classes: through the region's map= (YOLO9000) or the region's own
    classes = len(region.map) if region.map is not None else region.classes
    trainer.check_classes(data, classes)
    check_detection_labels(paths, classes, params.get("class_labels"))
    loader = BatchLoader("detection", paths, trainer.images, params, seed, workers)
    max_batches = opts.max_batches if max_batches is None else max_batches

    def resize_rule(count):
        # darknet: every 10 iterations a new size (rand()%10 + 10)*32, i.e. 320..608;
        # the last 200 batches at 608
        if not (region.random and count % 10 == 0):
            return None
        size = (int(trainer.rng.integers(10)) + 10) * 32
        return 608 if trainer.batch_number() + 200 > max_batches else size

    def step_log(loss, avg_loss, seconds):
        batch = trainer.batch_number()
        return (f"{batch}: {loss:f}, {avg_loss:f} avg, {float(net.learning_rate()):f} rate, "
                f"{seconds:f} seconds, {batch * trainer.images} images")

    def checkpoints():
        batch = trainer.batch_number()
        if batch % 100 == 0:
            trainer.save(f"{trainer.base}.backup")
        if batch % 10000 == 0 or (batch < 1000 and batch % 100 == 0):
            trainer.save(f"{trainer.base}_{batch}.weights")

    return trainer.run(loader, step_log, checkpoints, f"{trainer.base}_final.weights",
                       max_batches, resize_rule)


def train_classifier(data, cfg, weights=None, clear=False, seed=None, workers=2, device=None,
                     max_batches=None, out=sys.stdout):
    trainer = Trainer(data, cfg, weights, clear, seed, workers, device, out)
    net, opts, options = trainer.net, trainer.net.options, trainer.options
    labels = [label for label in read_list(options.get("labels", "data/labels.list"),
                                           "labels list") if label]
    paths = trainer.paths
    trainer.log(f"{len(paths)}")
    params = dict(labels=labels, min_size=int(opts.min_ratio * net.width),
                  max_size=int(opts.max_ratio * net.width), angle=opts.angle,
                  aspect=opts.aspect, hue=opts.hue, saturation=opts.saturation,
                  exposure=opts.exposure)
    if "tree" in options:   # darknet9000: WordTree targets (classifier.c, args.hierarchy)
        params["tree"] = read_tree(options["tree"])
        if params["tree"].n != len(labels):
            raise DarknetError(f"{data}: tree = {options['tree']} has {params['tree'].n} "
                               f"nodes but labels = lists {len(labels)} labels")
    trainer.log(f"{params['min_size']} {params['max_size']}")
    loader = BatchLoader("classification", paths, trainer.images, params, seed, workers)
    max_batches = opts.max_batches if max_batches is None else max_batches
    epoch = [net.seen // len(paths)]

    def resize_rule(count):
        if not (opts.random and count % 40 == 0):
            return None
        size = (int(trainer.rng.integers(11)) + 4) * 32
        params["min_size"] = int(opts.min_ratio * size)
        params["max_size"] = int(opts.max_ratio * size)
        return size

    def step_log(loss, avg_loss, seconds):
        return (f"{trainer.batch_number()}, {net.seen / len(paths):.3f}: {loss:f}, "
                f"{avg_loss:f} avg, {float(net.learning_rate()):f} rate, {seconds:f} seconds, "
                f"{net.seen} images")

    def checkpoints():
        if net.seen // len(paths) > epoch[0]:
            epoch[0] = net.seen // len(paths)
            trainer.save(f"{trainer.base}_{epoch[0]}.weights")
        if trainer.batch_number() % 1000 == 0:
            trainer.save(f"{trainer.base}.backup")

    return trainer.run(loader, step_log, checkpoints, f"{trainer.base}.weights", max_batches,
                       resize_rule)
