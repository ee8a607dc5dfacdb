"""The planner's form of a world model: the same mean prediction as ``WorldModel.step``, with the
input and output normalisers and every bias folded into the layer weights, and only the mean head.

Each layer becomes one plain batched matmul ``(E, B, i+1) @ (E, i+1, o+1)``: inputs carry an extra
constant unit (``BIAS_UNIT``) whose row of the weight matrix holds the bias, and each hidden layer
passes that unit on (``act(BIAS_UNIT) == BIAS_UNIT`` for relu and, in float32, silu). A planning step
is then a chain of matmuls and activations with no separate normalise / bias / denormalise passes,
which on a CPU are a fifth of the time.
"""

from __future__ import annotations

import torch
from torch import nn

from robot_wm.model.ensemble import ACTIVATIONS, WorldModel, WorldModelSpec

BIAS_UNIT = 20.0
"""Value of the constant unit. sigmoid(20) rounds to 1.0 in float32, so silu and relu pass it on unchanged."""


def planning_dims(spec: WorldModelSpec) -> list[int]:
    """Layer sizes of the planning network, input to output (the mean head; the bias unit not counted)."""
    return [spec.obs_dim + spec.act_dim] + [spec.hidden] * spec.layers + [spec.out_dim]


class FoldedModel(nn.Module):
    """``step(obs, action)`` like ``WorldModel.step``: (E, B, S), (E, B, A) -> next obs (E, B, S), reward (E, B)."""

    def __init__(self, spec: WorldModelSpec, weights: list[torch.Tensor], reach: tuple[torch.Tensor, torch.Tensor]):
        super().__init__()
        self.spec = spec
        self.act = ACTIVATIONS[spec.activation]
        self.weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)
        self.register_buffer("reach_centre", reach[0].detach().clone())
        self.register_buffer("reach_scale", reach[1].detach().clone())

    def state_reach(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``WorldModel.state_reach`` of the model it was folded from."""
        return self.reach_centre, self.reach_scale

    @classmethod
    @torch.no_grad()
    def of(cls, model: WorldModel) -> FoldedModel:
        """Fold ``model`` (its current weights; later changes to it are not seen)."""
        c = BIAS_UNIT
        in_shift, in_scale = model.input_affine()
        weights = []
        for k, layer in enumerate(model.hidden_layers):
            w, b = layer.weight, layer.bias[:, 0]                # (E, i, o), (E, o)
            if k == 0:                                           # normalisation of the inputs
                b = b - torch.einsum("i,eio->eo", in_shift / in_scale, w)
                w = w / in_scale[None, :, None]
            e, i, o = w.shape
            out = w.new_zeros(e, i + 1, o + 1)
            out[:, :i, :o], out[:, i, :o], out[:, i, o] = w, b / c, 1.0
            weights.append(out)
        d = model.spec.out_dim                                   # mean half of the head, denormalised
        std, mean = model.target_norm.std, model.target_norm.mean
        w, b = model.head.weight[:, :, :d] * std, model.head.bias[:, 0, :d] * std + mean
        weights.append(torch.cat([w, (b / c)[:, None]], dim=1))
        return cls(model.spec, [w.contiguous() for w in weights], model.state_reach())

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def step(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action, obs.new_full((*obs.shape[:-1], 1), BIAS_UNIT)], dim=-1)
        *hidden, head = self.weights  # not ``weights[:-1]``: torch < 2.13 breaks the compiled graph on that slice
        for w in hidden:
            x = self.act(torch.bmm(x, w))
        target = torch.bmm(x, head)
        return obs + target[..., :-1], target[..., -1]
