"""What a layer's forward and backward are given: the backend and the step's facts.

darknet hands every layer the whole `network` struct; here a layer gets only this: the
backend's ops, whether the step trains, whether arithmetic follows darknet's summation order
(exact), the truth of the batch (training), the images seen so far (the region loss's
12800 rule) and the random generator (dropout). The network makes one per forward or
training minibatch; a test can make one by hand and run a layer on its own.
"""
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class Step:
    ops: Any                        # a backend (ops.interface.Backend)
    train: bool = False
    exact: bool = False
    truth: Optional[Any] = None     # (batch, truth size) in the backend's memory, training
    seen: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # plain inference may write a layer's output into the array its previous forward
    # returned, as darknet allocates l.output once: no fresh pages to fault in every
    # forward. The network leaves it off for its output layer, whose array it returns.
    reuse_outputs: bool = False
    # plain inference: the next layer is a 2x2/2 maxpool that this convolution computes
    # as it writes its output (Network._fused_pools); the layer then returns, and holds
    # as its output, the pooled map
    pool: bool = False

    @property
    def fast(self):
        """Plain inference (neither training nor exact): folded batch norm, float32
        activations, fused passes."""
        return not (self.train or self.exact)
