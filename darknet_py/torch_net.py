"""A darknet layer graph rebuilt with PyTorch ops, for `bench --vs torch`.

Same weights, darknet's semantics: batch norm with its CPU rule (sqrt(var) + 1e-6), leaky
.1, maxpool padded with -inf as darknet's window offset places it, darknet's reorg order.
Only what `bench` compares is built: up to (and including) layer `last`.

With train=True the weights, biases and scales require gradients and batch norm uses batch
statistics (F.batch_norm, cuDNN's kernel), so that a forward, a loss and a backward make a
training step to time against ours (`bench -train --vs torch`); its numbers are not compared.
"""
import torch
import torch.nn.functional as F


def _activation(x, name):
    if name == "leaky":
        return F.leaky_relu(x, 0.1)
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "logistic":
        return torch.sigmoid(x)
    raise NotImplementedError(f"activation {name} in the torch comparison")


class TorchNet(torch.nn.Module):
    def __init__(self, net, last, train=False):
        super().__init__()
        self.layers = net.layers[:last + 1]
        self.train_mode = train
        self.params = torch.nn.ParameterDict()
        for layer in self.layers:
            for attribute, _ in layer.param_layout():
                value = torch.from_numpy(net.ops.to_host(getattr(layer, attribute)).copy())
                learned = train and not attribute.startswith("rolling_")
                self.params[f"{layer.index}_{attribute}"] = torch.nn.Parameter(
                    value, requires_grad=learned)

    def _p(self, layer, name):
        return self.params[f"{layer.index}_{name}"]

    def _conv(self, layer, x):
        out = F.conv2d(x, self._p(layer, "weights"), stride=layer.stride,
                       padding=layer.padding, groups=layer.groups)
        if layer.batch_normalize and self.train_mode:
            out = F.batch_norm(out, self._p(layer, "rolling_mean"),
                               self._p(layer, "rolling_variance"), self._p(layer, "scales"),
                               None, training=True, momentum=0.01, eps=1e-5)
        elif layer.batch_normalize:
            mean = self._p(layer, "rolling_mean")[None, :, None, None]
            std = self._p(layer, "rolling_variance").sqrt()[None, :, None, None] + 1e-6
            out = (out - mean) / std * self._p(layer, "scales")[None, :, None, None]
        return _activation(out + self._p(layer, "biases")[None, :, None, None],
                           layer.activation)

    @staticmethod
    def _maxpool(layer, x):
        top = layer.padding // 2
        bottom = max(0, (layer.out_h - 1) * layer.stride + layer.size - top - layer.h)
        right = max(0, (layer.out_w - 1) * layer.stride + layer.size - top - layer.w)
        x = F.pad(x, (top, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, layer.size, layer.stride)[:, :, :layer.out_h, :layer.out_w]

    @staticmethod
    def _reorg(layer, x):
        batch, channels, height, width = x.shape
        s = layer.stride
        wide = x.reshape(batch, channels // (s * s), height, s, width, s)
        return wide.permute(0, 3, 5, 1, 2, 4).reshape(batch, layer.out_c, layer.out_h,
                                                      layer.out_w)

    def forward(self, x):
        outputs = []
        for layer in self.layers:
            kind = layer.type
            if kind == "convolutional":
                x = self._conv(layer, x)
            elif kind == "maxpool":
                x = self._maxpool(layer, x)
            elif kind == "avgpool":
                x = x.mean(dim=(2, 3), keepdim=True)
            elif kind == "route":
                x = torch.cat([outputs[i].reshape(x.shape[0], -1) for i in layer.sources], 1)
                x = x.reshape(-1, layer.out_c, layer.out_h, layer.out_w)
            elif kind == "reorg" and not layer.reverse:
                x = self._reorg(layer, x)
            elif kind == "softmax" and layer.tree is None and layer.groups == 1:
                x = torch.softmax(x.reshape(x.shape[0], -1), 1).reshape(x.shape[0], -1, 1, 1)
            elif kind == "connected":
                x = F.linear(x.reshape(x.shape[0], -1), self._p(layer, "weights"),
                             self._p(layer, "biases")).reshape(x.shape[0], -1, 1, 1)
                x = _activation(x, layer.activation)
            elif kind in ("dropout", "cost"):
                pass
            else:
                raise NotImplementedError(f"layer type {kind} in the torch comparison")
            outputs.append(x)
        return x
