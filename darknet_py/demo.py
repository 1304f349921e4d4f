"""`make demo`: classify data/dog.jpg with pjreddie's Tiny Darknet and print the top-5.

Files come from ../shared (beside the project) where present, else they are downloaded from
pjreddie's site and GitHub into weights/ and data/ (both git-ignored).
"""
import os
import sys
import urllib.request
from pathlib import Path

from .cli.classifier import predict_classifier
from .errors import DarknetError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DARKNET_RAW = "https://raw.githubusercontent.com/pjreddie/darknet/master/"
FILES = {
    "weights/tiny.weights": (SHARED / "weights/tiny.weights",
                             "https://pjreddie.com/media/files/tiny.weights"),
    "data/dog.jpg": (SHARED / "darknet/data/dog.jpg", DARKNET_RAW + "data/dog.jpg"),
    "data/imagenet.shortnames.list": (SHARED / "darknet/data/imagenet.shortnames.list",
                                      DARKNET_RAW + "data/imagenet.shortnames.list"),
}


def fetch(relative):
    """Path to a demo file: ../shared's copy, an earlier download, or a fresh download."""
    shared, url = FILES[relative]
    if shared.exists():
        return shared
    local = ROOT / relative
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        print(f"downloading {url} -> {local}", file=sys.stderr)
        tmp = local.with_suffix(local.suffix + ".part")
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise DarknetError(f"cannot download {url} ({err}): put the file at {local} "
                               f"or {shared}") from None
        os.replace(tmp, local)
    return local


def main():
    try:
        weights, image, names = (fetch(name) for name in FILES)
        data = ROOT / "data" / "demo.data"
        data.parent.mkdir(exist_ok=True)
        data.write_text(f"classes=1000\nnames={names}\ntop=5\n")
        predict_classifier(str(data), str(ROOT / "cfg/tiny.cfg"), str(weights), str(image), 5)
    except DarknetError as err:
        print(f"darknet_py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
