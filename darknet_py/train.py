"""Training loops: darknet's train_detector and train_classifier (detector.c, classifier.c).

Each iteration loads batch*subdivisions images (in background workers), runs one
train_step, and prints darknet's line. Checkpoints are darknet's: `<backup>/<cfg>.backup`
and `<backup>/<cfg>_<N>.weights` on darknet's schedule, `<cfg>_final.weights` (detector) or
`<cfg>.weights` (classifier) at the end. Saves are atomic; Ctrl-C saves the backup first.

Watching a run (docs/TRAINING.md): the layer table and which layers the weights file
covered at the start; a progress line on a terminal's stderr (Progress); darknet's lines on
stdout and, with `log_path`, appended to a file; `<backup>/chart.png` (loss, and mAP when
measured) every `chart_every` iterations; with `calc_map` (detector), AlexeyAB's -map:
mAP@0.5 on the valid= list every few epochs, `<cfg>_best.weights` and `<cfg>_last.weights`
(MapCheck).
"""
import io
import math
import os
import sys
import time

import numpy as np

from . import log, signals
from .config import read_data_cfg, read_list
from .data.checks import check_detection_labels
from .data.labels import image_id, read_image_labels
from .data.loader import BatchLoader, LoaderError
from .errors import DarknetError, WriteError
from .fileio import atomic_write_bytes
from .network import load_network
from .tree import read_tree

CHART_NAME = "chart.png"


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


