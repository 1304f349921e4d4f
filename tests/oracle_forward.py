"""Running an oracle forward case: load its cfg and weights, feed input.npy (or, where
darknet's dump of the input was not kept, start after the first kept layer dump)."""
import json

import numpy as np

import darknet_py
from conftest import ORACLE


class ForwardCase:
    def __init__(self, name):
        self.name = name
        self.folder = ORACLE / name
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.files = [layer["file"] for layer in self.manifest["layers"]]

    def path(self, relative):
        return str(self.folder / relative)

    def load(self, exact=False):
        net = darknet_py.load_network(self.path(self.manifest["effective_cfg"]),
                                      self.path(self.manifest["weights"]), seed=1234,
                                      exact=exact)
        return net

    def dump(self, index):
        return np.load(self.folder / self.files[index])

    def run(self, net):
        """Forward through `net`; returns the index of the first layer computed here."""
        if (self.folder / "input.npy").exists():
            net.forward(np.load(self.folder / "input.npy"), every_output=True)
            return 0
        first = next(i for i, name in enumerate(self.files) if name)
        for index in range(first + 1):
            if self.files[index]:
                net.layers[index].output = self.dump(index)
        x = net.layers[first].output
        for layer in net.layers[first + 1:]:
            x = layer.forward(x, net.step())
        return first + 1
