"""The result files darknet's `detector valid` writes, as text: comp4 lines (eval=voc,
print_detector_detections), COCO JSON objects (eval=coco, print_cocos) and ImageNet lines
(eval=imagenet, print_imagenet_detections), all in darknet's detector.c.

Pure formatting: each function takes the Boxes of one image (darknet_py.detection) and the
order after NMS and returns records or lines; the `detector valid` command
(darknet_py.cli.evaluate) opens and writes the files. Corners are computed the way darknet
does (double arithmetic stored in float32) so the printed numbers match darknet's. Reading
comp4 files back is darknet_py.evaluation.ap's read_detection_file.
"""
import numpy as np

F32 = np.float32

# COCO category ids of darknet's 80 classes (darknet's coco_ids table in detector.c).
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
            25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49,
            50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
            75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def _corners(boxes, order, offset):
    """xmin, ymin, xmax, ymax in float32 as print_detector_detections (offset 1) and
    print_cocos (offset 0) compute them: `bbox.x - bbox.w/2. + 1` is evaluated in double
    (the 2. literal) and stored in a float."""
    xywh = boxes.xywh[order].astype(np.float64)
    half_w, half_h = xywh[:, 2] / 2.0, xywh[:, 3] / 2.0
    return ((xywh[:, 0] - half_w + offset).astype(F32), (xywh[:, 1] - half_h + offset).astype(F32),
            (xywh[:, 0] + half_w + offset).astype(F32), (xywh[:, 1] + half_h + offset).astype(F32))


def comp4_records(boxes, order, im_w, im_h, classes):
    """(class, prob, xmin, ymin, xmax, ymax) as print_detector_detections writes them: boxes
    in NMS order, 1-based pixels clipped to [1, w] x [1, h], every class with a nonzero prob."""
    xmin, ymin, xmax, ymax = _corners(boxes, order, 1.0)
    xmin, ymin = np.where(xmin < 1, F32(1), xmin), np.where(ymin < 1, F32(1), ymin)
    xmax, ymax = np.where(xmax > im_w, F32(im_w), xmax), np.where(ymax > im_h, F32(im_h), ymax)
    probs = boxes.prob[order][:, :classes]
    return [(int(j), float(probs[i, j]), float(xmin[i]), float(ymin[i]), float(xmax[i]),
             float(ymax[i])) for i, j in zip(*np.nonzero(probs))]


def _clipped_zero_based(boxes, order, im_w, im_h):
    """print_cocos / print_imagenet_detections corners: 0-based, clipped to [0, w] x [0, h]."""
    xmin, ymin, xmax, ymax = _corners(boxes, order, 0.0)
    return (np.where(xmin < 0, F32(0), xmin), np.where(ymin < 0, F32(0), ymin),
            np.where(xmax > im_w, F32(im_w), xmax), np.where(ymax > im_h, F32(im_h), ymax))


def coco_image_id(path):
    """get_coco_image_id: atoi of what follows the last '_' (else the last '/')."""
    cut = max(path.rfind("_"), path.rfind("/"))
    digits = ""
    for char in path[cut + 1:]:
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else 0


def coco_lines(path, boxes, order, im_w, im_h, classes):
    """print_cocos: one JSON object per (box, class) with a nonzero prob, bbox = x, y, w, h."""
    xmin, ymin, xmax, ymax = _clipped_zero_based(boxes, order, im_w, im_h)
    width, height = xmax - xmin, ymax - ymin    # float subtraction, as darknet's bw, bh
    probs = boxes.prob[order][:, :classes]
    image = coco_image_id(path)
    return [f'{{"image_id":{image}, "category_id":{COCO_IDS[j]}, "bbox":[{float(xmin[i]):f}, '
            f'{float(ymin[i]):f}, {float(width[i]):f}, {float(height[i]):f}], '
            f'"score":{float(probs[i, j]):f}}}' for i, j in zip(*np.nonzero(probs))]


def imagenet_lines(number, boxes, order, im_w, im_h, classes):
    """print_imagenet_detections: `<image number> <class+1> <prob> <corners>`, 0-based."""
    xmin, ymin, xmax, ymax = _clipped_zero_based(boxes, order, im_w, im_h)
    probs = boxes.prob[order][:, :classes]
    return [f"{number} {j + 1} {float(probs[i, j]):f} {float(xmin[i]):f} {float(ymin[i]):f} "
            f"{float(xmax[i]):f} {float(ymax[i]):f}\n" for i, j in zip(*np.nonzero(probs))]


def format_detection_line(image, prob, xmin, ymin, xmax, ymax):
    """A comp4 line as darknet's print_detector_detections writes it ("%s %f %f %f %f %f")."""
    return f"{image} {prob:f} {xmin:f} {ymin:f} {xmax:f} {ymax:f}\n"