def clock(seconds):
    """A duration as H:MM:SS (hours unbounded)."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_text(batch, total, first_batch, images, elapsed, loss, avg_loss, extra=""):
    """The progress line: iteration (of max_batches, 0 = no end), current and average loss,
    images/s and the ETA over the iterations of this run so far (load, step, checkpoints
    and mAP checks included), then `extra` (the mAP, when measured)."""
    done = batch - first_batch
    text = f"{batch}/{total} {100 * batch / total:.0f}%" if total else f"{batch}"
    if total:   # first, so that a narrow terminal still shows it
        eta = clock(elapsed / done * max(0, total - batch)) if done > 0 else "?"
        text += f" | ETA {eta}"
    text += f" | loss {loss:.3f}, avg {avg_loss:.3f}"
    if done > 0 and elapsed > 0:
        text += f" | {done * images / elapsed:.1f} images/s, {clock(elapsed)} elapsed"
    return text + (f" | {extra}" if extra else "")


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """One line on stderr, rewritten in place (carriage return), when stderr is a terminal; nothing
    otherwise. Darknet's own lines go to stdout: before each of them, and before each
    message through log.py, the line is cleared, and it is drawn again after, so the two
    never share a line of the terminal."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self.stream)
        self.text = ""
        self.visible = False
        self.extra = ""

    def start(self, batch, total, images):
        self.first_batch, self.total, self.images = batch, total, images
        self.started = time.time()
        if self.enabled:
            log.logger.addFilter(self._before_message)

    def _before_message(self, record):
        self.clear()
        return True

    def update(self, batch, loss, avg_loss):
        self.text = progress_text(batch, self.total, self.first_batch, self.images,
                                  time.time() - self.started, loss, avg_loss, self.extra)
        self.draw()

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):   # the terminal went away: stop drawing
            self.enabled = False

    def _columns(self):
        """The terminal's width (some pseudo-terminals say 0: then $COLUMNS, or 80)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
            columns = 0
        if columns <= 0:
            columns = int(os.environ.get("COLUMNS", "0")) if \
                os.environ.get("COLUMNS", "").isdigit() else 0
        return columns if columns > 0 else 80

    def clear(self, always=False):
        """Erase the line (always: whatever is on it, e.g. another bar's leftovers)."""
        if self.enabled and (self.visible or always):
            self._write("\r\033[K")
            self.visible = False

    def draw(self):
        if self.enabled and self.text:
            # one character short of the width: a full line would wrap and \r not return
            self._write("\r" + self.text[:max(1, self._columns() - 1)] + "\033[K")
            self.visible = True

    def close(self):
        """Clear the line for good (the lines after the loop print without it)."""
        self.clear()
        self.text = ""
        log.logger.removeFilter(self._before_message)


class RunLog:
    """Darknet's lines: printed to `out` as darknet prints them and, with a path, appended
    to that file too (flushed per line, so `tail -f` follows the run)."""

    def __init__(self, out, path=None):
        self.out = out
        self.path = path
        self.file = None
        if path is not None:
            try:
                self.file = open(path, "a", encoding="utf-8")
            except OSError as err:
                raise WriteError(f"{path}: cannot write the log: "
                                 f"{err.strerror or err}") from None

    def write(self, line):
        print(line, file=self.out, flush=True)
        if self.file is not None:
            try:
                self.file.write(line + "\n")
                self.file.flush()
            except OSError as err:
                raise WriteError(f"{self.path}: cannot write the log: "
                                 f"{err.strerror or err}") from None

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def chart_loss_cap(losses):
    """The loss axis' top: the first iterations' loss (often far above the rest) would
    squeeze the curve flat, so with 20 points or more the axis ends 10% above the highest
    loss after the first tenth of the run (higher points are drawn on the top edge)."""
    if len(losses) < 20:
        return None
    return 1.1 * max(losses[len(losses) // 10:])


def thin_curve(points, buckets=400):
    """At most 2*buckets points drawing the same curve at chart size: the iterations cut
    into `buckets` runs, each kept as its lowest and highest point (in order), so that a
    10,000-iteration chart draws quickly and keeps its spikes."""
    if len(points) <= 2 * buckets:
        return points
    size = len(points) / buckets
    kept = []
    for number in range(buckets):
        run = points[int(number * size):int((number + 1) * size)]
        low, high = min(run, key=lambda p: p[1]), max(run, key=lambda p: p[1])
        kept += sorted({low, high})
    return kept


def draw_training_chart(target, base, history, maps, max_batches):
    """chart.png: loss and average loss against iteration, mAP@0.5 on a second axis."""
    from .plot import line_chart
    batch = history[-1][0]
    title = f"{base}: iteration {batch}" + (f" of {max_batches}" if max_batches else "")
    if maps:
        title += f", mAP@0.5 last {maps[-1][1]:.3f}, best {max(m for _, m in maps):.3f}"
    image = io.BytesIO()
    line_chart(image, {"loss": thin_curve([(b, loss) for b, loss, _ in history]),
                       "avg loss": thin_curve([(b, avg) for b, _, avg in history])},
               title, "iteration", "loss", size=(800, 480),
               y_max=chart_loss_cap([loss for _, loss, _ in history]),
               right_series={"mAP@0.5": maps} if maps else None, right_label="mAP@0.5")
    atomic_write_bytes(target, image.getvalue())


class Trainer:
    """What the two loops share: the network, the loader, the log, the progress line, the
    chart and the checkpoints."""

    def __init__(self, data, cfg, weights, clear, seed, workers, device, out=None,
                 log_path=None, chart_every=10, progress=None):
        if chart_every is not None and chart_every < 1:
            raise DarknetError(f"-chart_every {chart_every}: expected at least 1 iteration "
                               "(-nochart for no chart)")
        self.options = read_data_cfg(data)
        self.out = sys.stdout if out is None else out
        self.paths = self.training_list(data)   # before the network: a missing list is quick
        self.net = load_network(cfg, weights, device=device, seed=1 if seed is None else seed,
                                verbose=True)   # darknet's layer table, on stderr
        if weights is not None:
            self.report_weights(weights)
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
        self.chart_every = chart_every
        self.max_batches = self.net.options.max_batches   # run() sets the run's own
        self.history = []       # (batch, loss, avg loss) of each iteration of this run
        self.maps = []          # (batch, mAP@0.5) of each -map check
        self.progress = Progress(progress)
        self.run_log = RunLog(self.out, log_path)
        opts = self.net.options
        self.log(f"Learning Rate: {opts.learning_rate:g}, Momentum: {opts.momentum:g}, "
                 f"Decay: {opts.decay:g}")

    def report_weights(self, weights):
        """darknet's "Loading weights from ...Done!" and how much of the network the file
        covered (a `partial` file stops early: the layers after it keep their random
        initial values)."""
        net = self.net
        log.info(f"Loading weights from {weights}...Done!")
        log.info(f"Loaded {net.loaded_layers} of {len(net.layers)} layers from {weights} "
                 f"(seen {net.seen})")

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
        """A darknet line: stdout (and the -log file), never on the progress line's row."""
        self.progress.clear()
        self.run_log.write(line)
        self.progress.draw()

    def save(self, name, announce=True):
        path = os.path.join(self.backup, name)
        with signals.deferred():   # a checkpoint is written whole or not at all
            self.net.save_weights(path)
        self.last_good = (path, self.batch_number())
        if announce:
            self.log(f"Saving weights to {path}")
        return path

    def draw_chart(self):
        """<backup>/chart.png from this run's iterations; a chart that cannot be written is
        a warning (once), not the end of the run."""
        if not self.chart_every or not self.history:
            return
        try:
            draw_training_chart(os.path.join(self.backup, CHART_NAME), self.base,
                                self.history, self.maps, self.max_batches)
        except DarknetError as err:
            log.warn_once(("chart", self.backup), f"{err} (training goes on)")

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
        self.max_batches = max_batches
        try:
            self._loop(loader, step_log, checkpoints, max_batches, resize_rule)
            final = self.save(final_name)
            self.draw_chart()
            return final
        finally:
            self.run_log.close()

    def _loop(self, loader, step_log, checkpoints, max_batches, resize_rule):
        avg_loss = -1.0
        count = 0
        seen_before, in_step = self.net.seen, False
        self.progress.start(self.batch_number(), max_batches, self.images)
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
                    batch = self.batch_number()
                    self.history.append((batch, loss, avg_loss))
                    self.progress.update(batch, loss, avg_loss)
                    checkpoints()
                    if self.chart_every and batch % self.chart_every == 0:
                        self.draw_chart()
        except KeyboardInterrupt as interrupt:
            if in_step:   # the interrupted iteration does not count
                self.net.seen = seen_before
            what = "Terminated" if isinstance(interrupt, signals.Terminated) else "Interrupted"
            self.log(f"{what}: saving before exit")
            self.save(f"{self.base}.backup")
            self.draw_chart()
            raise
        finally:
            loader.close()
            self.progress.close()


# ----------------------------------------------------------------------- -map

def default_map_every(train_images, images_per_iteration):
    """AlexeyAB's calc_map_for_each: every 4 epochs, at least every 100 iterations."""
    return max(4 * train_images // images_per_iteration, 100)


class MapCheck:
    """AlexeyAB's -map (his detector.c train_detector): mAP@0.5 on the .data file's valid=
    list after iteration N when N reaches the next check, and after the last iteration.
    The next check is `every` iterations after the previous one (or after the start of the
    run); by default every = max(4 epochs, 100) and the check waits for burn_in, as his.
    <cfg>_best.weights keeps the weights of the highest mAP so far (a tie takes the later
    ones, as his `>=`), <cfg>_last.weights those of the latest check.

    The mAP is darknet_py's `detector map` (VOC 11-point AP over the valid= list, detections
    at thresh .005 and NMS .45, as validate_detector), run on the training network itself in
    inference mode: batch norm uses its rolling statistics and updates nothing, `seen` and
    the random streams are not touched, and a network resized for multi-scale training is
    measured at the cfg's size and given its training size back."""

    def __init__(self, trainer, data, classes, every=None, map_function=None):
        if map_function is None:
            raise DarknetError("-map: train_detector(calc_map=True) needs map_function "
                               "(darknet_py.cli.evaluate.detector_map, as `detector train "
                               "-map` passes it)")
        self.map_function = map_function
        if every is not None and every < 1:
            raise DarknetError(f"-map_every {every}: expected at least 1 iteration")
        self.trainer, self.data = trainer, data
        self.valid = self._check_valid_list(data, classes)
        self.explicit = every is not None
        self.every = every if self.explicit else default_map_every(len(trainer.paths),
                                                                   trainer.images)
        self.last_check = trainer.batch_number()   # his iter_map
        self.best = None
        trainer.log(f"mAP@0.50 on {len(self.valid)} images of {trainer.options['valid']} "
                    f"every {self.every} iterations (next at {self.next_check()}) and after "
                    "the last")

    def _check_valid_list(self, data, classes):
        """The valid= list, its names= and label files, checked before the first step (a
        problem found at the first check would waste the iterations before it)."""
        options = self.trainer.options
        if "valid" not in options:
            raise DarknetError(f"{data}: -map needs a 'valid =' line (the images to measure "
                               "mAP on; AlexeyAB's fork falls back to the train= list: "
                               "write `valid = <train list>` for that)")
        paths = [line.strip() for line in read_list(options["valid"], "valid list")
                 if line.strip()]
        if not paths:
            raise DarknetError(f"{data}: valid = {options['valid']}: the list is empty")
        names_path = options.get("names", "data/names.list")
        if not os.path.exists(names_path):
            raise DarknetError(f"{data}: names = {names_path}: file not found (-map prints "
                               "the AP of each class by name)")
        names = read_list(names_path, "names list")
        if len(names) < classes:
            raise DarknetError(f"{data}: names = {names_path} lists {len(names)} names, the "
                               f"network has {classes} classes")
        boxes, ids = 0, {}
        for path in paths:
            other = ids.setdefault(image_id(path), path)
            if other != path:
                raise DarknetError(f"{options['valid']}: images {other} and {path} have the "
                                   f"same id '{image_id(path)}': mAP cannot tell them apart")
            labels = read_image_labels(path)
            if len(labels.classes) and labels.classes.max() >= classes:
                raise DarknetError(f"the label file of {path} has class "
                                   f"{labels.classes.max()}, the network has {classes} "
                                   "classes")
            boxes += len(labels.classes)
        if not boxes:
            raise DarknetError(f"{data}: valid = {options['valid']}: no boxes in its label "
                               "files, so no mAP to measure")
        return paths

    def next_check(self):
        due = self.last_check + self.every
        return due if self.explicit else max(due, self.trainer.net.options.burn_in)

    def after_iteration(self, batch, max_batches):
        if batch >= self.next_check() or batch == max_batches:
            self.measure(batch, max_batches)

    def measure(self, batch, max_batches=0):
        # map_function is `detector map`'s own code (darknet_py.cli.evaluate.detector_map,
        # handed down by the command: train.py sits below cli/), so that the number printed
        # during training is the number `detector map` gives
        trainer, net = self.trainer, self.trainer.net
        size, cfg_size = (net.width, net.height), (net.options.width, net.options.height)
        if size != cfg_size:
            trainer.log(f"Resizing to initial size: {cfg_size[0]} x {cfg_size[1]}")
            net.resize(*cfg_size)
        trainer.progress.clear()   # detector_map counts the images on stderr as it goes
        table = io.StringIO()
        try:
            _, mean = self.map_function(self.data, net=net, stream=table)
        except DarknetError as err:   # an unreadable valid image: keep this iteration
            saved = trainer.save(f"{trainer.base}.backup")
            raise DarknetError(f"-map after iteration {batch}: {err}; the weights of batch "
                               f"{batch} are saved in {saved}") from None
        finally:
            if size != cfg_size:
                net.resize(*size)
        trainer.progress.clear(always=True)   # what detector_map's own bar left on the line
        for line in table.getvalue().splitlines():
            trainer.log(line)
        self.last_check = batch
        trainer.log(f"mean_average_precision (mAP@0.50) = {mean:f}")
        if math.isnan(mean):
            return
        trainer.maps.append((batch, mean))
        if self.best is None or mean >= self.best:
            self.best = mean
            path = trainer.save(f"{trainer.base}_best.weights", announce=False)
            trainer.log(f"New best mAP@0.50 = {mean:f} at iteration {batch}, saved to {path}")
        trainer.save(f"{trainer.base}_last.weights")
        upcoming = min(self.next_check(), max_batches) if max_batches else self.next_check()
        trainer.progress.extra = f"mAP {mean:.3f} (best {self.best:.3f}, next at {upcoming})"
        trainer.draw_chart()


def train_detector(data, cfg, weights=None, clear=False, seed=None, workers=2, device=None,
                   max_batches=None, out=None, log_path=None, chart_every=10, calc_map=False,
                   map_every=None, progress=None, map_function=None):
    """darknet's train_detector; returns the final weights' path.

    out: where darknet's lines go (default stdout); log_path: a file they are appended to as
    well; chart_every: <backup>/chart.png every N iterations and at the end (None: no
    chart); calc_map: AlexeyAB's -map (MapCheck), every `map_every` iterations (default: his
    rule); progress: the stream of the progress line (default stderr; drawn only when it is
    a terminal)."""
    if map_every is not None and not calc_map:
        raise DarknetError(f"-map_every {map_every}: give -map too")
    trainer = Trainer(data, cfg, weights, clear, seed, workers, device, out, log_path,
                      chart_every, progress)
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
    map_check = (MapCheck(trainer, data, region.classes, map_every, map_function)
                 if calc_map else None)
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
        if map_check is not None:
            map_check.after_iteration(batch, max_batches)

    return trainer.run(loader, step_log, checkpoints, f"{trainer.base}_final.weights",
                       max_batches, resize_rule)


def train_classifier(data, cfg, weights=None, clear=False, seed=None, workers=2, device=None,
                     max_batches=None, out=None, log_path=None, chart_every=10, calc_map=False,
                     map_every=None, progress=None):
    """darknet's train_classifier; returns the final weights' path. The options are
    train_detector's; the chart shows the loss only, and there is no -map."""
    if calc_map or map_every is not None:
        raise DarknetError("classifier train: -map measures a detector's mAP@0.5; a "
                           "classifier has none (`classifier valid <data> <cfg> <weights>` "
                           "measures its top-1/top-k on the valid= list after training)")
    trainer = Trainer(data, cfg, weights, clear, seed, workers, device, out, log_path,
                      chart_every, progress)
    net, opts, options = trainer.net, trainer.net.options, trainer.options
    labels = [label for label in read_list(options.get("labels", "data/labels.list"),
                                           "labels list") if label]
    last = net.output_layer()
    if last.type in ("region", "detection"):
        raise DarknetError(f"{cfg}: the network ends in a [{last.type}] layer (a detector): "
                           "train it with `detector train`")
    outputs = int(np.prod(last.out_shape))
    if outputs != len(labels):
        raise DarknetError(f"{data}: labels = {options.get('labels', 'data/labels.list')} "
                           f"lists {len(labels)} labels, the network has {outputs} outputs")
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
